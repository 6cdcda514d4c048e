package watch_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/internal/imaptest"
	"github.com/imapkit/imap/watch"
)

// TestDovecotAllMailboxes follows every mailbox of an account, over NOTIFY
// (Dovecot's MailboxName event) and by polling LIST (NoNotify), while
// another connection creates a mailbox and delivers into it at once,
// renames one, creates one under a parent that cannot be selected, and
// deletes one. Each change is reported once: the created mailbox with its
// mail from the first message, the rename with both names and the same
// UIDVALIDITY and then mail under the new name from the old position, the
// deletion; INBOX goes on throughout, and the state file ends up with the
// mailboxes as they are.
func TestDovecotAllMailboxes(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name     string
		noNotify bool
	}{
		{name: "notify"},
		{name: "list poll", noNotify: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.create("Lists")
			m.append("INBOX") // 1: baseline
			m.append("Lists") // 1: baseline
			state := t.TempDir() + "/state.json"
			px := newProxy(t, srv.Addr)
			opts := fastOptions()
			opts.AllMailboxes = true
			opts.NoNotify = tc.noNotify
			opts.ListInterval = time.Second
			opts.Store = openState(t, state)
			r := startWatcher(t, acct.dialer(px.Addr()), opts, false)
			evs := r.waitFor("baselines", func(evs []watch.Event) bool {
				return count(watch.EventResynced, "INBOX", 1)(evs) && count(watch.EventResynced, "Lists", 1)(evs)
			})
			listsValidity := ofKind(evs, watch.EventResynced, "Lists")[0].UIDValidity

			m.create("Fresh")
			m.append("Fresh") // 1, right after the creation
			m.append("Fresh") // 2
			evs = r.waitFor("Fresh created, and its mail", func(evs []watch.Event) bool {
				return count(watch.EventMailboxCreated, "Fresh", 1)(evs) && allNew("Fresh", 2)(evs)
			})
			created := ofKind(evs, watch.EventMailboxCreated, "Fresh")[0]
			if created.UIDValidity == 0 || created.ID == "" {
				t.Errorf("got %s, want a UIDVALIDITY and an ID", describe(created))
			}
			if i, j := slices.IndexFunc(evs, func(ev watch.Event) bool { return ev.ID == created.ID }), slices.IndexFunc(evs, func(ev watch.Event) bool {
				return ev.Kind == watch.EventNew && ev.Mailbox == "Fresh"
			}); j < i {
				t.Errorf("New in Fresh (event %d) before MailboxCreated (event %d)", j, i)
			}

			m.rename("Lists", "Archive")
			evs = r.waitFor("Lists renamed", count(watch.EventMailboxRenamed, "Archive", 1))
			ren := ofKind(evs, watch.EventMailboxRenamed, "Archive")[0]
			if ren.OldMailbox != "Lists" || ren.UIDValidity != listsValidity {
				t.Errorf("got %s, want old name Lists and uidvalidity %d", describe(ren), listsValidity)
			}
			m.append("Archive") // 2: from the position Lists had
			r.waitFor("New 2 in Archive", has(watch.EventNew, "Archive", 2))

			m.create("Parent/Child")
			r.waitFor("Parent/Child created", count(watch.EventMailboxCreated, "Parent/Child", 1))

			m.delete("Fresh")
			r.waitFor("Fresh deleted", count(watch.EventMailboxDeleted, "Fresh", 1))
			m.append("INBOX") // 2
			evs = r.waitFor("New 2 in INBOX", has(watch.EventNew, "INBOX", 2))

			checkExactlyOnce(t, evs, "INBOX", []uint32{2})
			checkExactlyOnce(t, evs, "Fresh", []uint32{1, 2})
			checkExactlyOnce(t, evs, "Archive", []uint32{2})
			checkExactlyOnce(t, evs, "Lists", nil)
			checkOrder(t, evs)
			mailboxEvents := 0
			for _, ev := range evs {
				switch ev.Kind {
				case watch.EventMailboxCreated, watch.EventMailboxRenamed, watch.EventMailboxDeleted:
					mailboxEvents++
					if ev.Kind == watch.EventMailboxCreated && ev.Mailbox != "Fresh" && ev.Mailbox != "Parent/Child" {
						t.Errorf("unexpected %s", describe(ev))
					}
				case watch.EventDisconnected, watch.EventMailboxReset:
					t.Errorf("unexpected %s", describe(ev))
				}
			}
			if mailboxEvents != 4 {
				t.Errorf("%d events of mailboxes created, renamed or deleted, want 4", mailboxEvents)
			}
			saved := waitSaved(t, state, "acct", "the mailboxes as they are", func(mbs map[string]watch.MailboxState, all bool) bool {
				_, fresh := mbs["Fresh"]
				return all && !fresh && len(mbs) == 3
			})
			for _, name := range []string{"INBOX", "Archive", "Parent/Child"} {
				if _, ok := saved[name]; !ok {
					t.Errorf("state file lacks %s: %v", name, saved)
				}
			}
			if a := saved["Archive"]; a.UIDValidity != listsValidity || a.LastUID != 2 {
				t.Errorf("Archive saved as %+v, want Lists' uidvalidity %d and last UID 2", a, listsValidity)
			}
			if open, _ := px.Conns(); open != 1 {
				t.Errorf("%d connections open, want 1", open)
			}
			if n := px.Commands("NOTIFY"); (n > 0) == tc.noNotify {
				t.Errorf("NOTIFY sent %d times", n)
			}
		})
	}
}

// TestDovecotAllMailboxesWhileAway changes the list of mailboxes while the
// watcher is stopped: one created (with mail), one renamed, one deleted.
// After a run that followed every mailbox, the next start reports each
// change — the created mailbox with all its mail, from its first message —
// and a consumer that acknowledges nothing gets them again, with the same
// IDs, at the start after that. After a run that watched named mailboxes
// only, the state does not cover the account: a mailbox it does not hold
// starts from a baseline (its mail is not news), while a saved one that is
// gone is still reported deleted.
func TestDovecotAllMailboxesWhileAway(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name  string
		first []string // Options.Mailboxes of the first run; nil: AllMailboxes
	}{
		{name: "after all mailboxes"},
		{name: "after named mailboxes", first: []string{"INBOX", "Old"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := newAccount(t, srv)
			m := acct.other(t)
			m.create("Lists")
			m.create("Old")
			m.append("Lists") // 1
			state := t.TempDir() + "/state.json"
			store := openState(t, state)
			dial := acct.dialer(srv.Addr)
			opts := fastOptions(tc.first...)
			opts.AllMailboxes = tc.first == nil
			opts.Store = store
			first := startWatcher(t, dial, opts, false)
			first.waitFor("baselines", func(evs []watch.Event) bool {
				return count(watch.EventResynced, "INBOX", 1)(evs) && count(watch.EventResynced, "Old", 1)(evs)
			})
			first.stop()
			if _, all := savedMailboxes(t, state, "acct"); all != opts.AllMailboxes {
				t.Errorf("the first run saved all_mailboxes %v", all)
			}

			m.create("Made")
			m.append("Made") // 1
			m.append("Made") // 2
			m.rename("Lists", "Archive")
			m.delete("Old")
			m.append("INBOX") // 1

			opts = fastOptions()
			opts.AllMailboxes = true
			opts.Store = store
			done := func(evs []watch.Event) bool {
				return count(watch.EventMailboxDeleted, "Old", 1)(evs) && has(watch.EventNew, "INBOX", 1)(evs) &&
					(tc.first != nil || allNew("Made", 2)(evs)) &&
					(tc.first == nil || count(watch.EventResynced, "Made", 1)(evs) && count(watch.EventResynced, "Archive", 1)(evs))
			}
			var unacked []watch.Event
			if tc.first == nil {
				unacked = runUnacked(t, dial, opts, func(evs []watch.Event) bool {
					return count(watch.EventMailboxCreated, "Made", 1)(evs) && count(watch.EventMailboxRenamed, "Archive", 1)(evs) &&
						count(watch.EventMailboxDeleted, "Old", 1)(evs)
				})
			}
			second := startWatcher(t, dial, opts, false)
			evs := second.waitFor("the changes", done)
			for _, ev := range unacked {
				switch ev.Kind {
				case watch.EventMailboxCreated, watch.EventMailboxRenamed, watch.EventMailboxDeleted, watch.EventNew:
					if !slices.ContainsFunc(evs, func(again watch.Event) bool { return again.ID == ev.ID }) {
						t.Errorf("unacknowledged %s not reported again with its ID", describe(ev))
					}
				}
			}
			if tc.first == nil {
				ren := ofKind(evs, watch.EventMailboxRenamed, "Archive")
				if len(ren) != 1 || ren[0].OldMailbox != "Lists" {
					t.Errorf("renames %v, want Lists to Archive", ren)
				}
				checkExactlyOnce(t, evs, "Made", []uint32{1, 2})
				if n := len(ofKind(evs, watch.EventResynced, "Made")); n != 0 {
					t.Errorf("Made resynced %d times: a created mailbox has no baseline", n)
				}
			} else {
				// Lists was never watched: Archive is new to this watcher.
				for _, b := range []string{"Made", "Archive"} {
					if n := len(ofKind(evs, watch.EventResynced, b)); n != 1 {
						t.Errorf("%s: %d baselines, want 1", b, n)
					}
				}
				checkExactlyOnce(t, evs, "Made", nil)
				for _, ev := range evs {
					if ev.Kind == watch.EventMailboxCreated || ev.Kind == watch.EventMailboxRenamed {
						t.Errorf("unexpected %s: the first run did not cover every mailbox", describe(ev))
					}
				}
			}
			checkExactlyOnce(t, evs, "INBOX", []uint32{1})
			waitSaved(t, state, "acct", "every mailbox", func(mbs map[string]watch.MailboxState, all bool) bool {
				_, old := mbs["Old"]
				_, lists := mbs["Lists"]
				return all && !old && !lists && len(mbs) == 3
			})
		})
	}
}

// TestScriptedCreatedStatus: the STATUS that learns a created mailbox's
// UIDVALIDITY may come with NOTIFY's own STATUS of it (MESSAGES, UIDNEXT,
// UNSEEN, no UIDVALIDITY) in its answer, first; the UIDVALIDITY is taken
// from the STATUS that has it. Or it may give none, or "UIDVALIDITY 0"
// (Dovecot, while the process that creates the mailbox has not finished):
// then its first SELECT tells it. Either way the creation is reported with
// the mailbox's UIDVALIDITY (a stable event ID), before its message, and
// the first SELECT finds no reset.
func TestScriptedCreatedStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status []string // the answer to STATUS Fresh, before OK
	}{
		{name: "NOTIFY's STATUS first", status: []string{"* STATUS Fresh (MESSAGES 1 UIDNEXT 2 UNSEEN 1)", "* STATUS Fresh (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 9)"}},
		{name: "UIDVALIDITY 0", status: []string{"* STATUS Fresh (UIDNEXT 1 UIDVALIDITY 0)"}},
		{name: "no UIDVALIDITY", status: []string{"* STATUS Fresh (UIDNEXT 2)"}},
	} {
		t.Run(tc.name, func(t *testing.T) { scriptedCreatedStatus(t, tc.status) })
	}
}

func scriptedCreatedStatus(t *testing.T, status []string) {
	var (
		mu       sync.Mutex
		lists    int
		selected string
	)
	srv := imaptest.NewServer(t, imaptest.Config{
		Commands: map[string]imaptest.CommandFunc{
			"LIST": func(s *imaptest.Session, tag, _ string) {
				mu.Lock()
				lists++
				n := lists
				mu.Unlock()
				lines := []string{`* LIST (\HasNoChildren) "/" INBOX`}
				if n > 1 {
					lines = append(lines, `* LIST (\HasNoChildren) "/" Fresh`)
				}
				_ = s.Send(append(lines, tag+" OK LIST completed")...)
			},
			"STATUS": func(s *imaptest.Session, tag, args string) {
				if !strings.HasPrefix(args, "Fresh ") {
					_ = s.Send(tag + " NO unexpected " + args)
					return
				}
				_ = s.Send(append(slices.Clone(status), tag+" OK STATUS completed")...)
			},
			"EXAMINE": func(s *imaptest.Session, tag, args string) {
				mu.Lock()
				selected = imaptest.FirstArg(args)
				mu.Unlock()
				if selected == "Fresh" {
					_ = s.Send("* 1 EXISTS", "* OK [UIDVALIDITY 9] UIDs valid", "* OK [UIDNEXT 2] next", tag+" OK [READ-ONLY] done")
				} else {
					_ = s.Send("* 2 EXISTS", "* OK [UIDVALIDITY 7] UIDs valid", "* OK [UIDNEXT 3] next", tag+" OK [READ-ONLY] done")
				}
				s.SetSelected(true)
			},
			"UID": func(s *imaptest.Session, tag, args string) {
				mu.Lock()
				box := selected
				mu.Unlock()
				switch {
				case args == "SEARCH ALL" && box == "Fresh":
					_ = s.Send("* SEARCH 1", tag+" OK done")
				case args == "SEARCH ALL":
					_ = s.Send("* SEARCH 1 2", tag+" OK done")
				case strings.HasPrefix(args, "FETCH 1 ") && box == "Fresh":
					_ = s.Send("* 1 FETCH (UID 1 FLAGS ())", tag+" OK done")
				default:
					_ = s.Send(tag + " BAD unexpected " + args)
				}
			},
		},
	})
	opts := fastOptions()
	opts.AllMailboxes = true
	opts.Envelope = false
	opts.ListInterval = time.Second
	r := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
	evs := r.waitFor("Fresh created, and its message", func(evs []watch.Event) bool {
		return count(watch.EventMailboxCreated, "Fresh", 1)(evs) && has(watch.EventNew, "Fresh", 1)(evs)
	})
	r.stop()
	if c := ofKind(evs, watch.EventMailboxCreated, "Fresh")[0]; c.UIDValidity != 9 {
		t.Errorf("got %s, want UIDVALIDITY 9", describe(c))
	}
	if n := len(ofKind(evs, watch.EventMailboxReset, "")); n != 0 {
		t.Errorf("%d resets", n)
	}
	created := slices.IndexFunc(evs, func(ev watch.Event) bool { return ev.Kind == watch.EventMailboxCreated })
	newOne := slices.IndexFunc(evs, func(ev watch.Event) bool { return ev.Kind == watch.EventNew && ev.Mailbox == "Fresh" })
	if created > newOne {
		t.Errorf("the message of Fresh came before its creation: %v", evs)
	}
}
