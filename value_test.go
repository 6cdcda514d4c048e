package imap

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// frame splits server output into the datums the client caches, the way
// the engine does: it drops "* " and the response name ("* 12 FETCH (" gives
// "12 (", "* LIST (" gives "("), and a line ending in a literal marker gets
// the literal as its Literal. A literal cut short by the end of the input
// is truncated, so frame accepts any input (for fuzzing).
func frame(raw string) []Datum {
	return frameBytes([]byte(raw), true)
}

// frameBytes is frame on bytes. With copyText it copies each line, as a
// reader that reuses its buffer must; without, the datums alias raw.
func frameBytes(raw []byte, copyText bool) []Datum {
	var out []Datum
	continuation := false
	for len(raw) > 0 {
		line := raw
		if i := bytes.Index(raw, []byte("\r\n")); i >= 0 {
			line, raw = raw[:i], raw[i+2:]
		} else {
			raw = nil
		}
		if !continuation {
			line = stripUntagged(line)
		}
		if copyText {
			line = append([]byte(nil), line...)
		}
		d := Datum{Text: line}
		if n, ok := literalMarker(line); ok {
			n = min(n, len(raw))
			d.Literal = raw[:n:n]
			if copyText {
				d.Literal = append([]byte{}, d.Literal...)
			}
			raw = raw[n:]
		}
		out = append(out, d)
		continuation = d.Literal != nil
	}
	return out
}

// stripUntagged turns "* 12 FETCH (...)" into "12 (...)" and "* LIST ..."
// into "...", leaving other lines alone.
func stripUntagged(line []byte) []byte {
	if !bytes.HasPrefix(line, []byte("* ")) {
		return line
	}
	rest := line[2:]
	i := 0
	for i < len(rest) && isDigit(rest[i]) {
		i++
	}
	if i > 0 && i < len(rest) && rest[i] == ' ' {
		// "* N NAME rest" -> "N rest"
		j := bytes.IndexByte(rest[i+1:], ' ')
		if j < 0 {
			return rest[:i]
		}
		return append(rest[:i+1:i+1], rest[i+1+j+1:]...)
	}
	if j := bytes.IndexByte(rest, ' '); j >= 0 {
		return rest[j+1:]
	}
	return rest[len(rest):]
}

// literalMarker reports whether line ends in "{N}" or "~{N}".
func literalMarker(line []byte) (int, bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(line[i+1 : len(line)-1]))
	if err != nil || n < 0 || n > 1<<30 {
		return 0, false
	}
	return n, true
}

// fixture converts a test fixture to the bytes the server sent: a line
// feed stands for CRLF and <CR> for a lone CR.
func fixture(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\n", "\r\n"), "<CR>", "\r")
}

// lit returns s as a literal in wire form.
func lit(s string) string { return "{" + strconv.Itoa(len(s)) + "}\r\n" + s }

func TestFrameHelper(t *testing.T) {
	got := frame("* 1 FETCH (BODY[HEADER.FIELDS (DATE)] {5}\r\nDate:)\r\n* 2 FETCH (UID 7)\r\n* LIST () \".\" INBOX\r\n")
	want := []Datum{
		{Text: []byte("1 (BODY[HEADER.FIELDS (DATE)] {5}"), Literal: []byte("Date:")},
		{Text: []byte(")")},
		{Text: []byte("2 (UID 7)")},
		{Text: []byte(`() "." INBOX`)},
	}
	if len(got) != len(want) {
		t.Fatalf("frame = %q", got)
	}
	for i := range got {
		if !bytes.Equal(got[i].Text, want[i].Text) || !bytes.Equal(got[i].Literal, want[i].Literal) ||
			(got[i].Literal == nil) != (want[i].Literal == nil) {
			t.Errorf("datum %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestScannerTokens(t *testing.T) {
	tests := []struct {
		name string
		data []Datum
		run  func(s *scanner) (string, error)
		want string
	}{
		{"quoted", []Datum{{Text: []byte(`"a b" x`)}}, func(s *scanner) (string, error) { return s.nstr() }, "a b"},
		{"quoted escapes", []Datum{{Text: []byte(`"a\"b\\c"`)}}, func(s *scanner) (string, error) { return s.nstr() }, `a"b\c`},
		{"empty quoted", []Datum{{Text: []byte(`""`)}}, func(s *scanner) (string, error) { return s.nstr() }, ""},
		{"NIL", []Datum{{Text: []byte(`NIL`)}}, func(s *scanner) (string, error) { return s.nstr() }, ""},
		{"nil lower case", []Datum{{Text: []byte(`nil)`)}}, func(s *scanner) (string, error) { return s.nstr() }, ""},
		{"literal", []Datum{{Text: []byte(`{3}`), Literal: []byte("a\"b")}, {Text: []byte(`)`)}},
			func(s *scanner) (string, error) { return s.nstr() }, `a"b`},
		{"binary literal", []Datum{{Text: []byte(`~{2}`), Literal: []byte("\x00\x01")}, {Text: nil}},
			func(s *scanner) (string, error) { return s.nstr() }, "\x00\x01"},
		{"non-sync literal", []Datum{{Text: []byte(`{2+}`), Literal: []byte("ab")}, {Text: nil}},
			func(s *scanner) (string, error) { return s.nstr() }, "ab"},
		{"number", []Datum{{Text: []byte(`18446744073709551615 `)}}, func(s *scanner) (string, error) {
			n, err := s.number()
			return strconv.FormatUint(n, 10), err
		}, "18446744073709551615"},
		{"raw across literals", []Datum{{Text: []byte(`("a" {2}`), Literal: []byte("xy")}, {Text: []byte(` (b)) rest`)}},
			func(s *scanner) (string, error) {
				m := s.mark()
				err := s.skipValue()
				return string(s.rawSince(m)), err
			}, "(\"a\" {2}\r\nxy (b))"},
		{"raw in one datum", []Datum{{Text: []byte(`(a (b "c)")) rest`)}},
			func(s *scanner) (string, error) {
				m := s.mark()
				err := s.skipValue()
				return string(s.rawSince(m)), err
			}, `(a (b "c)"))`},
	}
	for _, tt := range tests {
		var s scanner
		s.reset(tt.data)
		got, err := tt.run(&s)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestQuoteStop(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 40} {
		for _, c := range []byte{'"', '\\'} {
			b := []byte(strings.Repeat("a", n) + string(c) + "xyz\"")
			if got := quoteStop(b, 0); got != n {
				t.Errorf("quoteStop(%q) = %d, want %d", b, got, n)
			}
		}
		// Bytes next to the special ones must not confuse the bit trick.
		b := []byte(strings.Repeat("\x21\x23\x5b\x5d\xa2\xdc", n))
		if got := quoteStop(b, 0); got != len(b) {
			t.Errorf("quoteStop(%q) = %d, want %d", b, got, len(b))
		}
	}
	if got := quoteStop([]byte(`ab"cdefghij"`), 3); got != 11 {
		t.Errorf("quoteStop from 3 = %d, want 11", got)
	}
}

func TestScannerNesting(t *testing.T) {
	for _, depth := range []int{maxNesting, maxNesting + 1, 100000} {
		text := strings.Repeat("(", depth) + strings.Repeat(")", depth)
		var s scanner
		s.reset([]Datum{{Text: []byte(text)}})
		err := s.skipValue()
		if depth <= maxNesting && err != nil {
			t.Errorf("depth %d: %v", depth, err)
		}
		if depth > maxNesting && (err == nil || !strings.Contains(err.Error(), "nested more than")) {
			t.Errorf("depth %d: err = %v, want nesting error", depth, err)
		}
	}
}

func TestStrArena(t *testing.T) {
	var a strArena
	var strs []string
	var want []string
	for i := range 5000 {
		s := strings.Repeat(string(rune('a'+i%26)), i%40)
		strs = append(strs, a.str([]byte(s)))
		want = append(want, s)
	}
	// A string longer than the first chunk but short enough for the arena.
	mid := strings.Repeat("m", arenaFirstChunk+1)
	strs = append(strs, a.str([]byte(mid)))
	want = append(want, mid)
	big := strings.Repeat("x", arenaMaxString+1)
	strs = append(strs, a.str([]byte(big)), a.lower([]byte("MiXeD")), a.unescape([]byte(`a\"b`)))
	want = append(want, big, "mixed", `a"b`)
	for i := range strs {
		if strs[i] != want[i] {
			t.Fatalf("string %d = %q, want %q", i, strs[i], want[i])
		}
	}
}

func TestSlab(t *testing.T) {
	var sl slab[int]
	a := sl.alloc(3)
	b := sl.alloc(2)
	a = append(a, 99) // must not clobber b
	b[0], b[1] = 1, 2
	if a[3] != 99 || b[0] != 1 || b[1] != 2 || len(sl.alloc(slabMaxSlice+1)) != slabMaxSlice+1 {
		t.Errorf("slab slices overlap: %v %v", a, b)
	}
}

func TestParseErrorFormat(t *testing.T) {
	_, err := ParseFetch(frame("* 12 FETCH (UID 40 ENVELOPE NIL)\r\n"))
	const want = `imap: parse FETCH 12: ENVELOPE: expected "(", found 'N' at offset 20`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Seq != 12 || pe.Item != "ENVELOPE" || pe.Offset != 20 {
		t.Errorf("ParseError = %+v", pe)
	}
}

// TestParseFetchMalformed checks that malformed or hostile data gives an
// error, never a panic or a silently wrong result.
func TestParseFetchMalformed(t *testing.T) {
	deep := strings.Repeat("(", 200) + strings.Repeat(")", 200)
	deepBody := strings.Repeat(`(`, 150) + `"text" "plain" NIL NIL NIL "7bit" 1 1` + strings.Repeat(` "mixed")`, 149) + ")"
	tests := []struct {
		name string
		data []Datum
		want string // substring of the error
	}{
		{"truncated", frame("* 1 FETCH (UID 5"), `expected data item name, found end of data`},
		{"truncated in list", frame(`* 1 FETCH (FLAGS (\Seen`), `expected flag, found end of data`},
		{"unbalanced", frame("* 1 FETCH (UID 5))"), `expected end of response, found ')'`},
		{"trailing junk", frame("* 1 FETCH (UID 5) x"), `expected end of response`},
		{"no sequence number", []Datum{{Text: []byte("(UID 5)")}}, `expected number, found '('`},
		{"sequence number 0", frame("* 0 FETCH (UID 5)"), `sequence number 0`},
		{"sequence number too large", frame("* 4294967296 FETCH (UID 5)"), `out of range`},
		{"no list", frame("* 1 FETCH UID 5"), `expected "("`},
		{"huge UID", frame("* 1 FETCH (UID 99999999999)"), `FETCH 1: UID: number 99999999999 out of range`},
		{"huge size", frame("* 1 FETCH (RFC822.SIZE 99999999999999999999999)"), `RFC822.SIZE: number too large`},
		{"negative UID", frame("* 1 FETCH (UID -5)"), `UID: expected number, found '-'`},
		{"UID without value", frame("* 1 FETCH (UID)"), `UID: expected number, found ')'`},
		{"number with junk", frame("* 1 FETCH (UID 5x)"), `unexpected 'x' after number`},
		{"deep list", frame("* 1 FETCH (X-FOO " + deep + ")"), `X-FOO: lists nested more than 100 deep`},
		{"deep body", frame("* 1 FETCH (BODYSTRUCTURE " + deepBody + ")"), `BODYSTRUCTURE: lists nested more than 100 deep`},
		{"envelope NIL", frame("* 1 FETCH (ENVELOPE NIL)"), `ENVELOPE: expected "("`},
		{"envelope short", frame(`* 1 FETCH (ENVELOPE ("date" "subj" NIL NIL NIL NIL NIL NIL NIL))`), `ENVELOPE: expected string or NIL, found ')'`},
		{"bad address", frame(`* 1 FETCH (ENVELOPE (NIL NIL ((NIL NIL "a")) NIL NIL NIL NIL NIL NIL NIL))`), `expected string or NIL, found ')'`},
		{"bad date", frame(`* 1 FETCH (INTERNALDATE "31-Foo-2020 00:00:00 +0000")`), `INTERNALDATE: bad date-time "31-Foo-2020 00:00:00 +0000": unknown month`},
		{"unquoted date", frame(`* 1 FETCH (INTERNALDATE 17-Jul-1996)`), `INTERNALDATE: expected quoted date-time`},
		{"unterminated quote", frame(`* 1 FETCH (BODY[] "abc)`), `BODY[]: unterminated quoted string`},
		{"flags not a list", frame(`* 1 FETCH (FLAGS \Seen)`), `FLAGS: expected "("`},
		{"quoted flag", frame(`* 1 FETCH (FLAGS ("x"))`), `FLAGS: expected flag, found '"'`},
		{"unterminated section", frame(`* 1 FETCH (BODY[HEADER "x")`), `unterminated section spec`},
		{"bad origin", frame(`* 1 FETCH (BODY[]<0 "x")`), `expected ">"`},
		{"origin without section", frame(`* 1 FETCH (BODY<0> "x")`), `partial origin without a section`},
		{"bad modseq", frame(`* 1 FETCH (MODSEQ (abc))`), `MODSEQ: expected number`},
		{"modseq not a list", frame(`* 1 FETCH (MODSEQ 5)`), `MODSEQ: expected "("`},
		{"literal not at end", []Datum{{Text: []byte(`1 (BODY[] {5} x`), Literal: []byte("abcde")}, {Text: []byte(")")}},
			`literal marker not at end of line`},
		{"literal size mismatch", []Datum{{Text: []byte(`1 (BODY[] {5}`), Literal: []byte("abc")}, {Text: []byte(")")}},
			`literal has 3 bytes, marker says 5`},
		{"literal without data", []Datum{{Text: []byte(`1 (BODY[] {5}`)}}, `literal marker without literal data`},
		{"huge literal marker", []Datum{{Text: []byte(`1 (BODY[] {99999999999999999999}`), Literal: []byte("x")}, {Text: []byte(")")}},
			`literal size too large`},
		{"data ends in literal", []Datum{{Text: []byte(`1 (BODY[] {1}`), Literal: []byte("x")}}, `data ends in a literal`},
		{"bad literal marker", frame("* 1 FETCH (BODY[] {x})"), `malformed literal marker`},
		{"body missing size", frame(`* 1 FETCH (BODY ("text" "plain" NIL NIL NIL "7bit"))`), `BODY: expected number`},
		{"body bad params", frame(`* 1 FETCH (BODY ("text" "plain" ("charset") NIL NIL "7bit" 5 1))`), `expected string or NIL, found ')'`},
		{"NUL byte", frame("* 1 FETCH (UID 5\x00)"), `found byte 0x00`},
		{"item name missing", frame(`* 1 FETCH ("x")`), `expected data item name`},
	}
	for _, tt := range tests {
		msgs, err := ParseFetch(tt.data)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tt.name, err, tt.want)
		}
		if len(msgs) != 0 {
			t.Errorf("%s: got %d messages", tt.name, len(msgs))
		}
		var pe *ParseError
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("%s: error %T is not a *ParseError", tt.name, err)
		}
	}
}

// FuzzParse checks that no parser panics on any input, framed as the
// engine frames server output.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"* 1 FETCH (UID 5 FLAGS (\\Seen) RFC822.SIZE 44)\r\n",
		"* 2 FETCH (ENVELOPE (\"d\" {3}\r\nabc ((\"n\" NIL \"m\" \"h\")) NIL NIL NIL NIL NIL NIL \"<i>\") BODY[]<0> ~{2}\r\nxy)\r\n",
		"* 3 FETCH (BODYSTRUCTURE ((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 10 1 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"b\") NIL NIL NIL))\r\n",
		"* 4 FETCH (BODY (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 5 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1) 2))\r\n",
		"* LIST (\\HasNoChildren) \".\" {5}\r\nINBOX\r\n",
		"* STATUS INBOX (MESSAGES 3 UIDNEXT 4)\r\n",
		"* ESEARCH (TAG \"a\") UID ALL 1:3,5\r\n",
		"* SEARCH 1 2 3 (MODSEQ 4)\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, wire string) {
		data := frame(wire)
		msgs, _ := ParseFetch(data)
		for _, m := range msgs {
			if m == nil {
				t.Fatal("nil message")
			}
			if m.BodyStructure != nil {
				m.BodyStructure.Walk(func(string, *BodyStructure) bool { return true })
			}
		}
		ParseList(data)
		ParseStatus(data)
		ParseSearch(data)
		ParseESearch(data)
		ParseMailboxData(func(string) []Datum { return data })
		if len(data) > 0 {
			ParseFetchResponse(Response{Type: "FETCH", Data: data})
		}
		ParseSequenceSet(wire)
	})
}
