package watch_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/watch"
)

// TestDovecotEvents watches INBOX while another connection delivers mail,
// changes flags and expunges, over several server profiles: Dovecot as it
// is, without QRESYNC (EXPUNGE instead of VANISHED), without CONDSTORE, and
// without IDLE (polling).
func TestDovecotEvents(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name   string
		strip  []string
		stream bool
		poll   bool
	}{
		{name: "dovecot"},
		{name: "stream", stream: true},
		{name: "no-qresync", strip: []string{"QRESYNC"}},
		{name: "no-condstore", strip: []string{"QRESYNC", "CONDSTORE"}},
		{name: "no-idle", strip: []string{"IDLE"}},
		{name: "poll-option", poll: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acct := newAccount(t, srv)
			m := acct.other(t)
			pre := m.append("INBOX") // UID 1, there before the watch: not new
			_ = pre
			t.Parallel()
			dial := acct.streamDialer()
			var px *proxy
			if !tc.stream {
				px = newProxy(t, srv.Addr, tc.strip...)
				dial = acct.dialer(px.Addr())
			}
			opts := fastOptions()
			opts.Poll = tc.poll
			r := startWatcher(t, dial, opts, false)
			r.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))

			s2 := m.append("INBOX")
			s3 := m.append("INBOX")
			evs := r.waitFor("New 2 and 3", allNewFrom("INBOX", 2, 3))
			for _, ev := range ofKind(evs, watch.EventNew, "INBOX") {
				want := map[uint32]string{2: s2, 3: s3}[ev.UID]
				if ev.Envelope == nil || ev.Envelope.Subject != want {
					t.Errorf("New uid %d: envelope %+v, want subject %q", ev.UID, ev.Envelope, want)
				}
				if ev.Account != "acct" || ev.UIDValidity == 0 || ev.Time.IsZero() {
					t.Errorf("New: %+v", ev)
				}
			}

			m.store("INBOX", 2, "+FLAGS", `\Flagged`)
			m.store("INBOX", 1, "+FLAGS", `\Seen`)
			r.waitFor(`Flags \Flagged on 2`, hasFlags("INBOX", 2, `\Flagged`))
			r.waitFor(`Flags \Seen on 1`, hasFlags("INBOX", 1, `\Seen`))

			m.expunge("INBOX", 1, 3)
			r.waitFor("Expunge 1 and 3", func(evs []watch.Event) bool {
				return has(watch.EventExpunge, "INBOX", 1)(evs) && has(watch.EventExpunge, "INBOX", 3)(evs)
			})
			// Mail after the expunges still comes, with the next UID.
			m.append("INBOX")
			evs = r.waitFor("New 4", has(watch.EventNew, "INBOX", 4))

			checkExactlyOnce(t, evs, "INBOX", []uint32{2, 3, 4})
			checkOrder(t, evs)
			for _, ev := range ofKind(evs, watch.EventExpunge, "INBOX") {
				if ev.UID != 1 && ev.UID != 3 {
					t.Errorf("unexpected Expunge of uid %d", ev.UID)
				}
			}
			if n := len(ofKind(evs, watch.EventExpunge, "INBOX")); n != 2 {
				t.Errorf("%d Expunge events, want 2", n)
			}
			if n := len(ofKind(evs, watch.EventDisconnected, "")); n != 0 {
				t.Errorf("%d Disconnected events, want none", n)
			}
			if px != nil {
				idles, polling := px.Commands("IDLE"), tc.poll || slices.Contains(tc.strip, "IDLE")
				if polling && idles > 0 || !polling && idles == 0 {
					t.Errorf("the watcher sent IDLE %d times (polling: %v)", idles, polling)
				}
			}
		})
	}
}

// allNewFrom reports whether every UID in from..to was reported as New.
func allNewFrom(mailbox string, from, to uint32) func([]watch.Event) bool {
	return func(evs []watch.Event) bool {
		m := newUIDs(evs, mailbox)
		for uid := from; uid <= to; uid++ {
			if m[uid] == 0 {
				return false
			}
		}
		return true
	}
}

// TestDovecotStateFile stops the watcher, changes the mailbox while it is
// down and starts a new watcher with the same state file: exactly what was
// missed is reported — new mail once, expunges by UID-set difference, flag
// changes by CONDSTORE CHANGEDSINCE — and nothing reported before is
// repeated.
func TestDovecotStateFile(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name      string
		strip     []string
		noFlags   bool // flags changed while down cannot be known
		mailboxes []string
		noNotify  bool
	}{
		{name: "dovecot"},
		{name: "no-qresync", strip: []string{"QRESYNC"}},
		{name: "no-condstore", strip: []string{"QRESYNC", "CONDSTORE"}, noFlags: true},
		{name: "notify", mailboxes: []string{"Lists", "INBOX"}},
		{name: "status", mailboxes: []string{"Lists", "INBOX"}, noNotify: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.create("Lists")
			m.append("INBOX") // 1: baseline
			m.append("INBOX") // 2: baseline
			state := t.TempDir() + "/state.json"
			dial := acct.dialer(newProxy(t, srv.Addr, tc.strip...).Addr())
			opts := fastOptions(tc.mailboxes...)
			opts.NoNotify = tc.noNotify
			opts.MaxConnections = 1
			opts.Store = openState(t, state)

			first := startWatcher(t, dial, opts, false)
			first.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))
			m.append("INBOX") // 3
			m.append("INBOX") // 4
			first.waitFor("New 3 and 4", allNewFrom("INBOX", 3, 4))
			m.store("INBOX", 3, "+FLAGS", `\Answered`)
			first.waitFor(`Flags on 3`, hasFlags("INBOX", 3, `\Answered`))
			first.stop()
			checkExactlyOnce(t, first.events(), "INBOX", []uint32{3, 4})

			// While nobody watches.
			m.append("INBOX") // 5
			m.append("INBOX") // 6
			m.append("INBOX") // 7
			m.expunge("INBOX", 2, 6)
			m.store("INBOX", 1, "+FLAGS", `\Flagged`)
			m.store("INBOX", 4, "+FLAGS", `\Seen`)

			second := startWatcher(t, dial, opts, false)
			evs := second.waitFor("resync", count(watch.EventResynced, "INBOX", 1))
			// Everything missed is reported before the resync completes.
			checkExactlyOnce(t, evs, "INBOX", []uint32{5, 7})
			var expunged []uint32
			for _, ev := range ofKind(evs, watch.EventExpunge, "INBOX") {
				expunged = append(expunged, ev.UID)
			}
			if !slices.Equal(expunged, []uint32{2}) {
				// 6 was never reported, so its expunge is not news.
				t.Errorf("expunged %v, want [2]", expunged)
			}
			flagged := map[uint32][]string{}
			for _, ev := range ofKind(evs, watch.EventFlags, "INBOX") {
				if _, dup := flagged[ev.UID]; dup {
					t.Errorf("Flags for uid %d reported twice", ev.UID)
				}
				flagged[ev.UID] = ev.Flags
			}
			if tc.noFlags {
				if len(flagged) != 0 {
					t.Errorf("Flags events without CONDSTORE: %v", flagged)
				}
			} else {
				if len(flagged) != 2 || !slices.Contains(flagged[1], `\Flagged`) || !slices.Contains(flagged[4], `\Seen`) {
					t.Errorf("Flags events %v, want uid 1 \\Flagged and uid 4 \\Seen", flagged)
				}
			}

			// And it goes on watching.
			m.append("INBOX") // 8
			evs = second.waitFor("New 8", has(watch.EventNew, "INBOX", 8))
			checkExactlyOnce(t, evs, "INBOX", []uint32{5, 7, 8})
			checkOrder(t, evs)
		})
	}
}

// TestDovecotMailboxReset deletes and recreates a watched mailbox: the
// watcher reports MailboxReset with the new UIDVALIDITY, and then new mail
// under it. A watcher that looks in between the DELETE and the CREATE
// rightly finds the mailbox deleted (TestDovecotMailboxDeleted), so the
// test keeps it from looking then: the reconnect after Dovecot ends the
// connection of the selected mailbox waits a second, and the STATUS poll
// that checks Box has just run.
func TestDovecotMailboxReset(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name      string
		mailboxes []string
		noNotify  bool
	}{
		{name: "selected", mailboxes: []string{"Box"}},
		{name: "notify", mailboxes: []string{"INBOX", "Box"}},
		{name: "status", mailboxes: []string{"INBOX", "Box"}, noNotify: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.create("Box")
			m.append("Box")
			m.append("Box")
			opts := fastOptions(tc.mailboxes...)
			opts.NoNotify = tc.noNotify
			if tc.noNotify {
				opts.MaxConnections = 1 // Box is polled with STATUS
			}
			if tc.name == "selected" {
				opts.MinBackoff, opts.MaxBackoff = time.Second, time.Second
			}
			px := newProxy(t, srv.Addr)
			r := startWatcher(t, acct.dialer(px.Addr()), opts, false)
			evs := r.waitFor("baseline", count(watch.EventResynced, "Box", 1))
			old := ofKind(evs, watch.EventResynced, "Box")[0].UIDValidity
			m.append("Box") // 3
			r.waitFor("New 3", has(watch.EventNew, "Box", 3))

			if tc.noNotify {
				// Right after a poll: the next is PollInterval away.
				for n := px.Commands("STATUS"); px.Commands("STATUS") == n; {
					time.Sleep(time.Millisecond)
				}
			}
			if _, err := m.c.Delete(t.Context(), "Box"); err != nil {
				t.Fatal(err)
			}
			m.create("Box")
			evs = r.waitFor("MailboxReset", count(watch.EventMailboxReset, "Box", 1))
			reset := ofKind(evs, watch.EventMailboxReset, "Box")[0]
			if reset.UIDValidity == old || reset.UIDValidity == 0 {
				t.Fatalf("MailboxReset UIDVALIDITY %d, old %d", reset.UIDValidity, old)
			}
			// UID 1 again, under the new UIDVALIDITY. Dovecot sessions that
			// had the old mailbox open may trip over its recreated index
			// ("SERVERBUG ... duplicate transaction log sequence"): use a
			// fresh connection, and retry.
			for attempt := 0; ; attempt++ {
				m.reconnect()
				_, err := m.c.Append(t.Context(), "Box", "", time.Time{}, message("after the reset"))
				if err == nil {
					break
				}
				if attempt == 3 {
					t.Fatal(err)
				}
			}
			evs = r.waitFor("New 1 after the reset", func(evs []watch.Event) bool {
				for _, ev := range ofKind(evs, watch.EventNew, "Box") {
					if ev.UID == 1 && ev.UIDValidity == reset.UIDValidity {
						return true
					}
				}
				return false
			})
			for _, ev := range ofKind(evs, watch.EventNew, "Box") {
				if ev.UIDValidity == old && ev.UID != 3 || ev.UIDValidity != old && ev.UID != 1 {
					t.Errorf("unexpected %s", describe(ev))
				}
			}
			if n := len(ofKind(evs, watch.EventMailboxReset, "Box")); n != 1 {
				t.Errorf("%d MailboxReset events", n)
			}
			checkOrder(t, evs)
		})
	}
}

// TestDovecotMailboxes watches three mailboxes at once: over one
// connection with NOTIFY, one connection per mailbox, and one connection
// polling the others with STATUS.
func TestDovecotMailboxes(t *testing.T) {
	srv := dovecot.StartT(t)
	boxes := []string{"INBOX", "Lists", "Alerts"}
	for _, tc := range []struct {
		name     string
		noNotify bool
		maxConns int
		conns    int // connections the watcher keeps open
	}{
		{name: "notify", conns: 1},
		{name: "connection-per-mailbox", noNotify: true, conns: 3},
		{name: "budget", noNotify: true, maxConns: 2, conns: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			for _, b := range boxes[1:] {
				m.create(b)
			}
			for _, b := range boxes {
				m.append(b) // UID 1 everywhere: baseline
			}
			px := newProxy(t, srv.Addr)
			opts := fastOptions(boxes...)
			opts.NoNotify = tc.noNotify
			opts.MaxConnections = tc.maxConns
			r := startWatcher(t, acct.dialer(px.Addr()), opts, false)
			r.waitFor("baselines", func(evs []watch.Event) bool {
				for _, b := range boxes {
					if len(ofKind(evs, watch.EventResynced, b)) == 0 {
						return false
					}
				}
				return true
			})
			if open, _ := px.Conns(); open != tc.conns {
				t.Errorf("%d connections open, want %d", open, tc.conns)
			}
			if n := px.Commands("NOTIFY"); (n > 0) != !tc.noNotify {
				t.Errorf("NOTIFY sent %d times", n)
			}
			for _, b := range boxes {
				m.append(b) // 2
			}
			m.append("Lists") // 3
			r.waitFor("New 2 everywhere and 3 in Lists", func(evs []watch.Event) bool {
				for _, b := range boxes {
					if !has(watch.EventNew, b, 2)(evs) {
						return false
					}
				}
				return has(watch.EventNew, "Lists", 3)(evs)
			})
			m.store("Lists", 1, "+FLAGS", `\Flagged`)
			m.store("Alerts", 2, "+FLAGS", `\Seen`)
			r.waitFor("Flags", func(evs []watch.Event) bool {
				return hasFlags("Lists", 1, `\Flagged`)(evs) && hasFlags("Alerts", 2, `\Seen`)(evs)
			})
			m.expunge("Lists", 2)
			m.expunge("INBOX", 1)
			evs := r.waitFor("Expunges", func(evs []watch.Event) bool {
				return has(watch.EventExpunge, "Lists", 2)(evs) && has(watch.EventExpunge, "INBOX", 1)(evs)
			})
			m.append("Alerts") // 3
			evs = r.waitFor("New 3 in Alerts", has(watch.EventNew, "Alerts", 3))

			checkExactlyOnce(t, evs, "INBOX", []uint32{2})
			checkExactlyOnce(t, evs, "Lists", []uint32{2, 3})
			checkExactlyOnce(t, evs, "Alerts", []uint32{2, 3})
			checkOrder(t, evs)
			for _, ev := range evs {
				switch ev.Kind {
				case watch.EventExpunge:
					if !(ev.Mailbox == "Lists" && ev.UID == 2 || ev.Mailbox == "INBOX" && ev.UID == 1) {
						t.Errorf("unexpected %s", describe(ev))
					}
				case watch.EventFlags:
					// expunge stores \Deleted, then expunges: a watcher that
					// looks in between rightly reports the \Deleted flag.
					expunged := ev.Mailbox == "Lists" && ev.UID == 2 || ev.Mailbox == "INBOX" && ev.UID == 1
					if !(ev.Mailbox == "Lists" && ev.UID == 1 || ev.Mailbox == "Alerts" && ev.UID == 2 ||
						expunged && slices.Contains(ev.Flags, `\Deleted`)) {
						t.Errorf("unexpected %s", describe(ev))
					}
				case watch.EventDisconnected:
					t.Errorf("unexpected %s", describe(ev))
				}
			}
		})
	}
}

// TestDovecotExpungeRace appends messages and expunges every other one at
// once, often before the watcher could fetch it: the kept ones are
// reported exactly once, an expunged one at most once, and an Expunge only
// ever follows a New.
func TestDovecotExpungeRace(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name  string
		strip []string
	}{
		{name: "qresync"},
		{name: "no-qresync", strip: []string{"QRESYNC"}},
		{name: "no-condstore", strip: []string{"QRESYNC", "CONDSTORE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			r := startWatcher(t, acct.dialer(newProxy(t, srv.Addr, tc.strip...).Addr()), fastOptions(), false)
			r.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))
			m.selectBox("INBOX")
			const total = 40
			var kept []uint32
			for uid := uint32(1); uid <= total; uid++ {
				m.append("INBOX")
				if uid%2 == 0 {
					m.expunge("INBOX", uid)
				} else {
					kept = append(kept, uid)
				}
			}
			m.append("INBOX") // the last one, kept
			kept = append(kept, total+1)
			evs := r.waitFor("every kept message", func(evs []watch.Event) bool {
				got := newUIDs(evs, "INBOX")
				for _, uid := range kept {
					if got[uid] == 0 {
						return false
					}
				}
				return true
			})
			// Wait for the expunges of the reported even ones.
			r.waitFor("their expunges", func(evs []watch.Event) bool {
				for uid, n := range newUIDs(evs, "INBOX") {
					if uid%2 == 0 && n > 0 && !has(watch.EventExpunge, "INBOX", uid)(evs) {
						return false
					}
				}
				return true
			})
			evs = r.events()
			got := newUIDs(evs, "INBOX")
			for uid, n := range got {
				if n > 1 {
					t.Errorf("uid %d reported as New %d times", uid, n)
				}
			}
			expunged := map[uint32]int{}
			for _, ev := range ofKind(evs, watch.EventExpunge, "INBOX") {
				expunged[ev.UID]++
				if ev.UID%2 != 0 && ev.UID <= total {
					t.Errorf("uid %d was never expunged", ev.UID)
				}
				if got[ev.UID] == 0 {
					t.Errorf("Expunge of uid %d, never reported as New", ev.UID)
				}
			}
			for uid, n := range expunged {
				if n > 1 {
					t.Errorf("uid %d expunged %d times", uid, n)
				}
			}
			checkOrder(t, evs)
			if n := len(ofKind(evs, watch.EventDisconnected, "")); n != 0 {
				t.Errorf("%d Disconnected events", n)
			}
			t.Logf("%d of %d expunged messages were seen before they went", len(expunged), total/2)
		})
	}
}

// TestRunErrors: Run gives up only when retrying cannot help — the server
// refuses the first login — or, with Once, when it cannot connect at all.
// Otherwise a server that cannot be reached is retried until cancelled:
// one Disconnected event for the outage, however many attempts, and a
// warning per attempt in the log with its number and the delay before the
// next, doubling from MinBackoff to MaxBackoff (±25%).
func TestRunErrors(t *testing.T) {
	srv := dovecot.StartT(t)
	acct := newAccount(t, srv)
	wrong := &account{srv: srv, user: acct.user, pass: "wrong"}
	down := freeAddr(t)
	for _, tc := range []struct {
		name      string
		dial      watch.Dialer
		mailboxes []string
		once      bool
		wantErr   bool
	}{
		{name: "wrong password", dial: wrong.dialer(srv.Addr), wantErr: true},
		{name: "wrong password, several mailboxes", dial: wrong.dialer(srv.Addr), mailboxes: []string{"INBOX", "Lists"}, wantErr: true},
		{name: "once, unreachable", dial: acct.dialer(down), once: true, wantErr: true},
		{name: "unreachable", dial: acct.dialer(down)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := fastOptions(tc.mailboxes...)
			opts.Once = tc.once
			var log logBuffer
			opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
			w, err := watch.New(tc.dial, opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			var evs []watch.Event
			for ev := range w.Events() {
				evs = append(evs, ev)
			}
			err = <-done
			if tc.wantErr {
				if err == nil || ctx.Err() != nil {
					t.Fatalf("Run = %v after %d events, want an error before the deadline", err, len(evs))
				}
				t.Logf("Run: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Run = %v, want nil after cancellation", err)
			}
			// One outage, however many attempts: one Disconnected.
			if n := len(ofKind(evs, watch.EventDisconnected, "")); n != 1 {
				t.Errorf("%d Disconnected events for one outage, want 1", n)
			}
			attempts := failedAttempts(t, log.String())
			// 50, 100, 200, 400, 500 ms... (±25%) in 3 s: at least 5.
			if len(attempts) < 5 {
				t.Fatalf("%d attempts logged in 3 s with a backoff from 50 ms to 500 ms:\n%s", len(attempts), log.String())
			}
			for i, next := range attempts {
				want := min(opts.MinBackoff<<i, opts.MaxBackoff)
				// The log rounds to the millisecond.
				if next < want-want/4-time.Millisecond || next > want+want/4+time.Millisecond {
					t.Errorf("attempt %d: next attempt in %v, want %v ±25%%", i+1, next, want)
				}
			}
		})
	}
}

// failedAttempts reads the "connection failed" warnings of a watcher's log
// (slog's text format): the delay before the next attempt, of attempts 1,
// 2, ... in order.
func failedAttempts(t *testing.T, log string) []time.Duration {
	t.Helper()
	var delays []time.Duration
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="watch: connection failed"`) {
			continue
		}
		m := regexp.MustCompile(` attempt=(\d+) next_attempt_in=(\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no attempt and delay in %q", line)
		}
		if n, _ := strconv.Atoi(m[1]); n != len(delays)+1 {
			t.Fatalf("attempt %s logged after %d others: %q", m[1], len(delays), line)
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		delays = append(delays, d)
	}
	return delays
}

// freeAddr returns a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestDovecotBulkExpunge deletes 500 messages at once under a watcher with
// a state file: each is reported expunged exactly once, without a state
// file write per message holding the watcher up.
func TestDovecotBulkExpunge(t *testing.T) {
	srv := dovecot.StartT(t)
	acct := newAccount(t, srv)
	const total = 500
	var msgs [][]byte
	for i := 0; i < total; i++ {
		msgs = append(msgs, message(fmt.Sprintf("bulk %d", i)))
	}
	if err := srv.DeliverMaildir(acct.user, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	m := acct.other(t)
	opts := fastOptions()
	opts.Store = openState(t, t.TempDir()+"/state.json")
	r := startWatcher(t, acct.dialer(srv.Addr), opts, false)
	r.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))
	start := time.Now()
	m.expunge("INBOX", seq(1, total)...)
	evs := r.waitFor("500 Expunge events", count(watch.EventExpunge, "INBOX", total))
	t.Logf("500 expunges reported %v after the EXPUNGE", time.Since(start))
	m.append("INBOX")
	evs = r.waitFor("New 501", has(watch.EventNew, "INBOX", total+1))
	seen := map[uint32]bool{}
	for _, ev := range ofKind(evs, watch.EventExpunge, "INBOX") {
		if seen[ev.UID] || ev.UID < 1 || ev.UID > total {
			t.Errorf("unexpected %s", describe(ev))
		}
		seen[ev.UID] = true
	}
	checkExactlyOnce(t, evs, "INBOX", []uint32{total + 1})
}

// TestDovecotMissingMailbox checks that a mailbox that cannot be selected
// the first time ends Run with a *MailboxError naming it — alone, among
// others (one connection each, or NOTIFY), and with the stream transport —
// instead of reconnecting for ever.
func TestDovecotMissingMailbox(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name      string
		mailboxes []string
		stream    bool
	}{
		{name: "alone", mailboxes: []string{"Nope"}},
		{name: "stream", mailboxes: []string{"Nope"}, stream: true},
		{name: "among others", mailboxes: []string{"INBOX", "Nope"}},
		{name: "notify", mailboxes: []string{"INBOX", "Nope"}},
		{name: "polled", mailboxes: []string{"INBOX", "Nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			dial := acct.dialer(srv.Addr)
			if tc.stream {
				dial = acct.streamDialer()
			}
			opts := fastOptions(tc.mailboxes...)
			opts.NoNotify = tc.name == "among others" || tc.name == "polled"
			if tc.name == "polled" {
				opts.MaxConnections = 1 // Nope is polled with STATUS
			}
			w, err := watch.New(dial, opts)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for range w.Events() {
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = w.Run(ctx)
			var missing *watch.MailboxError
			if !errors.As(err, &missing) || missing.Mailbox != "Nope" || !errors.Is(err, imap.ErrCommand) {
				t.Fatalf("Run returned %v; want a *watch.MailboxError for Nope", err)
			}
			if ctx.Err() != nil {
				t.Fatal("Run gave up only at the test's deadline")
			}
		})
	}
}
