package delivery

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
)

// A Sink is where events go: a hook command, a webhook, a stream of lines.
// A Dispatcher calls Deliver from several goroutines at once (one per
// account and mailbox), so a Sink must be safe for concurrent use.
type Sink interface {
	// Deliver hands over batch: one event, or several gathered in a
	// burst (see Route.Burst), in order. A nil error means the sink has
	// them all; otherwise the whole batch is tried again later, so a
	// sink may see an event more than once. Deliver must return soon
	// after ctx ends.
	Deliver(ctx context.Context, batch []Event) error

	// String names the sink in logs and dead records, e.g. "exec",
	// "webhook https://host/path" or "stdout". It never includes a
	// secret.
	String() string
}

// NewJSONSink returns a Sink that writes each event to w as one line of
// compact JSON, the same bytes as a webhook's body. See NewTextSink for
// how lines are written and what String returns.
func NewJSONSink(w io.Writer) Sink {
	return &writerSink{w: w, name: writerName(w), format: Event.line}
}

// NewTextSink returns a Sink that writes each event to w as one line for
// people, e.g.
//
//	08:06:10 new          work/INBOX uid=4242 flags=[\Seen] from=ada@example.org subject="Build passed"
//
// Each line is written with one call to w.Write, never interleaved with
// another line of the sink, and followed by a call to w's Flush method if
// it has one (a *bufio.Writer, say). A write cannot be interrupted:
// Deliver returns when w.Write does. The sink's String is "stdout" or
// "stderr" for os.Stdout and os.Stderr, "file NAME" for another *os.File,
// else "writer".
func NewTextSink(w io.Writer) Sink {
	return &writerSink{w: w, name: writerName(w), format: Event.textLine}
}

// writerName names w for logs and dead records.
func writerName(w io.Writer) string {
	switch w {
	case os.Stdout:
		return "stdout"
	case os.Stderr:
		return "stderr"
	}
	if f, ok := w.(*os.File); ok {
		return "file " + f.Name()
	}
	return "writer"
}

// writerSink writes lines of some format to a writer shared by every lane.
type writerSink struct {
	name   string
	format func(Event) ([]byte, error)

	mu sync.Mutex // serializes lines: lanes share w
	w  io.Writer
}

func (s *writerSink) String() string { return s.name }

func (s *writerSink) Deliver(ctx context.Context, batch []Event) error {
	var buf []byte
	for _, ev := range batch {
		b, err := s.format(ev)
		if err != nil {
			return fmt.Errorf("%s: encode event %s: %w", s.name, ev.ID, err)
		}
		buf = append(buf, b...)
	}
	// Checked late so that an ended try writes nothing: a line printed
	// after Deliver returned an error would be printed again by the retry.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", s.name, context.Cause(ctx))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(buf); err != nil {
		return fmt.Errorf("%s: write: %w", s.name, err)
	}
	if f, ok := s.w.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			return fmt.Errorf("%s: flush: %w", s.name, err)
		}
	}
	return nil
}
