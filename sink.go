package imap

import "io"

// A sink takes the untagged responses read while it is the Client's current
// one (Client.cur): a plain command's collector, FetchEach's and FetchTo's
// sinks (which wrap a collector) and an open Idler. The engine reads and
// frames responses; what becomes of them is the sink's business, so that the
// engine knows no feature by name.
type sink interface {
	// own returns line as memory that may outlive the read buffer's next
	// reuse: line itself when the reader is stable, a copy otherwise.
	own(c *Client, line []byte) []byte
	// untagged takes an untagged response of type typ whose first line's
	// datum is text (owned as own says), reading the rest of it, its
	// literals and the lines after them, when text announces one (under
	// the read's context, c.rs.ctx). Few arguments, and values: a
	// *response through an interface call escapes (an allocation per
	// response), and every word here is stack on an Idler's push path.
	untagged(c *Client, cmd, typ string, text []byte) error
	// code takes the code of a status response, "[typ data]", data
	// aliasing the line.
	code(c *Client, typ string, data []byte)
}

// A cmdSink is the sink of a running command (see Client.runSink).
type cmdSink interface {
	sink
	// collected is the part that keeps the command's result and caches
	// the rest.
	collected() *collector
	// failure is the sink's own error, reported when the command
	// otherwise succeeds (a FetchEach function's, a FetchTo writer's).
	failure(cmd string) error
}

// collector is the sink of a plain command: data of the type the command
// returns (want) go to its result, everything else to the cache. With no
// command running (the greeting, an Idler's DONE) the zero collector caches
// everything.
type collector struct {
	want   string
	result []Datum
}

// cacheOnly is the sink while no command has the connection; it is never
// written (its want is empty).
var cacheOnly collector

func (s *collector) collected() *collector    { return s }
func (s *collector) failure(cmd string) error { return nil }

func (s *collector) own(c *Client, line []byte) []byte {
	if c.rd.Stable() {
		return line
	}
	return clone(line)
}

func (s *collector) untagged(c *Client, cmd, typ string, text []byte) error {
	if literalSize(text) >= 0 {
		// Fragments go straight into the result or cache as they arrive,
		// as imaplib stores them.
		return c.readLiterals(cmd, typ, text, &fragments{keep: s})
	}
	s.keep(c, typ, Datum{Text: text}, false)
	return nil
}

func (s *collector) code(c *Client, typ string, data []byte) {
	// Straight into the cache, without a one-datum slice to copy from.
	s.keep(c, typ, Datum{Text: s.own(c, data)}, false)
}

// keep stores one datum of an untagged response: in the result when the
// response is of the type the command returns, in the cache otherwise.
// more says that further fragments of the same response (its literals and
// the text after them) follow.
func (s *collector) keep(c *Client, typ string, d Datum, more bool) {
	if typ == s.want && typ != "" {
		s.keepResult(c, d)
		return
	}
	c.cacheDatum(typ, d, more)
}

// keepResult appends d to the result. The result is bounded in data by
// MaxCached, as the cache is, but not in bytes: its size is what the caller
// asked for.
func (s *collector) keepResult(c *Client, d Datum) {
	if len(s.result) >= c.opts.MaxCached {
		// A server flooding the command's own type must not exhaust
		// memory: drop the oldest half, into a new array so that the
		// buffers it referenced can be freed.
		drop := (len(s.result) + 1) / 2
		s.result = append(make([]Datum, 0, len(s.result)), s.result[drop:]...)
		c.dropped.Add(int64(drop))
		c.tr().event("result full, dropped untagged data", "type", s.want, "count", drop)
	}
	if len(s.result) == cap(s.result) {
		// Double: big FETCH results grow to tens of thousands of entries,
		// and append's gentler growth would copy them many times.
		grown := make([]Datum, len(s.result), max(2*cap(s.result), 4))
		copy(grown, s.result)
		s.result = grown
	}
	s.result = append(s.result, d)
}

// take hands the result over to the command's Result.
func (s *collector) take() []Datum {
	data := s.result
	s.result = nil
	return data
}

// spill moves the result of a command that did not complete with OK into
// the cache, as imaplib leaves them in untagged_responses: a response's
// fragments stay together (a fragment with a literal is followed by the rest
// of its response).
func (s *collector) spill(c *Client) {
	for _, d := range s.take() {
		c.cacheDatum(s.want, d, d.Literal != nil)
	}
}

// fragments is where readLiterals puts the parts of one response.
type fragments struct {
	// keep, when set, takes each fragment as it arrives (so that the
	// result's and the cache's bounds apply to a response of endless
	// literals); otherwise they are appended to data.
	keep *collector
	data []Datum
	// stream, when set, gives the writer a literal announced by header is
	// copied to (nil: read it into memory); werr is a writer's first error.
	stream func(header []byte) io.Writer
	werr   error
}

// sinkNow returns the current sink.
func (c *Client) sinkNow() sink {
	if c.cur == nil {
		return &cacheOnly
	}
	return c.cur
}

// cacheResponse caches a whole response, outside any command (its data are
// not in the read buffers).
func (c *Client) cacheResponse(r Response) {
	size := 0
	for i := range r.Data {
		size += cost(&r.Data[i])
	}
	c.makeRoom(len(r.Data), size)
	c.cache.addResponse(r)
}
