package imap

import (
	"strconv"
	"strings"
)

// BodyStructure describes the MIME structure of a message or of one of its
// parts, from a BODYSTRUCTURE or BODY data item (RFC 3501 section 7.4.2).
// Type, Subtype, Encoding and Disposition are lower-cased, as are parameter
// names; other strings are kept as sent (RFC 2047/2231 encodings are not
// decoded). NIL fields are empty.
type BodyStructure struct {
	Type    string  // media type, e.g. "text", "image", "multipart"
	Subtype string  // media subtype, e.g. "plain", "jpeg", "mixed"
	Params  []Param // Content-Type parameters, e.g. charset or boundary

	// Single-part fields.
	ID          string // Content-ID
	Description string // Content-Description
	Encoding    string // Content-Transfer-Encoding, e.g. "base64"
	Size        int64  // size of the body in octets, as transferred
	Lines       int64  // size in lines, for text and message/rfc822 parts

	// Parts holds the parts of a multipart, in order.
	Parts []*BodyStructure

	// The message encapsulated in a message/rfc822 (or message/global)
	// part.
	Envelope *Envelope      // its envelope
	Body     *BodyStructure // its body structure

	// Extension data, sent for BODYSTRUCTURE but not for BODY.
	Extended          bool     // whether the server sent extension data
	MD5               string   // Content-MD5 (single parts only)
	Disposition       string   // Content-Disposition, e.g. "attachment"
	DispositionParams []Param  // Content-Disposition parameters
	Language          []string // Content-Language tags
	Location          string   // Content-Location URI
}

// Param is one MIME parameter of a Content-Type or Content-Disposition.
type Param struct {
	Name  string // lower-cased, e.g. "charset"
	Value string // as sent, e.g. "utf-8"
}

// MediaType returns the lower-cased "type/subtype" of b, e.g. "text/plain".
func (b *BodyStructure) MediaType() string { return b.Type + "/" + b.Subtype }

// IsMultipart reports whether b is a multipart body.
func (b *BodyStructure) IsMultipart() bool { return b.Type == "multipart" }

// Param returns the value of the Content-Type parameter name (matched
// without regard to case), or "" if there is none.
func (b *BodyStructure) Param(name string) string { return paramValue(b.Params, name) }

// Filename returns the filename disposition parameter of b, or else its
// name Content-Type parameter, or "".
func (b *BodyStructure) Filename() string {
	if f := paramValue(b.DispositionParams, "filename"); f != "" {
		return f
	}
	return paramValue(b.Params, "name")
}

func paramValue(params []Param, name string) string {
	for _, p := range params {
		if strings.EqualFold(p.Name, name) {
			return p.Value
		}
	}
	return ""
}

// Walk calls fn for b and every part below it, depth first, with the part's
// IMAP part specifier (RFC 3501 section 6.4.5), as used in BODY[2.1]. A
// single-part message is part "1"; a top-level multipart has specifier "";
// the parts of a multipart at "2" are "2.1", "2.2", ...; the body of a
// message/rfc822 part at "3" is "3.1" when it is a single part, and when it
// is a multipart it shares the specifier "3" and its parts are "3.1",
// "3.2", .... When fn returns false, Walk does not descend into that part.
func (b *BodyStructure) Walk(fn func(part string, b *BodyStructure) bool) {
	if b.IsMultipart() {
		b.walk("", fn)
	} else {
		b.walk("1", fn)
	}
}

func (b *BodyStructure) walk(spec string, fn func(string, *BodyStructure) bool) {
	if !fn(spec, b) {
		return
	}
	switch {
	case b.IsMultipart():
		for i, p := range b.Parts {
			p.walk(joinPart(spec, i+1), fn)
		}
	case b.Body != nil:
		if b.Body.IsMultipart() {
			b.Body.walk(spec, fn)
		} else {
			b.Body.walk(joinPart(spec, 1), fn)
		}
	}
}

func joinPart(spec string, n int) string {
	if spec == "" {
		return strconv.Itoa(n)
	}
	return spec + "." + strconv.Itoa(n)
}

// body parses a BODY or BODYSTRUCTURE value into b.
func (s *scanner) body(b *BodyStructure) error {
	if err := s.open(); err != nil {
		return err
	}
	s.skipSP()
	if s.peek() == '(' {
		return s.multipart(b)
	}
	return s.singlePart(b)
}

// multipart parses the rest of a multipart body, after its "(".
func (s *scanner) multipart(b *BodyStructure) error {
	b.Type = "multipart"
	mark := len(s.partStack)
	for s.peek() == '(' {
		part := s.bodySlab.one()
		if err := s.body(part); err != nil {
			return err
		}
		s.partStack = append(s.partStack, part)
		s.skipSP()
	}
	b.Parts = carve(&s.partSlab, &s.partStack, mark)
	if s.close() {
		return nil // no subtype: not valid, but harmless
	}
	var err error
	if b.Subtype, err = s.mimeToken(); err != nil {
		return err
	}
	if s.close() {
		return nil
	}
	b.Extended = true
	if b.Params, err = s.params(); err != nil {
		return err
	}
	return s.bodyExtension(b)
}

// singlePart parses the rest of a non-multipart body, after its "(".
func (s *scanner) singlePart(b *BodyStructure) error {
	var err error
	if b.Type, err = s.mimeToken(); err != nil {
		return err
	}
	s.skipSP()
	if b.Subtype, err = s.mimeToken(); err != nil {
		return err
	}
	s.skipSP()
	if b.Params, err = s.params(); err != nil {
		return err
	}
	if b.ID, err = s.nstr(); err != nil {
		return err
	}
	if b.Description, err = s.nstr(); err != nil {
		return err
	}
	s.skipSP()
	if b.Encoding, err = s.mimeToken(); err != nil {
		return err
	}
	s.skipSP()
	if b.Size, err = s.number63(); err != nil {
		return err
	}
	s.skipSP()
	if b.Type == "message" && (b.Subtype == "rfc822" || b.Subtype == "global") && s.peek() == '(' {
		b.Envelope = s.envSlab.one()
		if err := s.envelope(b.Envelope); err != nil {
			return err
		}
		s.skipSP()
		b.Body = s.bodySlab.one()
		if err := s.body(b.Body); err != nil {
			return err
		}
		s.skipSP()
	}
	// Lines are defined for text and message/rfc822 parts; accept them
	// wherever a server sends them.
	if isDigit(s.peek()) {
		if b.Lines, err = s.number63(); err != nil {
			return err
		}
	}
	if s.close() {
		return nil
	}
	b.Extended = true
	if b.MD5, err = s.nstr(); err != nil {
		return err
	}
	return s.bodyExtension(b)
}

// bodyExtension parses the optional disposition, language, location and
// further extension data that follow the parameters of a multipart or the
// MD5 of a single part, and the closing ")".
func (s *scanner) bodyExtension(b *BodyStructure) error {
	if s.close() {
		return nil
	}
	if err := s.disposition(b); err != nil {
		return err
	}
	if s.close() {
		return nil
	}
	if err := s.language(b); err != nil {
		return err
	}
	if s.close() {
		return nil
	}
	var err error
	if b.Location, err = s.nstr(); err != nil {
		return err
	}
	for !s.close() {
		if err := s.skipValue(); err != nil {
			return err
		}
	}
	return nil
}

// disposition parses body-fld-dsp: NIL or ("type" params).
func (s *scanner) disposition(b *BodyStructure) error {
	if s.peek() == '"' || s.peek() == '{' {
		// Not valid, but some servers send a bare string.
		var err error
		b.Disposition, err = s.mimeToken()
		return err
	}
	ok, err := s.openOrNIL()
	if !ok {
		return err
	}
	s.skipSP()
	if b.Disposition, err = s.mimeToken(); err != nil {
		return err
	}
	s.skipSP()
	if b.DispositionParams, err = s.params(); err != nil {
		return err
	}
	if !s.close() {
		return s.unexpected(`")" after disposition`)
	}
	return nil
}

// language parses body-fld-lang: NIL, a string, or a list of strings.
func (s *scanner) language(b *BodyStructure) error {
	if s.peek() != '(' {
		l, err := s.nstr()
		if l != "" {
			b.Language = s.strSlab.alloc(1)
			b.Language[0] = l
		}
		return err
	}
	if err := s.open(); err != nil {
		return err
	}
	start := s.strSlab.begin()
	for !s.close() {
		l, err := s.nstr()
		if err != nil {
			return err
		}
		start = s.strSlab.push(start, l)
	}
	b.Language = s.strSlab.end(start)
	return nil
}

// params parses body-fld-param: NIL or a list of name/value string pairs.
func (s *scanner) params() ([]Param, error) {
	ok, err := s.openOrNIL()
	if !ok {
		return nil, err
	}
	start := s.paramSlab.begin()
	for !s.close() {
		var p Param
		if p.Name, err = s.mimeToken(); err != nil {
			return nil, err
		}
		s.skipSP()
		raw, esc, _, err := s.nstring()
		if err != nil {
			return nil, err
		}
		if esc {
			p.Value = s.arena.unescape(raw)
		} else if p.Value = internParamValue(raw); p.Value == "" {
			p.Value = s.arena.str(raw)
		}
		start = s.paramSlab.push(start, p)
	}
	return s.paramSlab.end(start), nil
}

// mimeToken parses a string or NIL holding a case-insensitive token (media
// type, subtype, encoding, disposition, parameter name) and returns it
// lower-cased, using a shared constant for common values.
func (s *scanner) mimeToken() (string, error) {
	raw, esc, _, err := s.nstring()
	if err != nil || len(raw) == 0 {
		return "", err
	}
	if esc {
		raw = unescape(make([]byte, 0, len(raw)), raw)
	}
	if t := internMIME(raw); t != "" {
		return t, nil
	}
	return s.arena.lower(raw), nil
}

// internMIME returns the lower-cased constant for the common MIME token b,
// or "".
func internMIME(b []byte) string {
	var buf [24]byte
	if len(b) > len(buf) {
		return ""
	}
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	switch string(buf[:len(b)]) {
	case "text":
		return "text"
	case "plain":
		return "plain"
	case "html":
		return "html"
	case "multipart":
		return "multipart"
	case "mixed":
		return "mixed"
	case "alternative":
		return "alternative"
	case "related":
		return "related"
	case "signed":
		return "signed"
	case "report":
		return "report"
	case "application":
		return "application"
	case "octet-stream":
		return "octet-stream"
	case "pdf":
		return "pdf"
	case "pgp-signature":
		return "pgp-signature"
	case "image":
		return "image"
	case "jpeg":
		return "jpeg"
	case "png":
		return "png"
	case "gif":
		return "gif"
	case "message":
		return "message"
	case "rfc822":
		return "rfc822"
	case "global":
		return "global"
	case "delivery-status":
		return "delivery-status"
	case "calendar":
		return "calendar"
	case "7bit":
		return "7bit"
	case "8bit":
		return "8bit"
	case "binary":
		return "binary"
	case "base64":
		return "base64"
	case "quoted-printable":
		return "quoted-printable"
	case "charset":
		return "charset"
	case "boundary":
		return "boundary"
	case "name":
		return "name"
	case "filename":
		return "filename"
	case "format":
		return "format"
	case "delsp":
		return "delsp"
	case "attachment":
		return "attachment"
	case "inline":
		return "inline"
	}
	return ""
}

// internParamValue returns a shared constant for common parameter values
// (matched exactly: values are case-sensitive), or "".
func internParamValue(b []byte) string {
	switch string(b) {
	case "utf-8":
		return "utf-8"
	case "UTF-8":
		return "UTF-8"
	case "us-ascii":
		return "us-ascii"
	case "US-ASCII":
		return "US-ASCII"
	case "iso-8859-1":
		return "iso-8859-1"
	case "ISO-8859-1":
		return "ISO-8859-1"
	case "windows-1252":
		return "windows-1252"
	case "flowed":
		return "flowed"
	case "fixed":
		return "fixed"
	case "yes":
		return "yes"
	case "no":
		return "no"
	}
	return ""
}
