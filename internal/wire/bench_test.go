package wire

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"testing"
)

// benchStream imitates a FETCH response: lines with literals inside.
func benchStream(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		subj := fmt.Sprintf("Grüße from message %d", i)
		fmt.Fprintf(&b, "* %d FETCH (UID %d FLAGS (\\Seen) RFC822.SIZE 4242 ENVELOPE (\"Mon, 1 Jan 2024 10:00:00 +0000\" {%d}\r\n%s ((\"Ada\" NIL \"ada\" \"example.org\")) NIL NIL NIL NIL NIL NIL \"<m%d@example.org>\"))\r\n",
			i, i, len(subj), subj, i)
	}
	b.WriteString("A1 OK done\r\n")
	return b.Bytes()
}

// BenchmarkReader frames a 10,000-response stream with Reader (reuse and
// stable modes) and, for the ratio, with a bare bufio.Reader.
func BenchmarkReader(b *testing.B) {
	data := benchStream(10000)
	b.Run("bufio-floor", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			br := bufio.NewReaderSize(bytes.NewReader(data), 64<<10)
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					break
				}
				if n := literalAt(bytes.TrimRight(line, "\r\n")); n >= 0 {
					br.Discard(int(n))
				}
			}
		}
	})
	for _, stable := range []bool{false, true} {
		b.Run("stable="+strconv.FormatBool(stable), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				r := NewReader(bytes.NewReader(data), 1<<20)
				r.SetStable(stable)
				for {
					line, err := r.ReadLine()
					if err != nil {
						break
					}
					if n := literalAt(line); n >= 0 {
						if _, err := r.ReadLiteral(n, 0); err != nil {
							break
						}
					}
				}
			}
		})
	}
}

// BenchmarkCopyLiteral streams a 50 MB literal to io.Discard.
func BenchmarkCopyLiteral(b *testing.B) {
	const size = 50 << 20
	data := append([]byte(nil), bytes.Repeat([]byte("x"), size)...)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		r := NewReader(bytes.NewReader(data), 1<<20)
		if _, ok, err := r.CopyLiteral(io.Discard, size); !ok || err != nil {
			b.Fatal(err)
		}
	}
}
