package imap_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/imapkit/imap"
)

// scriptConn is a net.Conn whose peer is a fixed byte stream: reads drain
// it (then EOF), writes are discarded.
type scriptConn struct {
	r *bytes.Reader
}

func (c *scriptConn) Read(p []byte) (int, error) {
	// Small reads exercise resumption inside lines and literals.
	if len(p) > 7 {
		p = p[:7]
	}
	return c.r.Read(p)
}
func (c *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// session drives a client through a typical session over a scripted server.
// Every error must be an *imap.Error; nothing may panic.
func session(t *testing.T, server []byte) {
	conn := &scriptConn{r: bytes.NewReader(server)}
	opts := &imap.Options{TagPrefix: "A", InsecureAuth: true, MaxLine: 4096, MaxLiteral: 1 << 16, MaxResponseLiterals: 1 << 16, MaxCached: 64}
	c, err := imap.NewClient(conn, opts)
	check := func(err error) {
		var e *imap.Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("error of type %T: %v", err, err)
		}
	}
	check(err)
	if err != nil {
		return
	}
	ctx := context.Background()
	_, err = c.Login(ctx, "user", "pass")
	check(err)
	_, err = c.Select(ctx, "INBOX", false)
	check(err)
	res, err := c.Fetch(ctx, "1:*", "(UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[])")
	check(err)
	if err == nil {
		_, _ = imap.ParseFetch(res.Data) // must not panic
	}
	if id, err := c.Idle(ctx, time.Second); err == nil {
		for i := 0; i < 5; i++ {
			r, ok, err := id.Next(10 * time.Millisecond)
			check(err)
			if ok && r.Type == "FETCH" {
				_, _ = imap.ParseFetchResponse(r)
			}
			if err != nil {
				break
			}
		}
		check(id.Close())
	} else {
		check(err)
	}
	_, err = c.Logout(ctx)
	check(err)
	if c.Dropped() < 0 {
		t.Fatal("negative drop count")
	}
}

// FuzzSession feeds arbitrary server output to a whole client session.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"* OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] hi\r\nA0 OK [CAPABILITY IMAP4rev1 IDLE] logged in\r\n* 2 EXISTS\r\n* OK [UIDVALIDITY 5] x\r\nA1 OK [READ-WRITE] done\r\n" +
			"* 1 FETCH (UID 1 FLAGS (\\Seen) BODY[] {5}\r\nhello)\r\n* 2 FETCH (UID 2 ENVELOPE (NIL {3}\r\nabc NIL NIL NIL NIL NIL NIL NIL NIL) FLAGS ())\r\nA2 OK done\r\n" +
			"+ idling\r\n* 3 EXISTS\r\n* 1 FETCH (FLAGS (\\Deleted))\r\nA3 OK idle done\r\n* BYE bye\r\nA4 OK\r\n",
		"* PREAUTH [CAPABILITY IMAP4rev1 IDLE] ready\r\nA0 NO denied\r\n",
		"* OK ready\r\n* CAPABILITY IMAP4rev1\r\nA0 OK\r\nA1 OK\r\n* OK {99999999999999999999}\r\n",
		"* OK ready\r\n* CAPABILITY IMAP4rev1 IDLE\r\nA0 OK\r\nA1 OK\r\nA2 OK\r\n* 1 FETCH ((((((((((((((((((((((((\r\nA3 OK\r\n+ go\r\n+ again\r\nZZ9 OK\r\n",
		"* BYE go away\r\n",
		"garbage\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			session(t, data)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session hung")
		}
	})
}

var _ io.Reader = (*scriptConn)(nil)
