package imap

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/imapkit/imap/internal/wire"
)

// respKind tells what readResponse found.
type respKind int

const (
	kindNone respKind = iota // no response: a zero response
	kindUntagged
	kindTagged
	kindContinuation
)

// readPhase says how the first line of a response is waited for.
type readPhase int

const (
	phaseCommand readPhase = iota // under the operation timeout
	phaseIdle                     // under the Idler's start deadline
)

// errStartTimeout reports that no response started before the deadline of
// an idle wait; nothing was lost.
var errStartTimeout = errors.New("no response before the deadline")

// aLongTimeAgo is a deadline in the past, used to interrupt a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// response is one parsed server response.
type response struct {
	kind   respKind
	tag    []byte // tagged only; compared, never kept
	status string // tagged only: OK, NO, BAD (upper-cased)
	text   []byte // tagged: text after the status; continuation: its text
	line   []byte // first line as received (tagged and untagged)
	resp   Response
}

// watch makes ctx's cancellation interrupt a blocked read or write on the
// connection. The returned func must be called when the operation ends; it
// waits for an interruption already under way, so that a later deadline
// set by the caller cannot be overwritten by it.
func (c *Client) watch(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	conn := c.conn
	fired := make(chan struct{})
	stopFn := context.AfterFunc(ctx, func() {
		conn.SetDeadline(aLongTimeAgo)
		close(fired)
	})
	return func() {
		if !stopFn() {
			<-fired
			c.readDLSet = false // overridden by the interruption
		}
	}
}

func (c *Client) opDeadline() time.Time {
	if c.opts.Timeout < 0 {
		return time.Time{}
	}
	return time.Now().Add(c.opts.Timeout)
}

// readState tells beforeRead how to bound the next read from the network.
type readState struct {
	ctx      context.Context
	idle     bool      // waiting for the start of a response in IDLE
	deadline time.Time // the idle wait's deadline (zero: none)
}

// beforeRead runs before every read from the network (not per line): it
// sets the read deadline — the operation timeout counts from the last
// progress — and stops at once if ctx is done.
func (c *Client) beforeRead() error {
	d := c.rs.deadline
	if !c.rs.idle {
		d = c.opDeadline()
	}
	if c.rd.Discarding() && c.opts.Timeout > 0 {
		// Fix (limits): a line past MaxLine is skipped only if its rest
		// arrives within one Timeout in all. Every read of a server
		// trickling an endless line makes progress, so the per-read
		// timeout alone would keep the client for up to 16 × (MaxLine +
		// 1 KiB) bytes: hours at a byte per 50 ms.
		if c.skipUntil == 0 {
			c.skipUntil = time.Now().Add(c.opts.Timeout).UnixNano()
		}
		if until := time.Unix(0, c.skipUntil); d.IsZero() || until.Before(d) {
			d = until
		}
	}
	c.setReadDeadline(d)
	// Checked after setting the deadline: a cancellation racing with us
	// either shows here or its AfterFunc overrides our deadline.
	return c.rs.ctx.Err()
}

// setReadDeadline sets the connection's read deadline unless it is already
// d. Skipping the call is not only cheaper: the runtime timer code beneath
// SetReadDeadline is deep, and called under a parked Idler's read (from
// beforeRead) it doubles that goroutine's stack to 4 KiB for good
// (TestIdleStackAfterPush, stack in use while parked: about 9.9 KiB per
// Idler when calling it every time, 7.9 KiB skipping it, the test server's
// goroutines included).
func (c *Client) setReadDeadline(d time.Time) {
	if !c.readDeadlineIs(d) {
		c.conn.SetReadDeadline(d)
		c.readDL, c.readDLSet = d, true
	}
}

// readDeadlineIs reports whether d is the read deadline in force.
func (c *Client) readDeadlineIs(d time.Time) bool { return c.readDLSet && d.Equal(c.readDL) }

// readLine reads one line. In an idle wait the first read is bounded by
// deadline; otherwise every read by the operation timeout.
func (c *Client) readLine(ctx context.Context, idle bool, deadline time.Time) ([]byte, error) {
	c.rs = readState{ctx: ctx, idle: idle, deadline: deadline}
	line, err := c.rd.ReadLine()
	if !c.rd.Discarding() {
		c.skipUntil = 0 // no over-long line in progress
	}
	return line, err
}

// skipExpired reports whether an over-long line being skipped did not end
// in time (see beforeRead).
func (c *Client) skipExpired() bool {
	return c.rd.Discarding() && c.skipUntil != 0 && time.Now().UnixNano() >= c.skipUntil
}

// own returns line as memory that outlives the read buffer's next reuse,
// as the current sink keeps it (see sink.own).
func (c *Client) own(line []byte) []byte { return c.sinkNow().own(c, line) }

// readResponse reads and parses one complete response into r, handing
// untagged data to the current sink. cmd names the command for errors. In
// phaseIdle the wait for the first line ends at idleDeadline (zero: no
// limit) with errStartTimeout; the rest of the response, literals
// included, is read under the operation timeout. r is the caller's, not a
// result: an Idler keeps it off the stack (see Idler.receive).
func (c *Client) readResponse(r *response, ctx context.Context, cmd string, phase readPhase, idleDeadline time.Time) error {
	line, err := c.readLine(ctx, phase == phaseIdle, idleDeadline)
	if err != nil {
		return c.readError(ctx, cmd, err, phase == phaseIdle)
	}
	line = c.scrub(line)
	c.tr().recv(line)
	switch {
	case len(line) >= 2 && line[0] == '*' && line[1] == ' ':
		r.kind = kindUntagged
		return c.parseUntagged(ctx, cmd, r, line)
	case len(line) >= 1 && line[0] == '+':
		r.kind = kindContinuation
		r.text = clone(bytes.TrimPrefix(line[1:], []byte(" ")))
	default:
		r.kind = kindTagged
		r.line = c.own(line)
		return c.parseTagged(cmd, r)
	}
	return nil
}

// readError turns a failed read into an *Error.
func (c *Client) readError(ctx context.Context, cmd string, err error, startWait bool) error {
	var tooLong *wire.LineTooLongError
	switch {
	case errors.As(err, &tooLong):
		// The line was skipped; the stream is still framed unless the line
		// announced a literal, whose bytes we cannot tell from lines.
		if literalSize(tooLong.Tail) >= 0 {
			return c.abort(cmd, err, "line too long, ending in a literal")
		}
		return &Error{Command: cmd, Kind: ErrCommand, Text: err.Error(), Err: lineTooLong{tooLong}}
	case ctx.Err() != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ctx.Err())):
		if startWait {
			return &Error{Command: cmd, Kind: ErrCommand, Text: "interrupted", Err: ctx.Err()}
		}
		return c.abort(cmd, ctx.Err(), "interrupted in the middle of a response")
	case errors.Is(err, os.ErrDeadlineExceeded) && c.skipExpired():
		return c.abort(cmd, err, "a line longer than MaxLine (%d bytes) did not end within the timeout (%v)", c.opts.MaxLine, c.opts.Timeout)
	case startWait && errors.Is(err, os.ErrDeadlineExceeded):
		return errStartTimeout
	case errors.Is(err, os.ErrDeadlineExceeded):
		return c.abort(cmd, err, "timed out waiting for the server")
	case errors.Is(err, wire.ErrUnterminated):
		if c.secrets != nil {
			// Fix (secrets): the reader's error quotes the partial line,
			// which may echo a credential; during authentication, leave
			// it out.
			return c.abort(cmd, nil, "socket error: %v", wire.ErrUnterminated)
		}
		return c.abort(cmd, nil, "socket error: %v", err)
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || isClosedErr(err) || isReset(err):
		if c.byeText != nil {
			return c.abort(cmd, nil, "server said BYE: %s", c.byeText)
		}
		// The cause says EOF or connection reset: say it once.
		return c.abort(cmd, err, "socket error")
	}
	return c.abort(cmd, err, "socket error")
}

// lineTooLong is the Err of the command error for a skipped over-long
// line: it reads as wire.ErrLineTooLong, as before, and keeps the details
// (the line's head shows whether it was a command's completion).
type lineTooLong struct{ *wire.LineTooLongError }

func (e lineTooLong) Error() string { return wire.ErrLineTooLong.Error() }
func (e lineTooLong) Unwrap() error { return e.LineTooLongError }

// isOwnTooLong reports whether err is a skipped over-long line that was the
// tagged completion of tag.
func isOwnTooLong(err error, tag string) bool {
	var tl *wire.LineTooLongError
	return errors.As(err, &tl) && errors.Is(err, ErrCommand) &&
		len(tl.Head) > len(tag) && string(tl.Head[:len(tag)]) == tag && tl.Head[len(tag)] == ' '
}

// abort marks the connection unusable, closes it and returns the error.
func (c *Client) abort(cmd string, err error, format string, args ...any) *Error {
	e := abortError(cmd, err, format, args...)
	if c.broken == nil {
		c.broken = &Error{Kind: ErrAbort, Text: "connection is closed after an earlier abort: " + e.Error()}
		c.setState(StateLogout)
		c.conn.Close()
		c.tr().event("aborted", "error", e.Error())
	}
	return e
}

func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed)
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// parseTagged parses "TAG STATUS text".
func (c *Client) parseTagged(cmd string, r *response) error {
	line := r.line
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return c.unexpectedResponse(cmd, line)
	}
	r.tag = line[:sp]
	rest := line[sp+1:]
	status, text, _ := bytes.Cut(rest, []byte(" "))
	r.status = upper(status)
	r.text = text
	switch r.status {
	case "OK", "NO", "BAD":
	default:
		return c.unexpectedResponse(cmd, line)
	}
	c.responseCode(r.status, text)
	return nil
}

// parseUntagged parses "* [N ]NAME[ data]" from line (which aliases the
// read buffer) and hands the response to the current sink, which reads any
// literals that follow.
func (c *Client) parseUntagged(ctx context.Context, cmd string, r *response, line []byte) error {
	if !c.splitUntagged(r, line) {
		return c.unexpectedResponse(cmd, line)
	}
	lit := literalSize(r.text) >= 0
	if err := c.sinkNow().untagged(c, cmd, r.resp.Type, r.text); err != nil || lit {
		return err
	}
	// The response first, then its code's side entry, as imaplib does:
	// "* OK [ALERT] x" gives OK, then ALERT.
	switch r.resp.Type {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		c.responseCode(r.resp.Type, r.text)
	}
	return nil
}

// splitUntagged sets r's type, its datum (r.text: the line after "* ",
// with "N " in front of the rest for a numeric response) and, for a
// response that is not numeric, r.line, all in one copy of line that the
// response owns. It reports false when the type is malformed.
func (c *Client) splitUntagged(r *response, line []byte) bool {
	rest := line[2:]
	name, after, _ := bytes.Cut(rest, []byte(" "))
	numeric := isDigits(name) && len(after) > 0
	var typ []byte
	var dataStart int // where the datum starts in line
	if numeric {
		// "* 2 EXISTS", "* 1 FETCH (...)": the datum is "N rest".
		var hasMore bool
		typ, _, hasMore = bytes.Cut(after, []byte(" "))
		dataStart = len(line)
		if hasMore {
			dataStart = 2 + len(name) + 1 + len(typ) + 1
		}
	} else {
		typ = name
		dataStart = min(2+len(name)+1, len(line))
	}
	if !validType(typ) {
		return false
	}
	r.resp.Type = upper(typ)
	cp := c.sinkNow().own(c, line)
	var datum []byte
	if numeric {
		// One copy: write "N " over the end of the type name, just before
		// the rest.
		start := dataStart - len(name) - 1
		if dataStart == len(line) {
			start = dataStart - len(name)
			datum = cp[start:len(line):len(line)]
			copy(datum, name)
		} else {
			datum = cp[start:len(line):len(line)]
			copy(datum, name)
			datum[len(name)] = ' '
		}
	} else {
		r.line = cp
		datum = cp[dataStart:len(line):len(line)]
	}
	r.text = datum
	if r.resp.Type == "BYE" {
		c.byeText = clone(datum)
	}
	return true
}

// unexpectedResponse aborts on a line that is not a response.
func (c *Client) unexpectedResponse(cmd string, line []byte) error {
	return c.abort(cmd, nil, "unexpected response: %q", clip(line))
}

// readLiterals reads the literals announced at the end of datum and the
// lines that follow them, giving imaplib's fragments to f: one (header,
// literal) pair per literal, then the trailing text. It reads under the
// context of the response's first line (see readState).
func (c *Client) readLiterals(cmd, typ string, datum []byte, f *fragments) error {
	ctx := c.rs.ctx
	n := literalSize(datum)
	var total int64
	// Literals are read under the operation timeout; readLine below
	// leaves the same state for the next one.
	c.rs = readState{ctx: ctx}
	for n >= 0 {
		limit := c.opts.MaxLiteral
		if typ != "FETCH" {
			// Only message data may be large; anything else is bounded by
			// the per-response budget.
			limit = min(limit, c.opts.MaxResponseLiterals-total)
		}
		if n > limit {
			return c.abort(cmd, wire.ErrLiteralLimit, "server sent a literal of %d bytes (limit %d)", n, limit)
		}
		var lit []byte
		var w io.Writer
		if f.stream != nil {
			w = f.stream(datum)
		}
		if w != nil {
			// Streamed (FetchTo): bounded memory, an empty literal as marker.
			werr, _, err := c.rd.CopyLiteral(w, n)
			if err != nil {
				return c.readError(ctx, cmd, err, false)
			}
			if werr != nil && f.werr == nil {
				f.werr = werr
			}
			lit = []byte{}
		} else {
			var err error
			if lit, err = c.rd.ReadLiteral(n, 0); err != nil {
				return c.readError(ctx, cmd, err, false)
			}
		}
		total += n
		c.tr().recvLiteral(len(lit))
		if f.keep != nil {
			f.keep.keep(c, typ, Datum{Text: datum, Literal: lit}, true)
		} else {
			if len(f.data) >= c.opts.MaxCached {
				// Fix (limits): a response taken whole (by an Idler) is
				// bounded like the cache; its parts cannot be dropped
				// without corrupting it.
				return c.abort(cmd, nil, "response %s has more than %d literals (MaxCached)", typ, c.opts.MaxCached)
			}
			f.data = append(f.data, Datum{Text: datum, Literal: lit})
		}
		line, err := c.readLine(ctx, false, time.Time{})
		if err != nil {
			return c.readError(ctx, cmd, err, false)
		}
		line = c.scrub(line)
		c.tr().recv(line)
		datum = c.own(line)
		n = literalSize(datum)
	}
	if f.keep != nil {
		f.keep.keep(c, typ, Datum{Text: datum}, false)
	} else {
		f.data = append(f.data, Datum{Text: datum})
	}
	return nil
}

// literalSize returns N when line ends in a literal marker "{N}" (also
// "~{N}" and "{N+}"), or -1.
func literalSize(line []byte) int64 {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return -1
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return -1
	}
	digits := line[i+1 : len(line)-1]
	if len(digits) > 0 && digits[len(digits)-1] == '+' {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 || len(digits) > 19 {
		if len(digits) > 19 && isDigits(digits) {
			return 1<<63 - 1 // absurd, but a literal: the limit rejects it
		}
		return -1
	}
	var n int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return -1
		}
		if n > (1<<63-1-int64(d-'0'))/10 {
			return 1<<63 - 1
		}
		n = n*10 + int64(d-'0')
	}
	return n
}

// responseCode caches "[CODE data]" at the start of an OK/NO/BAD text under
// CODE. The data runs to the last "]" so flags containing "]" survive.
func (c *Client) responseCode(status string, text []byte) {
	if len(text) < 3 || text[0] != '[' {
		return
	}
	end := bytes.LastIndexByte(text, ']')
	if end < 0 {
		return
	}
	inner := text[1:end]
	code, data, _ := bytes.Cut(inner, []byte(" "))
	if !validType(code) {
		return
	}
	c.sinkNow().code(c, upper(code), data)
}

// makeRoom drops cached data, counting it, so that n more data of size
// bytes (see cost) keep the cache within MaxCached and MaxCachedBytes.
func (c *Client) makeRoom(n, size int) {
	n, typ := c.cache.bound(c.opts.MaxCached-n, c.opts.MaxCachedBytes-size)
	if n == 0 {
		return
	}
	c.dropped.Add(int64(n))
	c.tr().event("cache full, dropped untagged data", "type", typ, "count", n)
}

// cacheDatum caches one datum of an untagged response (more: further
// fragments of it follow). In stable mode it is copied out of the read
// buffers first: the cache outlives the command, and a buffer it
// referenced would stay alive as long as the datum. (Copying here replaced
// tracking which cached data referenced the buffers, to copy them out at
// the end: memory per parked Idler measured the same, 4.86 and 4.81 KiB
// for 2,000 and 10,000 Idlers against 4.85 and 4.94.)
func (c *Client) cacheDatum(typ string, d Datum, more bool) {
	if c.rd.Stable() {
		d = ownDatum(d)
	}
	c.makeRoom(1, cost(&d))
	c.cache.add(typ, d, more)
}

// ownDatum returns d with its bytes copied into one allocation.
func ownDatum(d Datum) Datum {
	buf := make([]byte, 0, len(d.Text)+len(d.Literal))
	if d.Text != nil {
		buf = append(buf, d.Text...)
		d.Text = buf[:len(buf):len(buf)]
	}
	if d.Literal != nil {
		start := len(buf)
		buf = append(buf, d.Literal...)
		d.Literal = buf[start:len(buf):len(buf)]
	}
	return d
}

// pop removes and returns the cached data of typ (nil when absent).
func (c *Client) pop(typ string) []Datum { return c.cache.pop(typ) }

// cached returns a copy of the cached data of typ without removing it.
func (c *Client) cached(typ string) []Datum {
	data, _ := c.cache.get(typ)
	return data
}

func (c *Client) clearCache() { c.cache.clear() }

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, d := range b {
		if d < '0' || d > '9' {
			return false
		}
	}
	return true
}

// validType reports whether b is a response name: letters, digits, '-',
// '.' and '_' (imaplib accepts [A-Z-]+; extensions use the others).
func validType(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, ch := range b {
		switch {
		case ch >= 'A' && ch <= 'Z', ch >= 'a' && ch <= 'z', ch == '-', ch == '_', ch == '.', ch >= '0' && ch <= '9':
		default:
			return false
		}
	}
	return !isDigits(b)
}

// upper returns b upper-cased as a string, avoiding work for the common
// already-upper case.
func upper(b []byte) string {
	for _, ch := range b {
		if ch >= 'a' && ch <= 'z' {
			return string(bytes.ToUpper(b))
		}
	}
	return internType(b)
}

// internType returns b as a string, without allocating for the usual
// response types and codes: a client keeps them as cache keys.
func internType(b []byte) string {
	switch string(b) { // the compiler avoids allocating for these lookups
	case "FETCH":
		return "FETCH"
	case "EXISTS":
		return "EXISTS"
	case "EXPUNGE":
		return "EXPUNGE"
	case "OK":
		return "OK"
	case "NO":
		return "NO"
	case "BAD":
		return "BAD"
	case "BYE":
		return "BYE"
	case "RECENT":
		return "RECENT"
	case "SEARCH":
		return "SEARCH"
	case "ESEARCH":
		return "ESEARCH"
	case "FLAGS":
		return "FLAGS"
	case "PERMANENTFLAGS":
		return "PERMANENTFLAGS"
	case "UIDVALIDITY":
		return "UIDVALIDITY"
	case "UIDNEXT":
		return "UIDNEXT"
	case "UNSEEN":
		return "UNSEEN"
	case "HIGHESTMODSEQ":
		return "HIGHESTMODSEQ"
	case "READ-ONLY":
		return "READ-ONLY"
	case "READ-WRITE":
		return "READ-WRITE"
	case "CAPABILITY":
		return "CAPABILITY"
	case "LIST":
		return "LIST"
	case "STATUS":
		return "STATUS"
	case "VANISHED":
		return "VANISHED"
	}
	return string(b)
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
