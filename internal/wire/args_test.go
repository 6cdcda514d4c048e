package wire

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/imapkit/imap/internal/imaptest"
)

func TestCheckArg(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := "ab" + string([]byte{byte(c)}) + "cd"
		err := CheckArg(s)
		bad := c < 0x20 || c == 0x7f
		if bad != (err != nil) {
			t.Errorf("byte 0x%02x: %v", c, err)
		}
		if bad && !errors.Is(err, ErrControlChar) {
			t.Errorf("byte 0x%02x: %v is not ErrControlChar", c, err)
		}
		if bad && !strings.Contains(err.Error(), "offset 2") {
			t.Errorf("byte 0x%02x: %q does not give the offset", c, err)
		}
	}
	for _, s := range []string{"", "INBOX", "ü台北", `"quoted" \ x`} {
		if err := CheckArg(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestAstringForm(t *testing.T) {
	long := strings.Repeat("a", maxQuoted)
	for _, tc := range []struct {
		s         string
		ascii     Form // AstringForm(s, false)
		utf8      Form // AstringForm(s, true)
		listASCII Form // ListMailboxForm(s, false)
	}{
		{"INBOX", FormAtom, FormAtom, FormAtom},
		{"Entw&APw-rfe", FormAtom, FormAtom, FormAtom},
		{"a.b-c_d/e~f", FormAtom, FormAtom, FormAtom},
		{"", FormQuoted, FormQuoted, FormQuoted},
		{"my box", FormQuoted, FormQuoted, FormQuoted},
		{"NIL", FormQuoted, FormQuoted, FormQuoted},
		{"nil", FormQuoted, FormQuoted, FormQuoted},
		{"Nil2", FormAtom, FormAtom, FormAtom},
		{`a"b`, FormQuoted, FormQuoted, FormQuoted},
		{`a\b`, FormQuoted, FormQuoted, FormQuoted},
		{"a(b", FormQuoted, FormQuoted, FormQuoted},
		{"a)b", FormQuoted, FormQuoted, FormQuoted},
		{"{5}", FormQuoted, FormQuoted, FormQuoted},
		{"a%b", FormQuoted, FormQuoted, FormAtom},
		{"a*", FormQuoted, FormQuoted, FormAtom},
		{"a]b", FormQuoted, FormQuoted, FormAtom},
		{"Entwürfe", FormLiteral, FormQuoted, FormLiteral},
		{long, FormAtom, FormAtom, FormAtom},
		{long + "a", FormLiteral, FormLiteral, FormLiteral},
		{long[:maxQuoted-1] + " ", FormQuoted, FormQuoted, FormQuoted},
	} {
		name := tc.s
		if len(name) > 20 {
			name = name[:20] + "…"
		}
		if got := AstringForm(tc.s, false); got != tc.ascii {
			t.Errorf("AstringForm(%q, false) = %v, want %v", name, got, tc.ascii)
		}
		if got := AstringForm(tc.s, true); got != tc.utf8 {
			t.Errorf("AstringForm(%q, true) = %v, want %v", name, got, tc.utf8)
		}
		if got := ListMailboxForm(tc.s, false); got != tc.listASCII {
			t.Errorf("ListMailboxForm(%q, false) = %v, want %v", name, got, tc.listASCII)
		}
	}
}

// Every atom really is an atom: no byte that would need quoting.
func TestAtomFormIsSafe(t *testing.T) {
	for c := 0; c < 256; c++ {
		s := "a" + string([]byte{byte(c)})
		if CheckArg(s) != nil {
			continue
		}
		if AstringForm(s, false) == FormAtom && strings.ContainsAny(s, " (){%*\"\\]") {
			t.Errorf("byte 0x%02x sent as an atom", c)
		}
		if AstringForm(s, false) == FormAtom && c >= 0x80 {
			t.Errorf("byte 0x%02x sent as an atom in ASCII mode", c)
		}
	}
}

// AppendQuoted round-trips through an IMAP parser (the fake server's).
func TestAppendQuotedRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `a"b`, `a\b`, `\"`, `"`, `\`, `\\""\\`, "trailing\\", "ü 台北", "(x) {5} * % ]"} {
		q := string(AppendQuoted(nil, s))
		if q[0] != '"' || q[len(q)-1] != '"' {
			t.Fatalf("%q: not quoted: %s", s, q)
		}
		if got := imaptest.FirstArg(q + " rest"); got != s {
			t.Errorf("%q quoted as %s unquotes to %q", s, q, got)
		}
	}
	if got := string(AppendQuoted([]byte("X "), "a")); got != `X "a"` {
		t.Fatalf("appends to dst: %q", got)
	}
}

func FuzzAppendQuoted(f *testing.F) {
	for _, s := range []string{"", `a"b\c`, "ü", `\\\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckArg(s) != nil || !utf8.ValidString(s) {
			return
		}
		q := string(AppendQuoted(nil, s))
		if got := imaptest.FirstArg(q); got != s {
			t.Fatalf("%q -> %s -> %q", s, q, got)
		}
		// Inside the quotes, every " and \ is escaped.
		inner := q[1 : len(q)-1]
		for i := 0; i < len(inner); i++ {
			switch inner[i] {
			case '\\':
				i++
			case '"':
				t.Fatalf("%q: unescaped quote in %s", s, q)
			}
		}
	})
}
