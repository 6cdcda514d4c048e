package watch_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/imaptest"
	"github.com/imapkit/imap/watch"
)

// TestNotifySelected plays mox's NOTIFY: a message arrives in a mailbox
// while the watcher has it selected for a sync (after its UID SEARCH was
// evaluated), and the server says so only when NOTIFY SET names the
// SELECTED event group; no STATUS follows for the selected mailbox. The
// watcher must ask for SELECTED, or that message waits for the next change.
func TestNotifySelected(t *testing.T) {
	var mu sync.Mutex
	selected, arrived, selectedGroup := "", false, false
	box := func(args string) string { return strings.Trim(strings.Fields(args)[0], `"`) }
	srv := imaptest.NewServer(t, imaptest.Config{
		Capabilities: "IDLE NOTIFY UNSELECT",
		Commands: map[string]imaptest.CommandFunc{
			"NOTIFY": func(s *imaptest.Session, tag, args string) {
				mu.Lock()
				selectedGroup = strings.Contains(strings.ToUpper(args), "(SELECTED ")
				mu.Unlock()
				_ = s.Send(tag + " OK NOTIFY completed")
			},
			"EXAMINE": func(s *imaptest.Session, tag, args string) {
				mu.Lock()
				defer mu.Unlock()
				selected = box(args)
				exists, validity := "0", "1"
				if selected == "Lists" {
					validity = "2"
					if arrived {
						exists = "1"
					}
				}
				_ = s.Send("* "+exists+" EXISTS", "* OK [UIDVALIDITY "+validity+"] x", tag+" OK [READ-ONLY] EXAMINE completed")
			},
			"UNSELECT": func(s *imaptest.Session, tag, _ string) {
				mu.Lock()
				selected = ""
				mu.Unlock()
				_ = s.Send(tag + " OK UNSELECT completed")
			},
			"UID": func(s *imaptest.Session, tag, args string) {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case strings.HasPrefix(args, "SEARCH") && selected == "Lists" && !arrived:
					// The search ran before the message arrived.
					arrived = true
					lines := []string{"* SEARCH"}
					if selectedGroup {
						lines = append(lines, "* 1 EXISTS")
					}
					_ = s.Send(append(lines, tag+" OK UID SEARCH completed")...)
				case strings.HasPrefix(args, "SEARCH") && selected == "Lists":
					_ = s.Send("* SEARCH 1", tag+" OK UID SEARCH completed")
				case strings.HasPrefix(args, "SEARCH"):
					_ = s.Send("* SEARCH", tag+" OK UID SEARCH completed")
				case strings.HasPrefix(args, "FETCH") && selected == "Lists" && arrived:
					_ = s.Send("* 1 FETCH (UID 1 FLAGS ())", tag+" OK UID FETCH completed")
				default:
					_ = s.Send(tag + " OK UID completed")
				}
			},
			"FETCH": func(s *imaptest.Session, tag, args string) {
				mu.Lock()
				defer mu.Unlock()
				if selected == "Lists" && arrived {
					_ = s.Send("* 1 FETCH (UID 1 FLAGS ())", tag+" OK FETCH completed")
					return
				}
				_ = s.Send(tag + " OK FETCH completed")
			},
			"IDLE": func(s *imaptest.Session, tag, _ string) {
				_ = s.Send("+ idling")
				if line, err := s.ReadLine(); err != nil || !strings.EqualFold(line, "DONE") {
					return
				}
				_ = s.Send(tag + " OK IDLE completed")
			},
		},
	})
	opts := &watch.Options{Mailboxes: []string{"INBOX", "Lists"}, Inactivity: time.Minute}
	r := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
	r.waitForWithin(5*time.Second, "new mail in Lists, which arrived during its sync", has(watch.EventNew, "Lists", 1))
}
