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
	return c.fetchTo(ctx, "FETCH", set, items, sink)
}

// UIDFetchTo is FetchTo for UID FETCH: set holds UIDs.
func (c *Client) UIDFetchTo(ctx context.Context, set, items string, sink func(header []byte) io.Writer) (Result, error) {
	return c.fetchTo(ctx, "UID FETCH", set, items, sink)
}

func (c *Client) fetchTo(ctx context.Context, name, set, items string, sink func(header []byte) io.Writer) (Result, error) {
	var l argList
	l.add(rawArg(name, set))
	l.add(rawArg(name, items))
	if l.err != nil {
		return Result{}, l.err
	}
	if sink == nil {
		return Result{}, cmdError(name, "no function to give the literals' writers")
	}
	return c.do(ctx, &command{name: name, check: "FETCH", args: l.args, want: "FETCH", reuse: true},
		&toSink{collector: collector{want: "FETCH"}, fn: sink})
}

// toSink is FetchTo's sink: a plain command's, whose FETCH literals go to
// the writers fn gives.
type toSink struct {
	collector
	fn  func(header []byte) io.Writer
	err error // first error of a writer
}

func (s *toSink) untagged(c *Client, cmd, typ string, text []byte) error {
	if typ != "FETCH" || literalSize(text) < 0 {
		return s.collector.untagged(c, cmd, typ, text)
	}
	f := fragments{keep: &s.collector, stream: s.fn}
	err := c.readLiterals(cmd, typ, text, &f)
	if s.err == nil {
		s.err = f.werr
	}
	return err
}

func (s *toSink) failure(cmd string) error {
	if s.err == nil {
		return nil
	}
	return &Error{Command: cmd, Kind: ErrCommand, Text: "writing a streamed literal failed", Err: s.err}
}
