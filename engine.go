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
// SetReadDeadline is deep, and called under a parked Idler's read it would
// double that goroutine's stack to 4 KiB for good (the GC shrinks a stack
// only when less than a quarter of it is in use).
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

// own returns line as response data: the line itself when the reader is in
// stable mode (a command is running, and its buffers are never reused), a
// copy otherwise (an idle connection keeps a small reusable buffer).
func (c *Client) own(line []byte) []byte {
	if c.rd.Stable() {
		return line
	}
	if c.capture != nil {
		return c.idleArena().text(line, c.rd.Buffered())
	}
	return clone(line)
}

// idleArena returns the open Idler's arena, creating it.
func (c *Client) idleArena() *idleArena {
	if c.arena == nil {
		c.arena = new(idleArena)
	}
	return c.arena
}

// readResponse reads and parses one complete response into r, storing
// untagged data in the cache (or the open Idler's queue). cmd names the
// command for errors. In phaseIdle the wait for the first line ends at
// idleDeadline (zero: no limit) with errStartTimeout; the rest of the
// response, literals included, is read under the operation timeout. r is
// the caller's, not a result, to keep this frame small on an Idler's push
// path (see Idler.nextLocked).
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
// read buffer), reads any literals that follow and stores the response.
//
// Every push an Idler receives comes through here, so the work is split
// among callees and this frame stays small (see Idler.nextLocked).
func (c *Client) parseUntagged(ctx context.Context, cmd string, r *response, line []byte) error {
	if !c.splitUntagged(r, line) {
		return c.unexpectedResponse(cmd, line)
	}
	switch {
	case c.each != nil && c.capture == nil && r.resp.Type == c.curWant:
		return c.deliverEach(ctx, cmd, r.resp.Type, r.text)
	case literalSize(r.text) >= 0:
		return c.untaggedLiterals(ctx, cmd, r)
	case c.capture != nil:
		c.capture.queueText(r.resp.Type, r.text)
	default:
		c.cacheText(r.resp.Type, r.text)
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
//
//go:noinline
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
	cp := c.own(line)
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

// cacheText keeps a response of one datum without a literal, the common
// case; a function of its own to keep parseUntagged's frame small.
//
//go:noinline
func (c *Client) cacheText(typ string, text []byte) {
	c.keep(typ, Datum{Text: text}, false)
}

// unexpectedResponse aborts on a line that is not a response.
//
//go:noinline
func (c *Client) unexpectedResponse(cmd string, line []byte) error {
	return c.abort(cmd, nil, "unexpected response: %q", clip(line))
}

// untaggedLiterals reads the literals that r.text announces, and the rest
// of the response, and stores it.
//
//go:noinline
func (c *Client) untaggedLiterals(ctx context.Context, cmd string, r *response) error {
	if c.capture == nil {
		// Fragments go straight into the cache, as imaplib stores them.
		_, err := c.readLiterals(ctx, cmd, r.resp.Type, r.text, true, nil)
		return err
	}
	data, err := c.readLiterals(ctx, cmd, r.resp.Type, r.text, false, nil)
	if err != nil {
		return err
	}
	r.resp.Data = data
	c.store(r.resp)
	return nil
}

// readLiterals reads the literals announced at the end of datum and the
// lines that follow them, giving imaplib's fragments: one (header, literal)
// pair per literal, then the trailing text.
//
// With toCache the fragments are appended to the cache as they arrive and
// no slice is returned; otherwise they are appended to data.
func (c *Client) readLiterals(ctx context.Context, cmd, typ string, datum []byte, toCache bool, data []Datum) ([]Datum, error) {
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
			return nil, c.abort(cmd, wire.ErrLiteralLimit, "server sent a literal of %d bytes (limit %d)", n, limit)
		}
		var lit []byte
		if w := c.literalWriter(typ, datum); w != nil {
			// Streamed (FetchTo): bounded memory, an empty literal as marker.
			werr, _, err := c.rd.CopyLiteral(w, n)
			if err != nil {
				return nil, c.readError(ctx, cmd, err, false)
			}
			if werr != nil && c.sink.err == nil {
				c.sink.err = werr
			}
			lit = []byte{}
		} else {
			var err error
			if lit, err = c.rd.ReadLiteral(n, 0); err != nil {
				return nil, c.readError(ctx, cmd, err, false)
			}
		}
		total += n
		c.tr().recvLiteral(len(lit))
		if toCache {
			c.keep(typ, Datum{Text: datum, Literal: lit}, true)
		} else {
			if len(data) >= c.opts.MaxCached {
				// Fix (limits): a response captured whole (by an Idler)
				// is bounded like the cache; its parts cannot be dropped
				// without corrupting it.
				return nil, c.abort(cmd, nil, "response %s has more than %d literals (MaxCached)", typ, c.opts.MaxCached)
			}
			// Filled in place: a Datum built apart and then copied in
			// costs a store-forwarding stall per literal, and FETCH
			// responses have tens of thousands.
			data = append(data, Datum{})
			d := &data[len(data)-1]
			d.Text, d.Literal = datum, lit
		}
		line, err := c.readLine(ctx, false, time.Time{})
		if err != nil {
			return nil, c.readError(ctx, cmd, err, false)
		}
		line = c.scrub(line)
		c.tr().recv(line)
		datum = c.own(line)
		n = literalSize(datum)
	}
	if toCache {
		c.keep(typ, Datum{Text: datum}, false)
		return nil, nil
	}
	return append(data, Datum{Text: datum}), nil
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
	typ := upper(code)
	if c.capture != nil {
		c.capture.enqueue(Response{Type: typ, Data: []Datum{{Text: clone(data)}}})
		return
	}
	// Straight into the cache, without a one-datum slice to copy from;
	// data references the line, which is stable (see own) or a copy.
	c.keep(typ, Datum{Text: c.own(data)}, false)
}

// store caches an untagged response, or queues it for the open Idler.
func (c *Client) store(r Response) {
	if c.capture != nil {
		c.capture.enqueue(r)
		return
	}
	c.keepResponse(r)
}

// keep stores one datum of an untagged response: in the running command's
// result when the response is of the type the command returns, in the
// cache otherwise. more says that further fragments of the same response
// (its literals and the text after them) follow.
func (c *Client) keep(typ string, d Datum, more bool) {
	if typ == c.curWant && typ != "" {
		c.keepResult(d)
		return
	}
	pinned := c.rd.Stable()
	if c.each != nil && pinned {
		// FetchEach reuses the read buffer after each response: what is
		// kept must be copied now, not when the command ends.
		d = ownData([]Datum{d})[0]
		pinned = false
	}
	c.makeRoom(1, cost(&d))
	c.cache.add(typ, d, more, pinned)
}

// keepResponse stores a whole response, as keep does.
func (c *Client) keepResponse(r Response) {
	if r.Type == c.curWant && r.Type != "" {
		for _, d := range r.Data {
			c.keepResult(d)
		}
		return
	}
	pinned := c.rd.Stable()
	if c.each != nil && pinned {
		r.Data = ownData(r.Data)
		pinned = false
	}
	size := 0
	for i := range r.Data {
		size += cost(&r.Data[i])
	}
	c.makeRoom(len(r.Data), size)
	c.cache.addResponse(r, pinned)
}

// keepResult appends d to the running command's result. The result is
// bounded in data by MaxCached, as the cache is, but not in bytes: its
// size is what the caller asked for.
func (c *Client) keepResult(d Datum) {
	if len(c.result) >= c.opts.MaxCached {
		// A server flooding the command's own type must not exhaust
		// memory: drop the oldest half, into a new array so that the
		// buffers it referenced can be freed.
		drop := (len(c.result) + 1) / 2
		c.result = append(make([]Datum, 0, len(c.result)), c.result[drop:]...)
		c.dropped.Add(int64(drop))
		c.tr().event("result full, dropped untagged data", "type", c.curWant, "count", drop)
	}
	if len(c.result) == cap(c.result) {
		// Double: big FETCH results grow to tens of thousands of entries,
		// and append's gentler growth would copy them many times.
		grown := make([]Datum, len(c.result), max(2*cap(c.result), 4))
		copy(grown, c.result)
		c.result = grown
	}
	c.result = append(c.result, d)
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
	if c.rd.Stable() {
		// What is kept may reference the same read buffers as what was
		// dropped: copied out, it lets them be freed now rather than when
		// the command ends, so that a flood during one command is bounded
		// by MaxCachedBytes, not by what the server sends.
		c.cache.unpin()
	}
}

// spillResult moves the data of a command that did not complete with OK
// into the cache, as imaplib leaves them in untagged_responses: a
// response's fragments stay together (a fragment with a literal is
// followed by the rest of its response).
func (c *Client) spillResult() {
	res, typ := c.result, c.curWant
	c.result, c.curWant = nil, ""
	pinned := c.rd.Stable()
	for _, d := range res {
		c.makeRoom(1, cost(&d))
		c.cache.add(typ, d, d.Literal != nil, pinned)
	}
}

// ownData returns a copy of data whose bytes are in one allocation of
// their own.
func ownData(data []Datum) []Datum {
	out := append([]Datum(nil), data...)
	copyOut(len(out), func(i int) *Datum { return &out[i] })
	return out
}

// copyOut moves the bytes of the n datums at(0) … at(n-1) into one
// allocation, so that they no longer reference the read buffers.
func copyOut(n int, at func(int) *Datum) {
	size := 0
	for i := range n {
		d := at(i)
		size += len(d.Text) + len(d.Literal)
	}
	buf := make([]byte, 0, size)
	take := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	for i := range n {
		d := at(i)
		d.Text = take(d.Text)
		d.Literal = take(d.Literal)
	}
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
