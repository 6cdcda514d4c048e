package imap

import "unsafe"

// The arenas: memory carved from shared chunks instead of allocated piece
// by piece, each kept because a measurement showed it matters.

// Typed FETCH (BenchmarkFetchMeta10k/imapkit-typed, 10,000 messages, 2
// cores, medians of 6): with strArena and slab, 891 allocations and 20.6 MB
// per run, about 3.9x the floor (24.0 ms); with plain string conversions
// instead of strArena, 163,873 allocations and 21.4 MB, 26.2 ms; with a make
// per slice instead of slab.alloc, 71,191 allocations, about 4.4x the floor.

// strArena hands out strings carved from shared chunks, so that the many
// short strings of a FETCH response (addresses, subjects, MIME parameters)
// cost one allocation per chunk instead of one each. A chunk's bytes are
// written once, before the string that covers them is created, and never
// again, which is what makes the unsafe.String conversion sound (the same
// reasoning as strings.Builder). A string keeps its whole chunk alive; the
// chunks are small.
type strArena struct {
	buf  []byte
	next int // size of the next chunk
}

const (
	arenaFirstChunk = 512
	arenaMaxChunk   = 16 << 10
	arenaMaxString  = 1 << 10 // longer strings get their own allocation
)

// alloc returns n writable bytes that will back a string.
func (a *strArena) alloc(n int) []byte {
	if n > arenaMaxString {
		return make([]byte, n)
	}
	if cap(a.buf)-len(a.buf) < n {
		if a.next == 0 {
			a.next = arenaFirstChunk
		}
		a.buf = make([]byte, 0, max(a.next, n))
		if a.next < arenaMaxChunk {
			a.next *= 2
		}
	}
	i := len(a.buf)
	a.buf = a.buf[:i+n]
	return a.buf[i : i+n : i+n]
}

// str returns a string with the bytes of b.
func (a *strArena) str(b []byte) string {
	n := len(b)
	if i := len(a.buf); n <= cap(a.buf)-i && n > 0 {
		a.buf = a.buf[:i+n]
		copy(a.buf[i:], b)
		return unsafe.String(&a.buf[i], n)
	}
	if n == 0 {
		return ""
	}
	p := a.alloc(n)
	copy(p, b)
	return unsafe.String(&p[0], n)
}

// bytes returns a copy of b, never nil: short ones carved from the arena
// (each capped, so appending to one cannot reach a neighbour, and never
// shared with a string), long ones in their own allocation.
func (a *strArena) bytes(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	p := a.alloc(len(b))
	copy(p, b)
	return p
}

// lower returns b lower-cased (ASCII only) as a string.
func (a *strArena) lower(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	p := a.alloc(len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		p[i] = c
	}
	return unsafe.String(&p[0], len(p))
}

// unescape returns the content of a quoted string with its escapes
// resolved.
func (a *strArena) unescape(raw []byte) string {
	p := unescape(a.alloc(len(raw))[:0], raw)
	if len(p) == 0 {
		return ""
	}
	return unsafe.String(&p[0], len(p))
}

// slab hands out small slices carved from shared chunks, so that the many
// small slices of a FETCH result (flags, addresses, MIME parameters, body
// parts) cost one allocation per chunk. Each slice is capped at its length,
// so appending to it copies instead of overwriting a neighbour.
type slab[T any] struct {
	buf  []T
	next int // size of the next chunk
}

const (
	slabFirstChunk = 8
	slabMaxChunk   = 256
	slabMaxSlice   = 32 // longer slices get their own allocation
)

// alloc returns a zeroed slice of n elements.
func (sl *slab[T]) alloc(n int) []T {
	if n > slabMaxSlice {
		return make([]T, n)
	}
	if cap(sl.buf)-len(sl.buf) < n {
		if sl.next == 0 {
			sl.next = slabFirstChunk
		}
		sl.buf = make([]T, 0, max(sl.next, n))
		if sl.next < slabMaxChunk {
			sl.next *= 2
		}
	}
	i := len(sl.buf)
	sl.buf = sl.buf[:i+n]
	return sl.buf[i : i+n : i+n]
}

// one returns a pointer to a new zero T.
func (sl *slab[T]) one() *T { return &sl.alloc(1)[0] }

// begin starts building a slice of unknown length in place, at the end of
// the current chunk; push appends to it and end returns it. No other use
// of sl may come between begin and end.
func (sl *slab[T]) begin() int { return len(sl.buf) }

// push appends v to the slice started at start, moving the slice to a new
// chunk when the current one is full, and returns its (new) start.
func (sl *slab[T]) push(start int, v T) int {
	if len(sl.buf) == cap(sl.buf) {
		if sl.next == 0 {
			sl.next = slabFirstChunk
		}
		n := len(sl.buf) - start
		buf := make([]T, n, max(sl.next, 2*n+1))
		copy(buf, sl.buf[start:])
		clear(sl.buf[start:]) // the old chunk may outlive this slice
		sl.buf, start = buf, 0
		if sl.next < slabMaxChunk {
			sl.next *= 2
		}
	}
	sl.buf = append(sl.buf, v)
	return start
}

// end returns the slice started at start, or nil if it is empty.
func (sl *slab[T]) end(start int) []T {
	if len(sl.buf) == start {
		return nil
	}
	return sl.buf[start:len(sl.buf):len(sl.buf)]
}

// carve moves the elements of *stack from mark on into a slice from sl,
// truncating *stack back to mark. It returns nil when there are none. It
// is for slices whose elements are built recursively (body parts), where
// begin and end cannot be used.
func carve[T any](sl *slab[T], stack *[]T, mark int) []T {
	n := len(*stack) - mark
	if n <= 0 {
		return nil
	}
	out := sl.alloc(n)
	copy(out, (*stack)[mark:])
	clear((*stack)[mark:])
	*stack = (*stack)[:mark]
	return out
}

// Idler pushes: with idleArena and reserve, TestIdleBurstMemory takes 728
// allocations for 5,000 pushed EXPUNGE (10,050 with a copy and a slice per
// response), and TestIdleStackAfterPush measures no stack growth after a
// push (without the arena or without reserve: about 2 KiB more per waiting
// goroutine, for good, in Next and Responses).

// idleArena carves the memory of the responses an Idler delivers — the
// copied line and its one-datum slice — out of shared chunks, so that a
// burst of thousands of EXPUNGE or FETCH pushes costs a few allocations
// instead of two per response. Chunks are sized by what is already
// buffered: a lone push gets memory of its exact size, and the arena is
// dropped whenever the Idler goes back to waiting, so a parked Idler holds
// no spare chunk. A delivered response keeps its chunk alive; chunks are
// small.
//
// It also holds the response that reading fills (see Idler.receive): on the
// stack, those 136 bytes would be in a frame on the path of every push.
type idleArena struct {
	bytes  []byte
	datums []Datum
	resp   response
}

const (
	idleArenaChunk  = 4096 // bytes of text per chunk, at most
	idleLineReserve = 256  // bytes reserve keeps free for the next line
)

// text returns a copy of line, capped at its length.
func (a *idleArena) text(line []byte, buffered int) []byte {
	n := len(line)
	if cap(a.bytes)-len(a.bytes) < n {
		a.bytes = make([]byte, 0, max(n, min(idleArenaChunk, n+buffered)))
	}
	i := len(a.bytes)
	a.bytes = append(a.bytes, line...)
	return a.bytes[i : i+n : i+n]
}

// datumsFor is the size of a datum chunk when buffered bytes are waiting:
// about one datum per 40 bytes (an EXPUNGE line), one at least.
func datumsFor(buffered int) int {
	return max(1, min(idleArenaChunk/48, 1+buffered/40))
}

// datum returns a one-datum slice holding text, capped at its length.
func (a *idleArena) datum(text []byte, buffered int) []Datum {
	if len(a.datums) == cap(a.datums) {
		a.datums = make([]Datum, 0, datumsFor(buffered))
	}
	i := len(a.datums)
	a.datums = append(a.datums, Datum{Text: text})
	return a.datums[i : i+1 : i+1]
}

// reserve makes room for the responses in the next n buffered bytes: the
// arena (whose response receive fills), its copies of their lines and
// datums, and a queue slot. It runs before the deep calls that parse a
// response, so that these allocations do not happen at the bottom of them:
// the allocator's own frames there would grow the goroutine's stack from 2
// to 4 KiB, which a parked Idler keeps for good (see Idler.nextLocked). A
// line not yet complete when reserve runs may still allocate where it is
// parsed; that is rare.
func (id *Idler) reserve(n int) {
	a := id.idleArena()
	if n == 0 {
		return
	}
	// Room for the next line when it is of a usual size; a new chunk
	// holds everything buffered, up to its limit. A longer line is rare
	// and gets its memory where it is parsed.
	if cap(a.bytes)-len(a.bytes) < min(n, idleLineReserve) {
		a.bytes = make([]byte, 0, min(idleArenaChunk, n))
	}
	if len(a.datums) == cap(a.datums) {
		a.datums = make([]Datum, 0, datumsFor(n))
	}
	if len(id.queue) == cap(id.queue) {
		id.queue = append(id.queue, Response{})[:len(id.queue)]
	}
}

// idleArena returns the arena, creating it.
func (id *Idler) idleArena() *idleArena {
	if id.arena == nil {
		id.arena = new(idleArena)
	}
	return id.arena
}

// fresh starts the allocation pools anew for one message whose response
// is resp, and returns the Message to parse it into: what the pools hand
// out from then on shares no chunk with what they handed out before, so
// that a Message kept by the caller pins no other message's memory.
//
// The Message comes in one allocation with room for four flags, an
// ENVELOPE (newEnvelope) in one with room for eight addresses, and a
// BODYSTRUCTURE (newBody) in one with room for three parts and their
// parameters: what most messages have. The string chunk is half the
// response's text (its strings rarely need more; a second chunk follows
// when they do). BenchmarkFetchMeta10k/imapkit-typed-each (10,000
// messages, 2-core VM): pools shared by all messages, 874 allocations,
// 20.3 MB, 22–24 ms, but a kept message pinned about 170 KB of its
// neighbours (TestKeptMessagePinsNoNeighbour); plain pools of its own per
// message, 100,000 allocations, 28 MB, about 38 ms; with these blocks,
// 47,500 allocations, 27.4 MB, 33–35 ms. A string chunk of the whole
// text: 31.4 MB; a third of it: 56,000 allocations, 30.8 MB.
func (s *scanner) fresh(resp []Datum) *Message {
	n := 0
	for _, d := range resp {
		n += len(d.Text)
		if len(d.Literal) <= arenaMaxString {
			n += len(d.Literal) // longer ones get their own allocation anyway
		}
	}
	s.perMessage = true
	s.arena = strArena{next: min(max(n/2, 64), arenaMaxChunk)}
	b := new(msgBlock)
	s.strSlab = slab[string]{buf: b.flags[:0], next: 4}
	s.addrSlab = slab[Address]{next: 2}
	s.paramSlab = slab[Param]{next: 2}
	s.partSlab = slab[*BodyStructure]{next: 2}
	s.bodySlab = slab[BodyStructure]{next: 1}
	s.envSlab = slab[Envelope]{next: 1}
	s.secSlab = slab[Section]{next: 1}
	s.rawSlab = slab[RawItem]{next: 1}
	return &b.m
}

// msgBlock is a Message with room for its flags, in one allocation.
type msgBlock struct {
	m     Message
	flags [4]string
}

// envBlock is an Envelope with room for its addresses, in one allocation
// (the metadata corpus averages 6.3 addresses a message, Sender and
// Reply-To counted).
type envBlock struct {
	env   Envelope
	addrs [8]Address
}

// bodyBlock is a BODYSTRUCTURE with room for two more parts (the corpus
// averages 2.7), their parameters (3.3) and a parts list, in one
// allocation.
type bodyBlock struct {
	bodies [3]BodyStructure
	params [4]Param
	parts  [2]*BodyStructure
}

// newBody returns the top BodyStructure to parse into: from the shared
// pool, or with fresh, in a block of its own that seeds the body pools.
func (s *scanner) newBody() *BodyStructure {
	if !s.perMessage {
		return s.bodySlab.one()
	}
	b := new(bodyBlock)
	s.bodySlab = slab[BodyStructure]{buf: b.bodies[1:1], next: 2}
	s.paramSlab = slab[Param]{buf: b.params[:0], next: 4}
	s.partSlab = slab[*BodyStructure]{buf: b.parts[:0], next: 4}
	return &b.bodies[0]
}

// newEnvelope returns the Envelope to parse into: from the shared pool, or
// with fresh, in a block of its own whose addresses seed the address pool.
func (s *scanner) newEnvelope() *Envelope {
	if !s.perMessage {
		return s.envSlab.one()
	}
	b := new(envBlock)
	s.addrSlab = slab[Address]{buf: b.addrs[:0], next: 8}
	return &b.env
}
