package watch_test

import (
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/watch"
)

// TestDovecotFaults breaks the watcher's connection while another
// connection appends 200 messages: the proxy cuts it, Dovecot's imap
// process is killed, or the proxy freezes it (a server that takes bytes
// and never answers). Every appended UID must be reported as New exactly
// once, after a Disconnected and a Reconnected. The same holds when the
// watcher itself is stopped and restarted with its state file.
func TestDovecotFaults(t *testing.T) {
	srv := dovecot.StartT(t)
	cut := func(t *testing.T, px *proxy, _ *account) {
		if px.Cut() == 0 {
			t.Error("no connection to cut")
		}
	}
	kill := func(t *testing.T, _ *proxy, acct *account) {
		if err := acct.srv.KillIMAP(acct.user); err != nil {
			t.Error(err)
		}
	}
	freeze := func(t *testing.T, px *proxy, _ *account) {
		if px.Freeze() == 0 {
			t.Error("no connection to freeze")
		}
	}
	for _, tc := range []struct {
		name      string
		fault     func(t *testing.T, px *proxy, acct *account)
		mailboxes []string // watched; the mail goes to the last one
		restart   bool     // instead of a fault, restart the watcher
	}{
		{name: "cut", fault: cut},
		{name: "kill", fault: kill},
		{name: "freeze", fault: freeze},
		{name: "notify-kill", fault: kill, mailboxes: []string{"INBOX", "Lists"}},
		{name: "restart", restart: true},
		{name: "notify-restart", restart: true, mailboxes: []string{"INBOX", "Lists"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			mailbox := "INBOX"
			if n := len(tc.mailboxes); n > 0 {
				mailbox = tc.mailboxes[n-1]
				m.create(mailbox)
			}
			px := newProxy(t, srv.Addr)
			opts := fastOptions(tc.mailboxes...)
			opts.Inactivity = time.Second
			opts.Store = openState(t, t.TempDir()+"/state.json")
			dial := acct.dialerTimeout(px.Addr(), 2*time.Second)
			r := startWatcher(t, dial, opts, false)
			r.waitFor("baseline", count(watch.EventResynced, mailbox, 1))
			var earlier []watch.Event // events of the watchers stopped

			const total = 200
			var appended atomic.Int32
			errc := make(chan error, 1)
			go func() {
				for i := 0; i < total; i++ {
					if err := m.appendErr(mailbox); err != nil {
						errc <- err
						return
					}
					appended.Add(1)
				}
				errc <- nil
			}()
			// Break the link twice while mail flows: once early, once
			// after the first recovery.
			for i, at := range []int32{40, 120} {
				for appended.Load() < at {
					time.Sleep(time.Millisecond)
				}
				if tc.restart {
					r.stop()
					earlier = append(earlier, r.events()...)
					r = startWatcher(t, dial, opts, false)
					r.waitFor("resync", count(watch.EventResynced, mailbox, 1))
					continue
				}
				tc.fault(t, px, acct)
				r.waitFor("Reconnected", count(watch.EventReconnected, "", i+1))
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			all := func(evs []watch.Event) []watch.Event { return append(slices.Clone(earlier), evs...) }
			r.waitFor("all 200 New", func(evs []watch.Event) bool { return allNew(mailbox, total)(all(evs)) })
			evs := all(r.events())
			checkExactlyOnce(t, evs, mailbox, seq(1, total))
			checkOrder(t, evs)
			if n := len(ofKind(evs, watch.EventDisconnected, "")); !tc.restart && n < 2 {
				t.Errorf("%d Disconnected events, want at least 2", n)
			}
		})
	}
}

// TestDovecotFrozen freezes the link while the watcher idles: it must
// notice within Inactivity + the DONE timeout + ProbeTimeout, reconnect
// and report the mail that arrived meanwhile.
func TestDovecotFrozen(t *testing.T) {
	srv := dovecot.StartT(t)
	acct := newAccount(t, srv)
	m := acct.other(t)
	px := newProxy(t, srv.Addr)
	opts := fastOptions()
	opts.Inactivity = time.Second
	opts.ProbeTimeout = time.Second
	r := startWatcher(t, acct.dialerTimeout(px.Addr(), time.Second), opts, false)
	r.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))

	start := time.Now()
	px.Freeze()
	m.append("INBOX")
	// Inactivity 1 s + DONE unanswered 1 s (+ NOOP 1 s) + reconnect.
	r.waitForWithin(10*time.Second, "New 1 after the freeze", has(watch.EventNew, "INBOX", 1))
	t.Logf("recovered from a frozen server in %v", time.Since(start))
	evs := r.events()
	if len(ofKind(evs, watch.EventDisconnected, "")) != 1 || len(ofKind(evs, watch.EventReconnected, "")) != 1 {
		t.Errorf("want one Disconnected and one Reconnected")
	}
}

// TestDovecotSlowConsumer gives the watcher a window of 4 events and a
// consumer that acknowledges nothing while 50 messages are appended and a
// reported message's flags change: the watcher hands over 4 New events and
// no more, keeps its connection alive meanwhile (no Disconnected although
// the wait lasts several Inactivity periods), and once the consumer
// acknowledges, reports every message exactly once and the flag change.
func TestDovecotSlowConsumer(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name  string
		strip []string
	}{
		{name: "idle"},
		{name: "poll", strip: []string{"IDLE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.append("INBOX") // 1: baseline
			opts := fastOptions()
			opts.Window = 4
			opts.Inactivity = time.Second
			r := startWatcher(t, acct.dialer(newProxy(t, srv.Addr, tc.strip...).Addr()), opts, true)
			r.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))
			const total = 50
			for i := 0; i < total; i++ {
				m.append("INBOX") // 2..51
			}
			m.store("INBOX", 1, "+FLAGS", `\Flagged`)
			changes := func(evs []watch.Event) int {
				return len(ofKind(evs, watch.EventNew, "INBOX")) + len(ofKind(evs, watch.EventFlags, "INBOX"))
			}
			r.waitFor("a full window", func(evs []watch.Event) bool { return changes(evs) >= 4 })
			// A negative check needs a bound: three Inactivity periods,
			// during which the link must be kept alive and nothing more
			// handed over.
			time.Sleep(3 * opts.Inactivity)
			evs := r.events()
			if n := changes(evs); n != 4 {
				t.Errorf("%d events handed over with a window of 4 and none acknowledged", n)
			}
			if n := len(ofKind(evs, watch.EventDisconnected, "")); n != 0 {
				t.Errorf("%d Disconnected events while the consumer was slow", n)
			}
			r.open()
			evs = r.waitFor("all New and the flag change", func(evs []watch.Event) bool {
				return allNewFrom("INBOX", 2, total+1)(evs) && hasFlags("INBOX", 1, `\Flagged`)(evs)
			})
			checkExactlyOnce(t, evs, "INBOX", seq(2, total+1))
			// Changes after that are reported as usual.
			m.store("INBOX", 2, "+FLAGS", `\Flagged`)
			m.expunge("INBOX", 3)
			m.append("INBOX") // 52
			evs = r.waitFor("the later changes", func(evs []watch.Event) bool {
				return hasFlags("INBOX", 2, `\Flagged`)(evs) && has(watch.EventExpunge, "INBOX", 3)(evs) && has(watch.EventNew, "INBOX", 52)(evs)
			})
			checkExactlyOnce(t, evs, "INBOX", seq(2, total+2))
			checkOrder(t, evs)
		})
	}
}

// TestDovecotStop cancels Run while it idles, while it is frozen, and
// while it waits to reconnect: Run returns within a second, Events ends,
// and no goroutine is left behind.
func TestDovecotStop(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name      string
		mailboxes []string
		noNotify  bool
		before    func(t *testing.T, px *proxy, r *run)
	}{
		{name: "idle"},
		{name: "notify", mailboxes: []string{"INBOX", "Lists"}},
		{name: "connections", mailboxes: []string{"INBOX", "Lists"}, noNotify: true},
		{name: "frozen", before: func(t *testing.T, px *proxy, r *run) { px.Freeze() }},
		{name: "reconnecting", before: func(t *testing.T, px *proxy, r *run) {
			px.ln.Close() // no reconnect can succeed
			px.Cut()
			r.waitFor("Disconnected", count(watch.EventDisconnected, "", 1))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.create("Lists")
			px := newProxy(t, srv.Addr)
			opts := fastOptions(tc.mailboxes...)
			opts.NoNotify = tc.noNotify
			opts.MinBackoff = 5 * time.Second
			opts.MaxBackoff = 5 * time.Second
			r := startWatcher(t, acct.dialer(px.Addr()), opts, false)
			r.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))
			if tc.before != nil {
				tc.before(t, px, r)
			}
			r.stop() // fails unless Run returns within 1 s and Events ends
			m.c.Shutdown()
			px.close()
			checkGoroutines(t, base)
		})
	}
}
