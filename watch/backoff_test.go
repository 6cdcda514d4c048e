package watch

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"golang.org/x/oauth2"

	"github.com/imapkit/imap"
)

// endpointErr is a token endpoint's failure that says whether it may pass.
type endpointErr bool

func (e endpointErr) Error() string   { return "token endpoint failed" }
func (e endpointErr) Temporary() bool { return bool(e) }

// TestFatal: which failures to connect end Run, before and after the
// account first connected.
func TestFatal(t *testing.T) {
	refused := &imap.Error{Command: "AUTHENTICATE", Kind: imap.ErrCommand, Status: "NO", Code: "AUTHENTICATIONFAILED", Text: "[AUTHENTICATIONFAILED] Authentication failed."}
	token := func(status int, code string) error {
		return &imap.Error{Command: "AUTHENTICATE", Kind: imap.ErrCommand, Text: "obtaining an OAuth2 token",
			Err: fmt.Errorf("refreshing: %w", &oauth2.RetrieveError{Response: &http.Response{StatusCode: status}, ErrorCode: code})}
	}
	for _, tc := range []struct {
		name         string
		err          error
		first, later bool // fatal on a first connection, and after one
	}{
		{"login refused", &imap.Error{Command: "LOGIN", Kind: imap.ErrCommand, Status: "NO", Text: "[AUTHENTICATIONFAILED] Authentication failed."}, true, false},
		{"token refused", refused, true, false},
		{"server busy, in words", &imap.Error{Command: "LOGIN", Kind: imap.ErrCommand, Status: "NO", Text: "Too many connections, try again later"}, false, false},
		{"in use", &imap.Error{Command: "LOGIN", Kind: imap.ErrCommand, Status: "NO", Code: "INUSE", Text: "[INUSE] mailbox locked"}, false, false},
		{"code beats words", &imap.Error{Command: "LOGIN", Kind: imap.ErrCommand, Status: "NO", Code: "AUTHENTICATIONFAILED", Text: "[AUTHENTICATIONFAILED] try again with the right password"}, true, false},
		{"server unavailable", &imap.Error{Command: "LOGIN", Kind: imap.ErrCommand, Status: "NO", Code: "UNAVAILABLE", Text: "[UNAVAILABLE] Temporary authentication failure."}, false, false},
		{"refresh token revoked", token(400, "invalid_grant"), true, true},
		{"token endpoint failing", token(503, ""), false, false},
		{"token endpoint rate limit", token(429, ""), false, false},
		{"token endpoint unreachable", &imap.Error{Command: "AUTHENTICATE", Kind: imap.ErrCommand, Text: "obtaining an OAuth2 token",
			Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}, false, false},
		{"token endpoint says passing", &imap.Error{Command: "AUTHENTICATE", Kind: imap.ErrCommand, Text: "obtaining an OAuth2 token", Err: endpointErr(true)}, false, false},
		{"token endpoint says not passing", &imap.Error{Command: "AUTHENTICATE", Kind: imap.ErrCommand, Text: "obtaining an OAuth2 token", Err: endpointErr(false)}, true, true},
		{"no OAuth mechanism", &imap.Error{Command: "AUTHENTICATE", Kind: imap.ErrCommand, Text: "server advertises neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2"}, true, true},
		{"connection reset", &imap.Error{Command: "LOGIN", Kind: imap.ErrAbort, Err: errors.New("reset")}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fatal(tc.err, false); got != tc.first {
				t.Errorf("fatal on a first connection = %v, want %v", got, tc.first)
			}
			if got := fatal(tc.err, true); got != tc.later {
				t.Errorf("fatal after connecting once = %v, want %v", got, tc.later)
			}
		})
	}
}
