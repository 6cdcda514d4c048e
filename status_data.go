package imap

// StatusData is the typed form of one STATUS response (RFC 3501 section
// 7.2.4), such as `blurdybloop (MESSAGES 231 UIDNEXT 44292)`. Items the
// server did not return are zero; Present tells which it returned.
type StatusData struct {
	Mailbox       string      // the name, decoded as ListEntry.Name is
	Raw           string      // the name as sent, unquoted
	Messages      uint32      // MESSAGES
	Recent        uint32      // RECENT
	UIDNext       uint32      // UIDNEXT
	UIDValidity   uint32      // UIDVALIDITY
	Unseen        uint32      // UNSEEN
	Deleted       uint32      // DELETED (RFC 9051)
	HighestModSeq uint64      // HIGHESTMODSEQ (RFC 7162)
	Size          int64       // SIZE (RFC 8438)
	Present       StatusItems // the items the server returned
}

// StatusItems is a set of STATUS items.
type StatusItems uint16

// The STATUS items of StatusData.Present.
const (
	StatusMessages StatusItems = 1 << iota
	StatusRecent
	StatusUIDNext
	StatusUIDValidity
	StatusUnseen
	StatusDeleted
	StatusHighestModSeq
	StatusSize
)

// Has reports whether the server returned item.
func (d *StatusData) Has(item StatusItems) bool { return d.Present&item == item }

// ParseStatus parses the data of STATUS results: one StatusData per
// response. Unknown items are skipped. The mailbox name may be an atom, a
// quoted string or a literal.
//
// A malformed response does not stop the others: ParseStatus returns every
// entry it could parse and a *ParseError for the first failure.
func ParseStatus(data []Datum) ([]StatusData, error) {
	return parseEach(data, "STATUS", (*scanner).status)
}

func (s *scanner) status(d *StatusData) error {
	var err error
	if d.Raw, err = s.mailboxName(); err != nil {
		return err
	}
	d.Mailbox = decodeName(d.Raw, false)
	s.skipSP()
	if err := s.open(); err != nil {
		return err
	}
	for !s.close() {
		name := s.atom()
		if len(name) == 0 {
			return s.unexpected("status item")
		}
		s.skipSP()
		var err error
		var item StatusItems
		switch {
		case eqFold(name, "MESSAGES"):
			item = StatusMessages
			d.Messages, err = s.number32()
		case eqFold(name, "RECENT"):
			item = StatusRecent
			d.Recent, err = s.number32()
		case eqFold(name, "UIDNEXT"):
			item = StatusUIDNext
			d.UIDNext, err = s.number32()
		case eqFold(name, "UIDVALIDITY"):
			item = StatusUIDValidity
			d.UIDValidity, err = s.number32()
		case eqFold(name, "UNSEEN"):
			item = StatusUnseen
			d.Unseen, err = s.number32()
		case eqFold(name, "DELETED"):
			item = StatusDeleted
			d.Deleted, err = s.number32()
		case eqFold(name, "HIGHESTMODSEQ"):
			item = StatusHighestModSeq
			d.HighestModSeq, err = s.number()
		case eqFold(name, "SIZE"):
			item = StatusSize
			d.Size, err = s.number63()
		default:
			err = s.skipValue()
		}
		if err != nil {
			return withContext(err, "STATUS", 0, string(name))
		}
		d.Present |= item
	}
	return s.expectEnd()
}
