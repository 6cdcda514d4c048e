package imap

// idleArena carves the memory of the responses an Idler delivers — the
// copied line and its one-datum slice — out of shared chunks, so that a
// burst of thousands of EXPUNGE or FETCH pushes costs a few allocations
// instead of two per response. Chunks are sized by what is already
// buffered: a lone push gets memory of its exact size, and the arena is
// dropped whenever the Idler goes back to waiting, so a parked Idler holds
// no spare chunk. A delivered response keeps its chunk alive; chunks are
// small.
type idleArena struct {
	bytes  []byte
	datums []Datum
}

const idleArenaChunk = 4096 // bytes of text per chunk, at most

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

// datum returns a one-datum slice holding text, capped at its length.
func (a *idleArena) datum(text []byte, buffered int) []Datum {
	if len(a.datums) == cap(a.datums) {
		// About one datum per 40 buffered bytes (an EXPUNGE line).
		a.datums = make([]Datum, 0, max(1, min(idleArenaChunk/48, 1+buffered/40)))
	}
	i := len(a.datums)
	a.datums = append(a.datums, Datum{Text: text})
	return a.datums[i : i+1 : i+1]
}
