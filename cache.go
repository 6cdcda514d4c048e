package imap

import "encoding/binary"

// cache is imaplib's untagged_responses: data by response type, in arrival
// order within a type. It is a small slice rather than a map, because a
// client usually holds a handful of types and thousands of idle clients
// should stay small; the number of types is bounded so that a hostile
// server inventing names cannot make lookups slow.
//
// Between commands a small cache is frozen: encoded into one byte slice
// (see freeze), which costs an idle client a few hundred bytes where the
// entries, their lists and their bytes took about 2 KiB in a dozen
// allocations after a SELECT. Lookups and pops work on the frozen form;
// adding data thaws it.
type cache struct {
	entries []cacheEntry
	frozen  []byte // when not nil: every entry, encoded; entries is nil
	count   int    // data held, for Options.MaxCached
	evicted int    // data dropped with the oldest type, for Client.Dropped
}

type cacheEntry struct {
	typ  string
	data []Datum
}

// maxCacheTypes bounds the distinct types held; past it the oldest type is
// dropped.
const maxCacheTypes = 256

// A cache is frozen only when it holds at most freezeMaxData data in at
// most freezeMaxBytes bytes: lookups in the frozen form scan it.
const (
	freezeMaxData  = 64
	freezeMaxBytes = 4096
)

func (k *cache) index(typ string) int {
	for i := range k.entries {
		if k.entries[i].typ == typ {
			return i
		}
	}
	return -1
}

// get returns the data of typ, nil when absent; ok says whether typ is
// present (possibly with no data).
func (k *cache) get(typ string) (data []Datum, ok bool) {
	if k.frozen != nil {
		start, end := k.find(typ)
		if start < 0 {
			return nil, false
		}
		return decodeData(k.frozen[start:end]), true
	}
	if i := k.index(typ); i >= 0 {
		return k.entries[i].data, true
	}
	return nil, false
}

// has reports whether typ is present.
func (k *cache) has(typ string) bool {
	if k.frozen != nil {
		start, _ := k.find(typ)
		return start >= 0
	}
	return k.index(typ) >= 0
}

// list returns a pointer to typ's data, creating the entry.
func (k *cache) list(typ string) *[]Datum {
	k.thaw()
	if i := k.index(typ); i >= 0 {
		return &k.entries[i].data
	}
	if len(k.entries) >= maxCacheTypes {
		// Fix (limits): count what is evicted, as Dropped promises.
		k.evicted += len(k.entries[0].data)
		k.count -= len(k.entries[0].data)
		k.entries = append(k.entries[:0], k.entries[1:]...)
	}
	if k.entries == nil {
		// Room for what a SELECT leaves at once: growing 1, 2, 4, 8 made
		// four short-lived slices, in size classes that long-lived objects
		// of a connection use (the frozen cache, say), leaving holes.
		k.entries = make([]cacheEntry, 0, 16)
	}
	k.entries = append(k.entries, cacheEntry{typ: typ})
	return &k.entries[len(k.entries)-1].data
}

// pop removes typ and returns its data (nil when absent).
func (k *cache) pop(typ string) []Datum { return k.remove(typ, true) }

// drop removes typ, like pop without returning the data.
func (k *cache) drop(typ string) { k.remove(typ, false) }

func (k *cache) remove(typ string, ret bool) []Datum {
	if k.frozen != nil {
		start, end := k.find(typ)
		if start < 0 {
			return nil
		}
		var data []Datum
		if ret {
			data = decodeData(k.frozen[start:end])
		}
		h, _ := binary.Uvarint(k.frozen[start:end])
		k.count -= int(h >> 1)
		// The data returned keeps referencing the old encoding: the rest
		// moves to a new one.
		entry := start - len(typ) - uvarintLen(uint64(len(typ)))
		entry -= uvarintLen(uint64(end - start))
		if rest := len(k.frozen) - (end - entry); rest > 0 {
			k.frozen = append(append(make([]byte, 0, rest), k.frozen[:entry]...), k.frozen[end:]...)
		} else {
			k.frozen = nil
		}
		return data
	}
	i := k.index(typ)
	if i < 0 {
		return nil
	}
	data := k.entries[i].data
	k.count -= len(data)
	k.entries = append(k.entries[:i], k.entries[i+1:]...)
	if len(k.entries) == 0 {
		k.entries = nil
	}
	return data
}

func (k *cache) clear() {
	k.entries = nil
	k.frozen = nil
	k.count = 0
}

// The frozen form is, for each entry in order:
//
//	uvarint len(typ), typ, uvarint len(body), body
//
// where body is uvarint n<<1 | (data == nil), then for each of the n data
// uvarint len(Text)<<2 | (Literal != nil)<<1 | (Text == nil), Text, and, for
// a literal, uvarint len(Literal), Literal. Nil slices stay nil, so that
// what comes out is what went in.

// freeze encodes a small cache into one allocation and reports whether it
// did; the bytes are copied, so nothing references the read buffers
// afterwards.
func (k *cache) freeze() bool {
	if k.frozen != nil {
		return true
	}
	if len(k.entries) == 0 || k.count > freezeMaxData {
		return false
	}
	size := 0
	for _, e := range k.entries {
		body := bodySize(e.data)
		size += uvarintLen(uint64(len(e.typ))) + len(e.typ) + uvarintLen(uint64(body)) + body
		if size > freezeMaxBytes {
			return false
		}
	}
	b := make([]byte, 0, size)
	for _, e := range k.entries {
		b = binary.AppendUvarint(b, uint64(len(e.typ)))
		b = append(b, e.typ...)
		b = binary.AppendUvarint(b, uint64(bodySize(e.data)))
		b = binary.AppendUvarint(b, uint64(len(e.data))<<1|flag(e.data == nil))
		for _, d := range e.data {
			b = binary.AppendUvarint(b, uint64(len(d.Text))<<2|flag(d.Literal != nil)<<1|flag(d.Text == nil))
			b = append(b, d.Text...)
			if d.Literal != nil {
				b = binary.AppendUvarint(b, uint64(len(d.Literal)))
				b = append(b, d.Literal...)
			}
		}
	}
	k.frozen = b
	k.entries = nil
	return true
}

// thaw decodes a frozen cache back into entries: one slice of entries and
// one array of data shared by all lists, each list capped at its length so
// that appending to it copies rather than overwrites the next list. The
// data reference the frozen bytes, which are never written again.
func (k *cache) thaw() {
	b := k.frozen
	if b == nil {
		return
	}
	k.frozen = nil
	types := 0
	for i := 0; i < len(b); types++ {
		i = skipEntry(b, i)
	}
	entries := make([]cacheEntry, 0, types+1) // room for the command's type
	all := make([]Datum, 0, k.count)
	for i := 0; i < len(b); {
		n, w := binary.Uvarint(b[i:])
		i += w
		typ := internType(b[i : i+int(n)])
		i += int(n)
		n, w = binary.Uvarint(b[i:])
		i += w
		body := b[i : i+int(n)]
		i += int(n)
		start := len(all)
		all = appendData(all, body)
		data := all[start:len(all):len(all)]
		if isNilData(body) {
			data = nil
		}
		entries = append(entries, cacheEntry{typ: typ, data: data})
	}
	k.entries = entries
}

// find returns where the body of typ's entry is in the frozen form, or
// -1, -1.
func (k *cache) find(typ string) (start, end int) {
	b := k.frozen
	for i := 0; i < len(b); {
		n, w := binary.Uvarint(b[i:])
		i += w
		name := b[i : i+int(n)]
		i += int(n)
		n, w = binary.Uvarint(b[i:])
		i += w
		if string(name) == typ {
			return i, i + int(n)
		}
		i += int(n)
	}
	return -1, -1
}

func skipEntry(b []byte, i int) int {
	n, w := binary.Uvarint(b[i:])
	i += w + int(n)
	n, w = binary.Uvarint(b[i:])
	return i + w + int(n)
}

func isNilData(body []byte) bool {
	h, _ := binary.Uvarint(body)
	return h&1 != 0
}

// decodeData returns the data encoded in body, in a new slice of exactly
// their number.
func decodeData(body []byte) []Datum {
	if isNilData(body) {
		return nil
	}
	h, _ := binary.Uvarint(body)
	return appendData(make([]Datum, 0, h>>1), body)
}

func appendData(dst []Datum, body []byte) []Datum {
	h, i := binary.Uvarint(body)
	for range h >> 1 {
		dh, w := binary.Uvarint(body[i:])
		i += w
		var d Datum
		if n := int(dh >> 2); dh&1 == 0 {
			d.Text = body[i : i+n : i+n]
			i += n
		}
		if dh&2 != 0 {
			n, w := binary.Uvarint(body[i:])
			i += w
			d.Literal = body[i : i+int(n) : i+int(n)]
			i += int(n)
		}
		dst = append(dst, d)
	}
	return dst
}

func bodySize(data []Datum) int {
	n := uvarintLen(uint64(len(data)) << 1)
	for _, d := range data {
		n += uvarintLen(uint64(len(d.Text))<<2) + len(d.Text)
		if d.Literal != nil {
			n += uvarintLen(uint64(len(d.Literal))) + len(d.Literal)
		}
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func flag(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
