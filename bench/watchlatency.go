package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/imapkit/imap/internal/dovecot"
)

// The latency of the watch section: each contender watches its own account
// through a wireProxy, a TCP proxy in this process between the client and
// Dovecot that notes (monotonic clock) the moment it forwards a
// "* N EXISTS" line to the client. Messages are appended one at a time per
// contender, over a separate connection straight to Dovecot, each once the
// contender's previous push was handled and its connection is back in
// IDLE; a sample is the time the push reached the application minus the
// time its EXISTS was forwarded.
//
// Dovecot sends the EXISTS about 0.5 s after the APPEND, so the contenders
// run side by side, taking turns on a common clock: contender j appends
// only at ticks start + (2m+j)·watchTick, so that one contender's EXISTS
// arrives about halfway between the other's appends. A sample during which
// the other contender was appending or handling its own push is not
// counted.

// watchWarmup is how many pushes per contender come before the samples.
const watchWarmup = 3

// watchTick is the turn of the common clock: a contender may append every
// second tick, which must be longer than Dovecot's delay (about 505 ms)
// plus the handling of the push.
const watchTick = 270 * time.Millisecond

// window is a span of activity of one contender.
type window struct {
	contender  int
	start, end time.Time
}

// activity logs the contenders' windows of activity.
type activity struct {
	mu      sync.Mutex
	windows []window
}

func (a *activity) add(w window) {
	a.mu.Lock()
	a.windows = append(a.windows, w)
	a.mu.Unlock()
}

// disturbed reports whether another contender than w's was active within
// a millisecond of w.
func (a *activity) disturbed(w window) bool {
	const margin = time.Millisecond
	for _, o := range a.windows {
		if o.contender != w.contender && o.start.Before(w.end.Add(margin)) && w.start.Before(o.end.Add(margin)) {
			return true
		}
	}
	return false
}

// runWatchLatency measures the contenders names (opened with contenders)
// with samples pushes each; users holds one user per contender.
func runWatchLatency(ctx context.Context, srv *dovecot.Server, users []dovecot.User, samples int, names []string, contenders map[string]accountFunc) []watchLatency {
	type state struct {
		name      string
		proxy     *wireProxy
		acc       closer
		appender  appendFunc
		stop      func()
		events    chan time.Time
		handled   []window        // [EXISTS forwarded, push reached the application]
		inServer  []time.Duration // of which waiting for Dovecot's answers
		server    []time.Duration
		discarded int
		err       error
	}
	var states []*state
	for i, name := range names {
		st := &state{name: name, events: make(chan time.Time, 16)}
		states = append(states, st)
		st.err = func() error {
			p, err := startProxy(srv.Addr)
			if err != nil {
				return err
			}
			st.proxy = p
			st.appender, err = dialAppender(ctx, srv.Addr, users[i])
			if err != nil {
				return err
			}
			cctx, cancel := context.WithCancel(ctx)
			st.stop = cancel
			on := func(s watchSignal, at time.Time) {
				if s == signalPush {
					select {
					case st.events <- at:
					default:
					}
				}
			}
			st.acc, err = contenders[name](cctx, p.Addr(), users[i], make(chan struct{}, 1), on)
			return err
		}()
	}
	defer func() {
		for _, st := range states {
			if st.stop != nil {
				st.stop()
			}
			if st.acc != nil {
				st.acc.Close()
			}
			if st.proxy != nil {
				st.proxy.Close()
			}
			if st.appender != nil {
				st.appender(nil)
			}
		}
	}()

	var act activity
	start := time.Now()
	var wg sync.WaitGroup
	for j, st := range states {
		if st.err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range watchWarmup + samples {
				if err := st.proxy.waitIdle(15 * time.Second); err != nil {
					st.err = err
					return
				}
				for len(st.events) > 0 {
					<-st.events
				}
				// Wait for this contender's next turn.
				turn := 2 * watchTick
				offset := time.Duration(j) * watchTick
				m := (time.Since(start) - offset + turn - 1) / turn
				time.Sleep(time.Until(start.Add(offset + m*turn)))

				st.proxy.arm()
				sent := time.Now()
				err := st.appender([]byte(pushMessage))
				act.add(window{j, sent, time.Now()})
				if err != nil {
					st.err = fmt.Errorf("APPEND: %w", err)
					return
				}
				var at time.Time
				select {
				case at = <-st.events:
				case <-time.After(15 * time.Second):
					st.err = fmt.Errorf("push %d did not reach the application within 15 s", i+1)
					return
				}
				exists := st.proxy.armedExists()
				if exists.IsZero() {
					st.err = fmt.Errorf("push %d reached the application with no EXISTS forwarded", i+1)
					return
				}
				w := window{j, exists, at}
				act.add(w)
				if i >= watchWarmup {
					st.handled = append(st.handled, w)
					st.inServer = append(st.inServer, st.proxy.serverShare(exists, at))
					st.server = append(st.server, exists.Sub(sent))
				}
			}
		}()
	}
	wg.Wait()

	var out []watchLatency
	for _, st := range states {
		l := watchLatency{name: st.name, err: st.err}
		var lat, inServer, rest []time.Duration
		for i, w := range st.handled {
			if act.disturbed(w) {
				l.discarded++
				continue
			}
			lat = append(lat, w.end.Sub(w.start))
			inServer = append(inServer, st.inServer[i])
			rest = append(rest, w.end.Sub(w.start)-st.inServer[i])
		}
		if l.err == nil && len(lat) == 0 {
			l.err = errors.New("every sample was disturbed by the other contender")
		}
		if l.err != nil {
			log.Printf("watch      %-22s latency FAILED: %v", st.name, l.err)
		} else {
			slices.Sort(lat)
			slices.Sort(st.server)
			l.n = len(lat)
			l.p50, l.p90, l.p99 = percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
			l.max = lat[len(lat)-1]
			l.server = medianDur(st.server)
			slices.Sort(inServer)
			slices.Sort(rest)
			l.inServer50, l.inServer99 = percentile(inServer, 50), percentile(inServer, 99)
			l.rest50, l.rest99 = percentile(rest, 50), percentile(rest, 99)
			log.Printf("watch      %-22s latency EXISTS -> application over %d pushes (%d disturbed, not counted): p50 %v p90 %v p99 %v max %v; waiting for Dovecot's answers p50 %v p99 %v, the rest p50 %v p99 %v (Dovecot's delay APPEND -> EXISTS: median %v)",
				st.name, l.n, l.discarded, l.p50, l.p90, l.p99, l.max, l.inServer50, l.inServer99, l.rest50, l.rest99, l.server.Round(time.Millisecond))
		}
		out = append(out, l)
	}
	return out
}

// appendFunc appends msg to INBOX; nil msg logs out.
type appendFunc func(msg []byte) error

// wireProxy forwards IMAP connections to a server, line by line, and
// keeps track of IDLE (a client's IDLE command once the server's
// continuation was forwarded, until DONE or a tagged response) and of the
// time EXISTS lines are forwarded.
type wireProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[net.Conn]bool
	idling   int       // connections in IDLE
	armed    bool      // the next EXISTS forwarded is noted in existsAt
	existsAt time.Time // when the first EXISTS after arm was forwarded
	// waits are the spans since arm from forwarding a client's line to the
	// server until forwarding the server's next line: the server's share.
	waits  []window
	closed bool
}

func startProxy(target string) (*wireProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &wireProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *wireProxy) Addr() string { return p.ln.Addr().String() }

func (p *wireProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// track adds (or, with add false, removes) a connection; it reports false
// once the proxy is closed.
func (p *wireProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.closed {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

// proxyConn is the IDLE state of one proxied connection, guarded by the
// proxy's mu.
type proxyConn struct {
	idleSent bool // the client sent IDLE; the continuation has not come yet
	idling   bool
	sentAt   time.Time // a client line was forwarded then, and no server line since
}

func (p *wireProxy) handle(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, true) {
		client.Close()
		server.Close()
		return
	}
	p.track(server, true)
	st := &proxyConn{}
	done := make(chan struct{})
	go func() {
		p.pump(server, client, st, true)
		client.Close()
		server.Close()
		close(done)
	}()
	p.pump(client, server, st, false)
	client.Close()
	server.Close()
	<-done
	p.mu.Lock()
	if st.idling {
		p.idling--
	}
	st.idling = false
	p.mu.Unlock()
	p.track(client, false)
	p.track(server, false)
}

// pump forwards src to dst a line at a time (literals as they come),
// looking at the start of each line.
func (p *wireProxy) pump(src, dst net.Conn, st *proxyConn, fromServer bool) {
	r := bufio.NewReaderSize(src, 64<<10)
	start := true
	for {
		line, err := r.ReadSlice('\n')
		if len(line) > 0 {
			exists := false
			if start {
				exists = p.observe(st, line, fromServer)
			}
			at := time.Now()
			if _, werr := dst.Write(line); werr != nil {
				return
			}
			if start {
				p.forwarded(st, at, fromServer, exists)
			}
		}
		switch {
		case err == nil:
			start = true
			if n, ok := literalLen(line); ok {
				if _, err := io.CopyN(dst, r, n); err != nil {
					return
				}
				start = false // the line goes on after the literal
			}
		case errors.Is(err, bufio.ErrBufferFull):
			start = false
		default:
			return
		}
	}
}

// literalLen returns N when line ends with a literal's "{N}" or "{N+}".
func literalLen(line []byte) (int64, bool) {
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if !bytes.HasSuffix(line, []byte("}")) {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	digits := bytes.TrimSuffix(line[i+1:len(line)-1], []byte("+"))
	n, err := strconv.ParseInt(string(digits), 10, 64)
	return n, err == nil && n >= 0
}

// observe updates the IDLE state for a line about to be forwarded, and
// reports whether it is a server's "* N EXISTS".
func (p *wireProxy) observe(st *proxyConn, line []byte, fromServer bool) bool {
	f := bytes.Fields(line)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !fromServer {
		switch {
		case len(f) == 2 && bytes.EqualFold(f[1], []byte("IDLE")):
			st.idleSent = true
		case len(f) == 1 && bytes.EqualFold(f[0], []byte("DONE")):
			if st.idling {
				p.idling--
			}
			st.idling, st.idleSent = false, false
		}
		return false
	}
	switch {
	case len(f) > 0 && f[0][0] == '+':
		if st.idleSent {
			st.idleSent, st.idling = false, true
			p.idling++
		}
	case len(f) > 0 && !bytes.Equal(f[0], []byte("*")):
		// A tagged response: a command (or IDLE) ended.
		if st.idling {
			p.idling--
		}
		st.idling, st.idleSent = false, false
	case len(f) == 3 && bytes.EqualFold(f[2], []byte("EXISTS")):
		_, err := strconv.ParseUint(string(f[1]), 10, 32)
		return err == nil
	}
	return false
}

// forwarded notes a line forwarded at at.
func (p *wireProxy) forwarded(st *proxyConn, at time.Time, fromServer, exists bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !fromServer {
		st.sentAt = at
		return
	}
	if !st.sentAt.IsZero() {
		p.waits = append(p.waits, window{start: st.sentAt, end: at})
		st.sentAt = time.Time{}
	}
	if exists && p.armed {
		p.armed = false
		p.existsAt = at
	}
}

// serverShare returns the time, between from and to, that the proxy waited
// for the server's answer to a line the client sent.
func (p *wireProxy) serverShare(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	for _, w := range p.waits {
		if !w.start.Before(from) && !w.end.After(to) {
			d += w.end.Sub(w.start)
		}
	}
	return d
}

// arm has the next EXISTS forwarded noted.
func (p *wireProxy) arm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed, p.existsAt, p.waits = true, time.Time{}, p.waits[:0]
}

// armedExists returns when the first EXISTS since arm was forwarded, or
// the zero time.
func (p *wireProxy) armedExists() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.existsAt
}

// waitIdle waits until a connection is in IDLE.
func (p *wireProxy) waitIdle(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		n := p.idling
		p.mu.Unlock()
		if n > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no connection in IDLE after %v", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// Close stops accepting, drops every connection and waits for the
// forwarding goroutines.
func (p *wireProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}
