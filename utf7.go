package imap

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// mutf7 is the base64 variant of RFC 3501 section 5.1.3: ',' replaces '/',
// and there is no padding.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").
	WithPadding(base64.NoPadding).Strict()

// EncodeMailbox encodes a mailbox name in the modified UTF-7 of RFC 3501
// section 5.1.3, as sent to servers that have not enabled UTF8=ACCEPT.
// Printable ASCII stands for itself except '&', which becomes "&-"; every
// run of other characters becomes '&', the modified base64 of its UTF-16,
// and '-'. Invalid UTF-8 in name is encoded as U+FFFD.
func EncodeMailbox(name string) string {
	i := 0
	for i < len(name) && isPrintableASCII(name[i]) && name[i] != '&' {
		i++
	}
	if i == len(name) {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 8)
	b.WriteString(name[:i])
	var u16 []uint16
	var raw []byte
	for i < len(name) {
		c := name[i]
		if isPrintableASCII(c) {
			if c == '&' {
				b.WriteString("&-")
			} else {
				b.WriteByte(c)
			}
			i++
			continue
		}
		u16 = u16[:0]
		for i < len(name) && !isPrintableASCII(name[i]) {
			r, size := utf8.DecodeRuneInString(name[i:])
			u16 = utf16.AppendRune(u16, r)
			i += size
		}
		raw = raw[:0]
		for _, u := range u16 {
			raw = append(raw, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(raw))
		b.WriteByte('-')
	}
	return b.String()
}

// DecodeMailbox decodes a mailbox name from modified UTF-7 (RFC 3501
// section 5.1.3). It rejects anything a conforming encoder would not
// produce: bytes outside printable ASCII, an unterminated or empty-looking
// shift, bad base64 or non-zero padding bits, an odd number of UTF-16
// bytes, unpaired surrogates, printable ASCII (including '&') encoded in
// base64, and two shifts with nothing between them.
func DecodeMailbox(name string) (string, error) {
	i := 0
	for i < len(name) && isPrintableASCII(name[i]) && name[i] != '&' {
		i++
	}
	if i == len(name) {
		return name, nil
	}
	var b strings.Builder
	b.Grow(len(name))
	b.WriteString(name[:i])
	lastShiftEnd := -1 // index just after the '-' of the last base64 shift
	for i < len(name) {
		c := name[i]
		if !isPrintableASCII(c) {
			return "", mailboxError(name, "byte outside printable ASCII")
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		j := strings.IndexByte(name[i+1:], '-')
		if j < 0 {
			return "", mailboxError(name, `unterminated "&" shift`)
		}
		enc := name[i+1 : i+1+j]
		if enc == "" {
			b.WriteByte('&')
			i += 2
			continue
		}
		if i == lastShiftEnd {
			return "", mailboxError(name, "adjacent shifts")
		}
		// The base64 decoder skips CR and LF; nothing else may.
		if strings.ContainsAny(enc, "\r\n") {
			return "", mailboxError(name, "byte outside printable ASCII")
		}
		raw, err := mutf7.DecodeString(enc)
		if err != nil {
			return "", mailboxError(name, "bad modified base64")
		}
		if len(raw)%2 != 0 {
			return "", mailboxError(name, "odd number of UTF-16 bytes")
		}
		for k := 0; k < len(raw); k += 2 {
			u := rune(raw[k])<<8 | rune(raw[k+1])
			switch {
			case utf16.IsSurrogate(u):
				if u >= 0xDC00 || k+3 >= len(raw) {
					return "", mailboxError(name, "unpaired surrogate")
				}
				u2 := rune(raw[k+2])<<8 | rune(raw[k+3])
				r := utf16.DecodeRune(u, u2)
				if r == utf8.RuneError {
					return "", mailboxError(name, "unpaired surrogate")
				}
				b.WriteRune(r)
				k += 2
			case u < 0x80 && isPrintableASCII(byte(u)):
				return "", mailboxError(name, "printable ASCII in a shift")
			default:
				b.WriteRune(u)
			}
		}
		i += 1 + j + 1
		lastShiftEnd = i
	}
	return b.String(), nil
}

func isPrintableASCII(c byte) bool { return c >= 0x20 && c <= 0x7e }

func mailboxError(name, msg string) error {
	return errors.New("imap: decode mailbox name " + quoteForError(name) + ": " + msg)
}

// quoteForError quotes s for an error message, cutting it short when long.
func quoteForError(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "..."
	}
	return `"` + strings.ToValidUTF8(strings.ReplaceAll(s, `"`, `\"`), "\uFFFD") + `"`
}
