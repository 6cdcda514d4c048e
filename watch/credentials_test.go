package watch_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/watch"
)

// TestDovecotPasswordChanged: the password changes on the server while the
// account is watched, and the session is cut. The watcher reports
// Disconnected and one AuthFailed, retries with backoff (not in a hot
// loop), and once the Dialer's password source has the new password it
// reconnects and reports every message appended meanwhile exactly once.
// A first login refused ends Run with the server's refusal instead.
func TestDovecotPasswordChanged(t *testing.T) {
	srv := dovecot.StartT(t)
	acct := newAccount(t, srv)
	m := acct.other(t)

	var mu sync.Mutex
	password := acct.pass // what the Dialer's source says now
	var dials atomic.Int32
	dial := func(ctx context.Context) (*imap.Client, error) {
		dials.Add(1)
		mu.Lock()
		pass := password
		mu.Unlock()
		c, err := imap.Dial(ctx, srv.Addr, clientOpts(clientTimeout))
		if err != nil {
			return nil, err
		}
		if _, err := c.Login(ctx, acct.user, pass); err != nil {
			c.Shutdown()
			return nil, err
		}
		return c, nil
	}
	opts := fastOptions()
	opts.MinBackoff, opts.MaxBackoff = 100*time.Millisecond, 400*time.Millisecond
	r := startWatcher(t, dial, opts, false)
	r.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))

	if err := srv.SetPassword(acct.user, "rotated-"+acct.pass); err != nil {
		t.Fatal(err)
	}
	if err := srv.KillIMAP(acct.user); err != nil {
		t.Fatal(err)
	}
	evs := r.waitFor("AuthFailed", count(watch.EventAuthFailed, "INBOX", 1))
	af := ofKind(evs, watch.EventAuthFailed, "INBOX")[0]
	var ie *imap.Error
	if !errors.As(af.Err, &ie) || ie.Code != "AUTHENTICATIONFAILED" {
		t.Errorf("AuthFailed error %v: want the server's AUTHENTICATIONFAILED", af.Err)
	}
	m.append("INBOX") // UID 1
	m.append("INBOX") // UID 2
	before := dials.Load()
	time.Sleep(2 * time.Second)
	// Backoff from 100 ms doubling to 400 ms, ±25%: about 6 attempts in 2 s.
	if n := dials.Load() - before; n < 2 || n > 10 {
		t.Errorf("%d login attempts in 2 s of refused logins: want retries with backoff", n)
	}
	if n := len(ofKind(r.events(), watch.EventAuthFailed, "INBOX")); n != 1 {
		t.Errorf("%d AuthFailed events in one outage, want 1", n)
	}
	mu.Lock()
	password = "rotated-" + acct.pass
	mu.Unlock()
	m.append("INBOX") // UID 3
	evs = r.waitFor("New 1-3", allNew("INBOX", 3))
	checkExactlyOnce(t, evs, "INBOX", seq(1, 3))
	if len(ofKind(evs, watch.EventReconnected, "INBOX")) == 0 {
		t.Error("no Reconnected event after the new password worked")
	}
	r.stop()

	// A new watcher whose first login is refused stops with the refusal.
	w, err := watch.New(acct.dialer(srv.Addr), fastOptions()) // the old password
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		for range w.Events() {
		}
	}()
	err = w.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATIONFAILED") || ctx.Err() != nil {
		t.Errorf("Run with a refused first login = %v, want the server's refusal at once", err)
	}
}
