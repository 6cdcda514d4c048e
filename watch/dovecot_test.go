package watch_test

import (
	"slices"
	"testing"

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
		name    string
		strip   []string
		noFlags bool // flags changed while down cannot be known
	}{
		{name: "dovecot"},
		{name: "no-qresync", strip: []string{"QRESYNC"}},
		{name: "no-condstore", strip: []string{"QRESYNC", "CONDSTORE"}, noFlags: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.append("INBOX") // 1: baseline
			m.append("INBOX") // 2: baseline
			state := t.TempDir() + "/state.json"
			dial := acct.dialer(newProxy(t, srv.Addr, tc.strip...).Addr())
			opts := fastOptions()
			opts.StateFile = state

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
