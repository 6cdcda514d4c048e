package imap

import (
	"context"
	"io"
)

// FetchTo runs FETCH like Fetch, but streams literals instead of keeping
// them: for each literal of a FETCH response (a BODY[] section, say), sink
// receives the text that announced it — e.g. `12 (UID 40 BODY[] {52428800}`
// — and returns where the bytes go, or nil to keep them in memory as Fetch
// would. Streamed literals take bounded memory whatever their size; in the
// result their Datum has the header as Text and an empty, non-nil Literal.
//
// sink runs on the caller's goroutine, between reads; it must not use the
// Client. If a writer fails, the rest of its literal is still read (the
// connection stays usable) and FetchTo returns the writer's error once the
// command completes.
func (c *Client) FetchTo(ctx context.Context, set, items string, sink func(header []byte) io.Writer) (Result, error) {
	var l argList
	l.add(rawArg("FETCH", set))
	l.add(rawArg("FETCH", items))
	if l.err != nil {
		return Result{}, l.err
	}
	if c.State() == StateIdling {
		return Result{}, c.checkStateLocked("FETCH")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkState("FETCH"); err != nil {
		return Result{}, err
	}
	s := &fetchSink{fn: sink}
	c.sink = s
	defer func() { c.sink = nil }()
	res, err := c.run(ctx, &command{name: "FETCH", args: l.args, want: "FETCH", reuse: true})
	if err == nil && s.err != nil {
		err = &Error{Command: "FETCH", Kind: ErrCommand, Text: "writing a streamed literal failed", Err: s.err}
	}
	return res, err
}

// literalWriter returns the writer for a literal announced by header, when
// FetchTo is streaming.
func (c *Client) literalWriter(typ string, header []byte) io.Writer {
	if c.sink == nil || typ != "FETCH" || c.capture != nil {
		return nil
	}
	return c.sink.fn(header)
}
