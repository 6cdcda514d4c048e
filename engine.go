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
	kindUntagged respKind = iota
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
	tag    string // tagged only
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
		}
	}
}

func (c *Client) opDeadline() time.Time {
	if c.opts.Timeout < 0 {
		return time.Time{}
	}
	return time.Now().Add(c.opts.Timeout)
}

// readLine reads one line with the read deadline set by deadline().
func (c *Client) readLine(ctx context.Context, deadline time.Time) ([]byte, error) {
	for {
		if c.rd.HasLine() {
			return c.rd.ReadLine()
		}
		c.conn.SetReadDeadline(deadline)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		line, err := c.rd.ReadLine()
		return line, err
	}
}

// readLineSteady reads one line under the operation timeout, which (as
// Options.Timeout documents) bounds each wait for progress, not the whole
// line: a slow but steady server whose line takes longer than the timeout
// to arrive is not cut off. The Reader keeps the partial line across the
// deadline error.
func (c *Client) readLineSteady(ctx context.Context) ([]byte, error) {
	for {
		before := c.rd.Buffered()
		line, err := c.readLine(ctx, c.opDeadline())
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil && c.rd.Buffered() > before {
			continue // bytes arrived before the deadline: wait again
		}
		return line, err
	}
}

// readResponse reads and parses one complete response, storing untagged
// data in the cache (or the open Idler's queue). cmd names the command for
// errors. In phaseIdle the wait for the first line ends at idleDeadline
// (zero: no limit) with errStartTimeout; the rest of the response, literals
// included, is read under the operation timeout.
func (c *Client) readResponse(ctx context.Context, cmd string, phase readPhase, idleDeadline ...time.Time) (*response, error) {
	var line []byte
	var err error
	if phase == phaseIdle {
		first := time.Time{}
		if len(idleDeadline) > 0 {
			first = idleDeadline[0]
		}
		line, err = c.readLine(ctx, first)
	} else {
		line, err = c.readLineSteady(ctx)
	}
	if err != nil {
		return nil, c.readError(ctx, cmd, err, phase == phaseIdle)
	}
	c.tr.recv(line)
	r := &response{}
	switch {
	case len(line) >= 2 && line[0] == '*' && line[1] == ' ':
		r.kind = kindUntagged
		r.line = clone(line)
		if err := c.parseUntagged(ctx, cmd, r); err != nil {
			return nil, err
		}
	case len(line) >= 1 && line[0] == '+':
		r.kind = kindContinuation
		r.text = clone(bytes.TrimPrefix(line[1:], []byte(" ")))
	default:
		r.kind = kindTagged
		r.line = clone(line)
		if err := c.parseTagged(cmd, r); err != nil {
			return nil, err
		}
	}
	return r, nil
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
		return &Error{Command: cmd, Kind: ErrCommand, Text: err.Error(), Err: wire.ErrLineTooLong}
	case ctx.Err() != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ctx.Err())):
		if startWait {
			return &Error{Command: cmd, Kind: ErrCommand, Text: "interrupted", Err: ctx.Err()}
		}
		return c.abort(cmd, ctx.Err(), "interrupted in the middle of a response")
	case startWait && errors.Is(err, os.ErrDeadlineExceeded):
		return errStartTimeout
	case errors.Is(err, os.ErrDeadlineExceeded):
		return c.abort(cmd, err, "timed out waiting for the server")
	case errors.Is(err, wire.ErrUnterminated):
		return c.abort(cmd, nil, "socket error: %v", err)
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || isClosedErr(err) || isReset(err):
		if c.byeText != nil {
			return c.abort(cmd, nil, "server said BYE: %s", c.byeText)
		}
		return c.abort(cmd, err, "socket error: EOF")
	}
	return c.abort(cmd, err, "socket error")
}

// abort marks the connection unusable, closes it and returns the error.
func (c *Client) abort(cmd string, err error, format string, args ...any) *Error {
	e := abortError(cmd, err, format, args...)
	if c.broken == nil {
		c.broken = &Error{Kind: ErrAbort, Text: "connection is closed after an earlier abort: " + e.Error()}
		c.setState(StateLogout)
		c.conn.Close()
		c.tr.event("aborted", "error", e.Error())
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
		return c.abort(cmd, nil, "unexpected response: %q", clip(line))
	}
	r.tag = string(line[:sp])
	rest := line[sp+1:]
	status, text, _ := bytes.Cut(rest, []byte(" "))
	r.status = upper(status)
	r.text = text
	switch r.status {
	case "OK", "NO", "BAD":
	default:
		return c.abort(cmd, nil, "unexpected response: %q", clip(line))
	}
	c.responseCode(r.status, text)
	return nil
}

// parseUntagged parses "* [N ]NAME[ data]", reads any literals that follow
// and stores the response.
func (c *Client) parseUntagged(ctx context.Context, cmd string, r *response) error {
	rest := r.line[2:]
	var datum []byte
	name, after, _ := bytes.Cut(rest, []byte(" "))
	if isDigits(name) && len(after) > 0 {
		// "* 2 EXISTS", "* 1 FETCH (...)": the datum is "N rest".
		typ, more, hasMore := bytes.Cut(after, []byte(" "))
		if !validType(typ) {
			return c.abort(cmd, nil, "unexpected response: %q", clip(r.line))
		}
		r.resp.Type = upper(typ)
		if hasMore {
			datum = make([]byte, 0, len(name)+1+len(more))
			datum = append(append(append(datum, name...), ' '), more...)
		} else {
			datum = name
		}
	} else {
		if !validType(name) {
			return c.abort(cmd, nil, "unexpected response: %q", clip(r.line))
		}
		r.resp.Type = upper(name)
		datum = after
	}
	r.text = datum
	data, err := c.readLiterals(ctx, cmd, r.resp.Type, datum)
	if err != nil {
		return err
	}
	r.resp.Data = data
	// Store the response before its bracketed code, as imaplib does: an
	// Idler delivers ('OK', [b'[ALERT] x']) and then ('ALERT', ...).
	c.store(r.resp)
	switch r.resp.Type {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		c.responseCode(r.resp.Type, datum)
	}
	if r.resp.Type == "BYE" {
		c.byeText = datum
	}
	return nil
}

// readLiterals reads the literals announced at the end of datum and the
// lines that follow them, giving imaplib's fragments: one (header, literal)
// pair per literal, then the trailing text.
func (c *Client) readLiterals(ctx context.Context, cmd, typ string, datum []byte) ([]Datum, error) {
	n := literalSize(datum)
	if n < 0 {
		return []Datum{{Text: datum}}, nil
	}
	var data []Datum
	var total int64
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
		lit, err := c.readLiteral(ctx, n)
		if err != nil {
			return nil, c.readError(ctx, cmd, err, false)
		}
		total += n
		c.tr.recvLiteral(len(lit))
		data = append(data, Datum{Text: datum, Literal: lit})
		line, err := c.readLineSteady(ctx)
		if err != nil {
			return nil, c.readError(ctx, cmd, err, false)
		}
		c.tr.recv(line)
		datum = clone(line)
		n = literalSize(datum)
	}
	return append(data, Datum{Text: datum}), nil
}

func (c *Client) readLiteral(ctx context.Context, n int64) ([]byte, error) {
	c.conn.SetReadDeadline(c.opDeadline())
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for {
		before := c.rd.Pending()
		lit, err := c.rd.ReadLiteral(n, 0)
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
			return lit, err
		}
		// Each read must make progress within the timeout, not the whole
		// literal: a 50 MB body on a slow link is fine while bytes flow.
		if c.rd.Pending() > before {
			c.conn.SetReadDeadline(c.opDeadline())
			continue
		}
		return lit, err
	}
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
	c.store(Response{Type: upper(code), Data: []Datum{{Text: clone(data)}}})
}

// store caches an untagged response, or queues it for the open Idler.
func (c *Client) store(r Response) {
	if c.capture != nil {
		c.capture.enqueue(r)
		return
	}
	c.cacheAppend(r.Type, r.Data...)
}

func (c *Client) cacheAppend(typ string, data ...Datum) {
	list := c.cache[typ]
	if c.cached+len(data) > c.opts.MaxCached {
		// A server flooding unsolicited data must not exhaust memory: drop
		// the oldest half of the largest list.
		big, bigN := typ, len(list)
		for k, v := range c.cache {
			if len(v) > bigN {
				big, bigN = k, len(v)
			}
		}
		drop := (bigN + 1) / 2
		if drop > 0 {
			c.cache[big] = append([]Datum(nil), c.cache[big][drop:]...)
			c.cached -= drop
			c.dropped += drop
			c.tr.event("cache full, dropped untagged data", "type", big, "count", drop)
		}
		list = c.cache[typ]
	}
	c.cache[typ] = append(list, data...)
	c.cached += len(data)
}

// pop removes and returns the cached data of typ (nil when absent).
func (c *Client) pop(typ string) []Datum {
	list, ok := c.cache[typ]
	if !ok {
		return nil
	}
	delete(c.cache, typ)
	c.cached -= len(list)
	return list
}

func (c *Client) clearCache() {
	clear(c.cache)
	c.cached = 0
}

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
	switch string(b) { // the compiler avoids allocating for these lookups
	case "FETCH":
		return "FETCH"
	case "EXISTS":
		return "EXISTS"
	case "EXPUNGE":
		return "EXPUNGE"
	case "OK":
		return "OK"
	case "RECENT":
		return "RECENT"
	case "SEARCH":
		return "SEARCH"
	}
	return string(b)
}

func clone(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
