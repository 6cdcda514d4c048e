package imap

import (
	"encoding/binary"
	"sync/atomic"
)

// cache is imaplib's untagged_responses, kept as the responses themselves
// in arrival order: Unsolicited hands them over in that order, and the
// per-type accessors (Response, Cached) gather a type's data from it, so
// that taking data through one removes it from the other.
//
// It holds what arrived outside any command's result (see collector.keep):
// everything unsolicited, and the data of the types a command does not
// return. Its bounds (see bound) are in data and in bytes.
//
// Between commands a small cache is frozen: encoded into one byte slice
// (see freeze), which costs an idle client a few hundred bytes where the
// responses, their data and their bytes took about 2 KiB in a dozen
// allocations after a SELECT. Everything but has and get thaws it first.
// Measured (go run ./bench -only memory, parked Idlers after LOGIN and
// SELECT): 4.85 KiB per Idler frozen, 7.24 KiB (2,000 Idlers) and 7.50 KiB
// (10,000) with freeze disabled, past the 6 KiB target.
type cache struct {
	live    *liveCache   // nil when empty or frozen
	frozen  []byte       // when not nil: every response, encoded
	evicted atomic.Int64 // data dropped by bound, for Client.Dropped (read without mu)
}

// liveCache is the decoded form, behind a pointer so that a Client whose
// cache is frozen or empty carries one word for it.
type liveCache struct {
	refs  []cacheRef  // responses, in arrival order
	data  []Datum     // their data, refs[0]'s first, then refs[1]'s, ...
	types []typeTally // the distinct types in refs, by first arrival
	bytes int         // cost of data (see cost)
	// open: the last response's literals are still arriving, so its next
	// fragment extends it.
	open bool
}

type cacheRef struct {
	typ string
	n   int32 // data
}

type typeTally struct {
	typ   string
	n     int // data
	bytes int // their cost
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

// datumOverhead is what a cached datum costs beyond its bytes: the Datum
// (48 bytes) and its share of its response's ref. Counting it makes a
// flood of empty data ("* OK [ALERT]" leaves an empty ALERT datum per
// line) reach the byte bound too.
const datumOverhead = 64

func cost(d *Datum) int { return len(d.Text) + len(d.Literal) + datumOverhead }

// has reports whether a response of typ is held.
func (k *cache) has(typ string) bool {
	if k.frozen != nil {
		found := false
		k.eachFrozen(func(name, _ []byte) { found = found || string(name) == typ })
		return found
	}
	return k.live != nil && k.live.tally(typ) >= 0
}

// get returns the data of typ in a new slice, nil when there is none; ok
// says whether typ is present (possibly with no data).
func (k *cache) get(typ string) (data []Datum, ok bool) {
	if k.frozen != nil {
		k.eachFrozen(func(name, body []byte) {
			if string(name) == typ {
				ok = true
				data = appendData(data, body)
			}
		})
		return data, ok
	}
	if k.live == nil {
		return nil, false
	}
	l := k.live
	if l.tally(typ) < 0 {
		return nil, false
	}
	off := 0
	for _, r := range l.refs {
		if r.typ == typ {
			data = append(data, l.data[off:off+int(r.n)]...)
		}
		off += int(r.n)
	}
	return data, true
}

// pop removes typ and returns its data (nil when absent).
func (k *cache) pop(typ string) []Datum {
	data, ok := k.get(typ)
	if ok {
		k.drop(typ)
	}
	return data
}

// drop removes every response of typ.
func (k *cache) drop(typ string) {
	if !k.has(typ) {
		return
	}
	refreeze := k.frozen != nil
	k.thaw()
	l := k.live
	l.filter(func(i int, r *cacheRef) bool { return r.typ != typ })
	k.settle(refreeze)
}

// settle forgets an emptied live cache and refreezes one that was frozen
// before an operation thawed it.
func (k *cache) settle(refreeze bool) {
	if k.live != nil && len(k.live.refs) == 0 {
		k.live = nil
	}
	if refreeze {
		k.freeze()
	}
}

// takeAll removes every response and returns them in arrival order; their
// data share one array, each capped so that appending to one copies it.
func (k *cache) takeAll() []Response {
	k.thaw()
	l := k.live
	k.live = nil
	if l == nil {
		return nil
	}
	out := make([]Response, len(l.refs))
	off := 0
	for i, r := range l.refs {
		end := off + int(r.n)
		out[i] = Response{Type: r.typ, Data: l.data[off:end:end]}
		if r.n == 0 {
			out[i].Data = nil
		}
		off = end
	}
	return out
}

// add appends d to the response being read (more: further fragments of it
// follow) or starts a new one.
func (k *cache) add(typ string, d Datum, more bool) {
	k.thaw()
	if k.live == nil {
		k.live = &liveCache{}
	}
	l := k.live
	if !l.open || len(l.refs) == 0 || l.refs[len(l.refs)-1].typ != typ {
		l.newRef(k, typ)
	}
	l.put(typ, d)
	l.open = more
}

// addResponse appends a whole response.
func (k *cache) addResponse(r Response) {
	k.thaw()
	if k.live == nil {
		k.live = &liveCache{}
	}
	l := k.live
	l.newRef(k, r.Type)
	for i := range r.Data {
		l.put(r.Type, r.Data[i])
	}
	l.open = false
}

// newRef starts a response of typ, evicting the oldest type when the
// cache already holds maxCacheTypes.
func (l *liveCache) newRef(k *cache, typ string) {
	if l.tally(typ) < 0 && len(l.types) >= maxCacheTypes {
		// Fix (limits): count what is evicted, as Dropped promises.
		old := l.types[0].typ
		k.evicted.Add(int64(l.types[0].n))
		l.filter(func(_ int, r *cacheRef) bool { return r.typ != old })
	}
	if l.refs == nil {
		// Room for what a SELECT leaves at once: growing 1, 2, 4, 8 made
		// short-lived slices in size classes that long-lived objects of a
		// connection use (the frozen cache, say), leaving holes.
		l.refs = make([]cacheRef, 0, 16)
		l.data = make([]Datum, 0, 16)
	}
	l.refs = append(l.refs, cacheRef{typ: typ})
	if l.tally(typ) < 0 {
		l.types = append(l.types, typeTally{typ: typ})
	}
}

// put appends d to the last response, of type typ.
func (l *liveCache) put(typ string, d Datum) {
	l.refs[len(l.refs)-1].n++
	l.data = append(l.data, d)
	c := cost(&d)
	l.bytes += c
	t := &l.types[l.tally(typ)]
	t.n++
	t.bytes += c
}

// tally returns the index of typ in types, or -1.
func (l *liveCache) tally(typ string) int {
	for i := range l.types {
		if l.types[i].typ == typ {
			return i
		}
	}
	return -1
}

// filter keeps the responses for which keep is true, compacting refs and
// data in place and recounting the tallies.
func (l *liveCache) filter(keep func(i int, r *cacheRef) bool) {
	refs, data := l.refs[:0], l.data[:0]
	off, lastKept := 0, true
	for i := range l.refs {
		r := l.refs[i]
		end := off + int(r.n)
		lastKept = keep(i, &r)
		if lastKept {
			refs = append(refs, r)
			data = append(data, l.data[off:end]...)
		}
		off = end
	}
	clear(l.data[len(data):]) // no stale references to the bytes dropped
	clear(l.refs[len(refs):])
	if !lastKept {
		l.open = false // the response being read is gone
	}
	l.refs, l.data = refs, data
	l.recount()
}

// recount rebuilds the tallies and the byte count.
func (l *liveCache) recount() {
	old := l.types
	l.types = l.types[:0]
	l.bytes = 0
	off := 0
	for _, r := range l.refs {
		i := l.tally(r.typ)
		if i < 0 {
			l.types = append(l.types, typeTally{typ: r.typ})
			i = len(l.types) - 1
		}
		t := &l.types[i]
		for j := off; j < off+int(r.n); j++ {
			c := cost(&l.data[j])
			t.n++
			t.bytes += c
			l.bytes += c
		}
		off += int(r.n)
	}
	if n := len(l.types); n < len(old) {
		clear(old[n:]) // no stale type names
	}
}

// bound enforces the limits: while more than maxData data or maxBytes
// bytes are held, the oldest half of the type that holds most (data, or
// bytes) is dropped, whole responses where it can. It returns how many
// data were dropped, and of which type last.
func (k *cache) bound(maxData, maxBytes int) (dropped int, typ string) {
	l := k.live
	if l == nil {
		return 0, ""
	}
	for (len(l.data) > maxData || l.bytes > maxBytes) && len(l.refs) > 0 {
		byBytes := len(l.data) <= maxData
		big := 0
		for i, t := range l.types {
			if (byBytes && t.bytes > l.types[big].bytes) || (!byBytes && t.n > l.types[big].n) {
				big = i
			}
		}
		typ = l.types[big].typ
		want := (l.types[big].n + 1) / 2
		// Whole responses, oldest first; the one being read is cut
		// instead, its first fragments being the oldest data (a single
		// response of endless literals must be bounded too).
		last := len(l.refs) - 1
		seen := 0
		l.filter(func(i int, r *cacheRef) bool {
			if r.typ != typ || seen >= want || (i == last && l.open) {
				return true
			}
			seen += int(r.n)
			return false
		})
		if r := &l.refs[len(l.refs)-1]; seen < want && l.open && r.typ == typ && r.n > 1 {
			cut := min(want-seen, int(r.n)-1)
			start := len(l.data) - int(r.n)
			copy(l.data[start:], l.data[start+cut:])
			clear(l.data[len(l.data)-cut:])
			l.data = l.data[:len(l.data)-cut]
			r.n -= int32(cut)
			l.recount()
			seen += cut
		}
		if seen == 0 {
			break // nothing left to drop: cannot happen while counts are right
		}
		dropped += seen
	}
	return dropped, typ
}

func (k *cache) clear() {
	k.live = nil
	k.frozen = nil
}

// The frozen form is, for each response in order:
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
	l := k.live
	if l == nil || len(l.data) > freezeMaxData || l.open {
		return false
	}
	size := 0
	off := 0
	for _, r := range l.refs {
		body := bodySize(l.data[off : off+int(r.n)])
		off += int(r.n)
		size += uvarintLen(uint64(len(r.typ))) + len(r.typ) + uvarintLen(uint64(body)) + body
		if size > freezeMaxBytes {
			return false
		}
	}
	b := make([]byte, 0, size)
	off = 0
	for _, r := range l.refs {
		data := l.data[off : off+int(r.n)]
		off += int(r.n)
		b = binary.AppendUvarint(b, uint64(len(r.typ)))
		b = append(b, r.typ...)
		b = binary.AppendUvarint(b, uint64(bodySize(data)))
		b = binary.AppendUvarint(b, uint64(len(data))<<1|flag(r.n == 0))
		for _, d := range data {
			b = binary.AppendUvarint(b, uint64(len(d.Text))<<2|flag(d.Literal != nil)<<1|flag(d.Text == nil))
			b = append(b, d.Text...)
			if d.Literal != nil {
				b = binary.AppendUvarint(b, uint64(len(d.Literal)))
				b = append(b, d.Literal...)
			}
		}
	}
	k.frozen = b
	k.live = nil
	return true
}

// thaw decodes a frozen cache: one array of data for all responses,
// referencing the frozen bytes, which are never written again.
func (k *cache) thaw() {
	b := k.frozen
	if b == nil {
		return
	}
	k.frozen = nil
	l := &liveCache{}
	refs, n := 0, 0
	k.eachFrozen(func(_ []byte, body []byte) {
		refs++
		h, _ := binary.Uvarint(body)
		n += int(h >> 1)
	})
	l.refs = make([]cacheRef, 0, refs+1) // room for the next response
	l.data = make([]Datum, 0, n+1)
	eachEntry(b, func(name, body []byte) {
		h, _ := binary.Uvarint(body)
		l.refs = append(l.refs, cacheRef{typ: internType(name), n: int32(h >> 1)})
		l.data = appendData(l.data, body)
	})
	l.recount()
	k.live = l
}

// eachFrozen calls fn with the type and body of every frozen response.
func (k *cache) eachFrozen(fn func(name, body []byte)) { eachEntry(k.frozen, fn) }

func eachEntry(b []byte, fn func(name, body []byte)) {
	for i := 0; i < len(b); {
		n, w := binary.Uvarint(b[i:])
		i += w
		name := b[i : i+int(n)]
		i += int(n)
		n, w = binary.Uvarint(b[i:])
		i += w
		fn(name, b[i:i+int(n)])
		i += int(n)
	}
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
