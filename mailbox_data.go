package imap

// MailboxData is the state of a mailbox that SELECT or EXAMINE reports
// (RFC 3501 section 6.3.1), gathered from the untagged data the client
// cached. Values the server did not send are zero.
type MailboxData struct {
	Flags          []string // FLAGS: the flags defined in the mailbox
	PermanentFlags []string // PERMANENTFLAGS: the flags that can be changed permanently; \* allows new keywords
	Exists         uint32   // EXISTS: the number of messages
	Recent         uint32   // RECENT
	UIDValidity    uint32   // UIDVALIDITY
	UIDNext        uint32   // UIDNEXT: the predicted next UID
	Unseen         uint32   // UNSEEN: the sequence number of the first unseen message
	HighestModSeq  uint64   // HIGHESTMODSEQ (RFC 7162)
	ReadOnly       bool     // READ-ONLY was reported
}

// ParseMailboxData builds a MailboxData from the cached untagged data of a
// SELECT or EXAMINE: get(typ) returns the data cached under typ (for
// example a Client's cached responses), for the types "FLAGS", "EXISTS",
// "RECENT", "UIDVALIDITY", "UIDNEXT", "UNSEEN", "PERMANENTFLAGS",
// "HIGHESTMODSEQ" and "READ-ONLY". Response-code types hold the code's data
// ("3857529045" for UIDVALIDITY, `(\Deleted \Seen \*)` for PERMANENTFLAGS).
//
// When a type holds several data, the last one counts. Data that cannot be
// parsed is ignored: the result is best effort and never nil.
func ParseMailboxData(get func(typ string) []Datum) *MailboxData {
	md := new(MailboxData)
	last := func(typ string) []byte {
		data := get(typ)
		for i := len(data) - 1; i >= 0; i-- {
			if data[i].Literal == nil && data[i].Text != nil {
				return data[i].Text
			}
		}
		return nil
	}
	md.Flags = parseFlagListDatum(last("FLAGS"))
	md.PermanentFlags = parseFlagListDatum(last("PERMANENTFLAGS"))
	md.Exists = uint32(leadingNumber(last("EXISTS"), 1<<32-1))
	md.Recent = uint32(leadingNumber(last("RECENT"), 1<<32-1))
	md.UIDValidity = uint32(leadingNumber(last("UIDVALIDITY"), 1<<32-1))
	md.UIDNext = uint32(leadingNumber(last("UIDNEXT"), 1<<32-1))
	md.Unseen = uint32(leadingNumber(last("UNSEEN"), 1<<32-1))
	md.HighestModSeq = leadingNumber(last("HIGHESTMODSEQ"), 1<<63-1)
	md.ReadOnly = len(get("READ-ONLY")) > 0
	return md
}

// parseFlagListDatum parses "(flag ...)" into flags, or returns nil.
func parseFlagListDatum(text []byte) []string {
	if text == nil {
		return nil
	}
	var s scanner
	s.reset([]Datum{{Text: text}})
	s.skipSP()
	flags, err := s.flagList()
	if err != nil {
		return nil
	}
	return flags
}

// leadingNumber parses the decimal number at the start of text (after
// spaces), or returns 0 when there is none or it exceeds max.
func leadingNumber(text []byte, max uint64) uint64 {
	i := 0
	for i < len(text) && text[i] == ' ' {
		i++
	}
	var n uint64
	start := i
	for ; i < len(text) && isDigit(text[i]); i++ {
		d := uint64(text[i] - '0')
		if n > (max-d)/10 {
			// Fix: checked before multiplying. Checking after let n*10 wrap
			// around for 64-bit values: HIGHESTMODSEQ 20000000000000000000
			// gave 1553255926290448384 instead of 0.
			return 0
		}
		n = n*10 + d
	}
	if i == start || (i < len(text) && text[i] != ' ') {
		return 0
	}
	return n
}
