package imap

import (
	"reflect"
	"strings"
	"testing"
)

// parseEnvelope parses one ENVELOPE value in wire form.
func parseEnvelope(t *testing.T, value string) (*Envelope, error) {
	t.Helper()
	m, err := ParseFetchResponse(Response{Type: "FETCH", Data: frame("* 1 FETCH (ENVELOPE " + value + ")\r\n")})
	if err != nil {
		return nil, err
	}
	return m.Envelope, nil
}

func TestEnvelope(t *testing.T) {
	fred := Address{Name: "Fred Foobar", Mailbox: "foobar", Host: "Blurdybloop.example"}
	tests := []struct {
		name  string
		value string
		want  *Envelope
	}{
		{
			// RFC 3501 section 8.
			name: "rfc 3501 example",
			value: `("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" ` +
				`(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ` +
				`(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) ` +
				`((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL ` +
				`"<B27397-0100000@cac.washington.edu>")`,
			want: &Envelope{
				Date:    "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
				Subject: "IMAP4rev1 WG mtg summary and minutes",
				From:    []Address{{Name: "Terry Gray", Mailbox: "gray", Host: "cac.washington.edu"}},
				Sender:  []Address{{Name: "Terry Gray", Mailbox: "gray", Host: "cac.washington.edu"}},
				ReplyTo: []Address{{Name: "Terry Gray", Mailbox: "gray", Host: "cac.washington.edu"}},
				To:      []Address{{Mailbox: "imap", Host: "cac.washington.edu"}},
				Cc: []Address{{Mailbox: "minutes", Host: "CNRI.Reston.VA.US"},
					{Name: "John Klensin", Mailbox: "KLENSIN", Host: "MIT.EDU"}},
				MessageID: "<B27397-0100000@cac.washington.edu>",
			},
		},
		{
			name:  "NIL everywhere",
			value: `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`,
			want:  &Envelope{},
		},
		{
			name:  "lower-case nil and extra spaces",
			value: `( nil  nil nil nil nil nil nil nil nil nil )`,
			want:  &Envelope{},
		},
		{
			name: "literals inside lists",
			value: `("Mon, 7 Feb 1994 21:52:25 -0800" ` + lit("Grüße 🍺") + ` ((` + lit("Jörg \"J\" Müller") +
				` NIL "joerg" "example.de")) NIL NIL ((NIL ` + lit("") + ` "x" "y")) NIL NIL NIL ` + lit("<a@b>") + `)`,
			want: &Envelope{
				Date:      "Mon, 7 Feb 1994 21:52:25 -0800",
				Subject:   "Grüße 🍺",
				From:      []Address{{Name: `Jörg "J" Müller`, Mailbox: "joerg", Host: "example.de"}},
				To:        []Address{{Mailbox: "x", Host: "y"}},
				MessageID: "<a@b>",
			},
		},
		{
			name:  "quoted escapes",
			value: `(NIL "a \"quoted\" \\ subject" (("Fred \"The Man\" Foobar" NIL "foobar" "Blurdybloop.example")) NIL NIL NIL NIL NIL "<x>" NIL)`,
			want: &Envelope{
				Subject:   `a "quoted" \ subject`,
				From:      []Address{{Name: `Fred "The Man" Foobar`, Mailbox: "foobar", Host: "Blurdybloop.example"}},
				InReplyTo: "<x>",
			},
		},
		{
			name:  "sender and reply-to copied from from",
			value: `(NIL NIL (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) (("Fred Foobar" NIL "foobar" "Blurdybloop.example")) (("Fred Foobar" NIL "foobar" "Blurdybloop.example")("Other" NIL "o" "x")) NIL NIL NIL NIL)`,
			want: &Envelope{
				From: []Address{fred}, Sender: []Address{fred}, ReplyTo: []Address{fred},
				To: []Address{fred, {Name: "Other", Mailbox: "o", Host: "x"}},
			},
		},
		{
			name:  "group syntax",
			value: `(NIL NIL NIL NIL NIL ((NIL NIL "Friends" NIL)(NIL NIL "a" "x.org")(NIL NIL NIL NIL)(NIL NIL "Empty" NIL)(NIL NIL NIL NIL)) NIL NIL NIL NIL)`,
			want:  &Envelope{To: []Address{{Mailbox: "Friends"}, {Mailbox: "a", Host: "x.org"}, {}, {Mailbox: "Empty"}, {}}},
		},
		{
			name:  "source route",
			value: `(NIL NIL ((NIL "@relay.example" "u" "h")) NIL NIL NIL NIL NIL NIL NIL)`,
			want:  &Envelope{From: []Address{{ADL: "@relay.example", Mailbox: "u", Host: "h"}}},
		},
	}
	for _, tt := range tests {
		got, err := parseEnvelope(t, tt.value)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, dump(got), dump(tt.want))
		}
	}
}

// TestEnvelopeRepeatedLists checks the shortcut for lists that repeat the
// From list, with and without literals, and that a list that differs only
// in a literal is parsed on its own.
func TestEnvelopeRepeatedLists(t *testing.T) {
	jorg := `((` + lit("Jörg") + ` NIL "j" "x"))`
	env, err := parseEnvelope(t, `(NIL NIL `+jorg+` `+jorg+` ((`+lit("Jörx")+` NIL "j" "x")) `+jorg+`((NIL NIL "j" "x")) NIL NIL NIL)`)
	if err != nil {
		t.Fatal(err)
	}
	want := &Envelope{
		From:    []Address{{Name: "Jörg", Mailbox: "j", Host: "x"}},
		Sender:  []Address{{Name: "Jörg", Mailbox: "j", Host: "x"}},
		ReplyTo: []Address{{Name: "Jörx", Mailbox: "j", Host: "x"}},
		To:      []Address{{Name: "Jörg", Mailbox: "j", Host: "x"}},
		Cc:      []Address{{Mailbox: "j", Host: "x"}},
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got %s\nwant %s", dump(env), dump(want))
	}
}

// TestEnvelopeCopiedListsIndependent checks that a Sender copied from From
// does not share its backing array.
func TestEnvelopeCopiedListsIndependent(t *testing.T) {
	env, err := parseEnvelope(t, `(NIL NIL (("A" NIL "a" "x")) (("A" NIL "a" "x")) NIL NIL NIL NIL NIL NIL)`)
	if err != nil {
		t.Fatal(err)
	}
	env.Sender[0].Name = "changed"
	if env.From[0].Name != "A" {
		t.Error("From and Sender share memory")
	}
}

func TestEnvelopeErrors(t *testing.T) {
	tests := []struct {
		value, want string
	}{
		{`NIL`, `ENVELOPE: expected "("`},
		{`("d" "s")`, `expected "(" or NIL, found ')'`},
		{`(NIL NIL "from" NIL NIL NIL NIL NIL NIL NIL)`, `expected "(" or NIL, found '"'`},
		{`(NIL NIL ((NIL NIL "a" "b" "c")) NIL NIL NIL NIL NIL NIL NIL)`, `expected ")" after address fields`},
		{`(NIL NIL (NIL) NIL NIL NIL NIL NIL NIL NIL)`, `expected "("`},
		{`(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`, `expected ")" after ENVELOPE fields`},
		{`(NIL NIL NIL NIL NIL NIL NIL NIL NIL)`, `expected string or NIL, found ')'`},
		{`(1 NIL NIL NIL NIL NIL NIL NIL NIL NIL)`, `expected string or NIL, found '1'`},
	}
	for _, tt := range tests {
		_, err := parseEnvelope(t, tt.value)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ENVELOPE %s: err = %v, want %q", tt.value, err, tt.want)
		}
	}
}

func TestAddressAddr(t *testing.T) {
	tests := []struct {
		a    Address
		want string
	}{
		{Address{Name: "Fred", Mailbox: "fred", Host: "example.com"}, "fred@example.com"},
		{Address{Mailbox: "Friends"}, "Friends"},
		{Address{}, ""},
	}
	for _, tt := range tests {
		if got := tt.a.Addr(); got != tt.want {
			t.Errorf("%+v.Addr() = %q, want %q", tt.a, got, tt.want)
		}
	}
}
