package imap_test

// Ports of CPython 3.14's Lib/test/test_imaplib.py (see
// shared/reference/imaplib-3.14.md §3) against the scripted fake server of
// internal/imaptest. Every test of NewIMAPTestsMixin runs twice, as
// subtests "plain" and "tls", like CPython's NewIMAPTests and
// NewIMAPSSLTests. The IDLE tests of the mixin live in idle_test.go.
//
// Where ThreadedNetworkedTests(SSL) duplicate a mixin test (sometimes with
// looser assertions), the mixin port below covers both; the only
// ThreadedNetworkedTests with a body of their own are test_connect,
// test_bracket_flags, test_issue5949, test_linetoolong (at the real
// _MAXLINE) and test_truncated_large_literal, ported under their names.
//
// Not ported here:
//   - test_Internaldate2tuple, test_Internaldate2tuple_issue10941,
//     test_Time2Internaldate, test_that_Time2Internaldate_returns_a_result:
//     covered by internaldate_test.go.
//   - test_file_property_should_not_be_accessed, test_file_property_getter,
//     test_file_property_setter,
//     test_file_property_setter_should_not_close_previous_file: Python only
//     (IMAP4.file, a makefile object); the Go Client has no such attribute.
//   - test_dump_ur: Python only (the __debug__ dump of the untagged cache).
//   - test_deprecated__version__ (TestModule): Python only (module
//     __version__).
//   - test_login_cram_md5_blocked: Python only (an interpreter built
//     without MD5); crypto/md5 is always available in Go.
//
// Python-isms map as follows: "with IMAP4(...)" is withClient (LOGOUT at
// the end unless already logged out); IMAP4.error is imap.ErrCommand,
// IMAP4.abort imap.ErrAbort; a str or bytes authobject result is the
// []byte an AuthFunc returns, so each bytes/str pair of tests is ported
// once; the socket timeout is Options.Timeout.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// testTimeout is the Options.Timeout of test clients: long enough for a
// loaded machine running -race, short enough that a bug fails instead of
// hanging the run.
const testTimeout = 10 * time.Second

// transport is one of the two ways every mixin test runs.
type transport struct {
	name string
	tls  bool
}

var fakeTransports = []transport{{"plain", false}, {"tls", true}}

// runTransports runs f as the parallel subtests "plain" and "tls".
func runTransports(t *testing.T, f func(t *testing.T, tr transport)) {
	t.Helper()
	for _, tr := range fakeTransports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			f(t, tr)
		})
	}
}

// runTransportsSeq is runTransports for tests that must not share the
// machine: timing bounds in milliseconds, allocation counts.
func runTransportsSeq(t *testing.T, f func(t *testing.T, tr transport)) {
	t.Helper()
	for _, tr := range fakeTransports {
		t.Run(tr.name, func(t *testing.T) { f(t, tr) })
	}
}

// server starts a fake server of the transport's kind.
func (tr transport) server(t testing.TB, cfg imaptest.Config) *imaptest.Server {
	t.Helper()
	if tr.tls {
		return imaptest.NewTLSServer(t, cfg)
	}
	return imaptest.NewServer(t, cfg)
}

// options completes opts for srv. A nil opts gives the test defaults:
// testTimeout and InsecureAuth (the fake server is plain TCP or uses a
// test certificate). For TLS a missing TLSConfig trusts srv's certificate.
func (tr transport) options(srv *imaptest.Server, opts *imap.Options) *imap.Options {
	var o imap.Options
	if opts == nil {
		o = imap.Options{Timeout: testTimeout, InsecureAuth: true}
	} else {
		o = *opts
	}
	if tr.tls && o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{RootCAs: srv.CertPool}
	}
	return &o
}

// dial connects to srv: plain TCP to srv.Addr, or TLS to "localhost:PORT"
// (the name the test certificate is valid for).
func (tr transport) dial(ctx context.Context, srv *imaptest.Server, opts *imap.Options) (*imap.Client, error) {
	o := tr.options(srv, opts)
	if tr.tls {
		return imap.DialTLS(ctx, fmt.Sprintf("localhost:%d", srv.Port), o)
	}
	return imap.Dial(ctx, srv.Addr, o)
}

// connect is dial that must succeed; the client is shut down at cleanup.
func (tr transport) connect(t testing.TB, srv *imaptest.Server, opts *imap.Options) *imap.Client {
	t.Helper()
	c, err := tr.dial(context.Background(), srv, opts)
	if err != nil {
		t.Fatalf("%s: connect: %v", tr.name, err)
	}
	t.Cleanup(func() { c.Shutdown() })
	return c
}

// withClient mirrors "with client:": body runs, then LOGOUT is sent unless
// the client is already in LOGOUT state.
func withClient(t testing.TB, c *imap.Client, body func()) {
	t.Helper()
	body()
	if c.State() != imap.StateLogout {
		if _, err := c.Logout(context.Background()); err != nil {
			t.Errorf("logout on exit: %v", err)
		}
	}
}

// mustOK returns a check that a command succeeded with status OK, to wrap
// a call: mustOK(t)(c.Noop(ctx)).
func mustOK(t testing.TB) func(imap.Result, error) imap.Result {
	return func(res imap.Result, err error) imap.Result {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if res.Status != "OK" {
			t.Fatalf("status %q, want OK (data %q)", res.Status, res.Texts())
		}
		return res
	}
}

func login(t testing.TB, c *imap.Client) {
	t.Helper()
	mustOK(t)(c.Login(context.Background(), "user", "pass"))
}

// wantErr checks that err is of kind (imap.ErrCommand, imap.ErrAbort,
// imap.ErrReadOnly) and that its message contains every fragment.
func wantErr(t testing.TB, err, kind error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
	var e *imap.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %q is not an *imap.Error", err, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q does not contain %q", err, f)
		}
	}
}

func texts(data []imap.Datum) []string {
	if data == nil {
		return nil
	}
	out := make([]string, len(data))
	for i, d := range data {
		out[i] = string(d.Text)
	}
	return out
}

// countPrefix counts the lines the server read that contain the command
// name after the tag, e.g. " LOGIN".
func countCommand(srv *imaptest.Server, name string) int {
	n := 0
	for _, l := range srv.Lines() {
		_, rest, _ := strings.Cut(l, " ")
		if cmd, _, _ := strings.Cut(rest, " "); strings.EqualFold(cmd, name) {
			n++
		}
	}
	return n
}

// ---- TestImaplib ----

// TestIMAP4HostDefaultValue ports test_imap4_host_default_value: IMAP4()
// connects to localhost:143 and raises connection refused. In Go the
// refusal is checked on a port known to be closed, and Dial("") is checked
// to default to localhost:143.
func TestIMAP4HostDefaultValue(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, err = imap.Dial(context.Background(), closed, nil)
	wantErr(t, err, imap.ErrAbort, closed)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("error %q does not wrap ECONNREFUSED", err)
	}

	// The default address. CPython skips when something listens on
	// localhost:143; here the check adapts instead.
	probe, perr := net.DialTimeout("tcp", "localhost:143", time.Second)
	if perr == nil {
		probe.Close()
		t.Log("something listens on localhost:143; only the refused-port case is checked")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := imap.Dial(ctx, "", nil)
	if err == nil {
		c.Shutdown()
		t.Fatal("Dial(\"\") connected although localhost:143 refused a probe")
	}
	wantErr(t, err, imap.ErrAbort, "localhost:143")
	if errors.Is(perr, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("error %q does not wrap ECONNREFUSED", err)
	}
}

// ---- NewIMAPTestsMixin ----

func TestEOFWithoutCompleteWelcomeMessage(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Handler: func(s *imaptest.Session) {
			_ = s.Write([]byte("* OK"))
		}})
		_, err := tr.dial(context.Background(), srv, nil)
		wantErr(t, err, imap.ErrAbort)
	})
}

func TestLineTermination(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
			"CAPABILITY": func(s *imaptest.Session, tag, _ string) {
				_ = s.Write([]byte("* CAPABILITY IMAP4rev1 AUTH\n"))
				_ = s.Send(tag + " OK CAPABILITY completed")
			},
		}})
		_, err := tr.dial(context.Background(), srv, nil)
		wantErr(t, err, imap.ErrAbort, "unterminated")
	})
}

// utf8Server is CPython's UTF8Server: caps AUTH ENABLE UTF8=ACCEPT, an
// ENABLE that succeeds and an AUTHENTICATE that takes one response,
// stored under "response".
func utf8Commands() map[string]imaptest.CommandFunc {
	return map[string]imaptest.CommandFunc{
		"ENABLE": func(s *imaptest.Session, tag, _ string) {
			_ = s.Send(tag + " OK ENABLE successful")
		},
		"AUTHENTICATE": fakeAuthenticate,
	}
}

// fakeAuthenticate sends "+", stores the client's line under "response"
// and succeeds.
func fakeAuthenticate(s *imaptest.Session, tag, _ string) {
	if s.Send("+") != nil {
		return
	}
	line, err := s.ReadLine()
	if err != nil {
		return
	}
	s.Server().Set("response", line)
	s.SetUser("fake")
	_ = s.Send(tag + " OK FAKEAUTH successful")
}

func fakeAuth(challenge []byte) ([]byte, error) { return []byte("fake"), nil }

func TestEnableRaisesErrorIfNotAUTH(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Capabilities: "AUTH ENABLE UTF8=ACCEPT", Commands: utf8Commands()})
		c := tr.connect(t, srv, nil)
		if c.UTF8Enabled() {
			t.Fatal("UTF8 enabled at start")
		}
		_, err := c.Enable(context.Background(), "foo")
		wantErr(t, err, imap.ErrCommand, "ENABLE", "NONAUTH")
		if c.UTF8Enabled() {
			t.Fatal("UTF8 enabled after a refused ENABLE")
		}
		if n := countCommand(srv, "ENABLE"); n != 0 {
			t.Fatalf("server saw %d ENABLE", n)
		}
	})
}

func TestEnableRaisesErrorIfNoCapability(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Capabilities: "AUTH", Commands: utf8Commands()})
		c := tr.connect(t, srv, nil)
		_, err := c.Enable(context.Background(), "foo")
		wantErr(t, err, imap.ErrCommand, "does not support ENABLE")
	})
}

func TestEnableUTF8RaisesErrorIfNotSupported(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c := tr.connect(t, srv, nil)
		login(t, c)
		_, err := c.Enable(context.Background(), "UTF8=ACCEPT")
		wantErr(t, err, imap.ErrCommand, "does not support ENABLE")
		if c.UTF8Enabled() {
			t.Fatal("UTF8 enabled")
		}
	})
}

func TestEnableUTF8TrueAppend(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		cmds := utf8Commands()
		cmds["APPEND"] = func(s *imaptest.Session, tag, args string) {
			s.Server().Set("append", args)
			_ = s.Send(tag + " OK okay")
		}
		srv := tr.server(t, imaptest.Config{Capabilities: "AUTH ENABLE UTF8=ACCEPT", Commands: cmds})
		c := tr.connect(t, srv, nil)
		ctx := context.Background()
		mustOK(t)(c.Authenticate(ctx, "MYAUTH", fakeAuth))
		if got := srv.Get("response"); got != "ZmFrZQ==" {
			t.Fatalf("server got %q, want ZmFrZQ== (base64 of fake)", got)
		}
		mustOK(t)(c.Enable(ctx, "UTF8=ACCEPT"))
		if !c.UTF8Enabled() {
			t.Fatal("UTF8 not enabled")
		}
		msg := "Subject: üñí©öðé"
		mustOK(t)(c.Append(ctx, "", "", time.Time{}, []byte(msg+"\n")))

		// The server must see the line ending "INBOX UTF8 (~{25}", the
		// literal with LF turned into CRLF, then ")" on its own line.
		lines := srv.Lines()
		i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, " APPEND ") })
		if i < 0 || i+2 >= len(lines) {
			t.Fatalf("no APPEND in %q", lines)
		}
		_, args, _ := strings.Cut(lines[i], " APPEND ")
		if got, want := strings.Fields(args), []string{"INBOX", "UTF8", "(~{25}"}; !slices.Equal(got, want) {
			t.Fatalf("APPEND args %q, want %q", got, want)
		}
		if got, want := lines[i+1], msg+"\r\n"; got != want || len(want) != 25 {
			t.Fatalf("literal %q (%d bytes), want %q", got, len(got), want)
		}
		if lines[i+2] != ")" {
			t.Fatalf("line after literal %q, want \")\"", lines[i+2])
		}
		if got, want := srv.Get("append"), "INBOX UTF8 (~{25}\r\n"+msg+"\r\n)"; got != want {
			t.Fatalf("APPEND command args %q, want %q", got, want)
		}
	})
}

func TestSearchDisallowsCharsetInUTF8Mode(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Capabilities: "AUTH ENABLE UTF8=ACCEPT", Commands: utf8Commands()})
		c := tr.connect(t, srv, nil)
		ctx := context.Background()
		mustOK(t)(c.Authenticate(ctx, "MYAUTH", fakeAuth))
		mustOK(t)(c.Enable(ctx, "UTF8=ACCEPT"))
		if !c.UTF8Enabled() {
			t.Fatal("UTF8 not enabled")
		}
		_, err := c.Search(ctx, "foo", "bar")
		wantErr(t, err, imap.ErrCommand, "charset", "UTF8")
		if n := countCommand(srv, "SEARCH"); n != 0 {
			t.Fatalf("server saw %d SEARCH", n)
		}
	})
}

func TestBadAuthName(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
			"AUTHENTICATE": func(s *imaptest.Session, tag, args string) {
				_ = s.Send(tag + " NO unrecognized authentication type " + imaptest.FirstArg(args))
			},
		}})
		c := tr.connect(t, srv, nil)
		called := false
		_, err := c.Authenticate(context.Background(), "METHOD", func([]byte) ([]byte, error) {
			called = true
			return []byte("x"), nil
		})
		wantErr(t, err, imap.ErrCommand, "unrecognized authentication type METHOD")
		if called {
			t.Fatal("the AuthFunc was called without a challenge")
		}
		if c.State() != imap.StateNonAuth {
			t.Fatalf("state %v after a failed AUTHENTICATE", c.State())
		}
	})
}

func TestInvalidAuthentication(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
			"AUTHENTICATE": func(s *imaptest.Session, tag, _ string) {
				if s.Send("+") != nil {
					return
				}
				if _, err := s.ReadLine(); err != nil {
					return
				}
				_ = s.Send(tag + " NO [AUTHENTICATIONFAILED] invalid")
			},
		}})
		c := tr.connect(t, srv, nil)
		_, err := c.Authenticate(context.Background(), "MYAUTH", fakeAuth)
		wantErr(t, err, imap.ErrCommand, "[AUTHENTICATIONFAILED] invalid")
	})
}

// TestValidAuthentication ports test_valid_authentication_bytes and
// test_valid_authentication_plain_text (and ThreadedNetworkedTests'
// test_valid_authentication): an AuthFunc returns []byte in Go, whether
// the text was a Python str or bytes.
func TestValidAuthentication(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{"AUTHENTICATE": fakeAuthenticate}})
		c := tr.connect(t, srv, nil)
		res := mustOK(t)(c.Authenticate(context.Background(), "MYAUTH", fakeAuth))
		if got := texts(res.Data); !slices.Equal(got, []string{"FAKEAUTH successful"}) {
			t.Fatalf("data %q", got)
		}
		if got := srv.Get("response"); got != "ZmFrZQ==" {
			t.Fatalf("server got %q, want ZmFrZQ==", got)
		}
		if c.State() != imap.StateAuth {
			t.Fatalf("state %v, want AUTH", c.State())
		}
	})
}

// TestLoginCramMD5 ports test_login_cram_md5_bytes and
// test_login_cram_md5_plain_text: the password is a Go string either way.
func TestLoginCramMD5(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{
			Capabilities: "LOGINDISABLED AUTH=CRAM-MD5",
			Commands:     map[string]imaptest.CommandFunc{"AUTHENTICATE": imaptest.AuthCRAMMD5},
		})
		c := tr.connect(t, srv, nil)
		res := mustOK(t)(c.LoginCRAMMD5(context.Background(), "tim", "tanstaaftanstaaf"))
		if got := texts(res.Data); !slices.Equal(got, []string{"CRAM-MD5 successful"}) {
			t.Fatalf("data %q", got)
		}
		if srv.LoggedUser() != "tim" {
			t.Fatalf("server user %q", srv.LoggedUser())
		}
		if !slices.Contains(srv.Lines(), imaptest.CRAMMD5Response) {
			t.Fatalf("server never got the RFC 2195 answer: %q", srv.Lines())
		}
	})
}

func TestAbortedAuthentication(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
			"AUTHENTICATE": func(s *imaptest.Session, tag, _ string) {
				if s.Send("+") != nil {
					return
				}
				line, err := s.ReadLine()
				if err != nil {
					return
				}
				if line == "*" {
					_ = s.Send(tag + " NO [AUTHENTICATIONFAILED] aborted")
				} else {
					_ = s.Send(tag + " OK MYAUTH successful")
				}
			},
		}})
		c := tr.connect(t, srv, nil)
		cancelErr := errors.New("no answer")
		_, err := c.Authenticate(context.Background(), "MYAUTH", func([]byte) ([]byte, error) {
			return nil, cancelErr
		})
		wantErr(t, err, imap.ErrCommand, "[AUTHENTICATIONFAILED] aborted")
		if !errors.Is(err, cancelErr) {
			t.Errorf("error %q does not wrap the AuthFunc's error", err)
		}
		if c.State() != imap.StateNonAuth {
			t.Fatalf("state %v", c.State())
		}
		mustOK(t)(c.Noop(context.Background())) // still usable
	})
}

// TestLinetoolong ports both versions: the mixin's (_MAXLINE patched to 10)
// as Options.MaxLine and ThreadedNetworkedTests' (the real _MAXLINE) as the
// default.
func TestLinetoolong(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		for _, tc := range []struct {
			name    string
			maxLine int
			limit   int
		}{
			{"MaxLine=10", 10, 10},
			{"default", 0, imap.DefaultMaxLine},
		} {
			t.Run(tc.name, func(t *testing.T) {
				srv := tr.server(t, imaptest.Config{Handler: func(s *imaptest.Session) {
					_ = s.Send("* OK " + strings.Repeat("x", tc.limit+1))
				}})
				_, err := tr.dial(context.Background(), srv, &imap.Options{Timeout: testTimeout, MaxLine: tc.maxLine})
				wantErr(t, err, imap.ErrCommand, fmt.Sprintf("got more than %d bytes", tc.limit))
			})
		}
	})
}

func TestSimpleWithStatement(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c := tr.connect(t, srv, nil)
		withClient(t, c, func() {})
		if n := countCommand(srv, "LOGOUT"); n != 1 {
			t.Fatalf("server saw %d LOGOUT", n)
		}
		if c.State() != imap.StateLogout {
			t.Fatalf("state %v", c.State())
		}
	})
}

// TestImaplibTimeoutTest ports test_imaplib_timeout_test. Python's socket
// timeout maps to Options.Timeout, which bounds every later wait, not only
// the connect: None (no timeout) is a negative Timeout, and 0 — a
// ValueError in Python — means DefaultTimeout in Go.
func TestImaplibTimeoutTest(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		// A NOOP the server never answers.
		stall := map[string]imaptest.CommandFunc{"NOOP": func(s *imaptest.Session, tag, _ string) {
			s.Sleep(30 * time.Second)
		}}
		for _, tc := range []struct {
			name    string
			timeout time.Duration
		}{{"None", -1}, {"zero means default", 0}} {
			t.Run(tc.name, func(t *testing.T) {
				srv := tr.server(t, imaptest.Config{Commands: stall})
				c := tr.connect(t, srv, &imap.Options{Timeout: tc.timeout})
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				start := time.Now()
				_, err := c.Noop(ctx)
				// Nothing but the context ended the wait.
				wantErr(t, err, imap.ErrAbort)
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("error %q is not the context's deadline", err)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Fatalf("took %v", d)
				}
			})
		}
		t.Run("LOOPBACK_TIMEOUT", func(t *testing.T) {
			srv := tr.server(t, imaptest.Config{Commands: stall})
			c := tr.connect(t, srv, &imap.Options{Timeout: time.Second})
			start := time.Now()
			_, err := c.Noop(context.Background())
			wantErr(t, err, imap.ErrAbort)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("error %q does not wrap os.ErrDeadlineExceeded", err)
			}
			if d := time.Since(start); d < 900*time.Millisecond || d > 6*time.Second {
				t.Fatalf("timed out after %v, want about 1s", d)
			}
			if c.State() != imap.StateLogout {
				t.Fatalf("state %v after an abort", c.State())
			}
		})
	})
}

// TestImaplibTimeoutFunctionalityTest ports
// test_imaplib_timeout_functionality_test: the server sleeps 1 s before
// its greeting, the client's timeout is shorter, Dial fails with a
// deadline error.
func TestImaplibTimeoutFunctionalityTest(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		// CPython sleeps 1 s; longer here only adds margin (the sleep ends
		// when the server closes).
		srv := tr.server(t, imaptest.Config{Handler: func(s *imaptest.Session) {
			s.Sleep(3 * time.Second)
			_ = s.Send(imaptest.DefaultGreeting)
		}})
		for _, timeout := range []time.Duration{time.Millisecond, 200 * time.Millisecond} {
			start := time.Now()
			c, err := tr.dial(context.Background(), srv, &imap.Options{Timeout: timeout})
			if err == nil {
				c.Shutdown()
				t.Fatalf("timeout %v: connected", timeout)
			}
			wantErr(t, err, imap.ErrAbort)
			if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("timeout %v: error %q is not a deadline error", timeout, err)
			}
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Fatalf("timeout %v: failed only after %v", timeout, d)
			}
		}
	})
}

func TestWithStatement(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c := tr.connect(t, srv, nil)
		withClient(t, c, func() {
			mustOK(t)(c.Login(context.Background(), "user", "pass"))
			if got := srv.LoggedUser(); got != "user" {
				t.Fatalf("server user %q", got)
			}
		})
		if got := srv.LoggedUser(); got != "" {
			t.Fatalf("server user %q after exit: no LOGOUT", got)
		}
	})
}

func TestWithStatementLogout(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c := tr.connect(t, srv, nil)
		withClient(t, c, func() {
			res, err := c.Logout(context.Background())
			if err != nil || res.Status != "BYE" {
				t.Fatalf("logout: %v %v", res, err)
			}
		})
		if n := countCommand(srv, "LOGOUT"); n != 1 {
			t.Fatalf("server saw %d LOGOUT", n)
		}
	})
}

func TestLogin(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c := tr.connect(t, srv, nil)
		res := mustOK(t)(c.Login(context.Background(), "user", "pass"))
		if got := texts(res.Data); !slices.Equal(got, []string{"LOGIN completed"}) {
			t.Fatalf("data %q", got)
		}
		if c.State() != imap.StateAuth {
			t.Fatalf("state %v", c.State())
		}
	})
}

func TestLogout(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c := tr.connect(t, srv, nil)
		login(t, c)
		res, err := c.Logout(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != "BYE" {
			t.Fatalf("status %q, want BYE", res.Status)
		}
		if len(res.Data) == 0 || string(res.Data[0].Text) != "IMAP4ref1 Server logging out" {
			t.Fatalf("data %q", texts(res.Data))
		}
		if c.State() != imap.StateLogout {
			t.Fatalf("state %v", c.State())
		}
	})
}

func TestLsub(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
			"LSUB": func(s *imaptest.Session, tag, _ string) {
				_ = s.Send(`* LSUB () "." directoryA`, tag+" OK LSUB completed")
			},
		}})
		c := tr.connect(t, srv, nil)
		login(t, c)
		res := mustOK(t)(c.Lsub(context.Background(), "", ""))
		if len(res.Data) == 0 || string(res.Data[0].Text) != `() "." directoryA` {
			t.Fatalf("data %q", texts(res.Data))
		}
	})
}

func TestUnselect(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c := tr.connect(t, srv, nil)
		login(t, c)
		ctx := context.Background()
		res := mustOK(t)(c.Select(ctx, "", false))
		if got := texts(res.Data); !slices.Equal(got, []string{"2"}) {
			t.Fatalf("select data %q, want [2]", got)
		}
		res = mustOK(t)(c.Unselect(ctx))
		if got := texts(res.Data); !slices.Equal(got, []string{"Returned to authenticated state. (Success)"}) {
			t.Fatalf("unselect data %q", got)
		}
		if c.State() != imap.StateAuth {
			t.Fatalf("state %v", c.State())
		}
	})
}

// TestControlCharacters ports test_control_characters: a LOGIN user with
// any C0 control character (and DEL) fails before anything is sent.
func TestControlCharacters(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c := tr.connect(t, srv, nil)
		ctx := context.Background()
		chars := []byte{0x7f}
		for ch := byte(0); ch < 0x20; ch++ {
			chars = append(chars, ch)
		}
		for _, ch := range chars {
			_, err := c.Login(ctx, "user"+string(ch), "pass")
			wantErr(t, err, imap.ErrCommand)
			_, err = c.Login(ctx, "user", "pass"+string(ch))
			wantErr(t, err, imap.ErrCommand)
		}
		if n := countCommand(srv, "LOGIN"); n != 0 {
			t.Fatalf("server saw %d LOGIN lines: %q", n, srv.Lines())
		}
		login(t, c) // the connection is intact
	})
}

// TestSSLRaises ports NewIMAPSSLTests.test_ssl_raises: the certificate is
// for "localhost", so verifying by 127.0.0.1 fails.
func TestSSLRaises(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewTLSServer(t, imaptest.Config{})
	_, err := imap.DialTLS(context.Background(), srv.Addr, &imap.Options{
		Timeout: testTimeout, TLSConfig: &tls.Config{RootCAs: srv.CertPool},
	})
	wantErr(t, err, imap.ErrAbort)
	var verr *tls.CertificateVerificationError
	var herr x509.HostnameError
	if !errors.As(err, &verr) || !errors.As(err, &herr) {
		t.Fatalf("error %q is not a hostname verification error", err)
	}
}

// TestSSLVerified ports test_ssl_verified (both versions): by IP it fails,
// by "localhost" it succeeds.
func TestSSLVerified(t *testing.T) {
	t.Parallel()
	srv := imaptest.NewTLSServer(t, imaptest.Config{})
	opts := &imap.Options{Timeout: testTimeout, TLSConfig: &tls.Config{RootCAs: srv.CertPool}}
	if _, err := imap.DialTLS(context.Background(), srv.Addr, opts); err == nil {
		t.Fatal("connected by IP")
	}
	c, err := imap.DialTLS(context.Background(), fmt.Sprintf("localhost:%d", srv.Port), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if !c.IsTLS() {
		t.Fatal("not TLS")
	}
	if _, err := c.Logout(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Without the pool the system roots do not trust the test certificate.
	_, err = imap.DialTLS(context.Background(), fmt.Sprintf("localhost:%d", srv.Port), &imap.Options{Timeout: testTimeout})
	wantErr(t, err, imap.ErrAbort)
}

// ---- ThreadedNetworkedTests ----

func TestConnect(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c, err := tr.dial(context.Background(), srv, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.State() != imap.StateNonAuth || c.ProtocolVersion() != "IMAP4REV1" {
			t.Fatalf("state %v, protocol %q", c.State(), c.ProtocolVersion())
		}
		if got := string(c.Welcome()); got != imaptest.DefaultGreeting {
			t.Fatalf("welcome %q", got)
		}
		if err := c.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if err := c.Shutdown(); err != nil { // idempotent
			t.Fatal(err)
		}
		_, err = c.Noop(context.Background())
		wantErr(t, err, imap.ErrAbort)
	})
}

// TestBracketFlags ports test_bracket_flags (issue #21815): "]" inside
// flags, both in FETCH data and in a PERMANENTFLAGS response code.
func TestBracketFlags(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		flags := []string{"Answered", "Flagged", "Deleted", "Seen", "Draft"}
		srv := tr.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
			"AUTHENTICATE": fakeAuthenticate,
			"SELECT": func(s *imaptest.Session, tag, _ string) {
				msg := strings.Join(flags, ` \`)
				_ = s.Send("* FLAGS ("+msg+")", "* 2 EXISTS", "* 0 RECENT",
					`* OK [PERMANENTFLAGS `+msg+` \*)] Flags permitted.`,
					tag+" OK [READ-WRITE] SELECT completed.")
			},
			"STORE": func(s *imaptest.Session, tag, args string) {
				f := strings.Fields(args)
				newFlags := strings.Fields(strings.Trim(f[2], "()"))
				flags = append(flags, newFlags...)
				_ = s.Send("* 1 FETCH (FLAGS ("+strings.Join(flags, ` \`)+"))", tag+" OK STORE completed.")
			},
		}})
		c := tr.connect(t, srv, nil)
		ctx := context.Background()
		mustOK(t)(c.Authenticate(ctx, "MYAUTH", fakeAuth))
		if got := srv.Get("response"); got != "ZmFrZQ==" {
			t.Fatalf("server got %q", got)
		}
		mustOK(t)(c.Select(ctx, "test", false))
		res := mustOK(t)(c.Store(ctx, "1", "+FLAGS", "[test]"))
		if len(res.Data) != 1 || !strings.Contains(string(res.Data[0].Text), "[test]") {
			t.Fatalf("store data %q", texts(res.Data))
		}
		mustOK(t)(c.Select(ctx, "test", false))
		r := c.Response("PERMANENTFLAGS")
		if len(r.Data) != 1 || !strings.Contains(string(r.Data[0].Text), "[test]") {
			t.Fatalf("PERMANENTFLAGS %q", texts(r.Data))
		}
		if got, want := string(r.Data[0].Text), `Answered \Flagged \Deleted \Seen \Draft \[test] \*)`; got != want {
			t.Fatalf("PERMANENTFLAGS %q, want %q (data up to the last ])", got, want)
		}
	})
}

// TestIssue5949 ports test_issue5949: EOF in the middle of the greeting.
func TestIssue5949(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		for _, greeting := range []string{"* OK", ""} {
			srv := tr.server(t, imaptest.Config{Handler: func(s *imaptest.Session) {
				if greeting != "" {
					_ = s.Write([]byte(greeting))
				}
			}})
			_, err := tr.dial(context.Background(), srv, nil)
			if greeting == "" {
				wantErr(t, err, imap.ErrAbort, "EOF")
			} else {
				wantErr(t, err, imap.ErrAbort, "unterminated")
			}
		}
	})
}

// TestTruncatedLargeLiteral ports test_truncated_large_literal: a greeting
// claiming a literal of 2^15 … 2^63 bytes, then a short line and EOF,
// must abort every time, quickly, without allocating the claimed size.
func TestTruncatedLargeLiteral(t *testing.T) {
	// Not parallel: it measures the process's allocations.
	runTransportsSeq(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Handler: func(s *imaptest.Session) {
			size, _ := s.Server().Get("size").(string)
			_ = s.Send("* OK {"+size+"}", "IMAP4rev1")
		}})
		const maxAlloc = 4 << 20 // a claimed 2^23 literal must not cost 8 MB
		for exp := 15; exp < 64; exp++ {
			size := fmt.Sprint(uint64(1) << exp)
			srv.Set("size", size)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := tr.dial(context.Background(), srv, nil)
			d := time.Since(start)
			runtime.ReadMemStats(&after)
			wantErr(t, err, imap.ErrAbort)
			if d > 5*time.Second {
				t.Errorf("size 2^%d: took %v", exp, d)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > maxAlloc {
				t.Errorf("size 2^%d: allocated %d bytes", exp, alloc)
			}
		}
	})
}
