package imap

import "bytes"

// ParseFlags is imaplib's ParseFlags: it returns the flag tokens inside the
// last "FLAGS (...)" in resp, split on white space, or nil when resp has
// none. An empty list gives an empty, non-nil slice. Flags may contain
// brackets, for example "[test]".
//
// Common system flags are returned as shared constant strings, so parsing
// does not allocate for them.
func ParseFlags(resp []byte) []string {
	const key = "FLAGS ("
	end := len(resp)
	for {
		i := bytes.LastIndex(resp[:end], []byte(key))
		if i < 0 {
			return nil
		}
		body := resp[i+len(key):]
		if j := bytes.IndexByte(body, ')'); j >= 0 {
			return splitFlags(body[:j])
		}
		end = i
	}
}

// splitFlags splits b on ASCII white space into flag strings.
func splitFlags(b []byte) []string {
	out := make([]string, 0, 4)
	for i := 0; i < len(b); {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		j := i
		for j < len(b) && !isSpace(b[j]) {
			j++
		}
		if j > i {
			out = append(out, flagString(b[i:j], nil))
		}
		i = j
	}
	return out
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

// Common flags and mailbox attributes, returned as constants so that parsing
// them does not allocate.
const (
	flagSeen     = `\Seen`
	flagAnswered = `\Answered`
	flagFlagged  = `\Flagged`
	flagDeleted  = `\Deleted`
	flagDraft    = `\Draft`
	flagRecent   = `\Recent`
	flagAny      = `\*`
)

// flagString returns b as a string, using a shared constant for common
// flags and list attributes, and a (if not nil) for the others.
func flagString(b []byte, a *strArena) string {
	if len(b) > 1 && b[0] == '\\' {
		switch string(b) {
		case flagSeen:
			return flagSeen
		case flagAnswered:
			return flagAnswered
		case flagFlagged:
			return flagFlagged
		case flagDeleted:
			return flagDeleted
		case flagDraft:
			return flagDraft
		case flagRecent:
			return flagRecent
		case flagAny:
			return flagAny
		case `\HasNoChildren`:
			return `\HasNoChildren`
		case `\HasChildren`:
			return `\HasChildren`
		case `\Noselect`:
			return `\Noselect`
		case `\NoSelect`:
			return `\NoSelect`
		case `\Noinferiors`:
			return `\Noinferiors`
		case `\NonExistent`:
			return `\NonExistent`
		case `\Subscribed`:
			return `\Subscribed`
		case `\Remote`:
			return `\Remote`
		case `\Marked`:
			return `\Marked`
		case `\Unmarked`:
			return `\Unmarked`
		case `\All`:
			return `\All`
		case `\Archive`:
			return `\Archive`
		case `\Drafts`:
			return `\Drafts`
		case `\Junk`:
			return `\Junk`
		case `\Sent`:
			return `\Sent`
		case `\Trash`:
			return `\Trash`
		case `\Important`:
			return `\Important`
		}
	} else if len(b) > 1 && b[0] == '$' {
		switch string(b) {
		case "$Forwarded":
			return "$Forwarded"
		case "$MDNSent":
			return "$MDNSent"
		case "$Junk":
			return "$Junk"
		case "$NotJunk":
			return "$NotJunk"
		case "$Phishing":
			return "$Phishing"
		case "$Important":
			return "$Important"
		}
	}
	if a != nil {
		return a.str(b)
	}
	return string(b)
}
