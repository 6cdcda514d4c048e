package wire

import (
	"errors"
	"fmt"
)

// ErrControlChar reports an argument holding a byte that must never reach
// the wire through an argument: NUL, CR, LF or another control character.
var ErrControlChar = errors.New("argument contains a control character")

// Form is how a string argument goes on the wire.
type Form int

// The forms an astring can take.
const (
	FormAtom    Form = iota // as is
	FormQuoted              // "..." with \" and \\ escaped
	FormLiteral             // {N} followed by the bytes
)

// maxQuoted is the longest string sent quoted; longer ones go as literals,
// which need no escaping and cannot be mis-parsed.
const maxQuoted = 1024

// CheckArg returns an error if s holds a C0 control character or DEL.
func CheckArg(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w (0x%02x at offset %d)", ErrControlChar, c, i)
		}
	}
	return nil
}

// isAtomChar reports whether c may appear in an atom (RFC 3501 ATOM-CHAR).
func isAtomChar(c byte) bool {
	if c <= 0x20 || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// AstringForm returns the form in which s is sent as an astring. utf8 says
// whether the server accepts UTF-8 in quoted strings (UTF8=ACCEPT enabled).
// s must have passed CheckArg.
func AstringForm(s string, utf8 bool) Form {
	return form(s, utf8, isAtomChar)
}

// ListMailboxForm is AstringForm for LIST patterns, where the wildcards %
// and * (and ]) are atom characters.
func ListMailboxForm(s string, utf8 bool) Form {
	return form(s, utf8, func(c byte) bool {
		return isAtomChar(c) || c == '%' || c == '*' || c == ']'
	})
}

func form(s string, utf8 bool, atomChar func(byte) bool) Form {
	if s == "" {
		return FormQuoted
	}
	if len(s) > maxQuoted {
		return FormLiteral
	}
	atom := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			if !utf8 {
				return FormLiteral
			}
			atom = false
			continue
		}
		if !atomChar(c) {
			atom = false
		}
	}
	if atom && !isNIL(s) {
		return FormAtom
	}
	return FormQuoted
}

func isNIL(s string) bool {
	return len(s) == 3 && (s[0]|0x20) == 'n' && (s[1]|0x20) == 'i' && (s[2]|0x20) == 'l'
}

// AppendQuoted appends s as a quoted string.
func AppendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}
