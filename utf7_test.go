package imap

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMailboxUTF7(t *testing.T) {
	tests := []struct {
		decoded, encoded string
	}{
		// RFC 3501 section 5.1.3.
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"INBOX", "INBOX"},
		{"", ""},
		{"&", "&-"},
		{"R&D", "R&-D"},
		{"&&", "&-&-"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"Корзина", "&BBoEPgRABDcEOAQ9BDA-"},
		{"Gesendete Objekte", "Gesendete Objekte"},
		{"ü&", "&APw-&-"},
		{"&ü", "&-&APw-"},
		{"😀", "&2D3eAA-"},
		{"a\tb", "a&AAk-b"},
		{"\x7f", "&AH8-"},
		{"[Gmail]/Sent Mail", "[Gmail]/Sent Mail"},
	}
	for _, tt := range tests {
		if got := EncodeMailbox(tt.decoded); got != tt.encoded {
			t.Errorf("EncodeMailbox(%q) = %q, want %q", tt.decoded, got, tt.encoded)
		}
		got, err := DecodeMailbox(tt.encoded)
		if err != nil || got != tt.decoded {
			t.Errorf("DecodeMailbox(%q) = %q, %v; want %q", tt.encoded, got, err, tt.decoded)
		}
	}
}

func TestDecodeMailboxErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"&", "unterminated"},
		{"a&APw", "unterminated"},
		{"&A-", "bad modified base64"},          // one base64 character
		{"&AP/-", "bad modified base64"},        // '/' is not in the alphabet
		{"&AP=-", "bad modified base64"},        // no padding
		{"&APx-", "bad modified base64"},        // non-zero padding bits
		{"&AGE-", "printable ASCII in a shift"}, // "a" encoded
		{"&ACY-", "printable ASCII in a shift"}, // "&" encoded
		{"&APw-&APw-", "adjacent shifts"},       // should be one shift
		{"&APwA-", "odd number"},                // three bytes
		{"&AP-", "bad modified base64"},         // non-zero bits after the byte
		{"&2D0-", "unpaired surrogate"},         // lone high surrogate
		{"&3gA-", "unpaired surrogate"},         // lone low surrogate
		{"&2D0AYQ-", "unpaired surrogate"},      // high surrogate, then "a"
		{"Entwürfe", "outside printable ASCII"},
		{"a\tb", "outside printable ASCII"},
		{"a\x00b", "outside printable ASCII"},
		{"&AP\nw-", "outside printable ASCII"}, // base64 decoders skip newlines
		{"&AP\rw-", "outside printable ASCII"},
		{"&AP w-", "bad modified base64"},
	}
	for _, tt := range tests {
		got, err := DecodeMailbox(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeMailbox(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.want)
		}
	}
}

func TestMailboxUTF7InvalidUTF8(t *testing.T) {
	got, err := DecodeMailbox(EncodeMailbox("a\xffb"))
	if err != nil || got != "a\uFFFDb" {
		t.Errorf("round trip of invalid UTF-8 = %q, %v", got, err)
	}
}

// TestMailboxUTF7RoundTrip checks on random strings that decoding undoes
// encoding, that the encoding is printable ASCII, and that re-encoding the
// decoded name gives the same bytes (the encoding is canonical).
func TestMailboxUTF7RoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := []func() rune{
		func() rune { return rune(0x20 + rng.IntN(0x5f)) }, // printable ASCII
		func() rune { return '&' },
		func() rune { return '-' },
		func() rune { return rune(rng.IntN(0x20)) }, // controls
		func() rune { return rune(0x80 + rng.IntN(0x780)) },
		func() rune { return rune(0x3000 + rng.IntN(0x6000)) },
		func() rune { return rune(0x10000 + rng.IntN(0x100000)) }, // astral
	}
	for range 5000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteRune(pick[rng.IntN(len(pick))]())
		}
		s := b.String()
		enc := EncodeMailbox(s)
		for i := 0; i < len(enc); i++ {
			if !isPrintableASCII(enc[i]) {
				t.Fatalf("EncodeMailbox(%q) = %q: not printable ASCII", s, enc)
			}
		}
		dec, err := DecodeMailbox(enc)
		if err != nil || dec != s {
			t.Fatalf("DecodeMailbox(EncodeMailbox(%q)) = %q, %v (encoded %q)", s, dec, err, enc)
		}
		if !utf8.ValidString(dec) {
			t.Fatalf("invalid UTF-8 from %q", enc)
		}
	}
}

// FuzzDecodeMailbox checks that decoding never panics and that whatever
// decodes re-encodes to the same bytes.
func FuzzDecodeMailbox(f *testing.F) {
	for _, s := range []string{"INBOX", "&-", "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "&2D3eAA-", "&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dec, err := DecodeMailbox(s)
		if err != nil {
			return
		}
		if enc := EncodeMailbox(dec); enc != s {
			t.Errorf("EncodeMailbox(DecodeMailbox(%q)) = %q", s, enc)
		}
	})
}
