package wire

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
)

// randomReads hands out its data in reads of random sizes.
type randomReads struct {
	data []byte
	rng  *rand.Rand
}

func (c *randomReads) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(3000))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// piece is a line, and the literal it announces if any.
type piece struct{ line, lit string }

// releaseStream returns a stream of n responses of a few lines and
// literals each, and the responses.
func releaseStream(n int) ([]byte, [][]piece) {
	var stream bytes.Buffer
	var responses [][]piece
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		var resp []piece
		for j := range rng.IntN(4) {
			lit := fmt.Sprintf("literal %d.%d %s", i, j, bytes.Repeat([]byte{'x'}, rng.IntN(300)))
			line := fmt.Sprintf("* %d FETCH (part %d {%d}", i, j, len(lit))
			fmt.Fprintf(&stream, "%s\r\n%s", line, lit)
			resp = append(resp, piece{line, lit})
		}
		line := fmt.Sprintf("end of %d %s)", i, bytes.Repeat([]byte{'y'}, rng.IntN(100)))
		fmt.Fprintf(&stream, "%s\r\n", line)
		responses = append(responses, append(resp, piece{line: line}))
	}
	return stream.Bytes(), responses
}

// readResponses reads the responses in stable mode, checking after each
// one that every line and literal handed out for it is still intact, then
// releasing (if release is set).
func readResponses(t *testing.T, src io.Reader, responses [][]piece, release bool) {
	t.Helper()
	r := NewReader(src, 0)
	r.SetStable(true)
	type held struct {
		line, lit []byte
		want      piece
	}
	var keep []held
	for i, resp := range responses {
		keep = keep[:0]
		for _, p := range resp {
			line, err := r.ReadLine()
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			var lit []byte
			if p.lit != "" {
				if lit, err = r.ReadLiteral(int64(len(p.lit)), 0); err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
			}
			keep = append(keep, held{line, lit, p})
		}
		for _, h := range keep {
			if string(h.line) != h.want.line || string(h.lit) != h.want.lit {
				t.Fatalf("response %d: held %q / %.20q, want %q / %.20q", i, h.line, h.lit, h.want.line, h.want.lit)
			}
		}
		if release {
			r.Release()
		}
	}
}

// TestReleaseKeepsUnreleasedBytes checks that, whatever the read sizes,
// Release never lets the buffer overwrite bytes handed out since the last
// Release, while it does let it reuse what came before.
func TestReleaseKeepsUnreleasedBytes(t *testing.T) {
	stream, responses := releaseStream(3000) // about 700 KiB
	for seed := range uint64(8) {
		readResponses(t, &randomReads{data: stream, rng: rand.New(rand.NewPCG(seed, 7))}, responses, true)
	}
}

// TestReleaseBoundsMemory checks that with Release the memory read into
// stays about one buffer's worth, whatever the stream's size, while stable
// mode alone keeps every byte.
func TestReleaseBoundsMemory(t *testing.T) {
	stream, responses := releaseStream(3000)
	measure := func(release bool) uint64 {
		src := &randomReads{data: stream, rng: rand.New(rand.NewPCG(3, 3))}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		readResponses(t, src, responses, release)
		runtime.ReadMemStats(&m1)
		return m1.TotalAlloc - m0.TotalAlloc
	}
	kept, released := measure(false), measure(true)
	t.Logf("stream %d bytes: %d allocated without Release, %d with", len(stream), kept, released)
	if kept < uint64(len(stream)) {
		t.Fatalf("without Release only %d bytes allocated for %d: the test no longer measures the buffers", kept, len(stream))
	}
	if released > 4*maxStable+64<<10 {
		t.Fatalf("with Release %d bytes allocated for a %d-byte stream: the buffer is not reused", released, len(stream))
	}
}
