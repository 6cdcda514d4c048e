package imap_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// TestFetchMessagesGmail: the typed FETCH of a server with X-GM-EXT-1
// asks for the X-GM items as given and fills GMMsgID, GMThrID and
// GMLabels from answers shaped as Gmail's (labels as literals and in
// modified UTF-7 included); after ENABLE UTF8=ACCEPT labels are taken as
// UTF-8.
func TestFetchMessagesGmail(t *testing.T) {
	t.Parallel()
	answer := []string{
		`* 1 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334865 X-GM-LABELS (\Inbox \Sent Important "Muy Importante") UID 4 FLAGS (\Seen))`,
		"* 2 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 18446744073709551615 X-GM-LABELS ({11}",
		`&AMk-t&AOk- "\\Important" "&AMk-t&AOk-") UID 5 FLAGS ())`,
		`* 3 FETCH (X-GM-THRID 1 X-GM-MSGID 2 X-GM-LABELS () UID 6 FLAGS ())`,
	}
	cmds := map[string]imaptest.CommandFunc{
		"UID": func(s *imaptest.Session, tag, _ string) {
			_ = s.Send(append(answer, tag+" OK FETCH completed")...)
		},
		"ENABLE": func(s *imaptest.Session, tag, _ string) { _ = s.Send("* ENABLED UTF8=ACCEPT", tag+" OK enabled") },
	}
	srv := plain.server(t, imaptest.Config{Capabilities: "X-GM-EXT-1 ENABLE UTF8=ACCEPT", Commands: cmds})
	ctx := context.Background()
	const items = "(UID FLAGS X-GM-MSGID X-GM-THRID X-GM-LABELS)"
	type gm struct {
		UID          uint32
		MsgID, ThrID uint64
		Labels       []string
		HasLabels    bool // "X-GM-LABELS ()" gives an empty list, not nil
	}
	for _, tc := range []struct {
		name  string
		utf8  bool
		each  bool
		label string // how the label "&AMk-t&AOk-" comes out
	}{
		{"FetchMessages", false, false, "Été"},
		{"FetchEachMessage", false, true, "Été"},
		{"FetchMessages after ENABLE UTF8=ACCEPT", true, false, "&AMk-t&AOk-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := plain.connect(t, srv, nil)
			login(t, c)
			if tc.utf8 {
				mustOK(t)(c.Enable(ctx, "UTF8=ACCEPT"))
			}
			mustOK(t)(c.Select(ctx, "INBOX", false))
			var msgs []*imap.Message
			var err error
			if tc.each {
				err = c.UIDFetchEachMessage(ctx, "4:6", items, func(m *imap.Message) error {
					msgs = append(msgs, m)
					return nil
				})
			} else {
				msgs, err = c.UIDFetchMessages(ctx, "4:6", items)
			}
			if err != nil {
				t.Fatal(err)
			}
			if sent := srv.Commands(); !strings.HasSuffix(sent[len(sent)-1], "UID FETCH 4:6 "+items) {
				t.Errorf("command sent: %q", sent[len(sent)-1])
			}
			var got []gm
			for _, m := range msgs {
				got = append(got, gm{m.UID, m.GMMsgID, m.GMThrID, m.GMLabels, m.GMLabels != nil})
			}
			want := []gm{
				{4, 1278455344230334865, 1278455344230334865, []string{`\Inbox`, `\Sent`, "Important", "Muy Importante"}, true},
				{5, 1<<64 - 1, 1278455344230334865, []string{tc.label, `\Important`, tc.label}, true},
				{6, 2, 1, []string{}, true},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("\n got %+v\nwant %+v", got, want)
			}
		})
	}
}
