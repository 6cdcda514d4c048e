package imap

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFetchDovecot(t *testing.T) {
	msgs, err := ParseFetch(frame(fixture(dovecotFetch)))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	joerg := Address{Name: "Jörg Müller", Mailbox: "joerg", Host: "example.de"}
	bob := Address{Name: "Bob", Mailbox: "bob", Host: "example.org"}
	carol := Address{Name: "Carol", Mailbox: "carol", Host: "example.com"}
	nobody := Address{Mailbox: "nobody", Host: "MISSING_DOMAIN"}
	textPlain := func(charset, enc string, size, lines int64) *BodyStructure {
		return &BodyStructure{Type: "text", Subtype: "plain", Params: []Param{{"charset", charset}},
			Encoding: enc, Size: size, Lines: lines, Extended: true}
	}
	textHTML := func(enc string, size int64) *BodyStructure {
		return &BodyStructure{Type: "text", Subtype: "html", Params: []Param{{"charset", "us-ascii"}},
			Encoding: enc, Size: size, Extended: true}
	}
	want := []*Message{{
		Seq:          1,
		UID:          1,
		Flags:        []string{`\Flagged`, `\Recent`, "$Forwarded"},
		InternalDate: time.Date(2026, 11, 22, 8, 5, 31, 0, time.UTC),
		Size:         351,
		Envelope: &Envelope{
			Date:      "Tue, 21 Nov 2023 10:15:30 +0100",
			Subject:   "Grüße aus München 🍺",
			From:      []Address{joerg},
			Sender:    []Address{joerg},
			ReplyTo:   []Address{joerg},
			To:        []Address{{Name: "Alice", Mailbox: "alice", Host: "example.com"}, {Mailbox: "bob", Host: "example.org"}},
			Cc:        []Address{{Mailbox: "undisclosed-recipients"}, {}},
			MessageID: "<m1@example.de>",
		},
		BodyStructure: textPlain("utf-8", "8bit", 32, 2),
	}, {
		Seq:          2,
		UID:          2,
		Flags:        []string{`\Recent`},
		InternalDate: time.Date(2026, 11, 22, 8, 5, 32, 0, time.UTC),
		Size:         1269,
		Envelope: &Envelope{
			Date:    "Wed, 22 Nov 2023 08:00:00 +0000",
			Subject: `Report "Q4" \ draft`,
			From:    []Address{bob},
			Sender:  []Address{bob},
			ReplyTo: []Address{bob},
			To: []Address{{Mailbox: "Team"}, {Mailbox: "alice", Host: "example.com"},
				{Mailbox: "carol", Host: "example.com"}, {}},
			InReplyTo: "<m1@example.de>",
			MessageID: "<m2@example.org>",
		},
		BodyStructure: &BodyStructure{
			Type: "multipart", Subtype: "mixed", Params: []Param{{"boundary", "outer"}}, Extended: true,
			Parts: []*BodyStructure{{
				Type: "multipart", Subtype: "alternative", Params: []Param{{"boundary", "inner"}}, Extended: true,
				Parts: []*BodyStructure{textPlain("us-ascii", "7bit", 10, 0), textHTML("quoted-printable", 16)},
			}, {
				Type: "application", Subtype: "pdf", Params: []Param{{"name", "report.pdf"}},
				ID: "<att1@example.org>", Description: "The report", Encoding: "base64", Size: 76,
				Extended: true, Disposition: "attachment", DispositionParams: []Param{{"filename", "report.pdf"}},
				Language: []string{"en", "de"}, Location: "http://example.org/report.pdf",
			}, {
				Type: "message", Subtype: "rfc822", Encoding: "7bit", Size: 309, Lines: 17, Extended: true,
				Envelope: &Envelope{
					Date: "Mon, 20 Nov 2023 09:00:00 +0000", Subject: "Original",
					From: []Address{carol}, Sender: []Address{carol}, ReplyTo: []Address{carol},
					To:        []Address{{Mailbox: "bob", Host: "example.org"}},
					MessageID: "<m0@example.com>",
				},
				Body: &BodyStructure{
					Type: "multipart", Subtype: "alternative", Params: []Param{{"boundary", "b3"}}, Extended: true,
					Parts: []*BodyStructure{textPlain("us-ascii", "7bit", 4, 0), textHTML("7bit", 11)},
				},
			}},
		},
	}, {
		Seq:          3,
		UID:          3,
		Flags:        []string{`\Recent`},
		InternalDate: time.Date(2026, 11, 22, 8, 5, 33, 0, time.UTC),
		Size:         29,
		Envelope: &Envelope{
			From: []Address{nobody}, Sender: []Address{nobody}, ReplyTo: []Address{nobody},
		},
		BodyStructure: textPlain("us-ascii", "7bit", 3, 1),
	}}
	for i := range want {
		if !reflect.DeepEqual(msgs[i], want[i]) {
			t.Errorf("message %d:\n got %s\nwant %s", i+1, dump(msgs[i]), dump(want[i]))
		}
	}
	if got := msgs[1].BodyStructure.Parts[1].Filename(); got != "report.pdf" {
		t.Errorf("Filename = %q", got)
	}
	if !msgs[0].HasFlag(`\flagged`) || msgs[0].HasFlag(`\Seen`) {
		t.Errorf("HasFlag wrong for %q", msgs[0].Flags)
	}
	if got := msgs[0].Envelope.From[0].Addr(); got != "joerg@example.de" {
		t.Errorf("Addr = %q", got)
	}
}

// dump formats a value with its pointers followed, for failure messages.
func dump(v any) string {
	var b strings.Builder
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				b.WriteString("nil")
				return
			}
			b.WriteString("&")
			walk(v.Elem())
		case reflect.Struct:
			if t, ok := v.Interface().(time.Time); ok {
				b.WriteString(t.String())
				return
			}
			b.WriteString("{")
			for i := range v.NumField() {
				if v.Field(i).IsZero() {
					continue
				}
				fmt.Fprintf(&b, "%s:", v.Type().Field(i).Name)
				walk(v.Field(i))
				b.WriteString(" ")
			}
			b.WriteString("}")
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Uint8 {
				fmt.Fprintf(&b, "%q", v.Bytes())
				return
			}
			b.WriteString("[")
			for i := range v.Len() {
				walk(v.Index(i))
				b.WriteString(" ")
			}
			b.WriteString("]")
		default:
			fmt.Fprintf(&b, "%#v", v.Interface())
		}
	}
	walk(reflect.ValueOf(v))
	return b.String()
}

func TestParseFetchBodyNonExtensible(t *testing.T) {
	msgs, err := ParseFetch(frame(fixture(dovecotFetchBody)))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ParseFetch = %d messages, %v", len(msgs), err)
	}
	b := msgs[0].BodyStructure
	var got []string
	b.Walk(func(part string, b *BodyStructure) bool {
		if b.Extended {
			t.Errorf("part %q has extension data", part)
		}
		got = append(got, fmt.Sprintf("%s=%s/%d", part, b.MediaType(), b.Size))
		return true
	})
	want := []string{"=multipart/mixed/0", "1=multipart/alternative/0", "1.1=text/plain/10", "1.2=text/html/16",
		"2=application/pdf/76", "3=message/rfc822/309", "3=multipart/alternative/0", "3.1=text/plain/4", "3.2=text/html/11"}
	if !slices.Equal(got, want) {
		t.Errorf("Walk = %q\nwant %q", got, want)
	}
	if b.Parts[2].Envelope.Subject != "Original" || b.Parts[2].Lines != 17 {
		t.Errorf("message/rfc822 part = %s", dump(b.Parts[2]))
	}
}

func TestParseFetchSections(t *testing.T) {
	msgs, err := ParseFetch(frame(fixture(dovecotFetchSections)))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("ParseFetch = %d messages, %v", len(msgs), err)
	}
	m := msgs[0]
	header := "Date: Tue, 21 Nov 2023 10:15:30 +0100\r\nFrom: \"Jörg Müller\" <joerg@example.de>\r\n\r\n"
	wantSections := []Section{
		{Name: "BODY[HEADER.FIELDS (DATE FROM)]", Origin: -1, Data: []byte(header)},
		{Name: "BODY[]", Origin: 0, Data: []byte("Date: Tue,")},
		{Name: "BINARY[1]", Origin: -1, Data: []byte("Hallo Alice,\r\nschöne Grüße.\r\n")},
	}
	if len(m.Sections) != 4 || !reflect.DeepEqual(m.Sections[:3], wantSections) {
		t.Errorf("Sections = %s", dump(m.Sections))
	}
	if s := m.Sections[3]; s.Name != "RFC822.HEADER" || len(s.Data) != 319 || !bytes.HasPrefix(s.Data, []byte("Date: ")) {
		t.Errorf("RFC822.HEADER section = %s", dump(s))
	}
	wantExtra := []RawItem{
		{Name: "SAVEDATE", Value: []byte(`"22-Nov-2026 08:05:35 +0000"`)},
		{Name: "PREVIEW", Value: []byte("{29}\r\nHallo Alice, schöne Grüße.")},
		{Name: "BINARY.SIZE[1]", Value: []byte("32")},
	}
	if !reflect.DeepEqual(m.Extra, wantExtra) {
		t.Errorf("Extra = %s\nwant %s", dump(m.Extra), dump(wantExtra))
	}
	if m.ModSeq != 4 || m.Seq != 1 {
		t.Errorf("ModSeq, Seq = %d, %d", m.ModSeq, m.Seq)
	}
	for _, name := range []string{"BODY.PEEK[HEADER.FIELDS (DATE FROM)]", "body[]<0.10>", "BINARY.PEEK[1]", "RFC822.HEADER"} {
		if _, ok := m.FindSection(name); !ok {
			t.Errorf("FindSection(%q) found nothing", name)
		}
	}
	if _, ok := m.FindSection("BODY[TEXT]"); ok {
		t.Error("FindSection(BODY[TEXT]) found a section")
	}
}

func TestParseFetchParts(t *testing.T) {
	msgs, err := ParseFetch(frame(fixture(dovecotFetchParts)))
	if err != nil || len(msgs) != 2 {
		t.Fatalf("ParseFetch = %d messages, %v", len(msgs), err)
	}
	// Fetching BODY[...] set \Seen, which Dovecot reports with CONDSTORE.
	if m := msgs[1]; m.Seq != 2 || m.ModSeq != 5 {
		t.Errorf("second response = %s", dump(m))
	}
	m := msgs[0]
	want := []struct {
		name   string
		origin int64
		data   string
	}{
		{"BODY[2]", -1, "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl"},
		{"BODY[3.1]", -1, "orig"},
		{"BINARY[1.2]", -1, "<p>HTML body</p>"}, // sent as ~{16}
		{"BODY[TEXT]", 5, "er\r"},
		{"RFC822.TEXT", -1, ""},
	}
	if len(m.Sections) != len(want) {
		t.Fatalf("Sections = %s", dump(m.Sections))
	}
	for i, w := range want {
		s := m.Sections[i]
		if s.Name != w.name || s.Origin != w.origin || (w.data != "" && string(s.Data) != w.data) {
			t.Errorf("section %d = %s, want %+v", i, dump(s), w)
		}
	}
	if d := m.Sections[4].Data; len(d) != 992 || !bytes.HasSuffix(d, []byte("--outer--\r\n")) {
		t.Errorf("RFC822.TEXT = %d bytes", len(d))
	}
	if !slices.Equal(m.Flags, []string{`\Seen`, `\Recent`}) {
		t.Errorf("Flags = %q", m.Flags)
	}
}

func TestParseFetchChangedSince(t *testing.T) {
	msgs, err := ParseFetch(frame(fixture(dovecotFetchChanged)))
	if err != nil || len(msgs) != 3 {
		t.Fatalf("ParseFetch = %d messages, %v", len(msgs), err)
	}
	if m := msgs[1]; m.Seq != 2 || m.UID != 2 || m.ModSeq != 5 || !slices.Equal(m.Flags, []string{`\Seen`, `\Recent`}) {
		t.Errorf("message 2 = %s", dump(m))
	}
}

func TestParseFetchTable(t *testing.T) {
	tests := []struct {
		name string
		data []Datum
		want []*Message
	}{
		{"empty", nil, nil},
		{"placeholder", []Datum{{}}, []*Message{}},
		{"uid and flags", frame(`* 12 FETCH (UID 40 FLAGS (\Seen))`),
			[]*Message{{Seq: 12, UID: 40, Flags: []string{`\Seen`}}}},
		{"lower-case names, empty flags", frame(`* 1 FETCH (uid 7 flags ())`),
			[]*Message{{Seq: 1, UID: 7, Flags: []string{}}}},
		{"without star", []Datum{{Text: []byte(`3 FETCH (UID 4)`)}}, []*Message{{Seq: 3, UID: 4}}},
		{"extra spaces", []Datum{{Text: []byte(`3  (  UID  4   RFC822.SIZE 9 )  `)}}, []*Message{{Seq: 3, UID: 4, Size: 9}}},
		{"bracket flag", frame(`* 1 FETCH (FLAGS (\Seen [test] $Junk))`),
			[]*Message{{Seq: 1, Flags: []string{`\Seen`, "[test]", "$Junk"}}}},
		{"modseq", frame(`* 1 FETCH (MODSEQ (12345))`), []*Message{{Seq: 1, ModSeq: 12345}}},
		{"max modseq", frame(`* 1 FETCH (MODSEQ (9223372036854775807))`), []*Message{{Seq: 1, ModSeq: 1<<63 - 1}}},
		{"internaldate", frame(`* 1 FETCH (INTERNALDATE " 7-Jul-1996 02:44:25 -0700")`),
			[]*Message{{Seq: 1, InternalDate: time.Date(1996, 7, 7, 2, 44, 25, 0, time.FixedZone("", -7*3600))}}},
		{"sections", frame(`* 1 FETCH (BODY[TEXT] NIL BODY[] "" BODY[1] "a\"b\\c" BODY[HEADER.FIELDS ("X-A" X-B)] "h" RFC822 NIL)`),
			[]*Message{{Seq: 1, Sections: []Section{
				{Name: "BODY[TEXT]", Origin: -1},
				{Name: "BODY[]", Origin: -1, Data: []byte{}},
				{Name: "BODY[1]", Origin: -1, Data: []byte(`a"b\c`)},
				{Name: `BODY[HEADER.FIELDS ("X-A" X-B)]`, Origin: -1, Data: []byte("h")},
				{Name: "RFC822", Origin: -1},
			}}}},
		{"gmail items", frame(`* 1 FETCH (X-GM-LABELS ("\\Inbox" "\\Important" work) UID 5 X-GM-MSGID 1278455344230334865 X-GM-THRID 1278455344230334865)`),
			[]*Message{{Seq: 1, UID: 5, GMMsgID: 1278455344230334865, GMThrID: 1278455344230334865,
				GMLabels: []string{`\Inbox`, `\Important`, "work"}}}},
		{"rfc 8474 ids", frame(`* 1 FETCH (EMAILID (M6d99ac3275bb4e) THREADID NIL)`),
			[]*Message{{Seq: 1, Extra: []RawItem{{Name: "EMAILID", Value: []byte("(M6d99ac3275bb4e)")}, {Name: "THREADID", Value: []byte("NIL")}}}}},
		{"literal header then trailer", frame("* 1 FETCH (BODY[HEADER.FIELDS (DATE FROM)] {4}\r\nx\r\ny UID 5)\r\n"),
			[]*Message{{Seq: 1, UID: 5, Sections: []Section{{Name: "BODY[HEADER.FIELDS (DATE FROM)]", Origin: -1, Data: []byte("x\r\ny")}}}}},
		{"partial", frame("* 1 FETCH (BODY[]<0> {3}\r\nabc BODY[1]<1024> NIL)\r\n"),
			[]*Message{{Seq: 1, Sections: []Section{{Name: "BODY[]", Origin: 0, Data: []byte("abc")}, {Name: "BODY[1]", Origin: 1024}}}}},
		{"empty literal", frame("* 1 FETCH (BODY[] {0}\r\n)\r\n"),
			[]*Message{{Seq: 1, Sections: []Section{{Name: "BODY[]", Origin: -1, Data: []byte{}}}}}},
		{"several", frame("* 1 FETCH (UID 1)\r\n* 2 FETCH (BODY[] {1}\r\nx)\r\n* 3 FETCH (UID 3)\r\n"),
			[]*Message{{Seq: 1, UID: 1}, {Seq: 2, Sections: []Section{{Name: "BODY[]", Origin: -1, Data: []byte("x")}}}, {Seq: 3, UID: 3}}},
	}
	for _, tt := range tests {
		got, err := ParseFetch(tt.data)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: got %d messages, want %d", tt.name, len(got), len(tt.want))
			continue
		}
		for i := range got {
			g, w := *got[i], *tt.want[i]
			if !g.InternalDate.Equal(w.InternalDate) {
				t.Errorf("%s: InternalDate = %v, want %v", tt.name, g.InternalDate, w.InternalDate)
			}
			g.InternalDate, w.InternalDate = time.Time{}, time.Time{}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s: message %d\n got %s\nwant %s", tt.name, i, dump(&g), dump(&w))
			}
		}
	}
}

func TestParseFetchPartialFailure(t *testing.T) {
	data := frame("* 1 FETCH (UID 1)\r\n* 2 FETCH (UID x)\r\n* 3 FETCH (BODY[] {2}\r\nab)\r\n* 4 FETCH (ENVELOPE)\r\n")
	msgs, err := ParseFetch(data)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Seq != 2 || pe.Item != "UID" {
		t.Errorf("err = %v, want the failure of message 2", err)
	}
	if len(msgs) != 2 || msgs[0].Seq != 1 || msgs[1].Seq != 3 || string(msgs[1].Sections[0].Data) != "ab" {
		t.Errorf("got %s", dump(msgs))
	}
}

func TestParseFetchResponse(t *testing.T) {
	// The shape of CPython's test_idle_iter.
	r := Response{Type: "FETCH", Data: []Datum{
		{Text: []byte("1 (BODY[HEADER.FIELDS (DATE)] {41}"), Literal: []byte("Date: Fri, 06 Dec 2024 06:00:00 +0000\r\n\r\n")},
		{Text: []byte(")")},
	}}
	m, err := ParseFetchResponse(r)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := m.FindSection("BODY.PEEK[HEADER.FIELDS (DATE)]")
	if m.Seq != 1 || !ok || string(s.Data) != "Date: Fri, 06 Dec 2024 06:00:00 +0000\r\n\r\n" {
		t.Errorf("got %s", dump(m))
	}

	errTests := []struct {
		r    Response
		want string
	}{
		{Response{Type: "EXISTS", Data: []Datum{{Text: []byte("1")}}}, `response type is "EXISTS"`},
		{Response{Type: "FETCH"}, "no data"},
		{Response{Type: "FETCH", Data: frame("* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\n")}, "more than one response"},
		{Response{Type: "FETCH", Data: r.Data[:1]}, "data ends in a literal"},
		{Response{Type: "FETCH", Data: frame("* 1 FETCH (UID 1")}, "expected data item name"},
	}
	for _, tt := range errTests {
		if _, err := ParseFetchResponse(tt.r); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseFetchResponse(%v) error = %v, want %q", tt.r, err, tt.want)
		}
	}
}

// TestParseFetchAliasing documents that section data shares memory with
// the input literals instead of being copied.
func TestParseFetchAliasing(t *testing.T) {
	data := frame("* 1 FETCH (BODY[] {5}\r\nhello)\r\n")
	m, err := ParseFetchResponse(Response{Type: "FETCH", Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if &m.Sections[0].Data[0] != &data[0].Literal[0] {
		t.Error("section data was copied")
	}
}

// genFetch generates n FETCH responses for (UID FLAGS INTERNALDATE
// RFC822.SIZE ENVELOPE BODYSTRUCTURE) shaped like Dovecot's: a mix of plain
// text, multipart/alternative and messages with attachments, with every
// fifth subject and sender name non-ASCII and therefore sent as literals.
func genFetch(n int) []byte {
	var b bytes.Buffer
	flags := []string{`\Seen`, `\Seen \Answered`, ``, `\Seen \Flagged $Forwarded`, `\Seen`}
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `* %d FETCH (UID %d FLAGS (%s) INTERNALDATE "%02d-Nov-2023 %02d:%02d:%02d +0100" RFC822.SIZE %d ENVELOPE ("Tue, %d Nov 2023 10:15:30 +0100" `,
			i, i+1000, flags[i%len(flags)], i%28+1, i%24, i%60, (i*7)%60, 2000+i*37%50000, i%28+1)
		if i%5 == 0 {
			subject := fmt.Sprintf("Grüße aus München, Nachricht %d", i)
			name := "Jörg Müller"
			fmt.Fprintf(&b, "{%d}\r\n%s (({%d}\r\n%s NIL \"joerg\" \"example.de\")) (({%d}\r\n%s NIL \"joerg\" \"example.de\")) (({%d}\r\n%s NIL \"joerg\" \"example.de\")) ",
				len(subject), subject, len(name), name, len(name), name, len(name), name)
		} else {
			from := fmt.Sprintf(`(("Sender Number %d" NIL "sender%d" "example.com"))`, i%97, i%97)
			fmt.Fprintf(&b, `"Re: Quarterly report %d" %s %s %s `, i, from, from, from)
		}
		fmt.Fprintf(&b, `(("Alice Example" NIL "alice" "example.org")(NIL NIL "team" "lists.example.org")) NIL NIL "<prev%d@example.com>" "<msg%d@example.com>") BODYSTRUCTURE `, i-1, i)
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, `("text" "plain" ("charset" "utf-8" "format" "flowed") NIL NIL "quoted-printable" %d %d NIL NIL NIL NIL)`, 1000+i%900, 20+i%40)
		case 1:
			fmt.Fprintf(&b, `(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" %d %d NIL NIL NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" %d %d NIL NIL NIL NIL) "alternative" ("boundary" "b1_%08x") NIL NIL NIL)`,
				800+i%700, 15+i%30, 2500+i%2000, 40+i%60, i*2654435761%(1<<32))
		case 2:
			fmt.Fprintf(&b, `(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" %d %d NIL NIL NIL NIL)("application" "pdf" ("name" "report-%d.pdf") NIL NIL "base64" %d NIL ("attachment" ("filename" "report-%d.pdf")) NIL NIL) "mixed" ("boundary" "----=_Part_%d") NIL NIL NIL)`,
				300+i%200, 8+i%10, i, 40000+i*13%9000, i, i)
		}
		b.WriteString(")\r\n")
	}
	return b.Bytes()
}

func TestGenFetch(t *testing.T) {
	msgs, err := ParseFetch(frameBytes(genFetch(300), true))
	if err != nil || len(msgs) != 300 {
		t.Fatalf("ParseFetch = %d messages, %v", len(msgs), err)
	}
	if m := msgs[4]; m.Envelope.Subject != "Grüße aus München, Nachricht 5" || m.UID != 1005 || m.Envelope.From[0].Name != "Jörg Müller" {
		t.Errorf("message 5 = %s", dump(m))
	}
	if m := msgs[1]; len(m.BodyStructure.Parts) != 2 || m.BodyStructure.Parts[1].Filename() != "report-2.pdf" {
		t.Errorf("message 2 = %s", dump(m))
	}
}

// BenchmarkParseFetch parses a typical header listing: 1,000 messages with
// FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE and BODYSTRUCTURE.
func BenchmarkParseFetch(b *testing.B) {
	const n = 1000
	data := frameBytes(genFetch(n), true)
	size := 0
	for _, d := range data {
		size += len(d.Text) + len(d.Literal)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		msgs, err := ParseFetch(data)
		if err != nil || len(msgs) != n {
			b.Fatal(len(msgs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}

// BenchmarkFrameFetch is the reference for BenchmarkParseFetch: it merely
// frames the same wire bytes into datums, copying each line and literal as
// a reader must.
func BenchmarkFrameFetch(b *testing.B) {
	const n = 1000
	raw := genFetch(n)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if d := frameBytes(raw, true); len(d) < n {
			b.Fatal(len(d))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}

// Real Dovecot 2.3 output, captured from a throwaway server. In these
// constants a line feed stands for CRLF and <CR> for a lone CR; fixture
// converts them back. Non-ASCII subjects and names arrive as literals,
// exactly as Dovecot sent them.

// dovecotFetch answers FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE).
const dovecotFetch = `* 1 FETCH (UID 1 FLAGS (\Flagged \Recent $Forwarded) INTERNALDATE "22-Nov-2026 08:05:31 +0000" RFC822.SIZE 351 ENVELOPE ("Tue, 21 Nov 2023 10:15:30 +0100" {25}
Grüße aus München 🍺 (({13}
Jörg Müller NIL "joerg" "example.de")) (({13}
Jörg Müller NIL "joerg" "example.de")) (({13}
Jörg Müller NIL "joerg" "example.de")) (("Alice" NIL "alice" "example.com")(NIL NIL "bob" "example.org")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) NIL NIL "<m1@example.de>") BODYSTRUCTURE ("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 32 2 NIL NIL NIL NIL))
* 2 FETCH (UID 2 FLAGS (\Recent) INTERNALDATE "22-Nov-2026 08:05:32 +0000" RFC822.SIZE 1269 ENVELOPE ("Wed, 22 Nov 2023 08:00:00 +0000" {19}
Report "Q4" \ draft (("Bob" NIL "bob" "example.org")) (("Bob" NIL "bob" "example.org")) (("Bob" NIL "bob" "example.org")) ((NIL NIL "Team" NIL)(NIL NIL "alice" "example.com")(NIL NIL "carol" "example.com")(NIL NIL NIL NIL)) NIL NIL "<m1@example.de>" "<m2@example.org>") BODYSTRUCTURE ((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)("text" "html" ("charset" "us-ascii") NIL NIL "quoted-printable" 16 0 NIL NIL NIL NIL) "alternative" ("boundary" "inner") NIL NIL NIL)("application" "pdf" ("name" "report.pdf") "<att1@example.org>" "The report" "base64" 76 NIL ("attachment" ("filename" "report.pdf")) ("en" "de") "http://example.org/report.pdf")("message" "rfc822" NIL NIL NIL "7bit" 309 ("Mon, 20 Nov 2023 09:00:00 +0000" "Original" (("Carol" NIL "carol" "example.com")) (("Carol" NIL "carol" "example.com")) (("Carol" NIL "carol" "example.com")) ((NIL NIL "bob" "example.org")) NIL NIL NIL "<m0@example.com>") (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 0 NIL NIL NIL NIL)("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL) "alternative" ("boundary" "b3") NIL NIL NIL) 17 NIL NIL NIL NIL) "mixed" ("boundary" "outer") NIL NIL NIL))
* 3 FETCH (UID 3 FLAGS (\Recent) INTERNALDATE "22-Nov-2026 08:05:33 +0000" RFC822.SIZE 29 ENVELOPE (NIL "" ((NIL NIL "nobody" "MISSING_DOMAIN")) ((NIL NIL "nobody" "MISSING_DOMAIN")) ((NIL NIL "nobody" "MISSING_DOMAIN")) NIL NIL NIL NIL NIL) BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 3 1 NIL NIL NIL NIL))
`

// dovecotFetchBody answers FETCH 2 (BODY).
const dovecotFetchBody = `* 2 FETCH (BODY ((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0)("text" "html" ("charset" "us-ascii") NIL NIL "quoted-printable" 16 0) "alternative")("application" "pdf" ("name" "report.pdf") "<att1@example.org>" "The report" "base64" 76)("message" "rfc822" NIL NIL NIL "7bit" 309 ("Mon, 20 Nov 2023 09:00:00 +0000" "Original" (("Carol" NIL "carol" "example.com")) (("Carol" NIL "carol" "example.com")) (("Carol" NIL "carol" "example.com")) ((NIL NIL "bob" "example.org")) NIL NIL NIL "<m0@example.com>") (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 0)("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 11 0) "alternative") 17) "mixed"))
`

// dovecotFetchSections answers FETCH 1 (BODY.PEEK[HEADER.FIELDS (DATE FROM)] BODY.PEEK[]<0.10> BINARY.PEEK[1] RFC822.HEADER MODSEQ BINARY.SIZE[1] SAVEDATE PREVIEW).
const dovecotFetchSections = `* 1 FETCH (MODSEQ (4) SAVEDATE "22-Nov-2026 08:05:35 +0000" PREVIEW {29}
Hallo Alice, schöne Grüße. BODY[HEADER.FIELDS (DATE FROM)] {83}
Date: Tue, 21 Nov 2023 10:15:30 +0100
From: "Jörg Müller" <joerg@example.de>

 BODY[]<0> {10}
Date: Tue, BINARY[1] {32}
Hallo Alice,
schöne Grüße.
 RFC822.HEADER {319}
Date: Tue, 21 Nov 2023 10:15:30 +0100
From: "Jörg Müller" <joerg@example.de>
To: Alice <alice@example.com>, bob@example.org
Cc: undisclosed-recipients:;
Subject: Grüße aus München 🍺
Message-ID: <m1@example.de>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

 BINARY.SIZE[1] 32)
`

// dovecotFetchParts answers FETCH 2 (BODY.PEEK[2] BODY.PEEK[3.1] BINARY.PEEK[1.2] BODY.PEEK[TEXT]<5.3> RFC822.TEXT).
const dovecotFetchParts = `* 2 FETCH (FLAGS (\Seen \Recent) BODY[2] {76}
JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl BODY[3.1] {4}
orig BINARY[1.2] ~{16}
<p>HTML body</p> BODY[TEXT]<5> {3}
er<CR> RFC822.TEXT {992}
--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=us-ascii

Plain body
--inner
Content-Type: text/html; charset=us-ascii
Content-Transfer-Encoding: quoted-printable

<p>HTML body</p>
--inner--
--outer
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64
Content-Language: en, de
Content-Location: http://example.org/report.pdf
Content-ID: <att1@example.org>
Content-Description: The report

JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl
--outer
Content-Type: message/rfc822

Date: Mon, 20 Nov 2023 09:00:00 +0000
From: Carol <carol@example.com>
To: bob@example.org
Subject: Original
Message-ID: <m0@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b3"

--b3
Content-Type: text/plain

orig
--b3
Content-Type: text/html

<b>orig</b>
--b3--
--outer--
)
* 2 FETCH (MODSEQ (5))
`

// dovecotFetchChanged answers UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1).
const dovecotFetchChanged = `* 1 FETCH (UID 1 FLAGS (\Flagged \Recent $Forwarded) MODSEQ (4))
* 2 FETCH (UID 2 FLAGS (\Seen \Recent) MODSEQ (5))
* 3 FETCH (UID 3 FLAGS (\Recent) MODSEQ (2))
`
