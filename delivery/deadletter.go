package delivery

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// A DeadLetter keeps the events a sink could not take after its last try,
// so that nothing is lost silently. Write must be safe for concurrent use.
// An event counts as handled by the sink only once Write returned nil for
// it; if Write fails, the event stays unacknowledged and comes back after a
// restart.
type DeadLetter interface {
	Write(rec DeadRecord) error
}

// DeadRecord is an event a sink could not take. Its JSON form, one line of
// a dead-letter file, is
//
//	{"event":{...},"sink":"webhook https://host/path","error":"...","attempts":6,"time":"2025-01-02T03:04:05Z"}
//
// with the event as in a JSON stream and time in RFC 3339, UTC.
type DeadRecord struct {
	Event    Event     `json:"event"`
	Sink     string    `json:"sink"`     // the sink's String
	Err      string    `json:"error"`    // the last try's error
	Attempts int       `json:"attempts"` // tries made
	Time     time.Time `json:"time"`     // when the last try failed
}

// MarshalJSON writes the record's time in RFC 3339 at whole seconds, UTC.
func (r DeadRecord) MarshalJSON() ([]byte, error) {
	type plain DeadRecord // without the method
	return marshal(struct {
		plain
		Time string `json:"time"`
	}{plain(r), r.Time.UTC().Format(time.RFC3339)})
}

// DeadLetterFile is a DeadLetter that appends records to a file, one JSON
// line each, synced to disk before Write returns.
type DeadLetterFile struct {
	path string
	mu   sync.Mutex
	f    *os.File // nil once closed
}

// OpenDeadLetterFile opens the file at path for appending, creating it with
// mode 0600 (records hold mail metadata) if it does not exist. Its
// directory must exist.
func OpenDeadLetterFile(path string) (*DeadLetterFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	return &DeadLetterFile{path: path, f: f}, nil
}

// Write appends rec as one line and syncs the file.
func (d *DeadLetterFile) Write(rec DeadRecord) error {
	b, err := marshal(rec)
	if err != nil {
		return fmt.Errorf("dead-letter file %s: encode: %w", d.path, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return fmt.Errorf("dead-letter file %s: %w", d.path, os.ErrClosed)
	}
	if _, err := d.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	return nil
}

// String returns the file's path, for logs.
func (d *DeadLetterFile) String() string { return d.path }

// Close closes the file; a later Write fails.
func (d *DeadLetterFile) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	if err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	return nil
}

// NewDeadLetterWriter returns a DeadLetter that writes each record to w as
// one JSON line, the same as a DeadLetterFile: the fallback, on stderr say,
// when there is no file.
func NewDeadLetterWriter(w io.Writer) DeadLetter {
	return &deadLetterWriter{w: w}
}

type deadLetterWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (d *deadLetterWriter) Write(rec DeadRecord) error {
	b, err := marshal(rec)
	if err != nil {
		return fmt.Errorf("dead letter: encode: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("dead letter %s: %w", writerName(d.w), err)
	}
	return nil
}

func (d *deadLetterWriter) String() string { return writerName(d.w) }

// errNoDeadLetter is the error of writing a dead record with no DeadLetter
// configured.
var errNoDeadLetter = errors.New("no dead letter configured")
