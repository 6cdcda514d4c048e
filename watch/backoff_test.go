package watch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

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

// TestBackoffSchedule runs the default reconnect schedule against a server
// that is never reachable, on a fake clock: the delays double from
// MinBackoff (1 s) to MaxBackoff (5 minutes) within ±25% and stay there,
// the outage is one Disconnected event however many attempts, and the
// half hour of waiting takes no time.
func TestBackoffSchedule(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	dial := func(ctx context.Context) (*imap.Client, error) { return nil, refused }
	w, err := New(dial, &Options{Account: "a"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const attempts = 14
	var waited []time.Duration
	w.sleep = func(ctx context.Context, d time.Duration) error {
		waited = append(waited, d) // Run's goroutine only
		if len(waited) == attempts {
			cancel()
			return ctx.Err()
		}
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var evs []Event
	for ev := range w.Events() {
		evs = append(evs, ev)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil after cancellation", err)
	}
	if len(waited) != attempts {
		t.Fatalf("%d waits, want %d", len(waited), attempts)
	}
	var total time.Duration
	for i, d := range waited {
		want := min(DefaultMinBackoff<<i, DefaultMaxBackoff)
		if d < want-want/4 || d > want+want/4 {
			t.Errorf("wait %d: %v, want %v ±25%%", i+1, d, want)
		}
		total += d
	}
	if total < 20*time.Minute {
		t.Errorf("the schedule waited %v in all; want the 5-minute cap reached and held", total)
	}
	disconnected := 0
	for _, ev := range evs {
		if ev.Kind == EventDisconnected {
			disconnected++
		}
	}
	if disconnected != 1 {
		t.Errorf("%d Disconnected events for one outage, want 1: %+v", disconnected, evs)
	}
}
