package imap

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
