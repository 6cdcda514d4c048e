package delivery

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestJSONSink(t *testing.T) {
	var buf syncBuffer
	s := NewJSONSink(&buf)
	e1, e2 := ev("work", "INBOX", 1), ev("work", "INBOX", 2)
	e1.MessageID = "<m@x>"
	if err := s.Deliver(context.Background(), []Event{e1, e2}); err != nil {
		t.Fatal(err)
	}
	got := lines(buf.String())
	if len(got) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(got), buf.String())
	}
	for i, want := range []Event{e1, e2} {
		var back Event
		if err := json.Unmarshal([]byte(got[i]), &back); err != nil || back.ID != want.ID || back.MessageID != want.MessageID {
			t.Errorf("line %d = %s (%v), want event %s", i, got[i], err, want.ID)
		}
	}
	if !strings.Contains(got[0], `"message_id":"<m@x>"`) {
		t.Errorf("line %s: Message-ID escaped", got[0])
	}
}

func TestTextSinkLine(t *testing.T) {
	at := time.Date(2025, 3, 4, 7, 6, 10, 0, time.UTC)
	clock := at.Local().Format("15:04:05")
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{Kind: "new", Time: at.Format(time.RFC3339), Account: "work", Mailbox: "INBOX", UID: 4242,
			Flags: []string{`\Seen`}, From: "ada@example.org", Subject: "Build passed"},
			clock + ` new          work/INBOX uid=4242 flags=[\Seen] from=ada@example.org subject="Build passed"`},
		{Event{Kind: "disconnected", Time: at.Format(time.RFC3339Nano), Account: "work", Error: "EOF\x1b[2J"},
			clock + ` disconnected work error=EOF [2J`},
		{Event{Kind: "alert", Time: "garbage", Account: "work", Mailbox: "INBOX", Text: "quota\nexceeded"},
			`garbage alert        work/INBOX quota exceeded`},
		{Event{Kind: "new", Time: at.Format(time.RFC3339), Account: "a", Mailbox: "IN\x1b]0;pwned\aBOX", UID: 1, From: "x\ny@z"},
			clock + ` new          a/IN ]0;pwned BOX uid=1 from=x y@z`},
		{Event{Kind: "flags", Time: at.Format(time.RFC3339), Account: "a", Mailbox: "b", UID: 1, Flags: []string{}},
			clock + ` flags        a/b uid=1 flags=[]`},
	}
	for _, tt := range tests {
		var buf syncBuffer
		if err := NewTextSink(&buf).Deliver(context.Background(), []Event{tt.ev}); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != tt.want+"\n" {
			t.Errorf("line\n%q\nwant\n%q", got, tt.want+"\n")
		}
	}
}

// flushWriter counts Flush calls, and fails writes with err.
type flushWriter struct {
	io.Writer
	flushes int
	err     error
}

func (w *flushWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	return w.Writer.Write(p)
}

func (w *flushWriter) Flush() error { w.flushes++; return nil }

func TestWriterSinkFlushAndError(t *testing.T) {
	bw := bufio.NewWriter(io.Discard)
	w := &flushWriter{Writer: bw}
	s := NewJSONSink(w)
	if err := s.Deliver(context.Background(), []Event{ev("a", "b", 1)}); err != nil {
		t.Fatal(err)
	}
	if w.flushes != 1 {
		t.Errorf("%d flushes, want 1", w.flushes)
	}
	w.err = errors.New("broken pipe")
	err := s.Deliver(context.Background(), []Event{ev("a", "b", 2)})
	if err == nil || !strings.Contains(err.Error(), "broken pipe") || !strings.Contains(err.Error(), "write") {
		t.Errorf("Deliver to a failing writer: %v, want the write error", err)
	}
}

// slowWriter writes a byte at a time, so that two concurrent writes would
// interleave.
type slowWriter struct {
	mu      sync.Mutex
	out     []byte
	writers int
	overlap bool
}

func (w *slowWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.writers++
	if w.writers > 1 {
		w.overlap = true
	}
	w.mu.Unlock()
	for _, c := range p {
		w.mu.Lock()
		w.out = append(w.out, c)
		w.mu.Unlock()
	}
	w.mu.Lock()
	w.writers--
	w.mu.Unlock()
	return len(p), nil
}

func TestWriterSinkLinesDoNotInterleave(t *testing.T) {
	w := &slowWriter{}
	s := NewTextSink(w)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				e := ev(fmt.Sprint("acct", g), "INBOX", uint32(i+1))
				e.Subject = strings.Repeat("x", 100)
				if err := s.Deliver(context.Background(), []Event{e}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if w.overlap {
		t.Error("two writes overlapped")
	}
	for _, l := range lines(string(w.out)) {
		if !strings.HasSuffix(l, `subject="`+strings.Repeat("x", 100)+`"`) {
			t.Fatalf("mangled line %q", l)
		}
	}
}

func TestWriterSinkName(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tt := range []struct {
		w    io.Writer
		want string
	}{{os.Stdout, "stdout"}, {os.Stderr, "stderr"}, {f, "file " + f.Name()}, {io.Discard, "writer"}} {
		if got := NewJSONSink(tt.w).String(); got != tt.want {
			t.Errorf("String = %q, want %q", got, tt.want)
		}
	}
}
