package watch_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/internal/imaptest"
	"github.com/imapkit/imap/watch"
)

// TestDovecotMailboxDeleted deletes a watched mailbox of Options.Mailboxes
// while the watcher watches it: selected and idled on (Dovecot then ends
// the connection, and the SELECT after the reconnect is refused), on a
// connection of its own, polled with STATUS beside INBOX, and over NOTIFY
// (its MailboxName event); and renames one away, which for a watched name
// is a deletion too. The watcher reports MailboxDeleted once, stops
// connecting for it (no login every backoff period for ever), goes on with
// INBOX, and drops the mailbox from the state file once the event is
// acknowledged. When it was the only one, Run returns ErrMailboxesDeleted.
func TestDovecotMailboxDeleted(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name      string
		mailboxes []string
		noNotify  bool
		maxConns  int
		rename    string // rename Box to this instead of deleting it
		text      string // of the MailboxDeleted event
	}{
		{name: "alone", mailboxes: []string{"Box"}},
		{name: "connection of its own", mailboxes: []string{"INBOX", "Box"}, noNotify: true},
		{name: "polled", mailboxes: []string{"INBOX", "Box"}, noNotify: true, maxConns: 1},
		{name: "notify", mailboxes: []string{"INBOX", "Box"}},
		{name: "notify renamed", mailboxes: []string{"INBOX", "Box"}, rename: "Elsewhere", text: `renamed to "Elsewhere"`},
		{name: "polled renamed", mailboxes: []string{"INBOX", "Box"}, noNotify: true, maxConns: 1, rename: "Elsewhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.create("Box")
			m.append("Box") // 1: baseline
			state := t.TempDir() + "/state.json"
			px := newProxy(t, srv.Addr)
			opts := fastOptions(tc.mailboxes...)
			opts.NoNotify = tc.noNotify
			opts.MaxConnections = tc.maxConns
			opts.Store = openState(t, state)
			r := startWatcher(t, acct.dialer(px.Addr()), opts, false)
			evs := r.waitFor("baselines", func(evs []watch.Event) bool {
				for _, b := range tc.mailboxes {
					if len(ofKind(evs, watch.EventResynced, b)) == 0 {
						return false
					}
				}
				return true
			})
			uidValidity := ofKind(evs, watch.EventResynced, "Box")[0].UIDValidity
			m.append("Box") // 2
			r.waitFor("New 2 in Box", has(watch.EventNew, "Box", 2))

			if tc.rename != "" {
				m.rename("Box", tc.rename)
			} else {
				m.delete("Box")
			}
			alone := len(tc.mailboxes) == 1
			if alone {
				err := r.result(waitTime)
				if !errors.Is(err, watch.ErrMailboxesDeleted) || !strings.Contains(err.Error(), `"Box"`) {
					t.Fatalf("Run = %v, want ErrMailboxesDeleted naming Box", err)
				}
			}
			evs = r.waitFor("MailboxDeleted", count(watch.EventMailboxDeleted, "Box", 1))
			del := ofKind(evs, watch.EventMailboxDeleted, "Box")[0]
			if del.UIDValidity != uidValidity || del.Text != tc.text || del.ID == "" {
				t.Errorf("got %s; want uidvalidity %d, text %q", describe(del), uidValidity, tc.text)
			}
			// No more attempts for Box: with a backoff from 50 ms, a
			// watcher that kept trying would log in a dozen times in 1.5 s.
			_, before := px.Conns()
			time.Sleep(1500 * time.Millisecond)
			open, after := px.Conns()
			if after != before {
				t.Errorf("%d connections opened after the deletion was reported", after-before)
			}
			if !alone {
				if open != 1 {
					t.Errorf("%d connections open, want 1 (for INBOX)", open)
				}
				m.append("INBOX") // 1
				evs = r.waitFor("New 1 in INBOX", has(watch.EventNew, "INBOX", 1))
			}
			saved := waitSaved(t, state, "acct", "Box dropped", func(mbs map[string]watch.MailboxState, _ bool) bool {
				_, box := mbs["Box"]
				return !box
			})
			if _, ok := saved["INBOX"]; !ok && !alone {
				t.Errorf("state file lost INBOX: %v", saved)
			}
			if n := len(ofKind(evs, watch.EventMailboxDeleted, "")); n != 1 {
				t.Errorf("%d MailboxDeleted events, want 1", n)
			}
			for _, ev := range evs {
				if ev.Kind == watch.EventNew && ev.Mailbox == tc.rename {
					t.Errorf("the mailbox renamed away is watched under its new name: %s", describe(ev))
				}
			}
		})
	}
}

// TestDovecotMailboxDeletedWhileAway deletes a watched mailbox while the
// watcher is stopped. At the next start, its saved position shows that it
// was watched: it is reported deleted (not refused as a mistake in the
// options), and INBOX goes on. Until the event is acknowledged the state
// file keeps the position, so a restart reports it again with the same ID;
// once it is acknowledged the position is dropped, and a later start that
// still names the mailbox fails with a *MailboxError, as for any mailbox
// that does not exist.
func TestDovecotMailboxDeletedWhileAway(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name      string
		mailboxes []string
		noNotify  bool
	}{
		{name: "alone", mailboxes: []string{"Box"}},
		{name: "notify", mailboxes: []string{"INBOX", "Box"}},
		{name: "connection each", mailboxes: []string{"INBOX", "Box"}, noNotify: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.create("Box")
			m.append("Box")
			state := t.TempDir() + "/state.json"
			opts := fastOptions(tc.mailboxes...)
			opts.NoNotify = tc.noNotify
			opts.Store = openState(t, state)
			dial := acct.dialer(srv.Addr)
			first := startWatcher(t, dial, opts, false)
			first.waitFor("baseline", count(watch.EventResynced, "Box", 1))
			first.stop()
			m.delete("Box")

			// A consumer that acknowledges nothing, then one that does.
			alone := len(tc.mailboxes) == 1
			unacked := runUnacked(t, dial, opts, func(evs []watch.Event) bool {
				return len(ofKind(evs, watch.EventMailboxDeleted, "Box")) > 0
			})
			second := startWatcher(t, dial, opts, false)
			if alone {
				if err := second.result(waitTime); !errors.Is(err, watch.ErrMailboxesDeleted) {
					t.Fatalf("Run = %v, want ErrMailboxesDeleted", err)
				}
			}
			evs := second.waitFor("MailboxDeleted", count(watch.EventMailboxDeleted, "Box", 1))
			again := ofKind(evs, watch.EventMailboxDeleted, "Box")[0]
			if first := ofKind(unacked, watch.EventMailboxDeleted, "Box")[0]; again.ID != first.ID {
				t.Errorf("reported again with ID %s, first %s: want the same", again.ID, first.ID)
			}
			if !alone {
				second.waitFor("INBOX resynced", count(watch.EventResynced, "INBOX", 1))
				m.append("INBOX")
				second.waitFor("New 1 in INBOX", has(watch.EventNew, "INBOX", 1))
			}
			waitSaved(t, state, "acct", "Box dropped", func(mbs map[string]watch.MailboxState, _ bool) bool {
				_, box := mbs["Box"]
				return !box
			})
			second.stop()

			w, err := watch.New(dial, opts)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for range w.Events() {
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), waitTime)
			defer cancel()
			err = w.Run(ctx)
			var missing *watch.MailboxError
			if !errors.As(err, &missing) || missing.Mailbox != "Box" || !errors.Is(err, imap.ErrCommand) {
				t.Errorf("Run with the deletion acknowledged = %v, want a *MailboxError for Box", err)
			}
		})
	}
}

// runUnacked runs a watcher whose consumer takes events and acknowledges
// none, until cond holds for them; then it stops it and returns them.
func runUnacked(t *testing.T, dial watch.Dialer, opts *watch.Options, cond func([]watch.Event) bool) []watch.Event {
	t.Helper()
	w, err := watch.New(dial, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var evs []watch.Event
	deadline := time.Now().Add(waitTime)
	for !cond(evs) {
		nctx, ncancel := context.WithDeadline(context.Background(), deadline)
		ev, err := w.Next(nctx)
		ncancel()
		if err != nil {
			cancel()
			t.Fatalf("unacknowledged run: %v after %d events", err, len(evs))
		}
		evs = append(evs, ev)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, watch.ErrMailboxesDeleted) {
		t.Fatalf("unacknowledged run: Run = %v", err)
	}
	return evs
}

// TestScriptedMailboxGone: how a watched mailbox the server refuses to
// open at connect is taken. LIST decides whether it is gone, whatever the
// refusal says: gone and watched before (a saved position) is a deletion,
// reported, and Run ends with ErrMailboxesDeleted as nothing is left; gone
// and never watched, or there but refused, is a mistake in the options (a
// *MailboxError); a refusal for now is retried.
func TestScriptedMailboxGone(t *testing.T) {
	for _, tc := range []struct {
		name    string
		refusal string // the tagged answer to EXAMINE Box, after the tag
		listed  bool   // LIST shows Box
		saved   bool   // the state file has a position for Box
		want    string // "deleted", "mistake" or "retried"
	}{
		{name: "nonexistent, watched before", refusal: "NO [NONEXISTENT] Mailbox doesn't exist: Box", saved: true, want: "deleted"},
		{name: "refused without a code, not listed", refusal: "NO Mailbox does not exist", saved: true, want: "deleted"},
		{name: "nonexistent, never watched", refusal: "NO [NONEXISTENT] Mailbox doesn't exist: Box", want: "mistake"},
		{name: "refused, listed", refusal: "NO [NOPERM] Permission denied", listed: true, saved: true, want: "mistake"},
		{name: "unavailable for now", refusal: "NO [UNAVAILABLE] Try again later", saved: true, want: "retried"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := imaptest.NewServer(t, imaptest.Config{
				Capabilities: "IDLE",
				Commands: map[string]imaptest.CommandFunc{
					"EXAMINE": func(s *imaptest.Session, tag, args string) { _ = s.Send(tag + " " + tc.refusal) },
					"LIST": func(s *imaptest.Session, tag, args string) {
						if tc.listed {
							_ = s.Send(`* LIST (\HasNoChildren) "/" Box`)
						}
						_ = s.Send(tag + " OK LIST completed")
					},
				},
			})
			opts := fastOptions("Box")
			opts.Store = openState(t, t.TempDir()+"/state.json")
			if tc.saved {
				if err := opts.Store.Save("acct", &watch.AccountState{Mailboxes: map[string]*watch.MailboxState{
					"Box": {UIDValidity: 7, LastUID: 2, UIDs: "1:2"}}}); err != nil {
					t.Fatal(err)
				}
			}
			w, err := watch.New(scriptedDialer(srv.Addr), opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			var evs []watch.Event
			for ev := range w.Events() {
				evs = append(evs, ev)
				ev.Ack()
			}
			err = <-done
			deleted := ofKind(evs, watch.EventMailboxDeleted, "Box")
			var mistake *watch.MailboxError
			switch tc.want {
			case "deleted":
				if !errors.Is(err, watch.ErrMailboxesDeleted) || len(deleted) != 1 || deleted[0].UIDValidity != 7 {
					t.Errorf("Run = %v with %d MailboxDeleted; want ErrMailboxesDeleted after one, of UIDVALIDITY 7", err, len(deleted))
				}
			case "mistake":
				if !errors.As(err, &mistake) || mistake.Mailbox != "Box" || len(deleted) != 0 {
					t.Errorf("Run = %v with %d MailboxDeleted; want a *MailboxError and none", err, len(deleted))
				}
			case "retried":
				if err != nil || len(deleted) != 0 || len(ofKind(evs, watch.EventDisconnected, "")) != 1 {
					t.Errorf("Run = %v with %d MailboxDeleted and %d Disconnected; want retries until cancelled",
						err, len(deleted), len(ofKind(evs, watch.EventDisconnected, "")))
				}
			}
			if err != nil && ctx.Err() != nil {
				t.Errorf("Run returned only at the test's deadline")
			}
		})
	}
}

// TestScriptedSilentDelete: Cyrus and Courier say nothing to a connection
// whose selected mailbox another deletes; IDLE and NOOP go on as before.
// The watcher looks for it with LIST when IDLE ends, every ListInterval,
// and finds it gone.
func TestScriptedSilentDelete(t *testing.T) {
	var mu sync.Mutex
	deleted := false
	srv := imaptest.NewServer(t, imaptest.Config{
		Capabilities: "IDLE",
		Commands: map[string]imaptest.CommandFunc{
			"EXAMINE": func(s *imaptest.Session, tag, _ string) {
				mu.Lock()
				defer mu.Unlock()
				if deleted {
					_ = s.Send(tag + " NO Mailbox does not exist")
					return
				}
				_ = s.Send("* 0 EXISTS", "* OK [UIDVALIDITY 7] x", "* OK [UIDNEXT 1] x", tag+" OK [READ-ONLY] done")
			},
			"UID": func(s *imaptest.Session, tag, _ string) { _ = s.Send("* SEARCH", tag+" OK done") },
			"LIST": func(s *imaptest.Session, tag, _ string) {
				mu.Lock()
				defer mu.Unlock()
				if !deleted {
					_ = s.Send(`* LIST () "/" Box`)
				}
				_ = s.Send(tag + " OK LIST completed")
			},
			"IDLE": func(s *imaptest.Session, tag, _ string) {
				_ = s.Send("+ idling")
				if line, err := s.ReadLine(); err == nil && strings.EqualFold(line, "DONE") {
					_ = s.Send(tag + " OK IDLE completed")
				}
			},
		},
	})
	opts := fastOptions("Box")
	opts.Inactivity = time.Second // a silent link is probed: IDLE ends
	opts.ListInterval = time.Second
	r := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
	r.waitFor("baseline", count(watch.EventResynced, "Box", 1))
	mu.Lock()
	deleted = true
	mu.Unlock()
	if err := r.result(10 * time.Second); !errors.Is(err, watch.ErrMailboxesDeleted) {
		t.Fatalf("Run = %v, want ErrMailboxesDeleted", err)
	}
	if n := len(ofKind(r.events(), watch.EventMailboxDeleted, "Box")); n != 1 {
		t.Errorf("%d MailboxDeleted events, want 1", n)
	}
}
