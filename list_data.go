package imap

import "strings"

// ListEntry is the typed form of one LIST or LSUB response (RFC 3501
// section 7.2.2), such as `(\HasNoChildren) "." INBOX`.
type ListEntry struct {
	Attrs []string // name attributes, e.g. \HasNoChildren, \Noselect, \Sent
	Delim string   // hierarchy delimiter, "" for NIL (a flat name)
	Name  string   // the name, decoded from modified UTF-7 (see ParseList)
	Raw   string   // the name as sent, unquoted: what to pass back to the server

	// OldName is the name before a rename, from the OLDNAME extended data
	// item (RFC 5258), which NOTIFY's MailboxName event sends with the new
	// name (RFC 5465); decoded like Name. "" when the response has none.
	OldName string
}

// HasAttr reports whether e has the name attribute attr (matched without
// regard to case), e.g. e.HasAttr(`\Noselect`).
func (e ListEntry) HasAttr(attr string) bool {
	for _, a := range e.Attrs {
		if strings.EqualFold(a, attr) {
			return true
		}
	}
	return false
}

// ParseList parses the data of a LIST or LSUB result. The name may be an
// atom, a quoted string or a literal; a NIL delimiter gives Delim "".
// Of the extended data (RFC 5258), OLDNAME gives OldName; the rest
// (CHILDINFO, ...) is skipped.
//
// Name is Raw decoded from modified UTF-7 (RFC 3501 section 5.1.3). A name
// that is not valid modified UTF-7, or that holds non-ASCII bytes (as
// names do once UTF8=ACCEPT is enabled), is left as it is; use
// ParseListUTF8 when UTF8=ACCEPT is enabled, so that a UTF-8 name that
// happens to look like modified UTF-7 is not decoded.
//
// A malformed response does not stop the others: ParseList returns every
// entry it could parse and a *ParseError for the first failure.
func ParseList(data []Datum) ([]ListEntry, error) { return parseList(data, false) }

// ParseListUTF8 is ParseList for a connection with UTF8=ACCEPT enabled
// (RFC 6855): names are UTF-8 and Name is always Raw.
func ParseListUTF8(data []Datum) ([]ListEntry, error) { return parseList(data, true) }

func parseList(data []Datum, utf8 bool) ([]ListEntry, error) {
	return parseEach(data, "LIST", func(s *scanner, e *ListEntry) error { return s.listEntry(e, utf8) })
}

func (s *scanner) listEntry(e *ListEntry, utf8 bool) error {
	if err := s.open(); err != nil {
		return err
	}
	start := s.strSlab.begin()
	for !s.close() {
		a := s.atom()
		if len(a) == 0 {
			return s.unexpected("name attribute")
		}
		start = s.strSlab.push(start, flagString(a, &s.arena))
	}
	e.Attrs = s.strSlab.end(start)
	s.skipSP()
	if !s.isNIL() {
		if s.peek() != '"' {
			return s.unexpected("quoted delimiter or NIL")
		}
		raw, esc, err := s.quoted()
		if err != nil {
			return err
		}
		switch {
		case esc:
			e.Delim = s.arena.unescape(raw)
		case len(raw) == 1 && raw[0] == '.':
			e.Delim = "."
		case len(raw) == 1 && raw[0] == '/':
			e.Delim = "/"
		default:
			e.Delim = s.arena.str(raw)
		}
	}
	s.skipSP()
	var err error
	if e.Raw, err = s.mailboxName(); err != nil {
		return err
	}
	e.Name = decodeName(e.Raw, utf8)
	s.skipSP()
	if s.peek() == '(' {
		if err := s.listExtended(e, utf8); err != nil {
			return err
		}
	}
	// Anything else a server adds: skip.
	for {
		s.skipSP()
		if s.atEnd() {
			return nil
		}
		if err := s.skipValue(); err != nil {
			return err
		}
	}
}

// listExtended parses the extended data of a LIST response (RFC 5258
// mbox-list-extended): tag and value pairs, of which OLDNAME's, a list
// holding the name before a rename, sets e.OldName.
func (s *scanner) listExtended(e *ListEntry, utf8 bool) error {
	if err := s.open(); err != nil {
		return err
	}
	for !s.close() {
		tag, _, err := s.astring()
		if err != nil {
			return err
		}
		s.skipSP()
		if !eqFold(tag, "OLDNAME") || s.peek() != '(' {
			if err := s.skipValue(); err != nil {
				return err
			}
			continue
		}
		if err := s.open(); err != nil {
			return err
		}
		s.skipSP()
		raw, err := s.mailboxName()
		if err != nil {
			return err
		}
		e.OldName = decodeName(raw, utf8)
		for !s.close() { // nothing more is defined: skip it
			if err := s.skipValue(); err != nil {
				return err
			}
		}
	}
	return nil
}

// mailboxName parses a mailbox name: an astring.
func (s *scanner) mailboxName() (string, error) {
	raw, esc, err := s.astring()
	if err != nil {
		return "", err
	}
	if esc {
		return s.arena.unescape(raw), nil
	}
	if eqFold(raw, "INBOX") && string(raw) == "INBOX" {
		return "INBOX", nil
	}
	return s.arena.str(raw), nil
}

// decodeName decodes a mailbox name from modified UTF-7 when it looks like
// it needs it and is valid, and returns it unchanged otherwise.
func decodeName(raw string, utf8 bool) string {
	if utf8 || strings.IndexByte(raw, '&') < 0 {
		return raw
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] >= 0x80 {
			return raw
		}
	}
	if dec, err := DecodeMailbox(raw); err == nil {
		return dec
	}
	return raw
}
