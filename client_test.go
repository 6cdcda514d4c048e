package imap_test

import (
	"testing"
	"time"

	"github.com/imapkit/imap"
)

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
