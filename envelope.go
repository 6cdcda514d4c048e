package imap

// Envelope is the ENVELOPE of a message (RFC 3501 section 7.4.2): its main
// header fields as the server parsed them. Strings are kept as sent; RFC
// 2047 encoded words are not decoded. NIL fields are empty.
type Envelope struct {
	Date      string    // the Date header field, unparsed
	Subject   string    // the Subject header field
	From      []Address // the From addresses
	Sender    []Address // the Sender addresses (servers default it to From)
	ReplyTo   []Address // the Reply-To addresses (servers default it to From)
	To        []Address // the To addresses
	Cc        []Address // the Cc addresses
	Bcc       []Address // the Bcc addresses
	InReplyTo string    // the In-Reply-To header field
	MessageID string    // the Message-ID header field, angle brackets included
}

// Address is one element of an ENVELOPE address list. An RFC 5322 group
// appears as a start marker (Mailbox is the group name, Host is empty), the
// group's members, and an end marker (Mailbox and Host both empty).
type Address struct {
	Name    string // the display name, e.g. "Fred Foobar"
	ADL     string // the obsolete source route, almost always empty
	Mailbox string // the local part, e.g. "foobar"
	Host    string // the domain, e.g. "blurdybloop.example"
}

// Addr returns the address in the form mailbox@host, or just the mailbox
// when there is no host (group markers).
func (a Address) Addr() string {
	if a.Host == "" {
		return a.Mailbox
	}
	return a.Mailbox + "@" + a.Host
}

// envelope parses an ENVELOPE value into env.
func (s *scanner) envelope(env *Envelope) error {
	if err := s.open(); err != nil {
		return err
	}
	var err error
	if env.Date, err = s.nstr(); err != nil {
		return err
	}
	if env.Subject, err = s.nstr(); err != nil {
		return err
	}
	// Servers repeat From as Sender and Reply-To when those are absent.
	// When a later list is byte for byte the From list, copy the parsed
	// addresses instead of parsing them again. A prefix match is enough: a
	// parenthesised list ends where its parentheses balance.
	var fromStart, fromEnd mark
	for i, list := range [...]*[]Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc} {
		s.skipSP()
		if i > 0 && len(env.From) > 0 && s.skipSame(fromStart, fromEnd) {
			*list = s.addrSlab.alloc(len(env.From))
			copy(*list, env.From)
			continue
		}
		start := s.mark()
		if *list, err = s.addressList(); err != nil {
			return err
		}
		if i == 0 {
			fromStart, fromEnd = start, s.mark()
		}
	}
	if env.InReplyTo, err = s.nstr(); err != nil {
		return err
	}
	if env.MessageID, err = s.nstr(); err != nil {
		return err
	}
	if !s.close() {
		return s.unexpected(`")" after ENVELOPE fields`)
	}
	return nil
}

// addressList parses NIL or a parenthesised list of addresses.
func (s *scanner) addressList() ([]Address, error) {
	ok, err := s.openOrNIL()
	if !ok {
		return nil, err
	}
	start := s.addrSlab.begin()
	for !s.close() {
		var a Address
		if err := s.open(); err != nil {
			return nil, err
		}
		if a.Name, err = s.nstr(); err != nil {
			return nil, err
		}
		if a.ADL, err = s.nstr(); err != nil {
			return nil, err
		}
		if a.Mailbox, err = s.nstr(); err != nil {
			return nil, err
		}
		if a.Host, err = s.nstr(); err != nil {
			return nil, err
		}
		if !s.close() {
			return nil, s.unexpected(`")" after address fields`)
		}
		start = s.addrSlab.push(start, a)
	}
	return s.addrSlab.end(start), nil
}
