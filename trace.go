package imap

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// tracer writes the protocol trace. Lines reach it already redacted: the
// command writer replaces secret arguments and authentication exchanges
// with "<redacted>" before tracing, so no code path can leak them.
type tracer struct {
	w   io.Writer
	log *slog.Logger
}

// tr returns the client's tracer; it is made on demand from the options
// rather than kept, to keep idle clients small.
func (c *Client) tr() tracer { return tracer{w: c.opts.Trace, log: c.opts.Logger} }

func (t tracer) enabled() bool {
	return t.w != nil || (t.log != nil && t.log.Enabled(context.Background(), slog.LevelDebug))
}

func (t tracer) line(dir string, b []byte) {
	if t.w != nil {
		fmt.Fprintf(t.w, "%s: %s\n", dir, b)
	}
	if t.log != nil && t.log.Enabled(context.Background(), slog.LevelDebug) {
		t.log.Debug("imap "+dir, "line", string(b))
	}
}

func (t tracer) send(b []byte) {
	if !t.enabled() {
		return
	}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	t.line("C", b)
}

func (t tracer) recv(b []byte) {
	if t.enabled() {
		t.line("S", b)
	}
}

func (t tracer) recvLiteral(n int) {
	if t.enabled() {
		t.line("S", []byte("<literal "+strconv.Itoa(n)+" bytes>"))
	}
}

func (t tracer) sendLiteral(n int, secret bool) {
	if !t.enabled() {
		return
	}
	if secret {
		t.line("C", []byte("<redacted literal>"))
		return
	}
	t.line("C", []byte("<literal "+strconv.Itoa(n)+" bytes>"))
}

func (t tracer) event(msg string, args ...any) {
	if t.log != nil {
		t.log.Info("imap: "+msg, args...)
	}
}
