package imap_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// loggedIn returns a client of srv, logged in, closed when the test ends.
func loggedIn(t *testing.T, srv *imaptest.Server) *imap.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := imap.Dial(ctx, srv.Addr, &imap.Options{InsecureAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Login(ctx, "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAccessorsDuringIdle: the accessors that only report on the
// connection answer at once while an Idler's Next waits in another
// goroutine, as State and Has always did.
func TestAccessorsDuringIdle(t *testing.T) {
	c, _ := idleClient(t, plain, idleCmd(writes("+ idling\r\n")), nil)
	id := startIdle(t, c, 0)
	waiting := make(chan struct{})
	go func() {
		close(waiting)
		_, _, _ = id.Next(500 * time.Millisecond)
	}()
	<-waiting
	time.Sleep(50 * time.Millisecond) // Next holds the connection now
	for name, call := range map[string]func(){
		"State":        func() { _ = c.State() },
		"Has":          func() { _ = c.Has("IDLE") },
		"Capabilities": func() { _ = c.Capabilities() },
		"IsTLS":        func() { _ = c.IsTLS() },
		"Conn":         func() { _ = c.Conn() },
		"Dropped":      func() { _ = c.Dropped() },
		"UTF8Enabled":  func() { _ = c.UTF8Enabled() },
	} {
		done := make(chan struct{})
		start := time.Now()
		go func() { call(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			t.Errorf("%s waited for the IDLE (still blocked after %v)", name, time.Since(start))
			<-done
		}
	}
	if c.IsTLS() || c.Conn() == nil {
		t.Errorf("IsTLS %v, Conn %v on a plaintext connection", c.IsTLS(), c.Conn())
	}
	_ = id.Close()
}

// TestResponseLast: Last is the latest value of a response code, and ""
// (not a panic) when none was cached.
func TestResponseLast(t *testing.T) {
	for _, tc := range []struct {
		r    imap.Response
		want string
	}{
		{imap.Response{Type: "UIDNEXT"}, ""},
		{imap.Response{Type: "UIDNEXT", Data: []imap.Datum{{Text: []byte("7")}}}, "7"},
		{imap.Response{Type: "UIDNEXT", Data: []imap.Datum{{Text: []byte("7")}, {Text: []byte("9")}}}, "9"},
	} {
		if got := tc.r.Last(); got != tc.want {
			t.Errorf("%v.Last() = %q, want %q", tc.r.Data, got, tc.want)
		}
	}
}

// The Client is an io.Closer: Close closes the connection.
var _ io.Closer = (*imap.Client)(nil)

// TestCloseCloses: Close drops the connection (the server reads EOF) and
// the client is in the LOGOUT state; CloseMailbox is IMAP's CLOSE.
func TestCloseCloses(t *testing.T) {
	eof := make(chan struct{})
	srv := imaptest.NewServer(t, imaptest.Config{Handler: func(s *imaptest.Session) {
		_ = s.Send("* OK [CAPABILITY IMAP4rev1] ready")
		for {
			if _, err := s.ReadLine(); err != nil {
				close(eof)
				return
			}
		}
	}})
	c, err := imap.Dial(context.Background(), srv.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-eof:
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not see the connection close")
	}
	if c.State() != imap.StateLogout {
		t.Errorf("state after Close: %v", c.State())
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
