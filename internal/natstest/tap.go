package natstest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Pub is one message a client published through a Tap.
type Pub struct {
	Subject string
	// MsgID is the message's Nats-Msg-Id header, "" if none.
	MsgID string
	// Time is when the Tap passed the message on to the server.
	Time time.Time
}

// Tap is a TCP proxy in front of a NATS server's client port, for the
// clients of one party (a node under test): it passes everything on both
// ways, and records the messages they publish on subjects that begin with
// one of its prefixes. It tells who published what, which the server does not say to
// subscribers. Give the clients Tap.URL instead of the server's, and start
// the server with Cluster.NoAdvertise, or the clients learn the other
// servers' own URLs and go around the Tap.
//
// When the server is gone, the Tap accepts connections and closes them at
// once, as a server that is down would refuse them.
type Tap struct {
	ln       net.Listener
	target   string
	prefixes []string

	mu    sync.Mutex
	pubs  []Pub
	conns map[net.Conn]bool
	done  bool
}

// NewTap starts a Tap that forwards to the client address target
// ("127.0.0.1:PORT") and records what is published on subjects beginning
// with one of prefixes ("imapkit.events.", "$KV.BUCKET.", …). It stops
// when the test ends.
func NewTap(t testing.TB, target string, prefixes ...string) *Tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: tap: %v", err)
	}
	p := &Tap{ln: ln, target: target, prefixes: prefixes, conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// URL is the URL clients connect to.
func (p *Tap) URL() string { return "nats://" + p.ln.Addr().String() }

// Pubs returns the messages recorded so far, in the order they passed.
func (p *Tap) Pubs() []Pub {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Pub(nil), p.pubs...)
}

// Close stops the Tap and closes its connections.
func (p *Tap) Close() {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}

// track remembers c to close it with the Tap; false if the Tap is closed.
func (p *Tap) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Tap) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Tap) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(client)
	}
}

func (p *Tap) serve(client net.Conn) {
	if !p.track(client) {
		client.Close()
		return
	}
	defer p.untrack(client)
	srv, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !p.track(srv) {
		srv.Close()
		return
	}
	defer p.untrack(srv)
	go func() {
		io.Copy(client, srv)
		client.Close()
		srv.Close()
	}()
	p.forward(client, srv)
}

// forward copies the client's protocol to the server, op by op, recording
// the messages published on the prefixes.
func (p *Tap) forward(client io.Reader, srv io.Writer) error {
	r := bufio.NewReaderSize(client, 64<<10)
	w := bufio.NewWriterSize(srv, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long CONNECT: pass it on in pieces.
			if _, err := w.Write(line); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		f := strings.Fields(string(line))
		if len(f) > 0 {
			op := strings.ToUpper(f[0])
			if op == "PUB" || op == "HPUB" {
				if err := p.payload(op, f, r, w); err != nil {
					return err
				}
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

// payload passes on the payload of a PUB or HPUB whose arguments are f,
// recording it if its subject has one of the prefixes.
func (p *Tap) payload(op string, f []string, r *bufio.Reader, w *bufio.Writer) error {
	// PUB subject [reply] size; HPUB subject [reply] header-size size.
	size, err := strconv.Atoi(f[len(f)-1])
	if err != nil || size < 0 || len(f) < 3 {
		return fmt.Errorf("natstest: tap: bad %s line %q", op, f)
	}
	hdrSize := 0
	if op == "HPUB" {
		if len(f) < 4 {
			return fmt.Errorf("natstest: tap: bad HPUB line %q", f)
		}
		if hdrSize, err = strconv.Atoi(f[len(f)-2]); err != nil || hdrSize > size {
			return fmt.Errorf("natstest: tap: bad HPUB line %q", f)
		}
	}
	body := make([]byte, size+2) // and CRLF
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	if slices.ContainsFunc(p.prefixes, func(pre string) bool { return strings.HasPrefix(f[1], pre) }) {
		pub := Pub{Subject: f[1], MsgID: msgID(body[:hdrSize]), Time: time.Now()}
		p.mu.Lock()
		p.pubs = append(p.pubs, pub)
		p.mu.Unlock()
	}
	return nil
}

// msgID returns the Nats-Msg-Id of a header block "NATS/1.0\r\nK: V\r\n…".
func msgID(hdr []byte) string {
	for _, l := range bytes.Split(hdr, []byte("\r\n")) {
		k, v, ok := bytes.Cut(l, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(k)), "Nats-Msg-Id") {
			return string(bytes.TrimSpace(v))
		}
	}
	return ""
}
