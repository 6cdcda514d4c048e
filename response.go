package imap

// Datum is one piece of response data, shaped like an element of the data
// list in imaplib's (typ, [data]) results: plain bytes, or a
// (header, literal) pair when the server sent a literal.
//
// Text holds the bytes of a line (without CRLF). When the line ended in a
// literal marker such as "{41}", Literal holds the literal's bytes (non-nil,
// possibly empty) and Text ends with that marker. Literal is nil for plain
// bytes.
type Datum struct {
	Text    []byte
	Literal []byte
}

// IsLiteral reports whether d is a (header, literal) pair.
func (d Datum) IsLiteral() bool { return d.Literal != nil }

// String returns the text of d, with the literal appended after the header
// when there is one. It is meant for display and logging.
func (d Datum) String() string {
	if d.Literal == nil {
		return string(d.Text)
	}
	return string(d.Text) + string(d.Literal)
}

// Response is one untagged response, as returned by (*Client).Response and
// (*Client).Unsolicited and delivered by an Idler: Type is the response name ("EXISTS", "FETCH",
// "OK", or a response code such as "UIDVALIDITY") and Data its data.
//
// A response that carried literals has one Datum per literal, followed by
// the trailing text, for example
//
//	FETCH [{"1 (BODY[HEADER.FIELDS (DATE)] {41}", "Date: ..."}, {")"}]
type Response struct {
	Type string
	Data []Datum
}

// Last returns the text of the last datum, "" when there is none: the
// current value of a response code such as UIDVALIDITY or UIDNEXT, which a
// server may send more than once. (Indexing Data of a type nothing was
// cached for panics; imaplib's response() gives [None] there.)
func (r Response) Last() string {
	if len(r.Data) == 0 {
		return ""
	}
	return string(r.Data[len(r.Data)-1].Text)
}

// Result is the outcome of one command, like imaplib's (typ, [data]) pair.
// Status is the tagged status ("OK", "NO", "BAD"), or "BYE" after LOGOUT.
// Data holds the untagged data of the type the command asks for (for
// example every FETCH datum for Fetch), or the tagged response text when the
// command returns no data of its own (or failed).
//
// Data holds only what arrived between sending the command and its tagged
// completion: data of the same type that arrived earlier (an EXPUNGE sent
// during UID MOVE, before Expunge) stays cached for (*Client).Response and
// Unsolicited. When the command fails, the data of its type that did arrive
// are left in the cache too, as imaplib leaves them.
type Result struct {
	Status string
	Data   []Datum
}

// Texts returns the Text of every datum of r, a convenience for results that
// carry no literals.
func (r Result) Texts() []string {
	out := make([]string, len(r.Data))
	for i, d := range r.Data {
		out[i] = string(d.Text)
	}
	return out
}
