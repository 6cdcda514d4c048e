package imap

import (
	"bytes"
	"strings"
	"time"
)

// Message is the typed form of one FETCH response (RFC 3501 section
// 7.4.2). Fields for items the server did not send are zero.
//
// GMLabels holds Gmail's labels as UTF-8: a label sent in modified UTF-7
// (as Gmail sends non-ASCII labels, like mailbox names) is decoded the way
// ParseList decodes names, unless Parser.UTF8 says UTF8=ACCEPT is enabled
// (FetchMessages knows this itself). System labels such as \Inbox,
// \Important or \Sent are kept as sent, backslash included.
//
// Byte slices (Section.Data, RawItem.Value) share memory with the data they
// were parsed from, so that large bodies are never copied; copy them before
// modifying that data.
type Message struct {
	Seq           uint32         // message sequence number
	UID           uint32         // UID
	Flags         []string       // FLAGS; empty but not nil for "FLAGS ()"
	InternalDate  time.Time      // INTERNALDATE, in the zone the server gave
	Size          int64          // RFC822.SIZE
	ModSeq        uint64         // MODSEQ (RFC 7162)
	GMMsgID       uint64         // X-GM-MSGID (Gmail's X-GM-EXT-1): the message's ID, the same in every label
	GMThrID       uint64         // X-GM-THRID (X-GM-EXT-1): the ID of the message's thread
	GMLabels      []string       // X-GM-LABELS (X-GM-EXT-1), as above; empty but not nil for "X-GM-LABELS ()"
	Envelope      *Envelope      // ENVELOPE
	BodyStructure *BodyStructure // BODYSTRUCTURE, or BODY (without extension data)
	Sections      []Section      // BODY[...], BINARY[...], RFC822, RFC822.HEADER, RFC822.TEXT
	Extra         []RawItem      // items this package does not interpret, e.g. EMAILID
}

// Section is the content of a body section data item such as
// BODY[HEADER.FIELDS (DATE FROM)], BODY[]<0>, BINARY[1], RFC822.HEADER.
type Section struct {
	Name   string // the item name as the server sent it, without the <origin>, e.g. "BODY[1.MIME]"
	Origin int64  // the origin octet of a partial fetch ("BODY[]<0>"), or -1
	Data   []byte // the content; nil for NIL
}

// RawItem is a FETCH data item this package does not interpret, kept as
// sent.
type RawItem struct {
	Name  string // the item name, e.g. "EMAILID" or "BINARY.SIZE[1]"
	Value []byte // the value in wire form, e.g. `(M6d99ac3275bb4e)`
}

// HasFlag reports whether m has the flag (matched without regard to case,
// as IMAP flags are).
func (m *Message) HasFlag(flag string) bool {
	for _, f := range m.Flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// FindSection returns the first section of m whose name matches name
// without regard to case. A name as requested with BODY.PEEK matches the
// BODY name the server answers with, and a trailing partial range
// ("<0.100>") is ignored, so the item names used in the FETCH command can be
// passed as they are.
func (m *Message) FindSection(name string) (Section, bool) {
	if i := strings.IndexByte(name, '<'); i >= 0 && strings.HasSuffix(name, ">") {
		name = name[:i]
	}
	if len(name) >= 9 && strings.EqualFold(name[:9], "BODY.PEEK") {
		name = "BODY" + name[9:]
	} else if len(name) >= 11 && strings.EqualFold(name[:11], "BINARY.PEEK") {
		name = "BINARY" + name[11:]
	}
	for _, s := range m.Sections {
		if strings.EqualFold(s.Name, name) {
			return s, true
		}
	}
	return Section{}, false
}

// ParseFetch parses the data of a FETCH (or UID FETCH, or STORE) result:
// a run of responses such as "12 (UID 40 FLAGS (\Seen))", each possibly
// spread over several datums by literals (see Datum). Items it does not
// know are kept in Message.Extra.
//
// A malformed response does not stop the others from being parsed:
// ParseFetch returns every message it could parse and, if any failed, a
// *ParseError for the first failure, naming the message's sequence number
// and the item.
func ParseFetch(data []Datum) ([]*Message, error) { return Parser{}.ParseFetch(data) }

// Parser is the typed FETCH parser with configurable limits. The zero
// Parser is what ParseFetch and ParseFetchResponse use.
type Parser struct {
	// MaxNesting bounds list nesting (0 means the default, MaxNesting).
	MaxNesting int
	// UTF8 says the data comes from a connection with UTF8=ACCEPT
	// enabled (RFC 6855), where X-GM-LABELS are UTF-8 already: they are
	// not decoded from modified UTF-7, so that a label that happens to
	// look encoded keeps its name.
	UTF8 bool
}

// ParseFetch is the package's ParseFetch with p's limits.
func (p Parser) ParseFetch(data []Datum) ([]*Message, error) {
	n := countResponses(data)
	if n == 0 {
		return nil, nil
	}
	out := make([]*Message, 0, n)
	s := scanner{limit: p.MaxNesting, utf8: p.UTF8}
	var firstErr error
	for resp, complete := range parsedResponses(data) {
		// One allocation and pools of its own per message: a kept
		// Message pins none of the others.
		m := s.fresh(resp)
		err := s.fetch(resp, m, complete)
		if err != nil {
			*m = Message{}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		out = append(out, m)
	}
	return out, firstErr
}

// ParseFetchResponse parses one FETCH response, as delivered by an Idler or
// by (*Client).Response: r.Type must be "FETCH" and r.Data must hold exactly
// one response.
func ParseFetchResponse(r Response) (*Message, error) { return Parser{}.ParseFetchResponse(r) }

// ParseFetchResponse is the package's ParseFetchResponse with p's limits.
func (p Parser) ParseFetchResponse(r Response) (*Message, error) {
	if !strings.EqualFold(r.Type, "FETCH") {
		return nil, &ParseError{Type: "FETCH", Offset: -1, Msg: "response type is " + quoteForError(r.Type)}
	}
	resp, rest, complete := nextResponse(r.Data)
	if len(resp) == 0 {
		return nil, &ParseError{Type: "FETCH", Offset: -1, Msg: "no data"}
	}
	if len(rest) > 0 {
		return nil, &ParseError{Type: "FETCH", Offset: -1, Msg: "more than one response"}
	}
	s := scanner{limit: p.MaxNesting, utf8: p.UTF8}
	m := new(Message)
	if err := s.fetch(resp, m, complete); err != nil {
		return nil, err
	}
	return m, nil
}

// fetch parses the FETCH response resp into m.
func (s *scanner) fetch(resp []Datum, m *Message, complete bool) error {
	s.reset(resp)
	if err := s.fetchMessage(m); err != nil {
		return withContext(err, "FETCH", m.Seq, "")
	}
	if !complete {
		return &ParseError{Type: "FETCH", Seq: m.Seq, Offset: -1, Msg: "data ends in a literal"}
	}
	return nil
}

func (s *scanner) fetchMessage(m *Message) error {
	// Accept the full line shape "* 12 FETCH (...)" too.
	if len(s.text) >= 2 && s.text[0] == '*' && s.text[1] == ' ' {
		s.pos = 2
	}
	seq, err := s.number32()
	if err != nil {
		return err
	}
	if seq == 0 {
		return s.errorf("sequence number 0")
	}
	m.Seq = seq
	s.skipSP()
	if t := s.text[s.pos:]; len(t) >= 5 && eqFold(t[:5], "FETCH") {
		s.pos += 5
		s.skipSP()
	}
	if err := s.open(); err != nil {
		return err
	}
	s.secStart, s.rawStart = s.secSlab.begin(), s.rawSlab.begin()
	for !s.close() {
		start := s.mark()
		if err := s.fetchItem(m); err != nil {
			return withContext(err, "FETCH", m.Seq, itemName(s.segs[start.si].Text[start.pos:]))
		}
	}
	m.Sections = s.secSlab.end(s.secStart)
	m.Extra = s.rawSlab.end(s.rawStart)
	return s.expectEnd()
}

// itemName returns the name of the item at the start of t, for error
// messages.
func itemName(t []byte) string {
	i := 0
	for i < len(t) && charClass[t[i]]&cItemEnd == 0 {
		i++
	}
	if i < len(t) && t[i] == '[' {
		if j := bytes.IndexByte(t[i:], ']'); j >= 0 {
			i += j + 1
		}
	}
	return string(t[:min(i, 64)])
}

// fetchItem parses one "name value" pair of a FETCH response.
func (s *scanner) fetchItem(m *Message) error {
	t := s.text
	start := s.pos
	i := start
	for i < len(t) && charClass[t[i]]&cItemEnd == 0 {
		i++
	}
	name := t[start:i]
	if len(name) == 0 {
		return s.unexpected("data item name")
	}
	s.pos = i
	if s.peek() == '[' {
		return s.sectionItem(m, name)
	}
	if s.peek() == '<' {
		return s.errorf("partial origin without a section")
	}
	s.skipSP()
	var err error
	switch len(name) {
	case 3:
		if eqFold(name, "UID") {
			m.UID, err = s.number32()
			return err
		}
	case 4:
		if eqFold(name, "BODY") {
			m.BodyStructure = s.newBody()
			return s.body(m.BodyStructure)
		}
	case 5:
		if eqFold(name, "FLAGS") {
			m.Flags, err = s.flagList()
			return err
		}
	case 6:
		if eqFold(name, "MODSEQ") {
			return s.modSeq(&m.ModSeq)
		}
		if eqFold(name, "RFC822") {
			return s.sectionValue(name, -1)
		}
	case 8:
		if eqFold(name, "ENVELOPE") {
			m.Envelope = s.newEnvelope()
			return s.envelope(m.Envelope)
		}
	case 10:
		// Gmail's X-GM-EXT-1. No item of RFC 3501 or 9051 has this
		// length, so other servers' data does not get this far.
		if eqFold(name, "X-GM-MSGID") {
			m.GMMsgID, err = s.number()
			return err
		}
		if eqFold(name, "X-GM-THRID") {
			m.GMThrID, err = s.number()
			return err
		}
	case 11:
		if eqFold(name, "RFC822.SIZE") {
			m.Size, err = s.number63()
			return err
		}
		if eqFold(name, "RFC822.TEXT") {
			return s.sectionValue(name, -1)
		}
		if eqFold(name, "X-GM-LABELS") {
			m.GMLabels, err = s.gmLabels()
			return err
		}
	case 12:
		if eqFold(name, "INTERNALDATE") {
			return s.internalDate(&m.InternalDate)
		}
	case 13:
		if eqFold(name, "BODYSTRUCTURE") {
			m.BodyStructure = s.newBody()
			return s.body(m.BodyStructure)
		}
		if eqFold(name, "RFC822.HEADER") {
			return s.sectionValue(name, -1)
		}
	}
	return s.rawItem(name)
}

// sectionItem parses an item whose name has a section spec, such as
// BODY[HEADER.FIELDS (DATE)]<0> or BINARY.SIZE[1]. base is the name up to
// the "[".
func (s *scanner) sectionItem(m *Message, base []byte) error {
	t := s.text
	start := s.pos - len(base)
	// Find the matching "]"; the spec may hold a parenthesised list of
	// header field names, possibly quoted.
	depth := 0
	i := s.pos + 1
	for ; i < len(t); i++ {
		switch t[i] {
		case '(':
			if depth++; depth > maxNesting {
				return s.errorf("section spec nested too deeply")
			}
		case ')':
			depth--
		case '"':
			j := i + 1
			for j < len(t) && t[j] != '"' {
				if t[j] == '\\' {
					j++
				}
				j++
			}
			i = j
			continue
		case ']':
			if depth == 0 {
				goto found
			}
		}
	}
	return s.errorf(`unterminated section spec`)
found:
	s.pos = i + 1
	name := t[start:s.pos:s.pos]
	origin := int64(-1)
	if s.peek() == '<' {
		s.pos++
		n, err := s.number63()
		if err != nil {
			return err
		}
		if s.peek() != '>' {
			return s.unexpected(`">"`)
		}
		s.pos++
		origin = n
	}
	full := t[start:s.pos]
	s.skipSP()
	if eqFold(base, "BODY") || eqFold(base, "BINARY") {
		return s.sectionValue(name, origin)
	}
	return s.rawItem(full)
}

// sectionValue parses the nstring value of a body section into a Section.
func (s *scanner) sectionValue(name []byte, origin int64) error {
	data, err := s.nbytes()
	if err != nil {
		return err
	}
	s.secStart = s.secSlab.push(s.secStart, Section{Name: s.sectionName(name), Origin: origin, Data: data})
	return nil
}

// sectionName returns name as a string, using constants for common names.
func (s *scanner) sectionName(name []byte) string {
	switch string(name) {
	case "BODY[]":
		return "BODY[]"
	case "BODY[HEADER]":
		return "BODY[HEADER]"
	case "BODY[TEXT]":
		return "BODY[TEXT]"
	case "BODY[1]":
		return "BODY[1]"
	case "BINARY[]":
		return "BINARY[]"
	case "RFC822":
		return "RFC822"
	case "RFC822.HEADER":
		return "RFC822.HEADER"
	case "RFC822.TEXT":
		return "RFC822.TEXT"
	}
	return s.arena.str(name)
}

// rawItem keeps an unknown item's value as sent.
func (s *scanner) rawItem(name []byte) error {
	nameStr := s.arena.str(name)
	m := s.mark()
	if err := s.skipValue(); err != nil {
		return err
	}
	s.rawStart = s.rawSlab.push(s.rawStart, RawItem{Name: nameStr, Value: s.rawSince(m)})
	return nil
}

// flagList parses a parenthesised list of flags.
func (s *scanner) flagList() ([]string, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	start := s.strSlab.begin()
	for !s.close() {
		f := s.atom()
		if len(f) == 0 {
			return nil, s.unexpected("flag")
		}
		start = s.strSlab.push(start, flagString(f, &s.arena))
	}
	if flags := s.strSlab.end(start); flags != nil {
		return flags, nil
	}
	return []string{}, nil
}

// gmLabels parses the value of X-GM-LABELS: a parenthesised list of
// astrings (atoms, quoted strings or literals).
func (s *scanner) gmLabels() ([]string, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	start := s.strSlab.begin()
	for !s.close() {
		var (
			raw []byte
			esc bool
			err error
		)
		switch c := s.peek(); {
		case c == '"':
			raw, esc, err = s.quoted()
		case c == '{' || c == '~' && s.pos+1 < len(s.text) && s.text[s.pos+1] == '{':
			raw, err = s.literal()
		default:
			// An atom, which may start with "~" when no "{" follows.
			if raw = s.atom(); len(raw) == 0 {
				err = s.unexpected("label")
			}
		}
		if err != nil {
			return nil, err
		}
		start = s.strSlab.push(start, s.gmLabel(raw, esc))
	}
	if labels := s.strSlab.end(start); labels != nil {
		return labels, nil
	}
	return []string{}, nil
}

// gmLabel returns one label as UTF-8. Gmail quotes system labels with an
// escaped backslash ("\\Inbox") as often as it sends them as atoms; both
// give \Inbox, which is not modified UTF-7 and is kept as it is.
func (s *scanner) gmLabel(raw []byte, esc bool) string {
	var l string
	if esc {
		l = s.arena.unescape(raw)
	} else {
		l = s.arena.str(raw)
	}
	if s.utf8 || len(l) == 0 || l[0] == '\\' {
		return l
	}
	return decodeName(l, false)
}

// modSeq parses a MODSEQ value: "(" number ")".
func (s *scanner) modSeq(dst *uint64) error {
	if err := s.open(); err != nil {
		return err
	}
	s.skipSP()
	n, err := s.number()
	if err != nil {
		return err
	}
	if !s.close() {
		return s.unexpected(`")"`)
	}
	*dst = n
	return nil
}

// internalDate parses a quoted date-time.
func (s *scanner) internalDate(dst *time.Time) error {
	if s.peek() != '"' {
		return s.unexpected("quoted date-time")
	}
	start := s.pos
	raw, _, err := s.quoted()
	if err != nil {
		return err
	}
	t, err := parseDateTime(raw)
	if err != nil {
		s.pos = start
		return s.errorf("bad date-time %q: %v", raw, err)
	}
	*dst = t
	return nil
}
