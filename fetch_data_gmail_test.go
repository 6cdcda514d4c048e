package imap

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestParseFetchGmail parses X-GM-EXT-1 items in the shapes Google
// documents and Gmail sends: IDs up to 2^64-1, labels as atoms, quoted
// strings (system labels quoted with an escaped backslash) and literals,
// non-ASCII labels in modified UTF-7.
func TestParseFetchGmail(t *testing.T) {
	tests := []struct {
		name string
		utf8 bool
		data string
		want Message
	}{
		{name: "google's example",
			data: `* 1 FETCH (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334865 X-GM-LABELS (\Inbox \Sent Important "Muy Importante") UID 4 FLAGS (\Seen))`,
			want: Message{Seq: 1, UID: 4, Flags: []string{`\Seen`}, GMMsgID: 1278455344230334865, GMThrID: 1278455344230334865,
				GMLabels: []string{`\Inbox`, `\Sent`, "Important", "Muy Importante"}}},
		{name: "quoted system labels",
			data: `* 2 FETCH (X-GM-LABELS ("\\Inbox" "\\Important" work "a \"b\""))`,
			want: Message{Seq: 2, GMLabels: []string{`\Inbox`, `\Important`, "work", `a "b"`}}},
		{name: "modified UTF-7, quoted and atom",
			data: `* 3 FETCH (X-GM-LABELS ("&AMk-t&AOk-" &AOk-t&AOk- "R&-D" Work/&ZeVnLIqe-))`,
			want: Message{Seq: 3, GMLabels: []string{"Été", "été", "R&D", "Work/日本語"}}},
		{name: "literal labels",
			data: "* 4 FETCH (X-GM-LABELS ({11}\r\n&AMk-t&AOk- \\Starred {4}\r\nWork) X-GM-MSGID 7)\r\n",
			want: Message{Seq: 4, GMMsgID: 7, GMLabels: []string{"Été", `\Starred`, "Work"}}},
		{name: "not valid modified UTF-7: kept as sent",
			data: `* 5 FETCH (X-GM-LABELS ("a&b" "x&AGE-"))`,
			want: Message{Seq: 5, GMLabels: []string{"a&b", "x&AGE-"}}},
		{name: "UTF-8 literal kept",
			data: "* 6 FETCH (X-GM-LABELS ({5}\r\nÉté))\r\n",
			want: Message{Seq: 6, GMLabels: []string{"Été"}}},
		{name: "UTF8=ACCEPT: not decoded", utf8: true,
			data: `* 7 FETCH (X-GM-LABELS ("&AMk-t&AOk-" "Été" \Inbox))`,
			want: Message{Seq: 7, GMLabels: []string{"&AMk-t&AOk-", "Été", `\Inbox`}}},
		{name: "atom starting with a tilde",
			data: `* 8 FETCH (X-GM-LABELS (~work))`,
			want: Message{Seq: 8, GMLabels: []string{"~work"}}},
		{name: "no labels",
			data: `* 9 FETCH (UID 9 X-GM-LABELS ())`,
			want: Message{Seq: 9, UID: 9, GMLabels: []string{}}},
		{name: "largest IDs, lower case",
			data: `* 10 FETCH (x-gm-msgid 18446744073709551615 X-GM-THRID 18446744073709551615)`,
			want: Message{Seq: 10, GMMsgID: 1<<64 - 1, GMThrID: 1<<64 - 1}},
		{name: "other servers' items stay raw",
			data: `* 11 FETCH (X-GM-MSGIDS 1 X-GM-LABEL (a) EMAILID (M1))`,
			want: Message{Seq: 11, Extra: []RawItem{{Name: "X-GM-MSGIDS", Value: []byte("1")},
				{Name: "X-GM-LABEL", Value: []byte("(a)")}, {Name: "EMAILID", Value: []byte("(M1)")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parser{UTF8: tt.utf8}.ParseFetch(frame(tt.data))
			if err != nil || len(got) != 1 {
				t.Fatalf("ParseFetch = %d messages, %v", len(got), err)
			}
			if !reflect.DeepEqual(*got[0], tt.want) {
				t.Errorf("got  %s\nwant %s", dump(got[0]), dump(&tt.want))
			}
			// The one-response form must agree.
			r := Response{Type: "FETCH", Data: frame(tt.data)}
			one, err := Parser{UTF8: tt.utf8}.ParseFetchResponse(r)
			if err != nil || !reflect.DeepEqual(*one, tt.want) {
				t.Errorf("ParseFetchResponse = %s, %v", dump(one), err)
			}
		})
	}
}

// TestParseFetchGmailMalformed: a bad X-GM item is a *ParseError naming
// the message and the item, and the other messages still parse.
func TestParseFetchGmailMalformed(t *testing.T) {
	tests := []struct {
		name, item, data, want string
	}{
		{"msgid not a number", "X-GM-MSGID", `X-GM-MSGID abc`, "expected number"},
		{"msgid too large", "X-GM-MSGID", `X-GM-MSGID 18446744073709551616`, "number too large"},
		{"thrid with letters", "X-GM-THRID", `X-GM-THRID 12a`, `unexpected 'a' after number`},
		{"thrid negative", "X-GM-THRID", `X-GM-THRID -1`, "expected number"},
		{"thrid missing", "X-GM-THRID", `X-GM-THRID)`, "expected number"},
		{"labels not a list", "X-GM-LABELS", `X-GM-LABELS \Inbox`, `expected "("`},
		{"labels NIL", "X-GM-LABELS", `X-GM-LABELS NIL`, `expected "("`},
		{"labels unterminated quote", "X-GM-LABELS", `X-GM-LABELS ("work)`, "unterminated quoted string"},
		{"label is a list", "X-GM-LABELS", `X-GM-LABELS ((a))`, "expected label"},
		{"label literal marker malformed", "X-GM-LABELS", `X-GM-LABELS ({3x} a)`, "malformed literal marker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := frame("* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2 " + tt.data + ")\r\n* 3 FETCH (UID 3)\r\n")
			msgs, err := ParseFetch(data)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Seq != 2 || pe.Item != tt.item || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a *ParseError for message 2, item %s, saying %q", err, tt.item, tt.want)
			}
			if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 3 {
				t.Errorf("got %s, want messages 1 and 3", dump(msgs))
			}
		})
	}
}
