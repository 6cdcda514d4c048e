package imap_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// oauth2Server is an AUTHENTICATE that accepts the access token "good"
// and records every client response it read, decoded. A refused token gets
// a JSON error challenge, the client's answer to it, then a NO.
type oauth2Server struct {
	mu    sync.Mutex
	reads []string
}

func (o *oauth2Server) handle(s *imaptest.Session, tag, args string) {
	mech := strings.ToUpper(strings.Fields(args)[0])
	b64, _, ok := initialResponse(s, args)
	if !ok {
		return
	}
	dec, _ := base64.StdEncoding.DecodeString(b64)
	o.mu.Lock()
	o.reads = append(o.reads, mech+" "+string(dec))
	o.mu.Unlock()
	if strings.Contains(string(dec), "auth=Bearer good\x01") {
		_ = s.Send(tag + " OK [CAPABILITY IMAP4rev1 IDLE] authenticated")
		return
	}
	challenge := `{"status":"invalid_token","scope":"mail"}`
	if mech == "XOAUTH2" {
		challenge = `{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`
	}
	if s.Send("+ "+base64.StdEncoding.EncodeToString([]byte(challenge))) != nil {
		return
	}
	line, err := s.ReadLine()
	if err != nil {
		return
	}
	dummy, _ := base64.StdEncoding.DecodeString(line)
	o.mu.Lock()
	o.reads = append(o.reads, "answer "+strings.ReplaceAll(string(dummy), "\x01", "^A"))
	o.mu.Unlock()
	_ = s.Send(tag + " NO [AUTHENTICATIONFAILED] Authentication failed for " + string(dec))
}

func (o *oauth2Server) got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.reads...)
}

// tokens hands out its tokens in turn, the last one for ever; renew makes
// it a TokenRenewer that counts renewals.
type tokens struct {
	mu      sync.Mutex
	list    []string
	renewed int
	fail    error
}

func (t *tokens) Token() (*oauth2.Token, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fail != nil {
		return nil, t.fail
	}
	tok := t.list[0]
	if len(t.list) > 1 {
		t.list = t.list[1:]
	}
	return &oauth2.Token{AccessToken: tok, Expiry: time.Now().Add(time.Hour)}, nil
}

type renewingTokens struct{ *tokens }

func (r renewingTokens) RenewToken(ctx context.Context, refused *oauth2.Token) (*oauth2.Token, error) {
	r.mu.Lock()
	r.renewed++
	r.mu.Unlock()
	return r.Token()
}

func TestAuthenticateOAuth2(t *testing.T) {
	for _, tc := range []struct {
		name  string
		caps  string
		user  string
		ts    func() oauth2.TokenSource
		reads []string // what the server read, in order
		err   string   // "" = success
	}{
		{
			name: "OAUTHBEARER preferred, initial response with the command",
			caps: "IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER", user: "alice",
			ts:    func() oauth2.TokenSource { return &tokens{list: []string{"good"}} },
			reads: []string{"OAUTHBEARER n,a=alice,\x01auth=Bearer good\x01\x01"},
		},
		{
			name: "XOAUTH2 without SASL-IR",
			caps: "IMAP4rev1 AUTH=XOAUTH2", user: "bob@example.com",
			ts:    func() oauth2.TokenSource { return &tokens{list: []string{"good"}} },
			reads: []string{"XOAUTH2 user=bob@example.com\x01auth=Bearer good\x01\x01"},
		},
		{
			name: "authorization identity escaped",
			caps: "IMAP4rev1 SASL-IR AUTH=OAUTHBEARER", user: "a,b=c",
			ts:    func() oauth2.TokenSource { return &tokens{list: []string{"good"}} },
			reads: []string{"OAUTHBEARER n,a=a=2Cb=3Dc,\x01auth=Bearer good\x01\x01"},
		},
		{
			name: "refused token renewed and tried once more",
			caps: "IMAP4rev1 SASL-IR AUTH=OAUTHBEARER", user: "alice",
			ts: func() oauth2.TokenSource { return renewingTokens{&tokens{list: []string{"stale", "good"}}} },
			reads: []string{"OAUTHBEARER n,a=alice,\x01auth=Bearer stale\x01\x01", "answer ^A",
				"OAUTHBEARER n,a=alice,\x01auth=Bearer good\x01\x01"},
		},
		{
			name: "plain source asked again",
			caps: "IMAP4rev1 SASL-IR AUTH=XOAUTH2", user: "alice",
			ts: func() oauth2.TokenSource { return &tokens{list: []string{"stale", "good"}} },
			reads: []string{"XOAUTH2 user=alice\x01auth=Bearer stale\x01\x01", "answer ",
				"XOAUTH2 user=alice\x01auth=Bearer good\x01\x01"},
		},
		{
			name: "same token again: not retried",
			caps: "IMAP4rev1 SASL-IR AUTH=XOAUTH2", user: "alice",
			ts:    func() oauth2.TokenSource { return &tokens{list: []string{"revoked"}} },
			reads: []string{"XOAUTH2 user=alice\x01auth=Bearer revoked\x01\x01", "answer "},
			err:   "XOAUTH2 token refused: status 401",
		},
		{
			name: "refused twice",
			caps: "IMAP4rev1 SASL-IR AUTH=OAUTHBEARER", user: "alice",
			ts: func() oauth2.TokenSource { return renewingTokens{&tokens{list: []string{"stale", "revoked"}}} },
			reads: []string{"OAUTHBEARER n,a=alice,\x01auth=Bearer stale\x01\x01", "answer ^A",
				"OAUTHBEARER n,a=alice,\x01auth=Bearer revoked\x01\x01", "answer ^A"},
			err: "OAUTHBEARER token refused: status invalid_token, scope mail",
		},
		{
			name: "no OAuth mechanism advertised",
			caps: "IMAP4rev1 SASL-IR AUTH=PLAIN", user: "alice",
			ts:  func() oauth2.TokenSource { return &tokens{list: []string{"good"}} },
			err: "neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2",
		},
		{
			name: "token source fails",
			caps: "IMAP4rev1 SASL-IR AUTH=OAUTHBEARER", user: "alice",
			ts:  func() oauth2.TokenSource { return &tokens{fail: errors.New("token endpoint unreachable")} },
			err: "obtaining an OAuth2 token: token endpoint unreachable",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &oauth2Server{}
			srv := imaptest.NewServer(t, imaptest.Config{Capabilities: tc.caps,
				Commands: map[string]imaptest.CommandFunc{"AUTHENTICATE": o.handle}})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var trace strings.Builder
			c, err := imap.Dial(ctx, srv.Addr, &imap.Options{InsecureAuth: true, Trace: &trace})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Shutdown()
			_, err = c.AuthenticateOAuth2(ctx, tc.user, tc.ts())
			if got := o.got(); strings.Join(got, "|") != strings.Join(tc.reads, "|") {
				t.Errorf("server read %q\nwant %q", got, tc.reads)
			}
			if tc.err == "" {
				if err != nil {
					t.Fatalf("AuthenticateOAuth2: %v", err)
				}
				if c.State() != imap.StateAuth {
					t.Errorf("state %v after success", c.State())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("AuthenticateOAuth2 = %v, want an error with %q", err, tc.err)
			}
			var e *imap.Error
			if !errors.As(err, &e) || !errors.Is(err, imap.ErrCommand) || !e.Usable() {
				t.Errorf("error %#v: want a usable *imap.Error of kind ErrCommand", err)
			}
			if len(tc.reads) > 0 {
				var refused *imap.OAuth2Error
				if !errors.As(err, &refused) || e.Code != "AUTHENTICATIONFAILED" {
					t.Errorf("error %v: want an *OAuth2Error inside and Code AUTHENTICATIONFAILED, got Code %q", err, e.Code)
				}
			}
			for _, secret := range []string{"stale", "revoked", "good"} {
				if strings.Contains(err.Error(), secret) || strings.Contains(trace.String(), "Bearer "+secret) {
					t.Errorf("the token %q shows in the error or the trace:\n%v\n%s", secret, err, trace.String())
				}
			}
		})
	}
}
