package watch_test

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
)

// proxy is a loopback TCP proxy in front of an IMAP server, to break the
// watcher's connection on demand: Cut closes every current connection (as a
// crashed server or a reset would), Freeze stops forwarding on every current
// connection while keeping its sockets open (a server that accepts bytes
// and never answers, or a NAT that dropped the flow). New connections are
// forwarded normally. strip, if set, lists capabilities removed from every
// CAPABILITY response and [CAPABILITY ...] code the server sends.
type proxy struct {
	ln     net.Listener
	target string
	strip  []string

	mu       sync.Mutex
	pairs    map[*pair]bool
	accepted int
	commands map[string]int // commands the clients sent, by name
	wg       sync.WaitGroup
}

type pair struct {
	client, server net.Conn
	frozen         chan struct{} // closed by Freeze
	once           sync.Once
}

func (p *pair) close() {
	p.client.Close()
	p.server.Close()
}

func newProxy(t *testing.T, target string, strip ...string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, strip: strip, pairs: map[*pair]bool{}, commands: map[string]int{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pr := &pair{client: c, server: s, frozen: make(chan struct{})}
		p.mu.Lock()
		p.pairs[pr] = true
		p.accepted++
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.forward(pr, s, c, p.filter)
		}()
		go func() {
			defer p.wg.Done()
			p.forward(pr, c, s, p.record)
		}()
	}
}

// forward copies from src to dst, line by line through filter, until either
// side fails; once the pair is frozen it keeps reading src and discards
// what it reads.
func (p *proxy) forward(pr *pair, src, dst net.Conn, filter func([]byte) []byte) {
	defer func() {
		pr.close()
		p.mu.Lock()
		delete(p.pairs, pr)
		p.mu.Unlock()
	}()
	r := bufio.NewReader(src)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && !pr.isFrozen() {
			if _, werr := dst.Write(filter(line)); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// record counts the commands a client sends.
func (p *proxy) record(line []byte) []byte {
	f := strings.Fields(string(line))
	if len(f) >= 2 {
		p.mu.Lock()
		p.commands[strings.ToUpper(f[1])]++
		p.mu.Unlock()
	}
	if len(f) == 1 && strings.EqualFold(f[0], "DONE") {
		p.mu.Lock()
		p.commands["DONE"]++
		p.mu.Unlock()
	}
	return line
}

// Commands returns how many commands named name the clients sent.
func (p *proxy) Commands(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.commands[name]
}

func (pr *pair) isFrozen() bool {
	select {
	case <-pr.frozen:
		return true
	default:
		return false
	}
}

// filter removes the stripped capabilities from a CAPABILITY line.
func (p *proxy) filter(line []byte) []byte {
	if len(p.strip) == 0 {
		return line
	}
	upper := bytes.ToUpper(line)
	var start, end int
	switch {
	case bytes.HasPrefix(upper, []byte("* CAPABILITY ")):
		start = len("* CAPABILITY ")
		end = len(bytes.TrimRight(line, "\r\n"))
	case bytes.Contains(upper, []byte("[CAPABILITY ")):
		start = bytes.Index(upper, []byte("[CAPABILITY ")) + len("[CAPABILITY ")
		i := bytes.IndexByte(line[start:], ']')
		if i < 0 {
			return line
		}
		end = start + i
	default:
		return line
	}
	var kept []string
	for _, c := range strings.Fields(string(line[start:end])) {
		drop := false
		for _, s := range p.strip {
			if strings.EqualFold(c, s) {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, c)
		}
	}
	out := append([]byte(nil), line[:start]...)
	out = append(out, strings.Join(kept, " ")...)
	return append(out, line[end:]...)
}

// Cut closes every current connection.
func (p *proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		pr.close()
	}
	return len(p.pairs)
}

// Freeze stops forwarding in both directions on every current connection,
// keeping the sockets open.
func (p *proxy) Freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		pr.once.Do(func() { close(pr.frozen) })
	}
	return len(p.pairs)
}

// Conns returns the number of open connections and of connections accepted
// so far.
func (p *proxy) Conns() (open, accepted int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pairs), p.accepted
}

func (p *proxy) close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

// TestProxyFilter checks the capability stripping the polling tests rely
// on, in both places a server lists capabilities.
func TestProxyFilter(t *testing.T) {
	p := &proxy{strip: []string{"IDLE"}}
	for _, tc := range []struct{ in, want string }{
		{"* CAPABILITY IMAP4rev1 IDLE NOTIFY\r\n", "* CAPABILITY IMAP4rev1 NOTIFY\r\n"},
		{"* OK [CAPABILITY IMAP4rev1 SASL-IR IDLE LITERAL+] Dovecot ready.\r\n", "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+] Dovecot ready.\r\n"},
		{"a1 OK [CAPABILITY IMAP4rev1 idle] Logged in\r\n", "a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n"},
		{"a2 OK Idle completed.\r\n", "a2 OK Idle completed.\r\n"},
		{"* 1 FETCH (FLAGS (IDLE))\r\n", "* 1 FETCH (FLAGS (IDLE))\r\n"},
	} {
		if got := string(p.filter([]byte(tc.in))); got != tc.want {
			t.Errorf("filter(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
