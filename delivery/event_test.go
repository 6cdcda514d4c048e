package delivery

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/watch"
)

func TestFromWatch(t *testing.T) {
	at := time.Date(2025, 3, 4, 8, 6, 10, 123456789, time.FixedZone("CET", 3600))
	base := watch.Event{
		ID: "v7-u4242-new", Kind: watch.EventNew, Time: at, Account: "work", Mailbox: "INBOX",
		UIDValidity: 7, UID: 4242, Flags: []string{`\Seen`}, ModSeq: 99, Text: "t",
	}
	tests := []struct {
		name string
		env  *imap.Envelope
		err  error
		want func(*Event)
	}{
		{"no envelope", nil, nil, func(*Event) {}},
		{"plain subject", &imap.Envelope{Subject: "Build passed", MessageID: "<a@b>",
			From: []imap.Address{{Name: "Ada", Mailbox: "ada", Host: "example.org"}, {Mailbox: "bob", Host: "example.org"}}},
			nil, func(e *Event) { e.Subject, e.MessageID, e.From = "Build passed", "<a@b>", "ada@example.org" }},
		{"encoded subject", &imap.Envelope{Subject: "=?UTF-8?B?w4ljaGVjIGR1IGJ1aWxk?="},
			nil, func(e *Event) { e.Subject = "Échec du build" }},
		{"Q-encoded subject", &imap.Envelope{Subject: "=?ISO-8859-1?Q?caf=E9?= ok"},
			nil, func(e *Event) { e.Subject = "café ok" }},
		{"undecodable subject kept raw", &imap.Envelope{Subject: "=?x-unknown?Q?abc?="},
			nil, func(e *Event) { e.Subject = "=?x-unknown?Q?abc?=" }},
		{"group marker skipped", &imap.Envelope{From: []imap.Address{{Mailbox: "team"}, {Mailbox: "ada", Host: "example.org"}, {}}},
			nil, func(e *Event) { e.From = "ada@example.org" }},
		{"error", nil, errors.New("connection reset"), func(e *Event) { e.Error = "connection reset" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			in.Envelope, in.Err = tt.env, tt.err
			want := Event{ID: "v7-u4242-new", Kind: "new", Time: "2025-03-04T07:06:10.123456789Z", Account: "work",
				Mailbox: "INBOX", UIDValidity: 7, UID: 4242, Flags: []string{`\Seen`}, ModSeq: 99, Text: "t"}
			tt.want(&want)
			got := FromWatch(in)
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			if string(gb) != string(wb) {
				t.Errorf("FromWatch =\n%s\nwant\n%s", gb, wb)
			}
		})
	}
}

func TestFromWatchKinds(t *testing.T) {
	for k := watch.EventNew; k <= watch.EventMailboxDeleted; k++ {
		got := FromWatch(watch.Event{Kind: k}).Kind
		if back, ok := watch.ParseKind(got); !ok || back != k {
			t.Errorf("kind %d: FromWatch gives %q, which ParseKind does not give back", k, got)
		}
	}
}

// TestFromWatchMailboxes: the events of a mailbox created, renamed or
// deleted name it, and a rename its old name too ("old_mailbox"), in JSON,
// in a hook's environment (IMAPKIT_OLD_MAILBOX) and in the text line.
func TestFromWatchMailboxes(t *testing.T) {
	at := time.Date(2025, 3, 4, 8, 6, 10, 0, time.UTC)
	for _, tc := range []struct {
		in               watch.Event
		json, env, words string
	}{
		{watch.Event{ID: "x", Kind: watch.EventMailboxCreated, Time: at, Account: "work", Mailbox: "Made", UIDValidity: 9},
			`{"id":"x","event":"mailbox_created","time":"2025-03-04T08:06:10Z","account":"work","mailbox":"Made","uidvalidity":9}`,
			"IMAPKIT_OLD_MAILBOX=", "mailbox_created work/Made"},
		{watch.Event{ID: "x", Kind: watch.EventMailboxRenamed, Time: at, Account: "work", Mailbox: "Archive", OldMailbox: "Lists", UIDValidity: 9},
			`{"id":"x","event":"mailbox_renamed","time":"2025-03-04T08:06:10Z","account":"work","mailbox":"Archive","old_mailbox":"Lists","uidvalidity":9}`,
			"IMAPKIT_OLD_MAILBOX=Lists", "mailbox_renamed work/Archive from=Lists"},
		{watch.Event{ID: "x", Kind: watch.EventMailboxDeleted, Time: at, Account: "work", Mailbox: "Box", UIDValidity: 9, Text: `renamed to "Elsewhere"`},
			`{"id":"x","event":"mailbox_deleted","time":"2025-03-04T08:06:10Z","account":"work","mailbox":"Box","uidvalidity":9,"text":"renamed to \"Elsewhere\""}`,
			"IMAPKIT_MAILBOX=Box", `mailbox_deleted work/Box renamed to "Elsewhere"`},
	} {
		t.Run(tc.in.Kind.String(), func(t *testing.T) {
			ev := FromWatch(tc.in)
			if b, err := marshal(ev); err != nil || string(b) != tc.json {
				t.Errorf("JSON\n%s, %v\nwant\n%s", b, err, tc.json)
			}
			if env := hookEnv(ev, 1); !slices.Contains(env, tc.env) || !slices.Contains(env, "IMAPKIT_EVENT="+tc.in.Kind.String()) {
				t.Errorf("hook environment %q lacks %q", env, tc.env)
			}
			if line, _ := ev.textLine(); !strings.Contains(strings.Join(strings.Fields(string(line)), " "), tc.words) {
				t.Errorf("text line %q lacks %q", line, tc.words)
			}
		})
	}
}

func TestEventJSONKeepsAngleBrackets(t *testing.T) {
	b, err := marshal(Event{ID: "x", Kind: "new", MessageID: "<a&b@c>"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"x","event":"new","time":"","account":"","mailbox":"","message_id":"<a&b@c>"}`
	if string(b) != want {
		t.Errorf("marshal = %s, want %s", b, want)
	}
}

// TestEventJSONGmail: Gmail's attributes appear in the JSON of a new
// message as decimal strings (64-bit IDs survive readers that hold numbers
// as doubles) and a label list, "[]" when the message has no labels, and
// not at all when unknown; the JSON decodes to the same Event and encodes
// to the same bytes again, as the service's consumers rely on.
func TestEventJSONGmail(t *testing.T) {
	base := watch.Event{ID: "x", Kind: watch.EventNew, Time: time.Date(2025, 3, 4, 8, 6, 10, 0, time.UTC),
		Account: "work", Mailbox: "INBOX", UIDValidity: 7, UID: 4}
	const head = `{"id":"x","event":"new","time":"2025-03-04T08:06:10Z","account":"work","mailbox":"INBOX","uidvalidity":7,"uid":4`
	tests := []struct {
		name         string
		msgID, thrID uint64
		labels       []string
		want         string
	}{
		{"not Gmail", 0, 0, nil, head + `}`},
		{"google's example", 1278455344230334865, 1278455344230334865, []string{`\Inbox`, `\Sent`, "Important", "Muy Importante"},
			head + `,"gm_msgid":"1278455344230334865","gm_thrid":"1278455344230334865","gm_labels":["\\Inbox","\\Sent","Important","Muy Importante"]}`},
		{"largest IDs, no labels", 1<<64 - 1, 1<<64 - 1, []string{},
			head + `,"gm_msgid":"18446744073709551615","gm_thrid":"18446744073709551615","gm_labels":[]}`},
		{"non-ASCII label", 1, 2, []string{"Été"}, head + `,"gm_msgid":"1","gm_thrid":"2","gm_labels":["Été"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			in.GMMsgID, in.GMThrID, in.GMLabels = tt.msgID, tt.thrID, tt.labels
			ev := FromWatch(in)
			b, err := marshal(ev)
			if err != nil || string(b) != tt.want {
				t.Fatalf("marshal =\n%s, %v\nwant\n%s", b, err, tt.want)
			}
			var back Event
			if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, ev) {
				t.Fatalf("decoded %+v, %v; want %+v", back, err, ev)
			}
			if again, _ := marshal(back); string(again) != string(b) {
				t.Errorf("encoded again:\n%s\nwant\n%s", again, b)
			}
		})
	}
}
