package imap

import (
	"reflect"
	"strings"
	"testing"
)

// dovecotStatus answers STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY
// UNSEEN HIGHESTMODSEQ SIZE) on a Dovecot 2.3 server.
const dovecotStatus = `* STATUS INBOX (MESSAGES 3 RECENT 3 UIDNEXT 4 UIDVALIDITY 1795334735 UNSEEN 2 HIGHESTMODSEQ 5 SIZE 1649)
`

func TestParseStatus(t *testing.T) {
	all := StatusMessages | StatusRecent | StatusUIDNext | StatusUIDValidity | StatusUnseen | StatusHighestModSeq | StatusSize
	tests := []struct {
		name string
		data []Datum
		want []StatusData
	}{
		{"dovecot", frame(fixture(dovecotStatus)), []StatusData{{Mailbox: "INBOX", Raw: "INBOX", Messages: 3, Recent: 3, UIDNext: 4,
			UIDValidity: 1795334735, Unseen: 2, HighestModSeq: 5, Size: 1649, Present: all}}},
		{"rfc 3501 example", frame("* STATUS blurdybloop (MESSAGES 231 UIDNEXT 44292)\r\n"),
			[]StatusData{{Mailbox: "blurdybloop", Raw: "blurdybloop", Messages: 231, UIDNext: 44292, Present: StatusMessages | StatusUIDNext}}},
		{"quoted, encoded name", frame("* STATUS \"&ZeVnLIqe- x\" (UNSEEN 0 DELETED 2)\r\n"),
			[]StatusData{{Mailbox: "日本語 x", Raw: "&ZeVnLIqe- x", Deleted: 2, Present: StatusUnseen | StatusDeleted}}},
		{"literal name, unknown items", frame("* STATUS {3}\r\na b (APPENDLIMIT NIL MAILBOXID (F2212ea87) MESSAGES 1)\r\n"),
			[]StatusData{{Mailbox: "a b", Raw: "a b", Messages: 1, Present: StatusMessages}}},
		{"empty list", frame("* STATUS x ()\r\n"), []StatusData{{Mailbox: "x", Raw: "x"}}},
		{"two", frame("* STATUS a (MESSAGES 1)\r\n* STATUS b (MESSAGES 2)\r\n"), []StatusData{
			{Mailbox: "a", Raw: "a", Messages: 1, Present: StatusMessages}, {Mailbox: "b", Raw: "b", Messages: 2, Present: StatusMessages}}},
	}
	for _, tt := range tests {
		got, err := ParseStatus(tt.data)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseStatus =\n %+v, %v\nwant %+v", tt.name, got, err, tt.want)
		}
	}
	d := StatusData{Present: StatusMessages | StatusUnseen}
	if !d.Has(StatusMessages) || !d.Has(StatusMessages|StatusUnseen) || d.Has(StatusRecent) {
		t.Errorf("Has wrong for %b", d.Present)
	}
}

func TestParseStatusErrors(t *testing.T) {
	tests := []struct {
		wire, want string
	}{
		{"* STATUS INBOX MESSAGES 1", `imap: parse STATUS: expected "("`},
		{"* STATUS INBOX (MESSAGES x)", `STATUS: MESSAGES: expected number, found 'x'`},
		{"* STATUS INBOX (MESSAGES 4294967296)", `out of range`},
		{"* STATUS INBOX (MESSAGES 1", `found end of data`},
		{"* STATUS INBOX (MESSAGES 1) x", `expected end of response`},
		{"* STATUS (MESSAGES 1)", `expected string`},
	}
	for _, tt := range tests {
		if got, err := ParseStatus(frame(tt.wire)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseStatus(%q) = %+v, %v; want %q", tt.wire, got, err, tt.want)
		}
	}
}
