package imap_test

// Security properties, end to end against the scripted server: STARTTLS
// never falls back to plaintext, credentials never travel unencrypted
// unless allowed, TLS verification is on by default, and secrets never
// reach a trace, a log or an error — even when a server echoes them back.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// noCredentialsSent fails if the server read a credential command or the
// password "secret", and, unless only is nil, anything but the commands
// only, in that order.
func noCredentialsSent(t *testing.T, srv *imaptest.Server, only ...string) {
	t.Helper()
	for _, name := range []string{"LOGIN", "AUTHENTICATE"} {
		if n := countCommand(srv, name); n != 0 {
			t.Fatalf("%s sent in plaintext: %q", name, srv.Lines())
		}
	}
	for _, l := range srv.Lines() {
		if strings.Contains(l, "secret") {
			t.Fatalf("the password was sent: %q", l)
		}
	}
	if only == nil {
		return
	}
	var got []string
	for _, l := range srv.Lines() {
		_, rest, _ := strings.Cut(l, " ")
		cmd, _, _ := strings.Cut(rest, " ")
		got = append(got, strings.ToUpper(cmd))
	}
	if strings.Join(got, ",") != strings.Join(only, ",") {
		t.Fatalf("server read %q, want only the commands %q", srv.Lines(), only)
	}
}

// rawStartTLSServer greets with greeting ("" for the default), answers
// CAPABILITY with caps and STARTTLS with reply (TAG replaced; a "|" splits
// it into writes 50 ms apart), and never does TLS.
func rawStartTLSServer(t *testing.T, greeting, caps, reply string) *imaptest.Server {
	t.Helper()
	return plain.server(t, imaptest.Config{Greeting: greeting, Capabilities: caps, Commands: map[string]imaptest.CommandFunc{
		"STARTTLS": func(s *imaptest.Session, tag, _ string) {
			for i, part := range strings.Split(reply, "|") {
				if i > 0 {
					s.Sleep(50 * time.Millisecond)
				}
				if s.Write([]byte(strings.ReplaceAll(part, "TAG", tag))) != nil {
					return
				}
			}
		},
	}})
}

// TestStartTLSNeverPlaintext: whatever a server (or a network attacker
// rewriting it) does around STARTTLS — not advertising it, refusing it,
// answering for another tag, breaking the handshake — the client never
// goes on in plaintext: StartTLS and DialStartTLS fail with an abort, and
// a Login afterwards fails without sending anything, even with
// Options.InsecureAuth.
func TestStartTLSNeverPlaintext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	starttls := []string{"CAPABILITY", "STARTTLS"}
	for _, tc := range []struct {
		name     string
		server   func(t *testing.T) (*imaptest.Server, *x509.CertPool)
		want     []string
		commands []string // what the server may read, in order (nil: not checked)
	}{
		{"not advertised", func(t *testing.T) (*imaptest.Server, *x509.CertPool) { return startTLSServer(t, "", "TAG OK go\r\n") },
			[]string{"TLS not supported by server"}, []string{"CAPABILITY"}},
		{"stripped from the greeting", func(t *testing.T) (*imaptest.Server, *x509.CertPool) {
			return rawStartTLSServer(t, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hello", "STARTTLS", "TAG OK go\r\n"), nil
		}, []string{"TLS not supported by server"}, []string{}},
		{"NO", func(t *testing.T) (*imaptest.Server, *x509.CertPool) {
			return startTLSServer(t, "STARTTLS", "TAG NO not today\r\n")
		},
			[]string{"Couldn't establish TLS session", "NO", "not today"}, starttls},
		{"BAD", func(t *testing.T) (*imaptest.Server, *x509.CertPool) {
			return startTLSServer(t, "STARTTLS", "TAG BAD what\r\n")
		},
			[]string{"Couldn't establish TLS session", "BAD"}, starttls},
		{"BYE", func(t *testing.T) (*imaptest.Server, *x509.CertPool) {
			return startTLSServer(t, "STARTTLS", "* BYE going away\r\nTAG NO bye\r\n")
		}, []string{"server said BYE: going away"}, starttls},
		{"other tag", func(t *testing.T) (*imaptest.Server, *x509.CertPool) {
			return startTLSServer(t, "STARTTLS", "ZZZ OK sure\r\n")
		},
			[]string{"unexpected tagged response"}, starttls},
		{"untrusted certificate", func(t *testing.T) (*imaptest.Server, *x509.CertPool) {
			srv, _ := startTLSServer(t, "STARTTLS", "TAG OK go\r\n")
			return srv, nil
		}, []string{"TLS handshake failed", "certificate"}, starttls},
		{"data after the OK, later", func(t *testing.T) (*imaptest.Server, *x509.CertPool) {
			return rawStartTLSServer(t, "", "STARTTLS", "TAG OK go\r\n|* OK this is not TLS\r\n"), nil
		}, []string{"data after STARTTLS response: possible injection"}, nil},
		{"data after the OK, with it", func(t *testing.T) (*imaptest.Server, *x509.CertPool) {
			return rawStartTLSServer(t, "", "STARTTLS", "TAG OK go\r\n* OK this is not TLS\r\n"), nil
		}, []string{"data after STARTTLS response: possible injection"}, nil},
	} {
		for _, dial := range []string{"StartTLS", "DialStartTLS"} {
			t.Run(tc.name+"/"+dial, func(t *testing.T) {
				t.Parallel()
				srv, pool := tc.server(t)
				opts := &imap.Options{Timeout: testTimeout, InsecureAuth: true, TLSConfig: &tls.Config{ServerName: "localhost", RootCAs: pool}}
				var err error
				if dial == "DialStartTLS" {
					var c *imap.Client
					c, err = imap.DialStartTLS(ctx, srv.Addr, opts)
					if c != nil {
						t.Fatal("DialStartTLS returned a client")
					}
				} else {
					c := plain.connect(t, srv, opts)
					err = c.StartTLS(ctx, nil)
					wantErr(t, err, imap.ErrAbort, tc.want...)
					if c.IsTLS() || c.State() != imap.StateLogout {
						t.Fatalf("after a failed StartTLS: TLS %v, state %v", c.IsTLS(), c.State())
					}
					// InsecureAuth is set, yet nothing may be sent now.
					_, lerr := c.Login(ctx, "alice", "secret")
					wantErr(t, lerr, imap.ErrAbort, "connection is closed after an earlier abort")
					_, aerr := c.AuthenticateSASL(ctx, sasl.NewPlainClient("", "alice", "secret"))
					wantErr(t, aerr, imap.ErrAbort)
				}
				wantErr(t, err, imap.ErrAbort, tc.want...)
				time.Sleep(20 * time.Millisecond) // let the server read anything that was sent
				noCredentialsSent(t, srv, tc.commands...)
			})
		}
	}
}

// DialStartTLS refuses a PREAUTH greeting (the session would start
// unencrypted) before sending anything at all.
func TestDialStartTLSPreauth(t *testing.T) {
	t.Parallel()
	for _, greeting := range []string{"* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] welcome", "* PREAUTH welcome"} {
		t.Run(greeting, func(t *testing.T) {
			srv := plain.server(t, imaptest.Config{Greeting: greeting, Capabilities: "STARTTLS"})
			c, err := imap.DialStartTLS(context.Background(), srv.Addr, &imap.Options{Timeout: testTimeout, InsecureAuth: true})
			if c != nil {
				t.Fatal("got a client")
			}
			wantErr(t, err, imap.ErrAbort, "PREAUTH", "refusing to continue")
			time.Sleep(20 * time.Millisecond)
			// A greeting without capabilities costs one CAPABILITY, which
			// carries nothing; never STARTTLS or credentials.
			var only []string
			if !strings.Contains(greeting, "CAPABILITY") {
				only = []string{"CAPABILITY"}
			} else {
				only = []string{}
			}
			noCredentialsSent(t, srv, only...)
		})
	}
}

// Untagged data and response codes that arrive in plaintext during the
// STARTTLS command (before its OK) are as untrusted as bytes after it:
// none of it survives the handshake.
func TestStartTLSDiscardsPlaintextResponses(t *testing.T) {
	t.Parallel()
	// startTLSServer handshakes after a reply starting "TAG OK": put the
	// plaintext responses in front of the tagged OK with a second STARTTLS
	// handler that writes them first.
	cert, pool := testCert(t)
	srv := plain.server(t, imaptest.Config{Capabilities: "STARTTLS", Commands: map[string]imaptest.CommandFunc{
		"STARTTLS": func(s *imaptest.Session, tag, _ string) {
			if s.Write([]byte("* CAPABILITY IMAP4rev1 INJECTED1\r\n* OK [ALERT] injected\r\n* 7 EXISTS\r\n"+
				tag+" OK [CAPABILITY IMAP4rev1 INJECTED2] go\r\n")) != nil {
				return
			}
			tc := tls.Server(s.Conn(), &tls.Config{Certificates: []tls.Certificate{cert}})
			if tc.Handshake() != nil {
				s.Close()
				return
			}
			defer s.Close()
			r := bufio.NewReader(tc)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				tag, rest, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), " ")
				out := tag + " OK done\r\n"
				if strings.HasPrefix(strings.ToUpper(rest), "CAPABILITY") {
					out = "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + out
				}
				if _, err := tc.Write([]byte(out)); err != nil {
					return
				}
			}
		},
	}})
	c := plain.connect(t, srv, &imap.Options{Timeout: testTimeout, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err := c.StartTLS(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if c.Has("INJECTED1") || c.Has("INJECTED2") || !c.Has("AUTH=PLAIN") {
		t.Fatalf("capabilities after STARTTLS: %q", c.Capabilities())
	}
	for _, typ := range []string{"CAPABILITY", "ALERT", "EXISTS", "OK"} {
		if got := c.Cached(typ); len(got) != 0 {
			t.Fatalf("plaintext %s survived: %q", typ, texts(got))
		}
	}
	mustOK(t)(c.Login(context.Background(), "u", "p")) // over TLS
}

// Credentials are refused on plaintext without InsecureAuth, and LOGIN is
// refused whenever LOGINDISABLED is advertised, even with InsecureAuth;
// nothing is sent either way.
func TestPlaintextCredentialsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		caps     string
		insecure bool
		want     string
	}{
		{"AUTH=PLAIN", false, "refusing to send credentials over an unencrypted connection"},
		{"LOGINDISABLED AUTH=PLAIN", false, "refusing to send credentials over an unencrypted connection"},
		{"LOGINDISABLED AUTH=PLAIN", true, "server advertises LOGINDISABLED"},
	} {
		t.Run(fmt.Sprintf("%s/insecure=%v", tc.caps, tc.insecure), func(t *testing.T) {
			srv := plain.server(t, imaptest.Config{Capabilities: tc.caps})
			c := plain.connect(t, srv, &imap.Options{Timeout: testTimeout, InsecureAuth: tc.insecure})
			_, err := c.Login(ctx, "alice", "secret")
			wantErr(t, err, imap.ErrCommand, tc.want)
			if !tc.insecure {
				_, err = c.AuthenticateSASL(ctx, sasl.NewPlainClient("", "alice", "secret"))
				wantErr(t, err, imap.ErrCommand, tc.want)
				_, err = c.Authenticate(ctx, "PLAIN", fakeAuth)
				wantErr(t, err, imap.ErrCommand, tc.want)
				_, err = c.LoginCRAMMD5(ctx, "alice", "secret")
				wantErr(t, err, imap.ErrCommand, tc.want)
			}
			mustOK(t)(c.Noop(ctx)) // a command error: the connection is fine
			noCredentialsSent(t, srv, "CAPABILITY", "NOOP")
		})
	}
}

// TLS verification is on by default: a certificate no system root trusts
// is refused by DialTLS and by StartTLS, before any command is sent over
// the connection.
func TestTLSVerifiedByDefault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("DialTLS", func(t *testing.T) {
		srv := imaptest.NewTLSServer(t, imaptest.Config{})
		for _, opts := range []*imap.Options{nil, {Timeout: testTimeout}, {Timeout: testTimeout, TLSConfig: &tls.Config{}}} {
			c, err := imap.DialTLS(ctx, fmt.Sprintf("localhost:%d", srv.Port), opts)
			if c != nil {
				c.Shutdown()
				t.Fatal("connected to an untrusted server")
			}
			wantErr(t, err, imap.ErrAbort, "TLS handshake with localhost")
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Fatalf("error %q is not an unknown-authority error", err)
			}
		}
		if n := len(srv.Lines()); n != 0 {
			t.Fatalf("server read %q", srv.Lines())
		}
	})
	t.Run("StartTLS", func(t *testing.T) {
		srv, _ := startTLSServer(t, "STARTTLS", "TAG OK go\r\n")
		c, err := imap.Dial(ctx, fmt.Sprintf("localhost:%d", srv.Port), &imap.Options{Timeout: testTimeout})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Shutdown()
		err = c.StartTLS(ctx, nil)
		wantErr(t, err, imap.ErrAbort, "TLS handshake failed")
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("error %q is not an unknown-authority error", err)
		}
		if tlsLines, _ := srv.Get("tls").([]string); len(tlsLines) != 0 {
			t.Fatalf("sent over the rejected TLS session: %q", tlsLines)
		}
	})
}

// ---- secrets ----

// secret is the core of every credential in TestSecretsFullSession; every
// secret form the test uses contains it.
const secret = "hunter2-S3CRET-t0ken"

// b64Forms returns the base64 text that encodes s wherever it sits in a
// base64 stream: for each of the three alignments, the characters that
// depend on s's bytes alone.
func b64Forms(s string) []string {
	var out []string
	for k := 0; k < 3; k++ {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x00", k) + s))
		skip := (k*8 + 5) / 6 // characters holding bits of the prefix
		end := len(enc) - 4   // the last group may hold padding or following bytes
		if end > skip {
			out = append(out, enc[skip:end])
		}
	}
	return out
}

// echoLogin answers LOGIN with the password pass with OK; anything else
// gets untagged NO and BAD responses and a tagged NO that echo the
// arguments back as received (CRLF of a literal turned into a space).
func echoLogin(pass string) imaptest.CommandFunc {
	return func(s *imaptest.Session, tag, args string) {
		if imaptest.FirstArg(strings.TrimPrefix(args, imaptest.FirstArg(args)+" ")) == pass && !strings.Contains(args, "\r\n") {
			s.SetUser(imaptest.FirstArg(args))
			_ = s.Send(tag + " OK [CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN] logged in")
			return
		}
		echo := strings.ReplaceAll(args, "\r\n", " ")
		_ = s.Send("* NO [ALERT] you sent "+echo, "* BAD "+echo, tag+" NO [AUTHENTICATIONFAILED] LOGIN "+echo+" rejected")
	}
}

// echoAuthenticate is an AUTHENTICATE that accepts only the decoded
// initial response want. Otherwise it sends an error challenge, then a NO
// echoing the base64 it received and its decoded form (NUL and ^A shown as
// spaces).
func echoAuthenticate(want string) imaptest.CommandFunc {
	return func(s *imaptest.Session, tag, args string) {
		b64, _, ok := initialResponse(s, args)
		if !ok {
			return
		}
		dec, _ := base64.StdEncoding.DecodeString(b64)
		if string(dec) == want {
			_ = s.Send(tag + " OK [CAPABILITY IMAP4rev1 IDLE] authenticated")
			return
		}
		shown := strings.NewReplacer("\x00", " ", "\x01", " ").Replace(string(dec))
		if s.Send("+ "+base64.StdEncoding.EncodeToString([]byte(`{"status":"401","schemes":"bearer"}`))) != nil {
			return
		}
		if _, err := s.ReadLine(); err != nil {
			return
		}
		_ = s.Send("* NO decoded: "+shown, tag+" NO [AUTHENTICATIONFAILED] invalid "+b64+" ("+shown+")")
	}
}

// TestSecretsFullSession runs whole sessions — failed and successful LOGIN
// (atom, quoted and literal passwords), AUTHENTICATE with an AuthFunc,
// SASL PLAIN and XOAUTH2 with and without SASL-IR, SELECT, FETCH, IDLE,
// LOGOUT — against a server that echoes every credential back in untagged
// and tagged responses, and sessions a server aborts (BYE, garbage, a cut
// line) while echoing. No trace line, no log record (debug level) and no
// error string may contain a secret or its base64 form.
func TestSecretsFullSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var trace, logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	opts := func() *imap.Options {
		return &imap.Options{Timeout: testTimeout, InsecureAuth: true, Trace: &trace, Logger: logger}
	}
	goodPass := "right-" + secret
	plainIR := "\x00alice\x00" + secret
	xoauthIR := "user=alice\x01auth=Bearer " + secret + "\x01\x01"
	idle := idleCmd(writes("+ idling\r\n", "* 3 EXISTS\r\n"))

	// A full session with failures first, on one connection.
	for _, saslIR := range []bool{true, false} {
		caps := "IDLE AUTH=PLAIN AUTH=XOAUTH2"
		if saslIR {
			caps += " SASL-IR"
		}
		srv := plain.server(t, imaptest.Config{Capabilities: caps, Commands: map[string]imaptest.CommandFunc{
			"LOGIN":        echoLogin(goodPass),
			"AUTHENTICATE": echoAuthenticate("nothing matches"),
			"IDLE":         idle,
			"FETCH": func(s *imaptest.Session, tag, _ string) {
				_ = s.Write([]byte("* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n" + tag + " OK done\r\n"))
			},
		}})
		c := plain.connect(t, srv, opts())
		for _, pw := range []string{secret, secret + ` "quoted" \ `, secret + strings.Repeat("x", 1100), "8bit-\u00e9-" + secret} {
			_, err := c.Login(ctx, "alice", pw)
			wantErr(t, err, imap.ErrCommand, "AUTHENTICATIONFAILED", "rejected")
			note(err)
		}
		_, err := c.Authenticate(ctx, "X-CUSTOM", func([]byte) ([]byte, error) { return []byte(secret), nil })
		wantErr(t, err, imap.ErrCommand, "AUTHENTICATIONFAILED")
		note(err)
		_, err = c.AuthenticateSASL(ctx, sasl.NewPlainClient("", "alice", secret))
		wantErr(t, err, imap.ErrCommand, "AUTHENTICATIONFAILED")
		note(err)
		_, err = c.AuthenticateSASL(ctx, imap.NewXOAuth2Client("alice", secret))
		wantErr(t, err, imap.ErrCommand, "AUTHENTICATIONFAILED")
		note(err)
		_, err = c.LoginCRAMMD5(ctx, "alice", secret)
		note(err)
		mustOK(t)(c.Login(ctx, "alice", goodPass))
		mustOK(t)(c.Select(ctx, "INBOX", false))
		res := mustOK(t)(c.Fetch(ctx, "1", "(UID BODY[])"))
		if len(res.Data) != 2 {
			t.Fatalf("fetch %q", texts(res.Data))
		}
		id, err := c.Idle(ctx, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, err := id.Next(time.Second); !ok || err != nil {
			t.Fatalf("idle: %v, %v", ok, err)
		}
		note(id.Close())
		_, err = c.Logout(ctx)
		note(err)
	}

	// Successful SASL, with and without SASL-IR.
	for _, caps := range []string{"AUTH=PLAIN AUTH=XOAUTH2 SASL-IR", "AUTH=PLAIN AUTH=XOAUTH2"} {
		for _, m := range []struct {
			client func() sasl.Client
			ir     string
		}{
			{func() sasl.Client { return sasl.NewPlainClient("", "alice", secret) }, plainIR},
			{func() sasl.Client { return imap.NewXOAuth2Client("alice", secret) }, xoauthIR},
		} {
			srv := plain.server(t, imaptest.Config{Capabilities: caps, Commands: map[string]imaptest.CommandFunc{"AUTHENTICATE": echoAuthenticate(m.ir)}})
			c := plain.connect(t, srv, opts())
			mustOK(t)(c.AuthenticateSASL(ctx, m.client()))
			_, err := c.Logout(ctx)
			note(err)
		}
	}

	// Servers that abort the session while echoing the password.
	for _, abort := range []struct {
		name, reply string
		close       bool
	}{
		{"BYE", "* BYE go away, ARGS\r\n", true},
		{"garbage", "garbage ARGS\r\n", false},
		{"unknown tag", "ZZ9 NO ARGS\r\n", false},
		{"cut line", "TAG NO ARGS and then noth", true},
		{"bare LF", "TAG NO ARGS\n", false},
		// The secret straddles the 100 bytes an error quotes of a line.
		{"long garbage", "garbage " + strings.Repeat("y", 75) + " ARGS\r\n", false},
	} {
		t.Run("abort/"+abort.name, func(t *testing.T) {
			srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
				"LOGIN": func(s *imaptest.Session, tag, args string) {
					r := strings.ReplaceAll(strings.ReplaceAll(abort.reply, "TAG", tag), "ARGS", args)
					if s.Write([]byte(r)) == nil && abort.close {
						s.Close()
					}
				},
			}})
			c := plain.connect(t, srv, opts())
			_, err := c.Login(ctx, "alice", secret)
			wantErr(t, err, imap.ErrAbort)
			note(err)
			_, err = c.Noop(ctx) // the sticky abort repeats the first error
			wantErr(t, err, imap.ErrAbort)
			note(err)
			_, err = c.Logout(ctx)
			note(err)
		})
	}

	forms := append([]string{secret, secret[:10]}, b64Forms(secret)...)
	forms = append(forms, base64.StdEncoding.EncodeToString([]byte(plainIR)), base64.StdEncoding.EncodeToString([]byte(xoauthIR)))
	for _, f := range forms {
		for what, text := range map[string]string{"trace": trace.String(), "log": logs.String(), "errors": strings.Join(errs, "\n")} {
			if i := strings.Index(text, f); i >= 0 {
				lo, hi := max(0, i-120), min(len(text), i+len(f)+40)
				t.Errorf("%s contains %q: ...%s...", what, f, text[lo:hi])
			}
		}
	}
	// The session really happened, echoes included.
	for _, want := range []string{"C: ", "LOGIN alice <redacted>", "AUTHENTICATIONFAILED", "S: * 3 EXISTS", "<redacted>"} {
		if !strings.Contains(trace.String(), want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "aborted") {
		t.Errorf("log lacks debug lines or the abort events:\n%s", logs.String())
	}
}
