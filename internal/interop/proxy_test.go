package interop

import (
	"io"
	"net"
	"sync"
	"testing"
)

// linkCutter forwards loopback connections to a server and can cut the
// link: Cut closes every forwarded connection and refuses new ones until
// Restore, as a network outage would.
type linkCutter struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newLinkCutter(t *testing.T, target string) *linkCutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &linkCutter{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go l.serve()
	t.Cleanup(func() {
		ln.Close()
		l.Cut()
	})
	return l
}

func (l *linkCutter) Addr() string { return l.ln.Addr().String() }

func (l *linkCutter) serve() {
	for {
		client, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		down := l.down
		l.mu.Unlock()
		if down {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", l.target)
		if err != nil {
			client.Close()
			continue
		}
		l.mu.Lock()
		l.conns[client], l.conns[server] = true, true
		l.mu.Unlock()
		go l.pipe(client, server)
		go l.pipe(server, client)
	}
}

func (l *linkCutter) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	l.mu.Lock()
	delete(l.conns, dst)
	delete(l.conns, src)
	l.mu.Unlock()
}

// Cut closes every forwarded connection and refuses new ones.
func (l *linkCutter) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for c := range l.conns {
		c.Close()
	}
}

// Restore accepts connections again.
func (l *linkCutter) Restore() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}
