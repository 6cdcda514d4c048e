package imap_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// TestDeselectNeedsOK: UNSELECT and CLOSE leave the selected state only
// when the server agrees; after a NO or BAD the server still has the
// mailbox selected, and so does the client.
func TestDeselectNeedsOK(t *testing.T) {
	for _, tc := range []struct {
		command, reply string
		want           imap.State
	}{
		{"UNSELECT", "OK done", imap.StateAuth},
		{"UNSELECT", "NO [CANNOT] not supported here", imap.StateSelected},
		{"UNSELECT", "BAD unknown command", imap.StateSelected},
		{"CLOSE", "OK done", imap.StateAuth},
		{"CLOSE", "NO [EXPUNGEISSUED] try again", imap.StateSelected},
	} {
		t.Run(tc.command+" "+tc.reply, func(t *testing.T) {
			srv := imaptest.NewServer(t, imaptest.Config{Capabilities: "IMAP4rev1 UNSELECT",
				Commands: map[string]imaptest.CommandFunc{
					tc.command: func(s *imaptest.Session, tag, _ string) { _ = s.Send(tag + " " + tc.reply) },
				}})
			ctx := context.Background()
			c := loggedIn(t, srv)
			if _, err := c.Select(ctx, "INBOX", false); err != nil {
				t.Fatal(err)
			}
			var err error
			if tc.command == "UNSELECT" {
				_, err = c.Unselect(ctx)
			} else {
				_, err = c.CloseMailbox(ctx)
			}
			if (err == nil) != (tc.want == imap.StateAuth) {
				t.Errorf("%s = %v", tc.command, err)
			}
			if got := c.State(); got != tc.want {
				t.Errorf("state after %s answered %q: %v, want %v", tc.command, tc.reply, got, tc.want)
			}
		})
	}
}

// TestAppendUTF8Form: after ENABLE UTF8=ACCEPT, APPEND uses the UTF8
// literal form only for a message with 8-bit bytes.
func TestAppendUTF8Form(t *testing.T) {
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"7-bit", "Subject: plain\r\n\r\nhi\r\n", "INBOX {22}"},
		{"8-bit", "Subject: Grüße\r\n\r\nhi\r\n", "INBOX UTF8 (~{24}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := imaptest.NewServer(t, imaptest.Config{Capabilities: "IMAP4rev1 ENABLE UTF8=ACCEPT",
				Commands: map[string]imaptest.CommandFunc{
					"ENABLE": func(s *imaptest.Session, tag, _ string) { _ = s.Send("* ENABLED UTF8=ACCEPT", tag+" OK enabled") },
					"APPEND": func(s *imaptest.Session, tag, args string) {
						s.Server().Set("append", args)
						_ = s.Send(tag + " OK appended")
					},
				}})
			ctx := context.Background()
			c := loggedIn(t, srv)
			if _, err := c.Enable(ctx, "UTF8=ACCEPT"); err != nil || !c.UTF8Enabled() {
				t.Fatalf("ENABLE: %v", err)
			}
			if _, err := c.Append(ctx, "", "", time.Time{}, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			got, _ := srv.Get("append").(string)
			if !strings.HasPrefix(got, tc.want+"\r\n") {
				t.Errorf("APPEND arguments %q, want them to start %q", got, tc.want)
			}
		})
	}
}
