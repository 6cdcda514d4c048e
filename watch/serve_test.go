package watch

import (
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// TestIdleWaitEndsWhenRoomIsMade: a mailbox knows of a new message it
// could not report (its window of one is full), and the session idles.
// Once the consumer acknowledges — before IDLE starts or during it — IDLE
// ends within a few room polls, so that the message is reported, instead
// of waiting for the next change or Inactivity. (The acknowledgement comes
// from another goroutine; one made between two of idleWait's looks at the
// window once left the message unreported until Inactivity.)
func TestIdleWaitEndsWhenRoomIsMade(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ackedIn time.Duration // after IDLE starts; negative: before
	}{
		{name: "acknowledged before IDLE", ackedIn: -1},
		{name: "acknowledged during IDLE", ackedIn: 5 * roomPoll / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := imaptest.NewServer(t, imaptest.Config{Capabilities: "IDLE", Commands: map[string]imaptest.CommandFunc{
				"IDLE": func(s *imaptest.Session, tag, _ string) {
					if s.Send("+ idling") != nil {
						return
					}
					if line, err := s.ReadLine(); err == nil && strings.EqualFold(line, "DONE") {
						_ = s.Send(tag + " OK IDLE completed")
					}
				},
			}})
			ctx := t.Context()
			c, err := imap.Dial(ctx, srv.Addr, &imap.Options{InsecureAuth: true, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Shutdown() })
			if _, err := c.Login(ctx, "u", "p"); err != nil {
				t.Fatal(err)
			}

			w, err := New(nil, &Options{Account: "acct", Window: 1, Inactivity: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			l := w.ledger("INBOX")
			l.setBaseline(position{uidValidity: 7}, nil)
			if !l.offerNew(newEv(1)) {
				t.Fatal("the first New found no room")
			}
			first, err := w.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b := &box{view: view{name: "INBOX", uidValidity: 7, uids: []uint32{1, 2}, last: 1}, l: l}
			s := &session{w: w, boxes: []*box{b}, primary: b}
			if s.needsCommand() {
				t.Fatal("needsCommand with a full window")
			}
			if tc.ackedIn < 0 {
				first.Ack()
			} else {
				time.AfterFunc(tc.ackedIn, first.Ack)
			}

			idler, err := c.Idle(ctx, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			start := time.Now()
			go func() { done <- s.idleWait(idler) }()
			select {
			case err := <-done:
				done <- nil // for the wait below
				if err != nil {
					t.Fatalf("idleWait: %v", err)
				}
				if !s.needsCommand() {
					t.Error("idleWait returned, but nothing needs a command")
				}
				t.Logf("IDLE ended %v after it started", time.Since(start).Round(time.Millisecond))
			case <-time.After(2 * time.Second):
				t.Error("IDLE still running 2 s after the window had room for the message")
			}
			if err := idler.Close(); err != nil {
				t.Fatalf("ending IDLE: %v", err)
			}
			<-done
		})
	}
}
