package imap

import (
	"context"
	"fmt"
)

// FetchEach runs FETCH like Fetch, but hands each FETCH response to fn as
// soon as it has been read instead of collecting them: the memory it takes
// does not grow with the number of messages, and no byte is copied on the
// way. The result's Data is empty; other untagged data (EXISTS, EXPUNGE,
// ...) is cached as usual.
//
// r.Data aliases the client's read buffer and is valid only until fn
// returns: copy what you keep (ParseFetchResponse copies every string, but
// not section bytes; FetchMessages is the typed form that keeps nothing of
// the buffer).
//
// fn runs on the caller's goroutine, between reads; it must not use the
// Client, which is busy with the FETCH (a call would wait for ever). Once
// fn returns an error, fn is not called again, the rest of the response is
// still read so that the connection stays usable, and FetchEach returns
// fn's first error, wrapped in an *Error of kind ErrCommand, when the
// command completes. If fn panics, the connection is closed (the rest of
// the response is unread, so later commands fail with ErrAbort) and the
// panic goes on.
func (c *Client) FetchEach(ctx context.Context, set, items string, fn func(r Response) error) (Result, error) {
	return c.fetchEach(ctx, "FETCH", set, items, fn)
}

// UIDFetchEach is FetchEach for UID FETCH: set holds UIDs.
func (c *Client) UIDFetchEach(ctx context.Context, set, items string, fn func(r Response) error) (Result, error) {
	return c.fetchEach(ctx, "UID FETCH", set, items, fn)
}

func (c *Client) fetchEach(ctx context.Context, name, set, items string, fn func(Response) error) (Result, error) {
	var l argList
	l.add(rawArg(name, set))
	l.add(rawArg(name, items))
	if l.err != nil {
		return Result{}, l.err
	}
	if fn == nil {
		return Result{}, cmdError(name, "no function to hand the responses to")
	}
	return c.do(ctx, &command{name: name, check: "FETCH", args: l.args, want: "FETCH"},
		&eachSink{collector: collector{want: "FETCH"}, fn: fn})
}

// eachSink is FetchEach's sink: FETCH responses go to the function, the rest
// to the cache (which copies them, see Client.cacheDatum: the read buffer
// is reused after each FETCH).
type eachSink struct {
	collector
	fn   func(Response) error
	err  error   // fn's first error
	data []Datum // one response's fragments, reused
}

// untagged reads the rest of a FETCH response (the literals announced at
// the end of text and the lines after them) and hands it to the
// function. Nothing of it is kept, so the read buffer is released for reuse
// afterwards.
func (e *eachSink) untagged(c *Client, cmd, typ string, text []byte) error {
	if typ != e.want {
		return e.collector.untagged(c, cmd, typ, text)
	}
	f := fragments{data: e.data[:0]}
	if literalSize(text) < 0 {
		f.data = append(f.data, Datum{Text: text})
	} else if err := c.readLiterals(cmd, typ, text, &f); err != nil {
		return err
	}
	if e.err == nil {
		e.err = e.call(c, cmd, Response{Type: typ, Data: f.data})
	}
	clear(f.data) // keep no reference to the buffer
	e.data = f.data[:0]
	c.rd.Release()
	return nil
}

// call runs the function. A panic in it leaves the response half read, so
// the connection is marked broken before the panic goes on: the next
// command fails cleanly instead of reading the rest as a reply.
func (e *eachSink) call(c *Client, cmd string, r Response) (err error) {
	ok := false
	defer func() {
		if !ok {
			c.abort(cmd, nil, "the FetchEach function panicked")
		}
	}()
	err = e.fn(r)
	ok = true
	return err
}

// failure wraps the function's error for the command's result.
func (e *eachSink) failure(cmd string) error {
	if e.err == nil {
		return nil
	}
	return &Error{Command: cmd, Kind: ErrCommand, Text: fmt.Sprintf("the function given responses failed: %v", e.err), Err: e.err}
}
