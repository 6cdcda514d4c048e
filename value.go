package imap

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"iter"
	"math"
	"math/bits"
	"strconv"
)

// MaxNesting is the default bound on how deeply parenthesised lists may
// nest in the data the typed parsers (ParseFetch, ParseList, ...) read, the
// list of a FETCH response itself counting as one level; Parser and
// Options.MaxNesting change it. Real responses stay well below it
// (a BODYSTRUCTURE needs one level per MIME nesting level and two or three
// more for its fields); deeper data is a *ParseError ("lists nested more
// than 100 deep"), so hostile data cannot make the parsers recurse without
// bound.
const MaxNesting = maxNesting

const maxNesting = 100

// ParseError reports response data that does not follow the IMAP grammar.
// The typed parsers (ParseFetch, ParseList, ...) return it.
type ParseError struct {
	Type   string // the response type, e.g. "FETCH" or "LIST"
	Seq    uint32 // the message sequence number for FETCH, or 0
	Item   string // the data item being parsed, e.g. "ENVELOPE", if any
	Offset int    // byte offset in the response (literals counted in place), or -1
	Msg    string // what was wrong
}

// Error returns a message such as
//
//	imap: parse FETCH 12: ENVELOPE: expected "(" at offset 34
func (e *ParseError) Error() string {
	b := make([]byte, 0, 64)
	b = append(b, "imap: parse "...)
	b = append(b, e.Type...)
	if e.Seq != 0 {
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(e.Seq), 10)
	}
	if e.Item != "" {
		b = append(b, ": "...)
		b = append(b, e.Item...)
	}
	b = append(b, ": "...)
	b = append(b, e.Msg...)
	if e.Offset >= 0 {
		b = append(b, " at offset "...)
		b = strconv.AppendInt(b, int64(e.Offset), 10)
	}
	return string(b)
}

// withContext fills in the type, sequence number and item of err if it is a
// *ParseError that does not name them yet, and returns err.
func withContext(err error, typ string, seq uint32, item string) error {
	if pe, ok := err.(*ParseError); ok {
		if pe.Type == "" {
			pe.Type = typ
		}
		if pe.Seq == 0 {
			pe.Seq = seq
		}
		if pe.Item == "" {
			pe.Item = item
		}
	}
	return err
}

// nextResponse splits off the first response of data: the datums up to and
// including the first one without a literal. complete is false when data
// ends in a literal-bearing datum (the trailing text is missing).
func nextResponse(data []Datum) (resp, rest []Datum, complete bool) {
	for i, d := range data {
		if d.Literal == nil {
			return data[:i+1], data[i+1:], true
		}
	}
	return data, nil, false
}

// parsedResponses yields the responses of data that the typed parsers
// parse, in order, with whether each is complete (see nextResponse);
// empty ones are skipped (see isEmptyResponse).
func parsedResponses(data []Datum) iter.Seq2[[]Datum, bool] {
	return func(yield func([]Datum, bool) bool) {
		for rest := data; len(rest) > 0; {
			resp, r, complete := nextResponse(rest)
			rest = r
			if !isEmptyResponse(resp) && !yield(resp, complete) {
				return
			}
		}
	}
}

// countResponses returns the number of responses in data, counting an
// incomplete one at the end.
func countResponses(data []Datum) int {
	n := 0
	for _, d := range data {
		if d.Literal == nil {
			n++
		}
	}
	if len(data) > 0 && data[len(data)-1].Literal != nil {
		n++
	}
	return n
}

// isEmptyResponse reports whether resp is a single datum with no bytes at
// all, which the typed parsers skip (imaplib's "no data" placeholder).
func isEmptyResponse(resp []Datum) bool {
	return len(resp) == 1 && len(resp[0].Text) == 0 && resp[0].Literal == nil
}

// Character classes for the scanner.
const (
	cAtomEnd = 1 << iota // ends an atom: SP, CTL, ( ) " { and DEL
	cItemEnd             // ends a FETCH item name: cAtomEnd or [ or <
)

var charClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		if c <= ' ' || c == 0x7f || c == '(' || c == ')' || c == '"' || c == '{' {
			t[c] |= cAtomEnd | cItemEnd
		}
		if c == '[' || c == '<' {
			t[c] |= cItemEnd
		}
	}
	return t
}()

// scanner walks the data of one response: the Text of each datum in turn,
// with each datum's Literal standing for the "{N}" marker that ends its
// Text. It never concatenates the pieces.
//
// Every method either consumes what it reports or returns a *ParseError;
// none panics, whatever the input. The zero scanner is not usable; call
// reset first.
type scanner struct {
	segs  []Datum
	si    int    // index of the current datum
	text  []byte // segs[si].Text
	pos   int    // position in text
	base  int    // offset of text[0] in the whole response
	depth int    // current list nesting
	limit int    // nesting bound; 0 means MaxNesting

	// own makes the byte values handed out (Section.Data, RawItem.Value)
	// copies instead of slices of the input, for input that is about to
	// be overwritten (FetchMessages parses straight from the read buffer).
	own bool

	// utf8 says UTF8=ACCEPT is enabled: strings are UTF-8, not modified
	// UTF-7 (Gmail's labels).
	utf8 bool

	// Allocation pools shared by all the responses one call parses, and
	// scratch stacks for building slices of unknown length.
	arena     strArena
	strSlab   slab[string]
	addrSlab  slab[Address]
	paramSlab slab[Param]
	partSlab  slab[*BodyStructure]
	bodySlab  slab[BodyStructure]
	envSlab   slab[Envelope]
	secSlab   slab[Section]
	rawSlab   slab[RawItem]
	partStack []*BodyStructure
	// perMessage: the pools are a message's own (see fresh).
	perMessage bool
	secStart   int // the Sections being built (see slab.begin)
	rawStart   int // the Extra items being built
}

// reset makes s scan resp, which must hold at least one datum.
func (s *scanner) reset(resp []Datum) {
	s.segs = resp
	s.si = 0
	s.text = resp[0].Text
	s.pos = 0
	s.base = 0
	s.depth = 0
	clear(s.partStack)
	s.partStack = s.partStack[:0]
}

// mark is a position in the response, for capturing raw values.
type mark struct{ si, pos int }

func (s *scanner) mark() mark { return mark{s.si, s.pos} }

// rawSince returns the bytes from m to the current position. Within one
// datum it is a subslice of its Text; across literals it is rebuilt in wire
// form, with CRLF after each literal marker.
func (s *scanner) rawSince(m mark) []byte {
	if m.si == s.si {
		if s.own {
			return s.arena.bytes(s.text[m.pos:s.pos])
		}
		return s.text[m.pos:s.pos:s.pos]
	}
	n := 0
	for i := m.si; i < s.si; i++ {
		n += len(s.segs[i].Text) + 2 + len(s.segs[i].Literal)
	}
	out := make([]byte, 0, n+s.pos-m.pos)
	out = append(out, s.segs[m.si].Text[m.pos:]...)
	for i := m.si; i < s.si; i++ {
		if i > m.si {
			out = append(out, s.segs[i].Text...)
		}
		out = append(out, '\r', '\n')
		out = append(out, s.segs[i].Literal...)
	}
	return append(out, s.text[:s.pos]...)
}

// skipSame reports whether the data at the current position repeats the
// data from a to b (positions passed earlier, in the same response),
// including any literals in between, and if so moves past the repeat.
func (s *scanner) skipSame(a, b mark) bool {
	n := b.si - a.si // literals inside the span
	if n == 0 {
		piece := s.segs[a.si].Text[a.pos:b.pos]
		if !bytes.HasPrefix(s.text[s.pos:], piece) {
			return false
		}
		s.pos += len(piece)
		return true
	}
	if s.si+n >= len(s.segs) || !bytes.Equal(s.text[s.pos:], s.segs[a.si].Text[a.pos:]) {
		return false
	}
	for k := 0; k < n; k++ {
		src, dst := s.segs[a.si+k], s.segs[s.si+k]
		if (k > 0 && !bytes.Equal(src.Text, dst.Text)) || dst.Literal == nil || !bytes.Equal(src.Literal, dst.Literal) {
			return false
		}
	}
	last := s.segs[b.si].Text[:b.pos]
	if !bytes.HasPrefix(s.segs[s.si+n].Text, last) {
		return false
	}
	for k := 0; k < n; k++ {
		s.base += len(s.text) + len(s.segs[s.si].Literal)
		s.si++
		s.text = s.segs[s.si].Text
	}
	s.pos = len(last)
	return true
}

// offset returns the current offset in the whole response.
func (s *scanner) offset() int { return s.base + s.pos }

// errorf returns a *ParseError at the current offset.
func (s *scanner) errorf(format string, args ...any) error {
	return &ParseError{Offset: s.offset(), Msg: fmt.Sprintf(format, args...)}
}

// unexpected returns an error saying what was expected and what was found.
func (s *scanner) unexpected(what string) error {
	if s.pos >= len(s.text) {
		if s.si == len(s.segs)-1 {
			return s.errorf("expected %s, found end of data", what)
		}
		return s.errorf("expected %s, found end of line", what)
	}
	c := s.text[s.pos]
	if c > ' ' && c < 0x7f {
		return s.errorf("expected %s, found %q", what, rune(c))
	}
	return s.errorf("expected %s, found byte %#02x", what, c)
}

// atEnd reports whether the whole response has been consumed.
func (s *scanner) atEnd() bool { return s.pos >= len(s.text) && s.si == len(s.segs)-1 }

// peek returns the next byte of the current datum's Text, or 0 at its end.
func (s *scanner) peek() byte {
	if s.pos < len(s.text) {
		return s.text[s.pos]
	}
	return 0
}

// skipSP skips spaces. The grammar wants exactly one between tokens; some
// servers send more, and nothing is lost by accepting them.
func (s *scanner) skipSP() {
	for s.pos < len(s.text) && s.text[s.pos] == ' ' {
		s.pos++
	}
}

// expectEnd checks that only spaces remain in the response.
func (s *scanner) expectEnd() error {
	s.skipSP()
	if !s.atEnd() {
		return s.unexpected("end of response")
	}
	return nil
}

// open consumes "(" and enters a list.
func (s *scanner) open() error {
	if s.peek() != '(' {
		return s.unexpected(`"("`)
	}
	limit := s.limit
	if limit <= 0 {
		limit = maxNesting
	}
	if s.depth >= limit {
		return s.errorf("lists nested more than %d deep", limit)
	}
	s.depth++
	s.pos++
	return nil
}

// close skips spaces and, if the list ends here, consumes ")" and reports
// true.
func (s *scanner) close() bool {
	s.skipSP()
	if s.peek() == ')' {
		s.pos++
		s.depth--
		return true
	}
	return false
}

// isNIL reports whether the next token is NIL, and consumes it if so.
func (s *scanner) isNIL() bool {
	t := s.text[s.pos:]
	if len(t) >= 3 && t[0]|0x20 == 'n' && t[1]|0x20 == 'i' && t[2]|0x20 == 'l' &&
		(len(t) == 3 || charClass[t[3]]&cAtomEnd != 0 || t[3] == ']') {
		s.pos += 3
		return true
	}
	return false
}

// openOrNIL consumes "(" and reports true, or consumes NIL and reports
// false.
func (s *scanner) openOrNIL() (bool, error) {
	if s.peek() == '(' {
		return true, s.open()
	}
	if s.isNIL() {
		return false, nil
	}
	return false, s.unexpected(`"(" or NIL`)
}

// atom consumes an atom: a run of bytes that are not SP, CTL, "(", ")",
// '"' or "{". It may be empty.
func (s *scanner) atom() []byte {
	t := s.text
	i := s.pos
	for i < len(t) && charClass[t[i]]&cAtomEnd == 0 {
		i++
	}
	a := t[s.pos:i:i]
	s.pos = i
	return a
}

// number consumes a decimal number that fits in 64 bits.
func (s *scanner) number() (uint64, error) {
	t := s.text
	i := s.pos
	var n uint64
	for i < len(t) && isDigit(t[i]) {
		d := uint64(t[i] - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, s.errorf("number too large")
		}
		n = n*10 + d
		i++
	}
	if i == s.pos {
		return 0, s.unexpected("number")
	}
	if i < len(t) && charClass[t[i]]&cAtomEnd == 0 && t[i] != ']' && t[i] != '>' {
		s.pos = i
		return 0, s.errorf("unexpected %q after number", rune(t[i]))
	}
	s.pos = i
	return n, nil
}

// number32 consumes a number that fits in 32 bits.
func (s *scanner) number32() (uint32, error) {
	start := s.pos
	n, err := s.number()
	if err == nil && n > math.MaxUint32 {
		s.pos = start
		return 0, s.errorf("number %d out of range", n)
	}
	return uint32(n), err
}

// number63 consumes a number that fits in an int64.
func (s *scanner) number63() (int64, error) {
	start := s.pos
	n, err := s.number()
	if err == nil && n > math.MaxInt64 {
		s.pos = start
		return 0, s.errorf("number %d out of range", n)
	}
	return int64(n), err
}

// quoted consumes a quoted string and returns its content between the
// quotes, still escaped when esc is true.
func (s *scanner) quoted() (raw []byte, esc bool, err error) {
	t := s.text[s.pos+1:]
	for i := 0; ; i++ {
		i = quoteStop(t, i)
		switch {
		case i >= len(t):
			return nil, false, s.errorf("unterminated quoted string")
		case t[i] == '"':
			s.pos += i + 2
			return t[:i:i], esc, nil
		}
		esc = true // t[i] is a backslash; skip the escaped byte
		i++
	}
}

// quoteStop returns the index of the first '"' or '\\' in t at or after
// i, or len(t). It looks at eight bytes at a time.
func quoteStop(t []byte, i int) int {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(t); i += 8 {
		x := binary.LittleEndian.Uint64(t[i:])
		q := x ^ (lsb * '"')
		b := x ^ (lsb * '\\')
		// A byte of q or b is zero where x has a quote or a backslash;
		// the lowest flagged byte is exact.
		if m := ((q-lsb)&^q | (b-lsb)&^b) & msb; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(t); i++ {
		if c := t[i]; c == '"' || c == '\\' {
			return i
		}
	}
	return len(t)
}

// atLiteral reports whether a literal marker starts here: "{", or "~{"
// (a "~" alone starts an atom, such as the mailbox name ~work).
func (s *scanner) atLiteral() bool {
	switch s.peek() {
	case '{':
		return true
	case '~':
		return s.pos+1 < len(s.text) && s.text[s.pos+1] == '{'
	}
	return false
}

// literal consumes a literal marker "{N}" (or "~{N}" for binary data, or
// "{N+}"), which must end the current datum's Text, and returns the
// literal's bytes, moving on to the next datum.
func (s *scanner) literal() ([]byte, error) {
	t := s.text
	i := s.pos
	if i < len(t) && t[i] == '~' {
		i++
	}
	if i >= len(t) || t[i] != '{' {
		return nil, s.unexpected("literal")
	}
	i++
	n, start := 0, i
	for i < len(t) && isDigit(t[i]) {
		if n > (math.MaxInt32-9)/10 {
			return nil, s.errorf("literal size too large")
		}
		n = n*10 + int(t[i]-'0')
		i++
	}
	if i < len(t) && t[i] == '+' {
		i++
	}
	if i == start || i >= len(t) || t[i] != '}' {
		return nil, s.errorf("malformed literal marker")
	}
	if i+1 != len(t) {
		return nil, s.errorf("literal marker not at end of line")
	}
	d := s.segs[s.si]
	if d.Literal == nil {
		return nil, s.errorf("literal marker without literal data")
	}
	if s.si == len(s.segs)-1 {
		return nil, s.errorf("data ends in a literal")
	}
	if len(d.Literal) != n {
		return nil, s.errorf("literal has %d bytes, marker says %d", len(d.Literal), n)
	}
	s.base += len(t) + len(d.Literal)
	s.si++
	s.text = s.segs[s.si].Text
	s.pos = 0
	return d.Literal, nil
}

// nstring consumes a string (quoted or literal) or NIL. For a quoted string
// with escapes, esc is true and raw still holds the escapes.
func (s *scanner) nstring() (raw []byte, esc, isNil bool, err error) {
	switch s.peek() {
	case '"':
		raw, esc, err = s.quoted()
		return raw, esc, false, err
	case '{', '~':
		raw, err = s.literal()
		return raw, false, false, err
	case 'N', 'n':
		if s.isNIL() {
			return nil, false, true, nil
		}
	}
	return nil, false, false, s.unexpected("string or NIL")
}

// nstr skips spaces, consumes a string or NIL and returns it as a string
// ("" for NIL).
func (s *scanner) nstr() (string, error) {
	// Fast paths: NIL, and a quoted string without escapes.
	t, p := s.text, s.pos
	for p < len(t) && t[p] == ' ' {
		p++
	}
	s.pos = p
	if p < len(t) {
		switch t[p] {
		case '"':
			if i := quoteStop(t, p+1); i < len(t) && t[i] == '"' {
				s.pos = i + 1
				return s.arena.str(t[p+1 : i]), nil
			}
		case 'N', 'n':
			if s.isNIL() {
				return "", nil
			}
		}
	}
	raw, esc, _, err := s.nstring()
	if err != nil || len(raw) == 0 {
		return "", err
	}
	if esc {
		return s.arena.unescape(raw), nil
	}
	return s.arena.str(raw), nil
}

// nbytes consumes a string or NIL and returns its bytes (nil for NIL).
// They alias the input unless the string had escapes.
func (s *scanner) nbytes() ([]byte, error) {
	raw, esc, isNil, err := s.nstring()
	if err != nil || isNil {
		return nil, err
	}
	if esc {
		return unescape(make([]byte, 0, len(raw)), raw), nil
	}
	if s.own {
		return s.arena.bytes(raw), nil
	}
	return raw, nil
}

// astring consumes an astring (RFC 3501): an atom (which may contain "]"),
// a quoted string or a literal.
func (s *scanner) astring() (raw []byte, esc bool, err error) {
	if s.peek() == '"' {
		return s.quoted()
	}
	if s.atLiteral() {
		raw, err = s.literal()
		return raw, false, err
	}
	a := s.atom()
	if len(a) == 0 {
		return nil, false, s.unexpected("string")
	}
	return a, false, nil
}

// skipValue consumes one value of any kind (atom, number, NIL, string,
// literal or list) without interpreting it.
func (s *scanner) skipValue() error {
	switch s.peek() {
	case '(':
		if err := s.open(); err != nil {
			return err
		}
		for !s.close() {
			if err := s.skipValue(); err != nil {
				return err
			}
		}
		return nil
	case '"':
		_, _, err := s.quoted()
		return err
	}
	if s.atLiteral() {
		_, err := s.literal()
		return err
	}
	if a := s.atom(); len(a) > 0 {
		return nil
	}
	return s.unexpected("value")
}

// unescape appends the content of a quoted string to dst, resolving
// backslash escapes.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' && i+1 < len(raw) {
			i++
			c = raw[i]
		}
		dst = append(dst, c)
	}
	return dst
}

// eqFold reports whether b equals the upper-case ASCII string upper,
// ignoring case.
func eqFold(b []byte, upper string) bool {
	if len(b) != len(upper) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != upper[i] {
			return false
		}
	}
	return true
}

// parseEach parses every response of data (see nextResponse) with parse,
// one value per response. A malformed response does not stop the others:
// it returns every value it could parse and a *ParseError, naming typ, for
// the first failure.
func parseEach[T any](data []Datum, typ string, parse func(*scanner, *T) error) ([]T, error) {
	n := countResponses(data)
	if n == 0 {
		return nil, nil
	}
	out := make([]T, 0, n)
	var s scanner
	var firstErr error
	for resp, complete := range parsedResponses(data) {
		s.reset(resp)
		var v T
		err := parse(&s, &v)
		if err == nil && !complete {
			err = &ParseError{Offset: -1, Msg: "data ends in a literal"}
		}
		if err != nil {
			if firstErr == nil {
				firstErr = withContext(err, typ, 0, "")
			}
			continue
		}
		out = append(out, v)
	}
	return out, firstErr
}
