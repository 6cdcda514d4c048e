package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// rawClient is the floor: it speaks just enough IMAP to log in and select,
// and frames responses (lines and literal payloads) without parsing them.
// Its cost is what any client must pay to read the bytes.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	n    int
}

// floorBuffer is the floor's read buffer size.
const floorBuffer = 64 << 10

func rawDial(ctx context.Context, addr string) (*rawClient, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newRawClient(conn, floorBuffer)
}

func newRawClient(conn net.Conn, bufSize int) (*rawClient, error) {
	c := &rawClient{conn: conn, r: bufio.NewReaderSize(conn, bufSize), w: bufio.NewWriterSize(conn, 256)}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !bytes.HasPrefix(line, []byte("* OK")) {
		conn.Close()
		return nil, fmt.Errorf("floor: greeting %q", line)
	}
	return c, nil
}

// send writes a tagged command and returns its tag.
func (c *rawClient) send(cmd string) (string, error) {
	c.n++
	tag := "F" + strconv.Itoa(c.n)
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	c.w.WriteString(cmd)
	c.w.WriteString("\r\n")
	return tag, c.w.Flush()
}

// do sends cmd and frames its response.
func (c *rawClient) do(cmd string) (int, error) {
	tag, err := c.send(cmd)
	if err != nil {
		return 0, err
	}
	return c.frame(tag, nil)
}

// frame reads lines and skips literal payloads until the line tagged tag.
// It returns the number of untagged responses. If stop is set, framing also
// ends (without error) once stop returns true after an untagged response.
func (c *rawClient) frame(tag string, stop func(untagged int) bool) (int, error) {
	untagged := 0
	for {
		line, err := c.r.ReadSlice('\n')
		isUntagged := len(line) > 0 && line[0] == '*'
		isTagged := len(line) > len(tag) && line[len(tag)] == ' ' && string(line[:len(tag)]) == tag
		var status byte
		if isTagged && len(line) > len(tag)+1 {
			status = line[len(tag)+1]
		}
		// A line longer than the buffer arrives in pieces; keep the tail
		// of the previous piece to find a literal marker split across.
		var tail [24]byte
		nt := 0
		for errors.Is(err, bufio.ErrBufferFull) {
			nt = copy(tail[:], line[max(0, len(line)-len(tail)):])
			line, err = c.r.ReadSlice('\n')
		}
		if err != nil {
			return untagged, err
		}
		if isTagged {
			if status != 'O' {
				return untagged, fmt.Errorf("floor: %s", bytes.TrimSpace(line))
			}
			return untagged, nil
		}
		if isUntagged {
			untagged++
		}
		end := line
		if nt > 0 && len(line) < len(tail) {
			end = append(tail[:nt:nt], line...)
		}
		if n, ok := literalAtEnd(end); ok {
			if _, err := c.r.Discard(int(n)); err != nil {
				return untagged, err
			}
		}
		if stop != nil && isUntagged && stop(untagged) {
			return untagged, nil
		}
	}
}

// literalAtEnd parses the "{N}" (or "{N+}") that ends line, CRLF included.
func literalAtEnd(line []byte) (int64, bool) {
	i := len(line) - 1
	if i < 0 || line[i] != '\n' {
		return 0, false
	}
	i--
	if i >= 0 && line[i] == '\r' {
		i--
	}
	if i < 0 || line[i] != '}' {
		return 0, false
	}
	i--
	if i >= 0 && line[i] == '+' {
		i--
	}
	var n, mul int64 = 0, 1
	digits := 0
	for ; i >= 0 && line[i] >= '0' && line[i] <= '9'; i-- {
		n += int64(line[i]-'0') * mul
		mul *= 10
		digits++
	}
	if digits == 0 || digits > 18 || i < 0 || line[i] != '{' {
		return 0, false
	}
	return n, true
}

func (c *rawClient) login(mailbox string) error {
	if _, err := c.do("LOGIN " + benchUser + " " + benchPass); err != nil {
		return err
	}
	_, err := c.do("EXAMINE " + strconv.Quote(mailbox))
	return err
}

func (c *rawClient) logout() error {
	_, err := c.do("LOGOUT")
	c.conn.Close()
	return err
}

// floorSession runs a workload command through the floor.
func floorSession(cmd string) sessionFunc {
	return func(ctx context.Context, addr, mailbox string, sp *span) (int, error) {
		c, err := rawDial(ctx, addr)
		if err != nil {
			return 0, err
		}
		defer c.conn.Close()
		if err := c.login(mailbox); err != nil {
			return 0, err
		}
		sp.Start()
		n, err := c.do(cmd)
		sp.Stop()
		if err != nil {
			return 0, err
		}
		return n, c.logout()
	}
}

// floorBurst idles and frames untagged lines until want EXPUNGE responses
// have arrived.
func floorBurst(want int) sessionFunc {
	return func(ctx context.Context, addr, mailbox string, sp *span) (int, error) {
		c, err := rawDial(ctx, addr)
		if err != nil {
			return 0, err
		}
		defer c.conn.Close()
		if err := c.login(mailbox); err != nil {
			return 0, err
		}
		sp.Start()
		tag, err := c.send("IDLE")
		if err != nil {
			return 0, err
		}
		if err := c.expectContinuation(); err != nil {
			return 0, err
		}
		n, err := c.frame(tag, func(u int) bool { return u >= want })
		sp.Stop()
		if err != nil {
			return 0, err
		}
		if _, err := c.w.WriteString("DONE\r\n"); err != nil {
			return 0, err
		}
		if err := c.w.Flush(); err != nil {
			return 0, err
		}
		if _, err := c.frame(tag, nil); err != nil {
			return 0, err
		}
		return n, c.logout()
	}
}

func (c *rawClient) expectContinuation() error {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if line[0] == '+' {
			return nil
		}
		if line[0] != '*' {
			return fmt.Errorf("floor: expected continuation, got %q", line)
		}
	}
}

// floorPush idles and timestamps each pushed line as the bytes are read
// from the socket.
func floorPush(ctx context.Context, addr, mailbox string, count int, deliver []time.Time) error {
	c, err := rawDial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.conn.Close()
	if err := c.login(mailbox); err != nil {
		return err
	}
	tag, err := c.send("IDLE")
	if err != nil {
		return err
	}
	if err := c.expectContinuation(); err != nil {
		return err
	}
	for i := 0; i < count; {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		now := time.Now()
		if bytes.HasSuffix(line, []byte(" EXISTS\r\n")) {
			deliver[i] = now
			i++
		}
	}
	c.w.WriteString("DONE\r\n")
	if err := c.w.Flush(); err != nil {
		return err
	}
	if _, err := c.frame(tag, nil); err != nil {
		return err
	}
	return c.logout()
}
