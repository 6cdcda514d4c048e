package watch_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/imaptest"
	"github.com/imapkit/imap/watch"
)

// TestSelectList: an IMAP4rev2 server answers every SELECT with a LIST of
// the mailbox (RFC 9051; mox does, naming the inbox "Inbox"). With NOTIFY,
// where an untagged LIST is otherwise a MailboxName event, that one must
// not be taken for a change of the mailbox — which would have it synced,
// and LIST sent, again and again — with Mailboxes or AllMailboxes.
func TestSelectList(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mailboxes []string
		all       bool
	}{
		{name: "mailboxes", mailboxes: []string{"INBOX", "Lists"}},
		{name: "all mailboxes", all: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			counts := map[string]int{}
			note := func(cmd string) {
				mu.Lock()
				counts[cmd]++
				mu.Unlock()
			}
			srv := imaptest.NewServer(t, imaptest.Config{
				Capabilities: "IMAP4rev2 IDLE NOTIFY UNSELECT",
				Commands: map[string]imaptest.CommandFunc{
					"NOTIFY": func(s *imaptest.Session, tag, _ string) { _ = s.Send(tag + " OK NOTIFY completed") },
					"LIST": func(s *imaptest.Session, tag, _ string) {
						note("LIST")
						_ = s.Send(`* LIST (\HasNoChildren) "/" Inbox`, `* LIST (\HasNoChildren) "/" Lists`, tag+" OK LIST completed")
					},
					"EXAMINE": func(s *imaptest.Session, tag, args string) {
						note("EXAMINE")
						name := imaptest.FirstArg(args)
						if strings.EqualFold(name, "INBOX") {
							name = "Inbox"
						}
						_ = s.Send("* 0 EXISTS", "* OK [UIDVALIDITY 7] x", "* OK [UIDNEXT 1] x",
							`* LIST (\HasNoChildren) "/" `+name, tag+" OK [READ-ONLY] EXAMINE completed")
					},
					"UNSELECT": func(s *imaptest.Session, tag, _ string) { _ = s.Send(tag + " OK UNSELECT completed") },
					"UID":      func(s *imaptest.Session, tag, _ string) { _ = s.Send("* SEARCH", tag+" OK done") },
					"IDLE": func(s *imaptest.Session, tag, _ string) {
						_ = s.Send("+ idling")
						if line, err := s.ReadLine(); err == nil && strings.EqualFold(line, "DONE") {
							_ = s.Send(tag + " OK IDLE completed")
						}
					},
				},
			})
			opts := fastOptions(tc.mailboxes...)
			opts.AllMailboxes = tc.all
			opts.Inactivity = time.Minute
			r := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
			r.waitFor("baselines", func(evs []watch.Event) bool {
				return count(watch.EventResynced, "INBOX", 1)(evs) && count(watch.EventResynced, "Lists", 1)(evs)
			})
			time.Sleep(time.Second)
			r.stop()
			mu.Lock()
			defer mu.Unlock()
			if counts["EXAMINE"] > 2 || counts["LIST"] > 1 {
				t.Errorf("%d EXAMINE and %d LIST in a second with nothing changing: want each mailbox synced once and one LIST at most",
					counts["EXAMINE"], counts["LIST"])
			}
		})
	}
}
