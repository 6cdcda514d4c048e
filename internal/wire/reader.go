// Package wire frames the IMAP byte stream: CRLF-terminated lines and
// literals read from the server, and safely encoded arguments written to it.
//
// The Reader keeps every received byte in its own buffer, so an error from
// the underlying connection (a read deadline, a cancelled context) never
// loses a partial line: the next call resumes where the last one stopped.
package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Sizes of the read buffer. It starts small so that thousands of idle
// connections stay cheap, grows while responses are large, and is given back
// by Shrink once the client is idle again.
const (
	minBuffer = 256
	// idleBuffer is the first buffer out of stable mode, which is where a
	// connection idles (an Idler parked in a read holds it for hours):
	// enough for a pushed response line; a longer one grows it.
	idleBuffer = 128
	maxBuffer  = 64 << 10
	// maxStable is the largest buffer in stable mode, where buffers become
	// the memory of results. (256 KiB measured no better than 64 KiB.)
	maxStable = 64 << 10
	// literalChunk is the first allocation for a large literal: a server
	// that claims a huge literal and then stops sending costs only about
	// what it really sent.
	literalChunk = 1 << 20
)

// Errors returned by Reader. They describe why the stream can no longer be
// parsed, except ErrLineTooLong, after which the offending line has been
// skipped and reading may continue.
var (
	ErrUnterminated = errors.New("unterminated line")
	ErrLineTooLong  = errors.New("line too long")
	ErrLiteralLimit = errors.New("literal too large")
)

// LineTooLongError reports a line longer than the limit. The whole line was
// consumed and dropped; Tail holds its last bytes so that the caller can see
// whether it announced a literal, and Head its first bytes (up to 64, and
// never more than Limit+1, whatever the read splits) so that it can see
// whose line it was: a tagged completion, say.
type LineTooLongError struct {
	Limit int
	Head  []byte
	Tail  []byte
}

// Error says what the limit was, like imaplib's "got more than N bytes".
func (e *LineTooLongError) Error() string { return fmt.Sprintf("got more than %d bytes", e.Limit) }

// Is makes errors.Is(err, ErrLineTooLong) true.
func (e *LineTooLongError) Is(target error) bool { return target == ErrLineTooLong }

// Reader reads lines and literals from an IMAP server.
type Reader struct {
	src     io.Reader
	buf     []byte
	r, w    int // buf[r:w] holds unread bytes
	scanned int // buf[r:r+scanned] is known to hold no LF

	// MaxLine is the longest accepted line, CRLF excluded. Zero means no limit.
	MaxLine int

	// skip is set while a too-long line is being skipped. A pointer, as
	// this is rare: thousands of idle Readers stay a size class smaller.
	skip *skipState

	// lit holds a literal in progress, so that an interrupted literal read
	// resumes without losing bytes.
	lit     []byte
	litWant int64

	// stable: bytes handed out are never overwritten (see SetStable).
	stable bool
	// full: the last read filled the space it was given, so more was
	// probably waiting (see Small).
	full bool
	// released: in stable mode, buf[:released] is no longer referenced by
	// anything handed out (see Release), so it may be overwritten.
	released int
	// held is the last buffer given up in stable mode since the last
	// Release (what was handed out from it may still be in use), and spare
	// one given up before a Release, free for reuse.
	held, spare []byte

	// BeforeRead, if set, runs before each read from the source, so that a
	// caller can set a deadline per read (progress) rather than per line;
	// an error from it is returned without reading.
	BeforeRead func() error
}

func (r *Reader) read(p []byte) (int, error) {
	if r.BeforeRead != nil {
		if err := r.BeforeRead(); err != nil {
			return 0, err
		}
	}
	n, err := r.src.Read(p)
	r.full = n == len(p)
	return n, err
}

// NewReader returns a Reader reading from src.
func NewReader(src io.Reader, maxLine int) *Reader {
	return &Reader{src: src, MaxLine: maxLine}
}

// Reset makes the Reader read from src, discarding everything buffered.
// STARTTLS uses it so that no plaintext byte sent before the handshake can
// be taken for a response afterwards.
func (r *Reader) Reset(src io.Reader) {
	r.src = src
	r.buf = nil
	r.r, r.w, r.scanned, r.released = 0, 0, 0, 0
	r.held, r.spare = nil, nil
	r.skip = nil
	r.lit, r.litWant = nil, 0
}

// SetStable switches stable mode. In stable mode every line and literal
// handed out stays valid for ever: the buffer is never compacted in place;
// when it runs out of room the unread tail moves to fresh memory. Results
// can then reference the bytes read from the network without a copy. Out of
// stable mode the buffer is reused, so a caller must copy what it keeps.
func (r *Reader) SetStable(on bool) {
	if r.stable && !on {
		// Bytes before r.r may be referenced: never compact over them.
		if r.r == r.w {
			r.buf = nil
			r.r, r.w, r.scanned = 0, 0, 0
		} else {
			nb := make([]byte, max(idleBuffer, r.w-r.r))
			r.w = copy(nb, r.buf[r.r:r.w])
			r.r = 0
			r.buf = nb
		}
	}
	r.stable = on
	r.released = 0
	r.held, r.spare = nil, nil
}

// Release declares, in stable mode, that nothing handed out so far is
// referenced any more: when the buffer runs out of room, the unread bytes
// move to its start instead of to fresh memory. A caller that hands each
// response to a callback and then forgets it (FetchEach) reads a response
// of any size through one buffer, as out of stable mode, yet without
// copying a line or literal. Anything handed out later is stable again
// until the next Release.
func (r *Reader) Release() {
	if r.stable {
		r.released = r.r
		if r.held != nil {
			r.spare, r.held = r.held, nil
		}
	}
}

// newStable returns a buffer of size bytes for stable mode, recycling the
// spare one when it fits, and keeps the current one as held.
func (r *Reader) newStable(size int) []byte {
	if r.buf != nil {
		r.held = r.buf
	}
	if sp := r.spare; sp != nil && len(sp) == size {
		r.spare = nil
		return sp
	}
	return make([]byte, size)
}

// Stable reports whether stable mode is on.
func (r *Reader) Stable() bool { return r.stable }

// Buffered returns the number of bytes received but not yet consumed.
func (r *Reader) Buffered() int { return r.w - r.r }

// HasLine reports whether a complete line is already buffered, so that it
// can be read without waiting for the network.
func (r *Reader) HasLine() bool {
	return bytes.IndexByte(r.buf[r.r+r.scanned:r.w], '\n') >= 0
}

// Shrink releases a large buffer once nothing is buffered, so that an idle
// connection holds only a small one.
func (r *Reader) Shrink() {
	if r.r == r.w && cap(r.buf) > idleBuffer {
		r.buf = nil
		r.r, r.w, r.scanned = 0, 0, 0
	}
}

// Small replaces a buffer that has grown by a fresh small one when nothing
// is buffered. Unlike Shrink it leaves a buffer in place, so that the next
// read needs no allocation: an IMAP Idler calls it before parking, so that
// a connection that has just received a burst does not keep a 64 KiB
// buffer while it waits for the next one.
func (r *Reader) Small() {
	// Not while the last read filled the buffer: a burst is still
	// arriving, and a small buffer would split it into many reads.
	if r.r == r.w && !r.stable && !r.full && cap(r.buf) > idleBuffer {
		r.buf = make([]byte, idleBuffer)
		r.r, r.w, r.scanned = 0, 0, 0
	}
}

// BufferSize returns the size of the read buffer, for tests and
// diagnostics.
func (r *Reader) BufferSize() int { return cap(r.buf) }

// Fill reads more bytes from the source into the buffer (one read). It lets
// a caller wait for data from a shallow stack before parsing it.
func (r *Reader) Fill() error {
	err := r.fill()
	if err == io.EOF && r.w > r.r {
		return nil // let ReadLine report the unterminated line
	}
	return err
}

// fill reads more bytes from src into the buffer, making room first.
func (r *Reader) fill() error {
	if r.stable {
		if r.buf != nil && r.w == len(r.buf) && r.r > 0 && r.released == r.r && r.w-r.r <= len(r.buf)/2 {
			// Everything before r.r is released: reuse the buffer.
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r, r.released = 0, 0
		}
		if r.buf == nil || r.w == len(r.buf) {
			r.released = 0
			size := len(r.buf)
			if r.w-r.r >= size/2 {
				size *= 2 // a long line: grow
			}
			size = min(max(size, minBuffer, 2*(r.w-r.r)), max(maxStable, 2*(r.w-r.r)))
			nb := r.newStable(size)
			r.w = copy(nb, r.buf[r.r:r.w])
			r.r = 0
			r.buf = nb
		}
		n, err := r.read(r.buf[r.w:])
		r.w += n
		if n > 0 {
			if r.w == len(r.buf) && len(r.buf) < maxStable {
				// Reads fill the buffer: use bigger ones from now on.
				nb := r.newStable(2 * len(r.buf))
				r.w = copy(nb, r.buf[r.r:r.w])
				r.r, r.released = 0, 0
				r.buf = nb
			}
			return nil
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	if r.r > 0 && (r.r == r.w || len(r.buf)-r.w < len(r.buf)/4) {
		n := copy(r.buf, r.buf[r.r:r.w])
		r.w = n
		r.r = 0
	}
	if r.buf == nil {
		r.buf = make([]byte, idleBuffer)
	} else if r.w == len(r.buf) {
		size := 2 * len(r.buf)
		if size > maxBuffer && r.w-r.r < maxBuffer {
			size = maxBuffer
		}
		nb := make([]byte, size)
		r.w = copy(nb, r.buf[r.r:r.w])
		r.r = 0
		r.buf = nb
	}
	n, err := r.read(r.buf[r.w:])
	r.w += n
	if n > 0 && r.w == len(r.buf) && len(r.buf) < maxBuffer {
		// The read filled the buffer: more is probably waiting, so grow
		// before the next read to cut the number of system calls.
		nb := make([]byte, 2*len(r.buf))
		r.w = copy(nb, r.buf[r.r:r.w])
		r.r = 0
		r.buf = nb
	}
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// ReadLine returns the next line without its CRLF. The slice aliases the
// buffer and is valid until the next call.
//
// A line ending in a bare LF is ErrUnterminated. EOF before any byte of the
// line is io.EOF; EOF inside a line is ErrUnterminated. Any other error from
// the source is returned as is, with the partial line kept for the next call.
// A line longer than MaxLine is skipped and reported as *LineTooLongError.
func (r *Reader) ReadLine() ([]byte, error) {
	for {
		if r.skip != nil {
			if err := r.discard(); err != nil {
				return nil, err
			}
			s := r.skip
			r.skip = nil
			return nil, &LineTooLongError{Limit: r.MaxLine, Head: s.head, Tail: s.tail}
		}
		if i := bytes.IndexByte(r.buf[r.r+r.scanned:r.w], '\n'); i >= 0 {
			end := r.r + r.scanned + i
			line := r.buf[r.r:end]
			r.r = end + 1
			r.scanned = 0
			crlf := len(line) > 0 && line[len(line)-1] == '\r'
			if crlf {
				line = line[:len(line)-1]
			}
			// Length first, so that the verdict on a long line does not
			// depend on how its bytes were split across reads.
			if r.MaxLine > 0 && len(line) > r.MaxLine {
				return nil, &LineTooLongError{Limit: r.MaxLine, Head: r.headOf(line), Tail: tailOf(line)}
			}
			if !crlf {
				return line, fmt.Errorf("%w: %q", ErrUnterminated, clip(line))
			}
			return line[:len(line):len(line)], nil
		}
		r.scanned = r.w - r.r
		if r.MaxLine > 0 && r.scanned > r.MaxLine+1 {
			// Too long: drop what we have and skip to the end of the line.
			r.skip = &skipState{head: r.headOf(r.buf[r.r:r.w]), tail: partialTail(r.buf[r.r:r.w])}
			r.drop()
			continue
		}
		if err := r.fill(); err != nil {
			if err == io.EOF && r.w > r.r {
				partial := r.buf[r.r:r.w]
				r.r, r.scanned = r.w, 0
				return partial, fmt.Errorf("%w: %q", ErrUnterminated, clip(partial))
			}
			return nil, err
		}
	}
}

// drop discards every buffered byte. In stable mode the space is not
// reused, since earlier bytes of the buffer may be referenced.
func (r *Reader) drop() {
	if r.stable {
		r.r, r.scanned = r.w, 0
		return
	}
	r.r, r.w, r.scanned = 0, 0, 0
}

// Discarding reports whether the Reader is in the middle of skipping a line
// longer than MaxLine (a ReadLine was interrupted while skipping it).
func (r *Reader) Discarding() bool { return r.skip != nil }

// skipState is the progress of skipping a line longer than MaxLine.
type skipState struct {
	n          int64 // bytes skipped after the first read
	head, tail []byte
}

// headOf returns the first bytes of an over-long line for
// LineTooLongError.Head: at most 64, and at most MaxLine+1, which are always
// there when a line is found too long, however its bytes arrived.
func (r *Reader) headOf(b []byte) []byte {
	n := min(64, r.MaxLine+1, len(b))
	return append([]byte(nil), b[:n]...)
}

// maxDiscard bounds how much of one over-long line is skipped before the
// stream is given up on.
func (r *Reader) maxDiscard() int64 { return 16 * int64(r.MaxLine+1024) }

// discard skips to the end of the line being skipped; r.skip then holds
// its head and tail.
func (r *Reader) discard() error {
	s := r.skip
	for {
		if i := bytes.IndexByte(r.buf[r.r:r.w], '\n'); i >= 0 {
			s.tail = append(s.tail, r.buf[r.r:r.r+i]...)
			// Drop the CR, as ReadLine does, so that a literal announced at
			// the end of the skipped line ("{5}") is visible in Tail.
			s.tail = tailOf(bytes.TrimSuffix(s.tail, []byte("\r")))
			r.r += i + 1
			r.scanned = 0
			return nil
		}
		s.n += int64(r.w - r.r)
		s.tail = partialTail(append(s.tail, r.buf[r.r:r.w]...))
		r.drop()
		if s.n+1 > r.maxDiscard() {
			// The limit, not the count: the count depends on read splits.
			return fmt.Errorf("%w: more than %d bytes without a line end", ErrUnterminated, r.maxDiscard())
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				return fmt.Errorf("%w: EOF inside an over-long line", ErrUnterminated)
			}
			return err
		}
	}
}

// ReadLiteral reads a literal of exactly n bytes. max bounds n (0 means no
// bound). Memory grows with the bytes actually received, never with the
// size the server claims. If the source fails, the bytes read so far are
// kept and a later call with the same n resumes.
func (r *Reader) ReadLiteral(n, max int64) ([]byte, error) {
	if n < 0 || (max > 0 && n > max) {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrLiteralLimit, n, max)
	}
	if r.lit == nil || r.litWant != n {
		if r.stable && n <= maxStable/2 {
			// Small enough for the buffer: read it there, so that it
			// needs no memory of its own (and, after a Release, none
			// at all). Bytes received stay buffered if a read fails.
			for int64(r.w-r.r) < n {
				if err := r.fill(); err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return nil, err
				}
			}
		}
		if r.stable && int64(r.w-r.r) >= n {
			lit := r.buf[r.r : r.r+int(n) : r.r+int(n)]
			r.r += int(n)
			r.scanned = 0
			return lit, nil
		}
		first := n
		if first > literalChunk {
			first = literalChunk
		}
		r.lit = make([]byte, 0, first)
		r.litWant = n
	}
	for int64(len(r.lit)) < n {
		if r.r == r.w {
			need := n - int64(len(r.lit))
			if need >= maxBuffer && cap(r.lit)-len(r.lit) >= maxBuffer {
				// Large remainder: read straight into the literal.
				m, err := r.read(r.lit[len(r.lit):cap(r.lit)][:min64(need, int64(cap(r.lit)-len(r.lit)))])
				r.lit = r.lit[:len(r.lit)+m]
				if m > 0 {
					continue
				}
				if err == nil {
					err = io.ErrNoProgress
				}
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
			if err := r.fill(); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
		}
		take := min64(n-int64(len(r.lit)), int64(r.w-r.r))
		if int64(cap(r.lit)-len(r.lit)) < take {
			// Quadruple, so a large literal is copied O(n) times in all,
			// but only as its bytes actually arrive.
			grow := 3 * int64(cap(r.lit))
			if grow < take {
				grow = take
			}
			if int64(cap(r.lit))+grow > n {
				grow = n - int64(cap(r.lit))
			}
			nl := make([]byte, len(r.lit), int64(cap(r.lit))+grow)
			copy(nl, r.lit)
			r.lit = nl
		}
		r.lit = append(r.lit, r.buf[r.r:r.r+int(take)]...)
		r.r += int(take)
	}
	out := r.lit
	r.lit, r.litWant = nil, 0
	r.scanned = 0
	return out, nil
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// partialTail is tailOf for a line still being skipped. It keeps one byte
// more, because a CR at its end is trimmed once the LF arrives: keeping
// only 32 made Tail one byte shorter when CR and LF came in different reads
// (fix: found by FuzzReaderSplit on a recorded Dovecot session).
func partialTail(b []byte) []byte {
	const keep = 33
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return append([]byte(nil), b...)
}

func tailOf(b []byte) []byte {
	const keep = 32
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return append([]byte(nil), b...)
}

func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// Pending returns how many bytes of an interrupted literal are held, so a
// caller can tell whether a timed-out read made progress.
func (r *Reader) Pending() int64 { return int64(len(r.lit)) }

// copyChunk bounds the memory CopyLiteral uses, whatever the literal's size.
const copyChunk = 64 << 10

// CopyLiteral copies a literal of n bytes to w without holding it in
// memory. If w fails, the rest of the literal is still consumed, so the
// stream stays in sync, and w's error is returned with ok true; ok false
// means the source failed and the stream cannot be trusted.
func (r *Reader) CopyLiteral(w io.Writer, n int64) (werr error, ok bool, err error) {
	if n < 0 {
		return nil, false, fmt.Errorf("%w: %d bytes", ErrLiteralLimit, n)
	}
	write := func(b []byte) {
		if werr == nil {
			if _, e := w.Write(b); e != nil {
				werr = e
			}
		}
	}
	var chunk []byte
	for n > 0 {
		if b := min64(n, int64(r.w-r.r)); b > 0 {
			write(r.buf[r.r : r.r+int(b)])
			r.r += int(b)
			r.scanned = 0
			n -= b
			continue
		}
		var e error
		if n < copyChunk {
			// Small remainder: refill the buffer, which also picks up the
			// lines that follow in the same read.
			e = r.fill()
			if e == nil {
				continue
			}
		} else {
			// Large remainder: read straight through one reusable chunk.
			if chunk == nil {
				chunk = make([]byte, copyChunk)
			}
			m, err := r.read(chunk)
			if m > 0 {
				write(chunk[:m])
				n -= int64(m)
				continue
			}
			e = err
			if e == nil {
				e = io.ErrNoProgress
			}
		}
		if e == io.EOF {
			e = io.ErrUnexpectedEOF
		}
		return werr, false, e
	}
	return werr, true, nil
}
