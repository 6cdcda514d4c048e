// Package imaptest provides a scripted, in-process fake IMAP server for
// tests. It plays the role of CPython's test_imaplib.py SimpleIMAPHandler
// (and its IDLE and AUTHENTICATE variants) and also lets a test script a
// hostile or broken server byte by byte.
//
// A Server listens on 127.0.0.1 on a random port. Each connection gets a
// Session, run either by the built-in dispatcher (greeting, then one
// CommandFunc per command line) or entirely by a Config.Handler. Session
// methods are meant to be called from the connection's own goroutine.
// Handlers run outside the test goroutine: report problems with t.Error,
// not t.Fatal.
//
// This is a test fixture, never product code.
package imaptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DefaultGreeting is the greeting sent when Config.Greeting is empty.
const DefaultGreeting = "* OK IMAP4rev1"

// maxLiteral bounds a client literal the dispatcher agrees to read.
const maxLiteral = 64 << 20

// drainTimeout bounds how long a closing connection waits for the client
// to close its side before the socket is closed.
const drainTimeout = time.Second

// Handler runs a whole connection (scripted mode). The connection is
// closed when it returns.
type Handler func(s *Session)

// CommandFunc handles one command. tag and args come from the command
// line "TAG CMD args"; args is everything after the command name and its
// space (it may be ""), with any literals inline as sent (see
// Session.ReadCommand). It may take over the conversation with
// s.ReadLine for continuations, and must send the tagged reply itself.
type CommandFunc func(s *Session, tag, args string)

// Config configures a Server. The zero Config is SimpleIMAPHandler.
type Config struct {
	// Greeting is sent as one line (CRLF appended) when a connection
	// opens; "" means DefaultGreeting. For a raw, unterminated, delayed or
	// missing greeting use Handler.
	Greeting string

	// Capabilities are extra capabilities after "IMAP4rev1" in the
	// CAPABILITY reply, e.g. "IDLE" or "AUTH ENABLE UTF8=ACCEPT".
	Capabilities string

	// Commands overrides or adds commands, keyed by command name
	// (matched case-insensitively).
	Commands map[string]CommandFunc

	// Handler, if set, runs each connection instead of the dispatcher;
	// no greeting is sent for it. It may call Session.Serve to hand the
	// rest of the connection to the dispatcher.
	Handler Handler

	// RawLiterals stops the dispatcher from handling "{N}" and "{N+}" at
	// the end of command lines: the CommandFunc gets only the first line
	// and must answer the continuation and read the literal itself.
	RawLiterals bool
}

// Server is a running fake IMAP server. Its cleanup, registered with
// t.Cleanup, closes the listener and every live connection and waits for
// all of its goroutines.
type Server struct {
	Addr     string         // "127.0.0.1:PORT"
	Port     int            // PORT; dial "localhost:PORT" for TLS verification
	TLS      bool           // connections use TLS
	CertPool *x509.CertPool // trusts the server certificate (TLS only)

	t         testing.TB
	cfg       Config
	cmds      map[string]CommandFunc
	ln        net.Listener
	tlsConf   *tls.Config
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	conns    map[net.Conn]struct{}
	lines    []string
	commands []string
	user     string
	values   map[string]any
}

// NewServer starts a plain TCP server running cfg. Its connections greet
// with cfg.Greeting, then dispatch each command line "TAG CMD args" to
// cfg.Commands[CMD] or a built-in (CAPABILITY, LOGIN, LOGOUT, SELECT,
// UNSELECT, NOOP); any other command gets "TAG BAD CMD unknown".
func NewServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	return newServer(t, cfg, false)
}

// NewTLSServer is NewServer over TLS (implicit TLS, handshake done before
// the greeting or Handler). The certificate, generated at start, is valid
// for the DNS name "localhost" only (no IP address), so verifying by
// "127.0.0.1" fails and by "localhost" succeeds with CertPool.
func NewTLSServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	return newServer(t, cfg, true)
}

func newServer(t testing.TB, cfg Config, useTLS bool) *Server {
	t.Helper()
	srv := &Server{
		TLS:    useTLS,
		t:      t,
		cfg:    cfg,
		cmds:   make(map[string]CommandFunc, len(cfg.Commands)),
		done:   make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
		values: make(map[string]any),
	}
	for name, f := range cfg.Commands {
		srv.cmds[strings.ToUpper(name)] = f
	}
	if useTLS {
		cert, pool, err := newCert()
		if err != nil {
			t.Fatalf("imaptest: generating certificate: %v", err)
		}
		srv.CertPool = pool
		srv.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("imaptest: listen: %v", err)
	}
	srv.ln = ln
	srv.Addr = ln.Addr().String()
	srv.Port = ln.Addr().(*net.TCPAddr).Port
	srv.wg.Add(1)
	go srv.accept()
	t.Cleanup(srv.Close)
	return srv
}

// Close stops the server: it closes the listener and every live
// connection, interrupts Session.Sleep, and waits for all handlers to
// return. It is idempotent and runs automatically at test cleanup.
func (srv *Server) Close() {
	srv.closeOnce.Do(func() {
		srv.mu.Lock()
		srv.closed = true
		conns := make([]net.Conn, 0, len(srv.conns))
		for c := range srv.conns {
			conns = append(conns, c)
		}
		srv.mu.Unlock()
		close(srv.done)
		srv.ln.Close()
		for _, c := range conns {
			c.Close()
		}
		srv.wg.Wait()
	})
}

func (srv *Server) accept() {
	defer srv.wg.Done()
	for {
		c, err := srv.ln.Accept()
		if err != nil {
			select {
			case <-srv.done:
			default:
				srv.t.Errorf("imaptest: accept: %v", err)
			}
			return
		}
		srv.mu.Lock()
		if srv.closed {
			srv.mu.Unlock()
			c.Close()
			continue
		}
		srv.conns[c] = struct{}{}
		// The accept goroutine holds a count, so this Add cannot race
		// with the Wait in Close.
		srv.wg.Add(1)
		srv.mu.Unlock()
		go srv.handle(c)
	}
}

func (srv *Server) handle(c net.Conn) {
	defer srv.wg.Done()
	defer func() {
		srv.mu.Lock()
		delete(srv.conns, c)
		srv.mu.Unlock()
	}()
	tcp := c.(*net.TCPConn)
	_ = tcp.SetNoDelay(true)
	var conn net.Conn = tcp
	if srv.TLS {
		// Handshake eagerly, like CPython's SecureTCPServer, so that a
		// Handler that sends nothing still yields a working TLS session
		// followed by EOF. A client that rejects the certificate simply
		// gets its connection closed.
		tc := tls.Server(tcp, srv.tlsConf)
		if tc.Handshake() != nil {
			tcp.Close()
			return
		}
		conn = tc
	}
	s := &Session{srv: srv, conn: conn, tcp: tcp, r: bufio.NewReader(conn)}
	defer s.finish()
	defer func() {
		if r := recover(); r != nil {
			srv.t.Errorf("imaptest: handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	if srv.cfg.Handler != nil {
		srv.cfg.Handler(s)
		return
	}
	greeting := srv.cfg.Greeting
	if greeting == "" {
		greeting = DefaultGreeting
	}
	if s.Send(greeting) != nil {
		return
	}
	s.Serve()
}

// Lines returns every line the server has read from any client, in order:
// each Session.ReadLine result (without CRLF) and each literal read by
// Session.ReadLiteral (as is). Commands with a literal thus appear as
// several entries.
func (srv *Server) Lines() []string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return append([]string(nil), srv.lines...)
}

// Commands returns every complete command read by Session.ReadCommand
// (hence by the dispatcher), across connections, in order: the exact
// bytes sent, literals inline, without the final CRLF.
func (srv *Server) Commands() []string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return append([]string(nil), srv.commands...)
}

// LoggedUser returns the user of the last LOGIN (or Session.SetUser), or
// "" after LOGOUT, like CPython's server.logged.
func (srv *Server) LoggedUser() string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.user
}

// Set stores a value under key, for handlers to hand data to the test.
func (srv *Server) Set(key string, v any) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.values[key] = v
}

// Get returns the value stored under key by Set, or nil.
func (srv *Server) Get(key string) any {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.values[key]
}

func (srv *Server) record(list *[]string, s string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	*list = append(*list, s)
}

// Session is one client connection.
type Session struct {
	srv    *Server
	conn   net.Conn
	tcp    *net.TCPConn
	r      *bufio.Reader
	wmu    sync.Mutex
	closed atomic.Bool

	// Owned by the connection goroutine.
	authenticated bool
	selected      bool
	quit          bool
}

// Server returns the server the session belongs to.
func (s *Session) Server() *Server { return s.srv }

// Conn returns the connection (a *tls.Conn for a TLS server). Reading
// from it directly bypasses the session's read buffer.
func (s *Session) Conn() net.Conn { return s.conn }

// ReadLine reads one client line up to CRLF and returns it without the
// CRLF (a bare LF does not end a line). At EOF it returns the partial
// line, if any, with io.ErrUnexpectedEOF, or "" with io.EOF.
func (s *Session) ReadLine() (string, error) {
	var b []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		b = append(b, chunk...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(b) > 0:
			return string(b), io.ErrUnexpectedEOF
		case err != nil:
			return string(b), err
		}
		if bytes.HasSuffix(b, []byte("\r\n")) {
			break
		}
	}
	line := string(b[:len(b)-2])
	s.srv.record(&s.srv.lines, line)
	return line, nil
}

// ReadLiteral reads exactly n bytes of client literal data.
func (s *Session) ReadLiteral(n int) ([]byte, error) {
	buf := make([]byte, n)
	m, err := io.ReadFull(s.r, buf)
	if err != nil {
		return buf[:m], err
	}
	s.srv.record(&s.srv.lines, string(buf))
	return buf, nil
}

// ReadCommand reads one complete command: a line and, while it ends with
// a literal announcement "{N}" or "{N+}", the N literal bytes and the next
// line. For "{N}" it first sends "+ Ready for literal"; for "{N+}"
// (LITERAL+) it does not. It returns the exact bytes received without the
// final CRLF, e.g. "a APPEND INBOX {5}\r\nhello".
func (s *Session) ReadCommand() (string, error) {
	var sb strings.Builder
	for {
		line, err := s.ReadLine()
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		n, sync, ok := literalSuffix(line)
		if !ok {
			break
		}
		if n > maxLiteral {
			_ = s.Send("* BAD literal too large")
			return sb.String(), fmt.Errorf("imaptest: client literal of %d bytes", n)
		}
		if sync {
			if err := s.Send("+ Ready for literal"); err != nil {
				return sb.String(), err
			}
		}
		sb.WriteString("\r\n")
		lit, err := s.ReadLiteral(n)
		sb.Write(lit)
		if err != nil {
			return sb.String(), err
		}
	}
	cmd := sb.String()
	s.srv.record(&s.srv.commands, cmd)
	return cmd, nil
}

// literalSuffix reports whether line ends with "{N}" or "{N+}".
func literalSuffix(line string) (n int, sync, ok bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, false
	}
	num := line[i+1 : len(line)-1]
	sync = true
	if strings.HasSuffix(num, "+") {
		num, sync = num[:len(num)-1], false
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, false, false
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > maxLiteral {
		return maxLiteral + 1, sync, true
	}
	return int(v), sync, true
}

// Send writes each line followed by CRLF, one write per line.
func (s *Session) Send(lines ...string) error {
	for _, l := range lines {
		if err := s.Write([]byte(l + "\r\n")); err != nil {
			return err
		}
	}
	return nil
}

// Write writes b as is in one write. TCP_NODELAY is set, so separate
// writes normally leave as separate segments (TLS: separate records).
func (s *Session) Write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.conn.Write(b)
	return err
}

// Sleep pauses for d, or less if the server is closing.
func (s *Session) Sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.srv.done:
	}
}

// Close closes the connection at once, without waiting for the client;
// unread client data may turn this into a reset. Serve returns at its
// next read. (When a Handler or Serve returns, or after LOGOUT, the
// connection is instead closed gracefully.)
func (s *Session) Close() {
	s.closed.Store(true)
	s.conn.Close()
}

// finish closes the connection gracefully: it shuts down the write side,
// discards client data until EOF (bounded by drainTimeout or server
// close), then closes. Closing with unread data could otherwise reset the
// connection and destroy responses the client has not read yet.
func (s *Session) finish() {
	if s.closed.Swap(true) {
		return
	}
	defer s.conn.Close()
	if tc, ok := s.conn.(*tls.Conn); ok {
		s.wmu.Lock()
		err := tc.CloseWrite()
		s.wmu.Unlock()
		if err != nil {
			return
		}
	}
	if s.tcp.CloseWrite() != nil {
		return
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(drainTimeout))
	_, _ = io.Copy(io.Discard, s.r)
}

// Authenticated reports whether LOGIN (or SetUser) succeeded on this
// connection and LOGOUT has not been sent since.
func (s *Session) Authenticated() bool { return s.authenticated }

// SetUser marks the session authenticated as user and records user as
// the server's LoggedUser; SetUser("") marks it not authenticated.
// Custom LOGIN or AUTHENTICATE commands can call it.
func (s *Session) SetUser(user string) {
	s.authenticated = user != ""
	s.srv.mu.Lock()
	s.srv.user = user
	s.srv.mu.Unlock()
}

// Selected reports whether a mailbox is selected (SELECT, not UNSELECT).
func (s *Session) Selected() bool { return s.selected }

// SetSelected sets the selected state, for custom SELECT-like commands.
func (s *Session) SetSelected(selected bool) { s.selected = selected }

// Serve runs the command dispatcher on the session until the client
// closes the connection, a read fails, or LOGOUT. It sends no greeting;
// a Handler can send one (or anything else) first and then call Serve.
func (s *Session) Serve() {
	for !s.quit {
		var line string
		var err error
		if s.srv.cfg.RawLiterals {
			line, err = s.ReadLine()
			if err == nil {
				s.srv.record(&s.srv.commands, line)
			}
		} else {
			line, err = s.ReadCommand()
		}
		if err != nil {
			return
		}
		s.dispatch(line)
	}
}

func (s *Session) dispatch(line string) {
	tag, rest, _ := strings.Cut(line, " ")
	cmd, args, _ := strings.Cut(rest, " ")
	if tag == "" {
		_ = s.Send("* BAD empty command")
		return
	}
	if cmd == "" {
		_ = s.Send(tag + " BAD missing command")
		return
	}
	name := strings.ToUpper(cmd)
	if f := s.srv.cmds[name]; f != nil {
		f(s, tag, args)
		return
	}
	if f := builtins[name]; f != nil {
		f(s, tag, args)
		return
	}
	_ = s.Send(tag + " BAD " + cmd + " unknown")
}

var builtins = map[string]CommandFunc{
	"CAPABILITY": cmdCapability,
	"LOGIN":      cmdLogin,
	"LOGOUT":     cmdLogout,
	"SELECT":     cmdSelect,
	"UNSELECT":   cmdUnselect,
	"NOOP":       cmdNoop,
}

func cmdCapability(s *Session, tag, _ string) {
	caps := "IMAP4rev1"
	if c := s.srv.cfg.Capabilities; c != "" {
		caps += " " + c
	}
	_ = s.Send("* CAPABILITY "+caps, tag+" OK CAPABILITY completed")
}

func cmdLogin(s *Session, tag, args string) {
	s.SetUser(FirstArg(args))
	_ = s.Send(tag + " OK LOGIN completed")
}

func cmdLogout(s *Session, tag, _ string) {
	s.SetUser("")
	s.selected = false
	// "ref1" is CPython's spelling, kept for faithful ports.
	_ = s.Send("* BYE IMAP4ref1 Server logging out", tag+" OK LOGOUT completed")
	s.quit = true
}

func cmdSelect(s *Session, tag, _ string) {
	s.selected = true
	_ = s.Send("* 2 EXISTS", tag+" OK [READ-WRITE] SELECT completed.")
}

func cmdUnselect(s *Session, tag, _ string) {
	if !s.selected {
		_ = s.Send(tag + " BAD No mailbox selected")
		return
	}
	s.selected = false
	_ = s.Send(tag + " OK Returned to authenticated state. (Success)")
}

func cmdNoop(s *Session, tag, _ string) {
	_ = s.Send(tag + " OK NOOP completed")
}

// FirstArg returns the first argument of args: an atom as is, a quoted
// string unquoted, or the content of a literal ("{N}\r\n" + N bytes).
func FirstArg(args string) string {
	switch {
	case strings.HasPrefix(args, `"`):
		var b strings.Builder
		for i := 1; i < len(args); i++ {
			c := args[i]
			switch {
			case c == '\\' && i+1 < len(args):
				i++
				b.WriteByte(args[i])
			case c == '"':
				return b.String()
			default:
				b.WriteByte(c)
			}
		}
		return b.String()
	case strings.HasPrefix(args, "{"):
		head, rest, ok := strings.Cut(args, "\r\n")
		if n, _, isLit := literalSuffix(head); ok && isLit && n <= len(rest) {
			return rest[:n]
		}
	}
	first, _, _ := strings.Cut(args, " ")
	return first
}
