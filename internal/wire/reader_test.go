package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// step is one Read result of a scripted source: data, or an error.
type step struct {
	data string
	err  error
}

// scripted returns its steps one Read at a time (a data step longer than
// the caller's buffer is split), then io.EOF.
type scripted struct {
	steps []step
}

func (s *scripted) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, io.EOF
	}
	st := &s.steps[0]
	if st.err != nil {
		err := st.err
		s.steps = s.steps[1:]
		return 0, err
	}
	n := copy(p, st.data)
	st.data = st.data[n:]
	if st.data == "" {
		s.steps = s.steps[1:]
	}
	return n, nil
}

// chunked returns at most n bytes per Read.
type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

func TestReadLine(t *testing.T) {
	r := NewReader(strings.NewReader("* OK hello\r\n\r\nA1 OK done\r\n"), 0)
	for _, want := range []string{"* OK hello", "", "A1 OK done"} {
		line, err := r.ReadLine()
		if err != nil || string(line) != want {
			t.Fatalf("got %q, %v; want %q", line, err, want)
		}
	}
	if line, err := r.ReadLine(); err != io.EOF || line != nil {
		t.Fatalf("at end: %q, %v; want io.EOF", line, err)
	}
}

func TestReadLineBareLF(t *testing.T) {
	r := NewReader(strings.NewReader("* CAPABILITY IMAP4rev1\n"), 0)
	line, err := r.ReadLine()
	if !errors.Is(err, ErrUnterminated) {
		t.Fatalf("got %q, %v; want ErrUnterminated", line, err)
	}
	// A lone CR inside a line is data, not a terminator.
	r = NewReader(strings.NewReader("a\rb\r\n"), 0)
	if line, err := r.ReadLine(); err != nil || string(line) != "a\rb" {
		t.Fatalf("got %q, %v", line, err)
	}
}

func TestReadLineEOFMidLine(t *testing.T) {
	for _, in := range []string{"* OK", "* OK\r", "x"} {
		r := NewReader(strings.NewReader(in), 0)
		line, err := r.ReadLine()
		if !errors.Is(err, ErrUnterminated) {
			t.Fatalf("%q: got %q, %v; want ErrUnterminated", in, line, err)
		}
		if string(line) != in {
			t.Fatalf("%q: partial line %q", in, line)
		}
	}
	r := NewReader(strings.NewReader(""), 0)
	if _, err := r.ReadLine(); err != io.EOF {
		t.Fatalf("empty stream: %v", err)
	}
}

// An over-long line is skipped, reported once with its tail, and reading
// continues with the next line, whatever the chunking.
func TestReadLineTooLong(t *testing.T) {
	for _, tc := range []struct {
		name string
		long string
	}{
		{"short", strings.Repeat("x", 20)},
		{"beyond the buffer", strings.Repeat("y", 10_000) + "end"},
		// The tail must show the literal, so that the caller knows the
		// stream is no longer framed.
		{"literal", "* 1 FETCH (BODY[] " + strings.Repeat("z", 5000) + " {12}"},
	} {
		for _, chunk := range []int{1, 7, 512, 1 << 20} {
			t.Run(fmt.Sprintf("%s/%d", tc.name, chunk), func(t *testing.T) {
				in := "* OK first\r\n" + tc.long + "\r\n* OK next\r\n"
				r := NewReader(&chunked{strings.NewReader(in), chunk}, 10)
				if line, err := r.ReadLine(); err != nil || string(line) != "* OK first" {
					t.Fatalf("first: %q, %v", line, err)
				}
				_, err := r.ReadLine()
				var tl *LineTooLongError
				if !errors.As(err, &tl) || !errors.Is(err, ErrLineTooLong) {
					t.Fatalf("got %v, want LineTooLongError", err)
				}
				if tl.Limit != 10 || err.Error() != "got more than 10 bytes" {
					t.Fatalf("error %q, limit %d", err, tl.Limit)
				}
				// Tail is the end of the line, CR excluded: at least 16
				// bytes of it (up to 32).
				if n := len(tl.Tail); n < min(16, len(tc.long)) || n > 32 || !strings.HasSuffix(tc.long, string(tl.Tail)) {
					t.Fatalf("tail %q is not the end of the line", tl.Tail)
				}
				if line, err := r.ReadLine(); err != nil || string(line) != "* OK next" {
					t.Fatalf("after the long line: %q, %v", line, err)
				}
			})
		}
	}
}

// A line that never ends is given up on after a bounded amount, without
// buffering it.
func TestReadLineEndless(t *testing.T) {
	r := NewReader(io.LimitReader(repeatReader('x'), 10<<20), 100)
	_, err := r.ReadLine()
	if !errors.Is(err, ErrUnterminated) {
		t.Fatalf("got %v, want ErrUnterminated", err)
	}
	if cap(r.buf) > maxBuffer {
		t.Fatalf("buffer grew to %d", cap(r.buf))
	}
	// EOF inside an over-long line.
	r = NewReader(strings.NewReader(strings.Repeat("x", 500)), 100)
	if _, err := r.ReadLine(); !errors.Is(err, ErrUnterminated) {
		t.Fatalf("got %v, want ErrUnterminated", err)
	}
}

type repeatReader byte

func (b repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func TestReadLiteral(t *testing.T) {
	r := NewReader(strings.NewReader("* 1 FETCH (BODY[] {5}\r\nhello)\r\n"), 0)
	line, _ := r.ReadLine()
	if string(line) != "* 1 FETCH (BODY[] {5}" {
		t.Fatalf("line %q", line)
	}
	lit, err := r.ReadLiteral(5, 0)
	if err != nil || string(lit) != "hello" {
		t.Fatalf("literal %q, %v", lit, err)
	}
	if line, err := r.ReadLine(); err != nil || string(line) != ")" {
		t.Fatalf("trailer %q, %v", line, err)
	}
	// Zero-length literal.
	r = NewReader(strings.NewReader("\r\n"), 0)
	if lit, err := r.ReadLiteral(0, 0); err != nil || lit == nil || len(lit) != 0 {
		t.Fatalf("empty literal %q (nil %v), %v", lit, lit == nil, err)
	}
	// Limits.
	if _, err := r.ReadLiteral(11, 10); !errors.Is(err, ErrLiteralLimit) {
		t.Fatalf("over max: %v", err)
	}
	if _, err := r.ReadLiteral(-1, 0); !errors.Is(err, ErrLiteralLimit) {
		t.Fatalf("negative: %v", err)
	}
}

// A large literal arrives intact through every read path.
func TestReadLiteralLarge(t *testing.T) {
	body := make([]byte, 3<<20+17)
	for i := range body {
		body[i] = byte(i * 7)
	}
	for _, chunk := range []int{1000, 8192, 100_000, 1 << 22} {
		src := &chunked{io.MultiReader(strings.NewReader("x\r\n"), bytes.NewReader(body), strings.NewReader("\r\nend\r\n")), chunk}
		r := NewReader(src, 0)
		if line, err := r.ReadLine(); err != nil || string(line) != "x" {
			t.Fatalf("line %q %v", line, err)
		}
		lit, err := r.ReadLiteral(int64(len(body)), 0)
		if err != nil || !bytes.Equal(lit, body) {
			t.Fatalf("chunk %d: literal of %d bytes, %v", chunk, len(lit), err)
		}
		for _, want := range []string{"", "end"} {
			if line, err := r.ReadLine(); err != nil || string(line) != want {
				t.Fatalf("chunk %d: after literal %q %v", chunk, line, err)
			}
		}
	}
}

// A large literal costs little more than its size: its memory grows by
// quadrupling as its bytes arrive, so a 3 MiB literal is read into 1 MiB
// and then its own 3 MiB (doubling would add a 2 MiB step).
func TestReadLiteralLargeAllocation(t *testing.T) {
	body := make([]byte, 3<<20+17)
	src := &chunked{io.MultiReader(strings.NewReader("x\r\n"), bytes.NewReader(body), strings.NewReader("\r\n")), 1 << 22}
	r := NewReader(src, 0)
	if _, err := r.ReadLine(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	lit, err := r.ReadLiteral(int64(len(body)), 0)
	runtime.ReadMemStats(&after)
	if err != nil || len(lit) != len(body) {
		t.Fatalf("%d bytes, %v", len(lit), err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(body))*3/2 {
		t.Errorf("allocated %d bytes for a literal of %d", alloc, len(body))
	}
}

// A claimed 2^62-byte literal on a short stream fails with
// ErrUnexpectedEOF, having allocated about what arrived, not the claim.
func TestReadLiteralHugeClaim(t *testing.T) {
	for _, n := range []int64{1 << 20, 1 << 31, 1 << 62, 1<<63 - 1} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := NewReader(strings.NewReader("IMAP4rev1\r\n"), 0)
		lit, err := r.ReadLiteral(n, 0)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, io.ErrUnexpectedEOF) || lit != nil {
			t.Fatalf("n=%d: %d bytes, %v; want ErrUnexpectedEOF", n, len(lit), err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
			t.Fatalf("n=%d: allocated %d bytes", n, alloc)
		}
	}
}

// After a deadline error mid-line or mid-literal, the next call resumes:
// no byte is lost or duplicated.
func TestResumeAfterDeadline(t *testing.T) {
	src := &scripted{steps: []step{
		{data: "* 1 FE"},
		{err: os.ErrDeadlineExceeded},
		{data: "TCH (BODY[] {10}\r\nhel"},
		{err: os.ErrDeadlineExceeded},
		{err: os.ErrDeadlineExceeded},
		{data: "lowo"},
		{err: os.ErrDeadlineExceeded},
		{data: "rld)\r"},
		{err: os.ErrDeadlineExceeded},
		{data: "\n* 2 EXISTS\r\n"},
	}}
	r := NewReader(src, 0)
	if _, err := r.ReadLine(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first read: %v", err)
	}
	if r.HasLine() || r.Buffered() != 6 {
		t.Fatalf("HasLine %v, Buffered %d; want the partial line kept", r.HasLine(), r.Buffered())
	}
	line, err := r.ReadLine()
	if err != nil || string(line) != "* 1 FETCH (BODY[] {10}" {
		t.Fatalf("line %q, %v", line, err)
	}
	var lit []byte
	for i := 0; ; i++ {
		lit, err = r.ReadLiteral(10, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || i > 5 {
			t.Fatalf("literal: %v", err)
		}
		if i == 0 && r.Pending() != 3 {
			t.Fatalf("pending %d after the first interruption, want 3", r.Pending())
		}
	}
	if string(lit) != "helloworld" {
		t.Fatalf("literal %q", lit)
	}
	if _, err := r.ReadLine(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("trailer with CR only: %v", err)
	}
	for _, want := range []string{")", "* 2 EXISTS"} {
		if line, err := r.ReadLine(); err != nil || string(line) != want {
			t.Fatalf("got %q, %v; want %q", line, err, want)
		}
	}
}

// parseAll reads a stream of responses the way the client does: lines,
// and after a line ending in {N}, N literal bytes.
func parseAll(r *Reader) ([]string, error) {
	var out []string
	for {
		line, err := r.ReadLine()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		s := string(line)
		out = append(out, "L:"+s)
		if i := strings.LastIndexByte(s, '{'); i >= 0 && strings.HasSuffix(s, "}") {
			var n int64
			fmt.Sscanf(s[i+1:len(s)-1], "%d", &n)
			lit, err := r.ReadLiteral(n, 0)
			if err != nil {
				return out, err
			}
			out = append(out, "B:"+string(lit))
		}
	}
}

// Any split of the input gives the same responses.
func TestAnySplit(t *testing.T) {
	in := "* OK [CAPABILITY IMAP4rev1 IDLE] hi\r\n" +
		"* 1 FETCH (UID 9 BODY[] {11}\r\nhello world BODY[HEADER] {0}\r\n)\r\n" +
		"* 2 FETCH (BODY[] {14}\r\n* 3 EXISTS\r\n\r\n)\r\n" +
		"\r\n" +
		"+ idling\r\n" +
		"A1 OK done\r\n"
	want, err := parseAll(NewReader(strings.NewReader(in), 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 12 {
		t.Fatalf("reference parse %q", want)
	}
	for n := 1; n <= len(in); n++ {
		got, err := parseAll(NewReader(&chunked{strings.NewReader(in), n}, 0))
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("split %d: %q, %v", n, got, err)
		}
	}
	// Data returned together with EOF, and a deadline error before every
	// byte.
	got, err := parseAll(NewReader(iotest.DataErrReader(strings.NewReader(in)), 0))
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("DataErrReader: %q, %v", got, err)
	}
	var steps []step
	for i := 0; i < len(in); i++ {
		steps = append(steps, step{err: os.ErrDeadlineExceeded}, step{data: in[i : i+1]})
	}
	p := &resumable{r: NewReader(&scripted{steps: steps}, 0), pendingLit: -1}
	got = nil
	for tries := 0; tries < 10*len(in); tries++ {
		part, err := p.parse()
		got = append(got, part...)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("with deadline errors: %v", err)
		}
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("with deadline errors: %q", got)
	}
}

// resumable is parseAll that returns on a deadline error and continues
// where it stopped on the next call.
type resumable struct {
	r          *Reader
	pendingLit int64 // size of a literal still to read, or -1
}

func (p *resumable) parse() ([]string, error) {
	var out []string
	r := p.r
	for {
		if p.pendingLit >= 0 {
			lit, err := r.ReadLiteral(p.pendingLit, 0)
			if err != nil {
				return out, err
			}
			out = append(out, "B:"+string(lit))
			p.pendingLit = -1
		}
		line, err := r.ReadLine()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		s := string(line)
		out = append(out, "L:"+s)
		if i := strings.LastIndexByte(s, '{'); i >= 0 && strings.HasSuffix(s, "}") {
			fmt.Sscanf(s[i+1:len(s)-1], "%d", &p.pendingLit)
		}
	}
}

func TestResetDiscardsBuffered(t *testing.T) {
	r := NewReader(strings.NewReader("A1 OK go\r\n* OK injected\r\n* CAPABILITY X\r\n"), 0)
	if line, _ := r.ReadLine(); string(line) != "A1 OK go" {
		t.Fatalf("line %q", line)
	}
	if r.Buffered() == 0 {
		t.Fatal("nothing buffered: the test proves nothing")
	}
	r.Reset(strings.NewReader("* OK clean\r\n"))
	if r.Buffered() != 0 || r.HasLine() {
		t.Fatal("Reset kept bytes")
	}
	if line, err := r.ReadLine(); err != nil || string(line) != "* OK clean" {
		t.Fatalf("after Reset: %q, %v", line, err)
	}
}

func TestShrink(t *testing.T) {
	long := strings.Repeat("x", 50_000)
	r := NewReader(strings.NewReader(long+"\r\nshort\r\n"), 0)
	if line, _ := r.ReadLine(); len(line) != len(long) {
		t.Fatalf("line of %d", len(line))
	}
	r.Shrink() // "short" may still be buffered: nothing to release then
	if line, _ := r.ReadLine(); string(line) != "short" {
		t.Fatalf("line %q", line)
	}
	r.Shrink()
	if cap(r.buf) > idleBuffer || r.Buffered() != 0 {
		t.Fatalf("buffer of %d kept", cap(r.buf))
	}
	r.Reset(strings.NewReader("a\r\n"))
	if line, err := r.ReadLine(); err != nil || string(line) != "a" {
		t.Fatalf("after Shrink: %q %v", line, err)
	}
}

// A source that returns no data and no error is not spun on forever.
func TestNoProgress(t *testing.T) {
	r := NewReader(zeroReader{}, 0)
	if _, err := r.ReadLine(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("got %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { return 0, nil }
