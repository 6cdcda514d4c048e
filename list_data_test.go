package imap

import (
	"reflect"
	"strings"
	"testing"
)

// dovecotList answers LIST "" "*" on a Dovecot 2.3 server with mailboxes
// created as "&ZeVnLIqe-" (日本語), "Quote\"d" and "R&-D/Sub".
const dovecotList = `* LIST (\Noselect \HasChildren) "/" R&-D
* LIST (\HasNoChildren) "/" R&-D/Sub
* LIST (\HasNoChildren) "/" "Quote\"d"
* LIST (\HasNoChildren) "/" &ZeVnLIqe-
* LIST (\HasNoChildren) "/" INBOX
`

func TestParseList(t *testing.T) {
	tests := []struct {
		name string
		data []Datum
		want []ListEntry
	}{
		{"dovecot", frame(fixture(dovecotList)), []ListEntry{
			{Attrs: []string{`\Noselect`, `\HasChildren`}, Delim: "/", Name: "R&D", Raw: "R&-D"},
			{Attrs: []string{`\HasNoChildren`}, Delim: "/", Name: "R&D/Sub", Raw: "R&-D/Sub"},
			{Attrs: []string{`\HasNoChildren`}, Delim: "/", Name: `Quote"d`, Raw: `Quote"d`},
			{Attrs: []string{`\HasNoChildren`}, Delim: "/", Name: "日本語", Raw: "&ZeVnLIqe-"},
			{Attrs: []string{`\HasNoChildren`}, Delim: "/", Name: "INBOX", Raw: "INBOX"},
		}},
		// CPython's test_lsub.
		{"lsub", frame("* LSUB () \".\" directoryA\r\n"), []ListEntry{{Delim: ".", Name: "directoryA", Raw: "directoryA"}}},
		{"rfc 3501 examples", frame("* LIST (\\Noselect) \"/\" \"\"\r\n* LIST (\\Noselect) \".\" #news.\r\n* LIST () NIL Flat\r\n"), []ListEntry{
			{Attrs: []string{`\Noselect`}, Delim: "/"},
			{Attrs: []string{`\Noselect`}, Delim: ".", Name: "#news.", Raw: "#news."},
			{Name: "Flat", Raw: "Flat"},
		}},
		{"literal name", frame("* LIST (\\HasNoChildren) \"/\" {11}\r\nSome\"Thing)\r\n"),
			[]ListEntry{{Attrs: []string{`\HasNoChildren`}, Delim: "/", Name: "Some\"Thing)", Raw: "Some\"Thing)"}}},
		// A "~" starts an atom unless "{" follows (literal8).
		{"tilde names", frame("* LIST () \"/\" ~work\r\n* LIST () \"/\" ~\r\n* LIST () \".\" INBOX.~old\r\n"), []ListEntry{
			{Delim: "/", Name: "~work", Raw: "~work"},
			{Delim: "/", Name: "~", Raw: "~"},
			{Delim: ".", Name: "INBOX.~old", Raw: "INBOX.~old"},
		}},
		{"escaped backslash delimiter", frame(`* LIST () "\\" a\b` + "\r\n"),
			[]ListEntry{{Delim: `\`, Name: `a\b`, Raw: `a\b`}}},
		{"special use and extended data", frame(`* LIST (\Sent \HasNoChildren \Subscribed) "." "Sent Items" ("CHILDINFO" ("SUBSCRIBED") "OLDNAME" ("Sent"))` + "\r\n"),
			[]ListEntry{{Attrs: []string{`\Sent`, `\HasNoChildren`, `\Subscribed`}, Delim: ".", Name: "Sent Items", Raw: "Sent Items", OldName: "Sent"}}},
		// NOTIFY's MailboxName event for a rename (Dovecot 2.3), and one
		// with a literal and modified UTF-7 for the old name.
		{"rename by notify", frame(`* LIST () "/" Ren2 ("OLDNAME" (Ren))` + "\r\n"),
			[]ListEntry{{Delim: "/", Name: "Ren2", Raw: "Ren2", OldName: "Ren"}}},
		{"old name literal", frame("* LIST () \"/\" New (oldname ({10}\r\n&ZeVnLIqe-))\r\n"),
			[]ListEntry{{Delim: "/", Name: "New", Raw: "New", OldName: "日本語"}}},
		{"other extended data only", frame(`* LIST () "/" Box ("CHILDINFO" ("SUBSCRIBED"))` + "\r\n"),
			[]ListEntry{{Delim: "/", Name: "Box", Raw: "Box"}}},
		{"invalid modified UTF-7 kept", frame(`* LIST () "/" "A&B"` + "\r\n"), []ListEntry{{Delim: "/", Name: "A&B", Raw: "A&B"}}},
		{"UTF-8 name kept", frame(`* LIST () "/" "Entwürfe"` + "\r\n"), []ListEntry{{Delim: "/", Name: "Entwürfe", Raw: "Entwürfe"}}},
		{"brackets in name", frame(`* LIST (\HasNoChildren) "/" [Gmail]/Sent` + "\r\n"),
			[]ListEntry{{Attrs: []string{`\HasNoChildren`}, Delim: "/", Name: "[Gmail]/Sent", Raw: "[Gmail]/Sent"}}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		got, err := ParseList(tt.data)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseList =\n %+v, %v\nwant %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestParseListUTF8(t *testing.T) {
	got, err := ParseListUTF8(frame("* LIST () \"/\" &ZeVnLIqe-\r\n* LIST () \"/\" 日本語\r\n"))
	want := []ListEntry{{Delim: "/", Name: "&ZeVnLIqe-", Raw: "&ZeVnLIqe-"}, {Delim: "/", Name: "日本語", Raw: "日本語"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseListUTF8 = %+v, %v", got, err)
	}
}

func TestParseListErrors(t *testing.T) {
	tests := []struct {
		wire, want string
	}{
		{`* LIST \HasNoChildren "/" INBOX`, `imap: parse LIST: expected "("`},
		{`* LIST () / INBOX`, `expected quoted delimiter or NIL`},
		{`* LIST () "/"`, `expected string, found end of data`},
		{`* LIST () "/" "INBOX`, `unterminated quoted string`},
		{`* LIST (\A "b") "/" x`, `expected name attribute`},
		{`* LIST () "/" x (`, `found end of data`},
	}
	for _, tt := range tests {
		if got, err := ParseList(frame(tt.wire)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseList(%q) = %v, %v; want %q", tt.wire, got, err, tt.want)
		}
	}
	// One bad entry does not hide the others.
	got, err := ParseList(frame("* LIST () \"/\" a\r\n* LIST x\r\n* LIST () \"/\" b\r\n"))
	if err == nil || len(got) != 2 || got[1].Name != "b" {
		t.Errorf("ParseList with a bad entry = %+v, %v", got, err)
	}
}

func TestListEntryHasAttr(t *testing.T) {
	e := ListEntry{Attrs: []string{`\Noselect`, `\HasChildren`}}
	if !e.HasAttr(`\NoSelect`) || e.HasAttr(`\Marked`) {
		t.Errorf("HasAttr wrong for %q", e.Attrs)
	}
}
