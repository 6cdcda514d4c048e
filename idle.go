package imap

import (
	"context"
	"errors"
	"iter"
	"time"
)

// ErrIdleEnded reports that the server ended IDLE on its own, with a tagged
// completion or BYE. Responses and Burst stop cleanly on it; Ended gives the
// reason.
var ErrIdleEnded = errors.New("server ended IDLE")

// Idler is an open IDLE command (RFC 2177), the Go form of imaplib's Idler.
// Untagged responses the server pushes are delivered by Next, Responses and
// Burst, in the order they arrived; Close sends DONE.
//
// An Idler reads on the caller's goroutine: no goroutine runs in the
// background and no user code runs on a reader. While it is open, every
// other command on the Client fails with a state error (state IDLING). It
// must not be used by several goroutines at once.
type Idler struct {
	c        *Client
	ctx      context.Context
	tag      string
	deadline time.Time // zero: no limit
	queue    []Response
	ended    error // why the server ended IDLE, or the abort that ended it
	closeErr error
	// arena holds the memory of the responses being delivered; nil while
	// the Idler waits (see idleArena).
	arena *idleArena
	// stopWait ends the cancellation watch of a wait (see startWait).
	stopWait func()
	closed   bool
	// prevState is the State to return to; small, so that the struct fits
	// the 144-byte allocation class (arena and stopWait moved here from the
	// Client, which went from 480 bytes to 416).
	prevState int8
}

// Idle starts IDLE and waits for the server's go-ahead. duration bounds how
// long responses are waited for (0 means no limit); its clock starts when
// the server's "+" arrives. Responses the server sends before that are
// delivered first. ctx interrupts any wait of the Idler: the Idler then
// sends DONE and reads the completion, leaving the connection usable.
//
// Idle fails before sending anything when the server lacks IDLE or the
// client is not in AUTH or SELECTED state. A tagged NO is a command error
// ("idle denied"); a tagged OK or BAD before "+" is an abort.
func (c *Client) Idle(ctx context.Context, duration time.Duration) (*Idler, error) {
	if !c.has("IDLE") {
		return nil, cmdError("IDLE", "Server does not support IMAP4 IDLE")
	}
	if err := c.begin("IDLE"); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	id := &Idler{c: c, ctx: ctx}
	c.cur = id // responses sent before "+" belong to the Idler
	tag, done, err := c.send(ctx, &command{name: "IDLE"})
	if err == nil && done.kind == kindNone {
		done, err = id.waitContinuation(ctx, tag)
	}
	if err != nil {
		id.detach()
		return nil, err
	}
	if done.kind != kindNone {
		id.detach()
		if done.status == "NO" {
			return nil, &Error{Command: "IDLE", Kind: ErrCommand, Status: "NO", Text: "idle denied: " + string(done.text)}
		}
		return nil, c.abort("IDLE", nil, "unexpected status response: %s", done.line)
	}
	id.tag = tag
	if duration > 0 {
		id.deadline = time.Now().Add(duration)
	}
	id.prevState = int8(c.State())
	c.setState(StateIdling)
	c.tr().event("idling", "duration", duration)
	return id, nil
}

// waitContinuation waits for "+" or the tagged completion. If ctx ends
// first, the client still waits (under the operation timeout) for the
// server's answer, ends IDLE properly and reports the cancellation.
func (id *Idler) waitContinuation(ctx context.Context, tag string) (response, error) {
	c := id.c
	for {
		stop := c.watch(ctx)
		var r response
		err := c.readResponse(&r, ctx, "IDLE", phaseIdle, c.opDeadline())
		stop()
		if err == errStartTimeout {
			return response{}, c.abort("IDLE", nil, "timed out waiting for the server to accept IDLE")
		}
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Kind == ErrCommand && ctx.Err() != nil {
				// Interrupted before "+": finish the exchange, then report.
				r, err2 := id.waitContinuation(context.Background(), tag)
				if err2 != nil {
					return response{}, err2
				}
				if r.kind == kindNone {
					id.tag = tag
					id.prevState = int8(c.State())
					c.setState(StateIdling)
					if cerr := id.closeLocked(); cerr != nil {
						return response{}, cerr
					}
				}
				return response{}, err
			}
			return response{}, err
		}
		switch r.kind {
		case kindContinuation:
			return response{}, nil
		case kindTagged:
			if string(r.tag) != tag {
				return response{}, c.abort("IDLE", nil, "unexpected tagged response: %q", clip(r.line))
			}
			return r, nil
		}
	}
}

func (id *Idler) enqueue(r Response) {
	if max := id.c.opts.MaxCached; len(id.queue) >= max {
		// Fix (limits): bound the queue as the cache is bounded. Responses
		// before "+" are all queued at once, so a server flooding them
		// could otherwise exhaust memory. Drop the oldest half, counted in
		// Dropped.
		drop := (len(id.queue) + 1) / 2
		id.queue = append([]Response(nil), id.queue[drop:]...)
		id.c.dropped.Add(int64(drop))
		id.c.tr().event("idle queue full, dropped responses", "count", drop)
	}
	id.queue = append(id.queue, r)
}

// own copies line into the arena: a parked Idler's read buffer is reused.
func (id *Idler) own(c *Client, line []byte) []byte {
	return id.idleArena().text(line, c.rd.Buffered())
}

// untagged queues a response. The common case, one datum without a
// literal, has its datum carved from the arena; literals are read in a
// function of their own, off the path of every push (see nextLocked).
func (id *Idler) untagged(c *Client, cmd, typ string, text []byte) error {
	if literalSize(text) >= 0 {
		return id.untaggedLiterals(c, cmd, typ, text)
	}
	q := Response{Type: typ, Data: id.idleArena().datum(text, c.rd.Buffered())}
	id.enqueue(q)
	return nil
}

// untaggedLiterals reads the literals text announces, and the rest of the
// response, and queues it whole.
func (id *Idler) untaggedLiterals(c *Client, cmd, typ string, text []byte) error {
	var f fragments
	if err := c.readLiterals(cmd, typ, text, &f); err != nil {
		return err
	}
	id.enqueue(Response{Type: typ, Data: f.data})
	return nil
}

// code queues a response code as a response of its own.
func (id *Idler) code(c *Client, typ string, data []byte) {
	id.enqueue(Response{Type: typ, Data: []Datum{{Text: clone(data)}}})
}

// detach stops taking the client's responses and moves undelivered ones
// into its cache, fragment by fragment, as imaplib does on leaving the idle
// context.
func (id *Idler) detach() {
	id.c.cur, id.arena = nil, nil
	for _, r := range id.queue {
		id.c.cacheResponse(r)
	}
	id.queue = nil
}

// Deadline returns when the Idler's duration ends (zero: no limit).
func (id *Idler) Deadline() time.Time { return id.deadline }

// Ended returns why the server ended IDLE on its own, or nil.
func (id *Idler) Ended() error {
	id.c.mu.Lock()
	defer id.c.mu.Unlock()
	return id.ended
}

// Next returns one response: a queued one at once, or the next one that
// starts within timeout (and before the Idler's deadline). It returns false
// with a nil error when none did. A timeout ≤ 0 polls: it returns what has
// already been received, without waiting.
//
// Only the wait for the start of a response is bounded by timeout. A
// response that has started is read to its end under the operation
// timeout, literals included, so a response split across delayed packets is
// never cut; bytes of a line that had not completed when timeout expired
// are kept for the next call.
func (id *Idler) Next(timeout time.Duration) (r Response, ok bool, err error) {
	poll, until := timeout <= 0, time.Time{}
	if !poll {
		until = id.park(timeout)
	}
	// Locked here rather than in a function of its own: with one frame
	// more, every goroutine waiting in Next grew by 2 KiB for good after a
	// push (TestIdleStackAfterPush: ~2 KiB per Idler instead of 0).
	id.c.mu.Lock()
	ok, err = id.nextLocked(&r, poll, until)
	id.c.mu.Unlock()
	return r, ok, err
}

// park is Next's wait: wait, for at most timeout and until the Idler's
// deadline, in one small frame. It returns the end of the wait, which
// nextLocked keeps to. Not shared with wait: Next's own frame is large, and
// Next calling await, or park calling wait, parks each waiting goroutine on
// a 4 KiB stack instead of 2 KiB (TestIdleStackAfterPush, stack in use
// while parked: about 9.9 KiB per Idler instead of 7.9 KiB, the test
// server's goroutines included).
func (id *Idler) park(timeout time.Duration) (until time.Time) {
	until = time.Now().Add(timeout)
	if !id.deadline.IsZero() && id.deadline.Before(until) {
		until = id.deadline
	}
	if id.startWait(until) {
		defer id.endWait()
		c := id.c
		id.stopWait = c.watch(id.ctx) // see wait
		c.setReadDeadline(until)
		c.rd.Fill()
	}
	return until
}

// take appends to batch every response available without waiting — queued,
// or complete in the read buffer — under one lock: a burst of thousands is
// parsed without a clock reading or a lock round trip per response.
func (id *Idler) take(batch []Response) ([]Response, error) {
	id.c.mu.Lock()
	defer id.c.mu.Unlock()
	for {
		var r Response
		ok, err := id.nextLocked(&r, true, time.Time{})
		if err != nil || !ok {
			return batch, err
		}
		batch = append(batch, r)
	}
}

// nextLocked delivers one response to *r, with c.mu held: a queued one, or
// one read now. poll reads only what is buffered; otherwise it waits until
// until (zero: no limit). The response goes to *r rather than being
// returned: a result this size is copied through every frame.
//
// It and receive are the path of every push: a goroutine that handles a
// push then parks again keeps whatever stack the deepest call needed, and
// Go never shrinks it while parked (see wait). Hence reserve, before the
// deep calls (see arena.go for its measurement).
func (id *Idler) nextLocked(r *Response, poll bool, until time.Time) (bool, error) {
	if id.closed {
		return false, id.closedError()
	}
	for {
		if len(id.queue) > 0 {
			id.dequeue(r)
			return true, nil
		}
		if id.ended != nil {
			return false, id.ended
		}
		if poll || passed(until) {
			if !id.c.rd.HasLine() {
				return false, nil
			}
			// A complete line is buffered, so the first line needs no
			// read: a deadline in the past only makes sure of it.
			until = aLongTimeAgo
		}
		id.reserve(id.c.rd.Buffered()) // here, not deeper in receive (see arena.go)
		if more, err := id.receive(until); !more {
			return false, err
		}
	}
}

// closedError is what a closed Idler's Next returns.
func (id *Idler) closedError() error {
	if id.ended != nil && len(id.queue) == 0 {
		return id.ended // still the reason it ended
	}
	return cmdError("IDLE", "Idler is closed")
}

// passed reports whether the wait deadline until (zero: none) has passed.
func passed(until time.Time) bool {
	return !until.IsZero() && !time.Now().Before(until)
}

// dequeue pops the oldest queued response into *out.
func (id *Idler) dequeue(out *Response) {
	r := id.queue[0]
	id.queue[0] = Response{}
	if len(id.queue) == 1 {
		// Empty: refill from this slot, so that responses taken one by
		// one as they arrive reuse it instead of growing the queue again
		// each time.
		id.queue = id.queue[:0]
	} else {
		id.queue = id.queue[1:]
	}
	if r.Type == "BYE" && id.ended == nil {
		id.ended = &Error{Command: "IDLE", Kind: ErrAbort, Status: "BYE", Text: datumText(r), Err: ErrIdleEnded}
	}
	*out = r
}

// receive reads one response, waiting for its start until until. An
// untagged response lands in the queue. It returns false when nothing more
// is to be read now: with a nil error when the wait timed out, otherwise
// with the error that ended the wait or the Idler.
func (id *Idler) receive(until time.Time) (more bool, err error) {
	c := id.c
	// The response lives in the arena, made by reserve just before: on
	// this frame its 136 bytes grew every goroutine waiting in Next or
	// Responses by 2 KiB after a push (TestIdleStackAfterPush: ~2 KiB per
	// Idler instead of 0).
	r := &id.arena.resp
	*r = response{}
	stop := c.watch(id.ctx)
	err = c.readResponse(r, id.ctx, "IDLE", phaseIdle, until)
	stop()
	switch {
	case err != nil:
		return false, id.readFailed(err)
	case r.kind == kindTagged:
		return false, id.taggedEnd(r)
	}
	// Untagged: queued by the Idler as the current sink. A continuation
	// is not ours to answer; imaplib would crash on it.
	return true, nil
}

// readFailed turns receive's read error into what Next returns: nil for a
// wait that timed out, and otherwise the error, after ending IDLE cleanly
// when ctx was cancelled, or marking the Idler ended when the connection
// is lost.
func (id *Idler) readFailed(err error) error {
	if err == errStartTimeout {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Kind == ErrCommand && id.ctx.Err() != nil {
		// Cancelled while waiting: end IDLE cleanly and report why.
		if cerr := id.closeLocked(); cerr != nil {
			return cerr
		}
		return err
	}
	if errors.As(err, &e) && e.Kind == ErrAbort {
		id.ended = err
	}
	return err
}

// taggedEnd handles a tagged response during IDLE: the server ended IDLE
// without waiting for DONE, or sent a tag that is not IDLE's.
func (id *Idler) taggedEnd(r *response) error {
	c := id.c
	if string(r.tag) != id.tag {
		err := c.abort("IDLE", nil, "unexpected tagged response: %q", clip(r.line))
		id.ended = err
		return err
	}
	id.ended = &Error{Command: "IDLE", Kind: ErrCommand, Status: r.status, Code: responseCode(r.text), Text: string(r.text), Err: ErrIdleEnded}
	id.closed = true
	if c.broken == nil {
		c.setState(State(id.prevState))
	}
	id.detach()
	return id.ended
}

// wait blocks, from a shallow stack, until data is buffered or until
// passes, when nothing is queued. nextLocked does the parsing (a deeper
// stack) only once data is there, so that thousands of parked Idlers keep
// the smallest goroutine stacks. Errors are left for nextLocked to meet
// again.
//
// Every frame down to the read stays on the stack of the parked goroutine,
// and the runtime starts new goroutines with the average stack in use
// (plus a 928-byte guard) rounded up to a power of two: past about 1.1 KiB
// parked, every new goroutine starts with 4 KiB. Hence the setup in
// startWait and endWait: folded into wait (two defers, a closure), it
// parked every goroutine in Responses and Burst on 4 KiB
// (TestIdleStackAfterPush: about 10 KiB per Idler in use while parked
// instead of 7.9 KiB, the test server's goroutines included).
func (id *Idler) wait(until time.Time) {
	if !id.startWait(until) {
		return
	}
	defer id.endWait()
	c := id.c
	// The watch (with a cancellable ctx, context.AfterFunc) and the
	// deadline are set here rather than in beforeRead, under Fill, which
	// then finds the deadline set and skips the runtime's deep timer code
	// (see setReadDeadline).
	id.stopWait = c.watch(id.ctx)
	c.setReadDeadline(until)
	c.rd.Fill() // a timeout or error recurs in nextLocked, which reports it
}

// startWait prepares wait's read. It returns false when there is nothing
// to wait for; otherwise it returns with c.mu held, for endWait to release
// (and to end the cancellation watch the caller starts).
func (id *Idler) startWait(until time.Time) bool {
	c := id.c
	c.mu.Lock()
	if id.closed || len(id.queue) > 0 || id.ended != nil || c.broken != nil || c.rd.Buffered() > 0 || passed(until) {
		c.mu.Unlock()
		return false
	}
	c.rs = readState{ctx: id.ctx, idle: true, deadline: until}
	// Nothing is buffered: a parked Idler holds no spare chunk and no
	// buffer grown by a burst.
	id.arena = nil
	c.rd.Small()
	return true
}

// endWait ends what startWait started.
func (id *Idler) endWait() {
	if id.stopWait != nil {
		id.stopWait()
		id.stopWait = nil
	}
	id.c.mu.Unlock()
}

func datumText(r Response) string {
	if len(r.Data) == 0 {
		return ""
	}
	return string(r.Data[0].Text)
}

// Responses ranges over responses until the Idler's deadline. It stops
// cleanly when the server ends IDLE; any other error is yielded once,
// last.
func (id *Idler) Responses() iter.Seq2[Response, error] {
	return func(yield func(Response, error) bool) {
		for {
			var r Response
			ok, err := id.await(&r, id.deadline)
			if err != nil {
				if !errors.Is(err, ErrIdleEnded) {
					yield(Response{}, err)
				}
				return
			}
			if !ok || !yield(r, nil) {
				return
			}
		}
	}
}

// Burst ranges over batches of responses until the Idler's deadline: each
// batch is one response (waited for under the deadline) and every further
// response that starts within interval of the previous one — a bulk delete's
// run of EXPUNGE, say. Unlike imaplib, the interval waits never run past
// the deadline either.
func (id *Idler) Burst(interval time.Duration) iter.Seq2[[]Response, error] {
	return func(yield func([]Response, error) bool) {
		for {
			var first Response
			ok, err := id.await(&first, id.deadline)
			if err != nil {
				if !errors.Is(err, ErrIdleEnded) {
					yield(nil, err)
				}
				return
			}
			if !ok {
				return
			}
			batch, err := id.gather(first, interval)
			if !yield(batch, nil) {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrIdleEnded) {
					yield(nil, err)
				}
				return
			}
		}
	}
}

// gather returns a burst that starts with first: first, every response
// already received, and then each response that starts within interval of
// the previous one, under the Idler's deadline. An error ends the burst
// and the ranging, after the batch is delivered.
func (id *Idler) gather(first Response, interval time.Duration) ([]Response, error) {
	batch := []Response{first}
	for {
		var err error
		if batch, err = id.take(batch); err != nil || interval <= 0 {
			return batch, err
		}
		until := time.Now().Add(interval)
		if !id.deadline.IsZero() && id.deadline.Before(until) {
			until = id.deadline
		}
		var r Response
		ok, err := id.await(&r, until)
		if err != nil || !ok {
			return batch, err
		}
		batch = append(batch, r)
	}
}

// await waits until until (zero: no limit) for a response and delivers it
// to *r: Responses' and Burst's Next.
func (id *Idler) await(r *Response, until time.Time) (bool, error) {
	id.wait(until)
	id.c.mu.Lock() // see Next
	ok, err := id.nextLocked(r, false, until)
	id.c.mu.Unlock()
	return ok, err
}

// Close ends IDLE: it moves responses not yet delivered into the client's
// cache (see (*Client).Response), sends DONE, and reads everything up to the
// tagged completion into the cache, under the operation timeout. It is
// idempotent: later calls return the first call's result.
//
// Close does not interrupt a wait in Next, Responses or Burst on another
// goroutine: it waits for it to end. To stop such a wait, cancel the
// context given to Idle (the Idler then ends IDLE itself), or drop the
// connection with (*Client).Shutdown.
func (id *Idler) Close() error {
	id.c.mu.Lock()
	defer id.c.mu.Unlock()
	return id.closeLocked()
}

func (id *Idler) closeLocked() error {
	c := id.c
	if id.closed {
		if id.closeErr == nil && id.ended != nil && !errors.Is(id.ended, ErrIdleEnded) {
			return id.ended
		}
		return id.closeErr
	}
	id.closed = true
	id.detach()
	defer c.rd.Shrink()
	if c.broken != nil {
		id.closeErr = &Error{Command: "IDLE", Kind: ErrAbort, Text: c.broken.Text}
		if id.ended != nil {
			id.closeErr = id.ended
		}
		return id.closeErr
	}
	c.setState(State(id.prevState))
	if id.ended != nil && c.byeText != nil {
		id.closeErr = c.abort("IDLE", nil, "server said BYE: %s", c.byeText)
		return id.closeErr
	}
	ctx := context.Background()
	if err := c.write("IDLE", []byte("DONE\r\n"), []byte("DONE")); err != nil {
		id.closeErr = err
		return err
	}
	done, err := c.complete(ctx, &command{name: "IDLE"}, id.tag)
	if err != nil {
		id.closeErr = err
		return err
	}
	if c.byeText != nil {
		id.closeErr = c.abort("IDLE", nil, "server said BYE: %s", c.byeText)
		return id.closeErr
	}
	if done.status == "BAD" {
		id.closeErr = &Error{Command: "IDLE", Kind: ErrCommand, Status: "BAD", Text: "IDLE command error: BAD " + string(done.text)}
	}
	return id.closeErr
}
