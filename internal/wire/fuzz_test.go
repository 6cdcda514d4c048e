package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// chunkReader returns its data in chunks of the given sizes, cycling.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// frame reads data as an IMAP server stream: lines, and literals announced
// at line ends. It returns a transcript of what it saw.
func frame(r io.Reader, maxLine int) string {
	return frameMode(r, maxLine, false)
}

// frameMode frames in stable or reuse mode. In stable mode it also checks,
// at the end, that every line and literal handed out is still intact.
func frameMode(r io.Reader, maxLine int, stable bool) string {
	rd := NewReader(r, maxLine)
	rd.SetStable(stable)
	var out bytes.Buffer
	var kept [][]byte
	var copies []string
	defer func() {
		for i, k := range kept {
			if string(k) != copies[i] {
				panic(fmt.Sprintf("stable data changed: %q became %q", copies[i], k))
			}
		}
	}()
	keep := func(b []byte) {
		if stable {
			kept = append(kept, b)
			copies = append(copies, string(b))
		}
	}
	for i := 0; i < 10000; i++ {
		line, err := rd.ReadLine()
		if err != nil {
			var tl *LineTooLongError
			if errors.As(err, &tl) {
				fmt.Fprintf(&out, "toolong %q %q\n", tl.Head, tl.Tail)
				continue
			}
			fmt.Fprintf(&out, "err %v\n", errors.Is(err, ErrUnterminated) || err == io.EOF)
			return out.String()
		}
		fmt.Fprintf(&out, "line %q\n", line)
		keep(line)
		if n := literalAt(line); n >= 0 {
			lit, err := rd.ReadLiteral(n, 1<<20)
			if err != nil {
				fmt.Fprintf(&out, "literr %v\n", errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrLiteralLimit))
				return out.String()
			}
			fmt.Fprintf(&out, "lit %q\n", lit)
			keep(lit)
		}
	}
	return out.String()
}

func literalAt(line []byte) int64 {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return -1
	}
	i := bytes.LastIndexByte(line, '{')
	var n int64
	for _, d := range line[i+1 : len(line)-1] {
		if d < '0' || d > '9' || n > 1<<40 {
			return -1
		}
		n = n*10 + int64(d-'0')
	}
	if i+1 == len(line)-1 {
		return -1
	}
	return n
}

// FuzzReaderSplit checks that the same input split differently gives the
// same lines and literals, and never panics.
func FuzzReaderSplit(f *testing.F) {
	seeds := []string{
		"* OK IMAP4rev1 ready\r\nA0 OK done\r\n",
		"* 1 FETCH (BODY[] {5}\r\nhello)\r\nA1 OK\r\n",
		"* 1 FETCH (BODY[HEADER.FIELDS (DATE)] {41}\r\nDate: Fri, 06 Dec 2024 06:00:00 +0000\r\n\r\n)\r\n",
		"* OK {9223372036854775807}\r\nIMAP4rev1\r\n",
		"* OK bare\nA0 OK\r\n",
		"* 2 EXISTS\r\n* 1 EXPUNGE\r\n+ idling\r\n",
		"* 1 FETCH (ENVELOPE (NIL {3}\r\nabc NIL) BODY[] {0}\r\n)\r\n",
		"* " + string(bytes.Repeat([]byte("x"), 300)) + "\r\n* OK after\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(1), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, a, b uint8) {
		whole := frame(bytes.NewReader(data), 128)
		split := frame(&chunkReader{data: data, sizes: []int{int(a%64) + 1, int(b%64) + 1}}, 128)
		stable := frameMode(&chunkReader{data: data, sizes: []int{int(b%64) + 1, int(a%64) + 1}}, 128, true)
		if whole != stable {
			t.Fatalf("stable mode changed the result:\nwhole:\n%s\nstable:\n%s", whole, stable)
		}
		if whole != split {
			t.Fatalf("split %d/%d changed the result:\nwhole:\n%s\nsplit:\n%s", a%64+1, b%64+1, whole, split)
		}
	})
}

// FuzzArgs checks that an argument accepted by CheckArg, once encoded,
// cannot carry CR, LF or NUL to the wire and decodes back to itself.
func FuzzArgs(f *testing.F) {
	for _, s := range []string{"INBOX", "with space", `quo"te`, `back\slash`, "", "NIL", "Entwürfe", "a\r\nb", "x\x00y", "%*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := CheckArg(s); err != nil {
			if !bytes.ContainsAny([]byte(s), "\r\n\x00") && !hasCtl(s) {
				t.Fatalf("CheckArg rejected %q: %v", s, err)
			}
			return
		}
		if bytes.ContainsAny([]byte(s), "\r\n\x00") {
			t.Fatalf("CheckArg accepted %q", s)
		}
		for _, utf8 := range []bool{false, true} {
			switch AstringForm(s, utf8) {
			case FormAtom:
				if s == "" {
					t.Fatal("empty atom")
				}
			case FormQuoted:
				q := AppendQuoted(nil, s)
				if got, ok := unquote(q); !ok || got != s {
					t.Fatalf("quote %q -> %q -> %q", s, q, got)
				}
			case FormLiteral:
			}
		}
	})
}

func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// unquote is an independent parser of IMAP quoted strings.
func unquote(q []byte) (string, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", false
	}
	var out []byte
	for i := 1; i < len(q)-1; i++ {
		c := q[i]
		switch c {
		case '\\':
			i++
			if i >= len(q)-1 || (q[i] != '"' && q[i] != '\\') {
				return "", false
			}
			out = append(out, q[i])
		case '"', '\r', '\n', 0:
			return "", false
		default:
			out = append(out, c)
		}
	}
	return string(out), true
}
