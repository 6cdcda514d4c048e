package imaptest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// client is a raw test client.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, srv *Server) *client {
	t.Helper()
	var conn net.Conn
	var err error
	if srv.TLS {
		conn, err = tls.Dial("tcp", fmt.Sprintf("localhost:%d", srv.Port),
			&tls.Config{RootCAs: srv.CertPool})
	} else {
		conn, err = net.Dial("tcp", srv.Addr)
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %q, %v", l, err)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line %q not CRLF-terminated", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if got := c.line(); got != w {
			c.t.Fatalf("got %q, want %q", got, w)
		}
	}
}

func (c *client) expectEOF() {
	c.t.Helper()
	if l, err := c.r.ReadString('\n'); err != io.EOF {
		c.t.Fatalf("got %q, %v; want EOF", l, err)
	}
}

func both(t *testing.T, f func(t *testing.T, newServer func(testing.TB, Config) *Server)) {
	t.Run("plain", func(t *testing.T) { f(t, NewServer) })
	t.Run("tls", func(t *testing.T) { f(t, NewTLSServer) })
}

func TestBuiltins(t *testing.T) {
	both(t, func(t *testing.T, newServer func(testing.TB, Config) *Server) {
		srv := newServer(t, Config{Capabilities: "IDLE AUTH=PLAIN"})
		c := dial(t, srv)
		c.expect("* OK IMAP4rev1")
		c.send("a1 CAPABILITY\r\n")
		c.expect("* CAPABILITY IMAP4rev1 IDLE AUTH=PLAIN", "a1 OK CAPABILITY completed")
		c.send("a2 noop\r\n")
		c.expect("a2 OK NOOP completed")
		c.send("a3 FROB x y\r\n")
		c.expect("a3 BAD FROB unknown")
		c.send("a4 UNSELECT\r\n")
		c.expect("a4 BAD No mailbox selected")
		c.send("a5 LOGIN \"us\\\"er\" pass\r\n")
		c.expect("a5 OK LOGIN completed")
		if got := srv.LoggedUser(); got != `us"er` {
			t.Errorf("LoggedUser = %q", got)
		}
		c.send("a6 SELECT INBOX\r\n")
		c.expect("* 2 EXISTS", "a6 OK [READ-WRITE] SELECT completed.")
		c.send("a7 UNSELECT\r\n")
		c.expect("a7 OK Returned to authenticated state. (Success)")
		c.send("a8 LOGOUT\r\n")
		c.expect("* BYE IMAP4ref1 Server logging out", "a8 OK LOGOUT completed")
		c.expectEOF()
		if got := srv.LoggedUser(); got != "" {
			t.Errorf("LoggedUser after LOGOUT = %q", got)
		}
		want := []string{"a1 CAPABILITY", "a2 noop", "a3 FROB x y", "a4 UNSELECT",
			`a5 LOGIN "us\"er" pass`, "a6 SELECT INBOX", "a7 UNSELECT", "a8 LOGOUT"}
		if got := srv.Lines(); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("Lines = %q", got)
		}
	})
}

func TestDefaultCapabilities(t *testing.T) {
	c := dial(t, NewServer(t, Config{}))
	c.expect("* OK IMAP4rev1")
	c.send("x CAPABILITY\r\n")
	c.expect("* CAPABILITY IMAP4rev1", "x OK CAPABILITY completed")
}

func TestLiterals(t *testing.T) {
	both(t, func(t *testing.T, newServer func(testing.TB, Config) *Server) {
		got := make(chan string, 3)
		srv := newServer(t, Config{Commands: map[string]CommandFunc{
			"append": func(s *Session, tag, args string) {
				got <- args
				_ = s.Send(tag + " OK APPEND completed")
			},
		}})
		c := dial(t, srv)
		c.expect("* OK IMAP4rev1")

		// Synchronizing literal: the client must wait for "+".
		c.send("a APPEND INBOX {5}\r\n")
		c.expect("+ Ready for literal")
		c.send("hello\r\n")
		c.expect("a OK APPEND completed")
		if a := <-got; a != "INBOX {5}\r\nhello" {
			t.Errorf("args = %q", a)
		}

		// LITERAL+: no continuation, the next line is the tagged reply.
		c.send("b APPEND INBOX (\\Seen) {5+}\r\nhello {2+}\r\nab)\r\n")
		c.expect("b OK APPEND completed")
		if a := <-got; a != "INBOX (\\Seen) {5+}\r\nhello {2+}\r\nab)" {
			t.Errorf("args = %q", a)
		}

		// LOGIN with a literal user name.
		c.send("c LOGIN {3}\r\n")
		c.expect("+ Ready for literal")
		c.send("tim pass\r\n")
		c.expect("c OK LOGIN completed")
		if u := srv.LoggedUser(); u != "tim" {
			t.Errorf("LoggedUser = %q", u)
		}

		wantLines := []string{"a APPEND INBOX {5}", "hello", "", "b APPEND INBOX (\\Seen) {5+}",
			"hello", " {2+}", "ab", ")", "c LOGIN {3}", "tim", " pass"}
		if l := srv.Lines(); strings.Join(l, "|") != strings.Join(wantLines, "|") {
			t.Errorf("Lines = %q", l)
		}
		wantCmds := []string{"a APPEND INBOX {5}\r\nhello", "b APPEND INBOX (\\Seen) {5+}\r\nhello {2+}\r\nab)",
			"c LOGIN {3}\r\ntim pass"}
		if cmds := srv.Commands(); strings.Join(cmds, "|") != strings.Join(wantCmds, "|") {
			t.Errorf("Commands = %q", cmds)
		}
	})
}

func TestRawLiterals(t *testing.T) {
	srv := NewServer(t, Config{RawLiterals: true, Commands: map[string]CommandFunc{
		"APPEND": func(s *Session, tag, args string) {
			// Refuse the literal: no continuation.
			_ = s.Send(tag + " NO [TOOBIG] no thanks")
			s.Server().Set("args", args)
		},
	}})
	c := dial(t, srv)
	c.expect("* OK IMAP4rev1")
	c.send("a APPEND INBOX {99999}\r\n")
	c.expect("a NO [TOOBIG] no thanks")
	c.send("b NOOP\r\n")
	c.expect("b OK NOOP completed")
	if got := srv.Get("args"); got != "INBOX {99999}" {
		t.Errorf("args = %q", got)
	}
}

func TestTLSVerification(t *testing.T) {
	srv := NewTLSServer(t, Config{})
	if !srv.TLS || srv.CertPool == nil {
		t.Fatal("TLS server without TLS or CertPool")
	}
	// The certificate is for "localhost" only.
	conn, err := tls.Dial("tcp", srv.Addr, &tls.Config{RootCAs: srv.CertPool, ServerName: "127.0.0.1"})
	if err == nil {
		conn.Close()
		t.Fatal("verification by IP succeeded")
	}
	var hostErr x509.HostnameError
	if !errors.As(err, &hostErr) {
		t.Errorf("dial by IP: %v, want an x509.HostnameError", err)
	}
	// Untrusted without the pool.
	if conn, err := tls.Dial("tcp", srv.Addr, &tls.Config{ServerName: "localhost"}); err == nil {
		conn.Close()
		t.Fatal("verification without CertPool succeeded")
	}
	conn, err = tls.Dial("tcp", srv.Addr, &tls.Config{RootCAs: srv.CertPool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("verification by localhost: %v", err)
	}
	defer conn.Close()
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("* OK IMAP4rev1")
}

func TestHandlerSplitPackets(t *testing.T) {
	const gap = 100 * time.Millisecond
	srv := NewServer(t, Config{Handler: func(s *Session) {
		_ = s.Write([]byte("* OK IMAP4rev1\r\n* 1 EX"))
		s.Sleep(gap)
		_ = s.Write([]byte("ISTS\r\n"))
		s.Sleep(gap)
		_ = s.Write([]byte("* OK")) // no CRLF, then EOF
	}})
	// Timed from before the dial: the handler writes its first chunk and
	// starts sleeping as soon as it accepts, which may be before Dial
	// returns here.
	start := time.Now()
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var reads []string
	buf := make([]byte, 100)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			reads = append(reads, string(buf[:n]))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 2*gap {
		t.Errorf("took %v, want >= %v", el, 2*gap)
	}
	want := []string{"* OK IMAP4rev1\r\n* 1 EX", "ISTS\r\n", "* OK"}
	if strings.Join(reads, "|") != strings.Join(want, "|") {
		t.Errorf("reads = %q, want %q", reads, want)
	}
}

func TestHandlerEOF(t *testing.T) {
	both(t, func(t *testing.T, newServer func(testing.TB, Config) *Server) {
		// CPython's EOFHandler and NoWelcomeHandler.
		c := dial(t, newServer(t, Config{Handler: func(s *Session) { _ = s.Write([]byte("* OK")) }}))
		if b, err := io.ReadAll(c.r); err != nil || string(b) != "* OK" {
			t.Errorf("got %q, %v; want \"* OK\" then EOF", b, err)
		}
		c = dial(t, newServer(t, Config{Handler: func(*Session) {}}))
		c.expectEOF()
	})
}

func TestHandlerServe(t *testing.T) {
	// A delayed greeting, then the normal dispatcher.
	srv := NewServer(t, Config{Handler: func(s *Session) {
		s.Sleep(50 * time.Millisecond)
		_ = s.Send("* OK late")
		s.Serve()
	}})
	c := dial(t, srv)
	c.expect("* OK late")
	c.send("a NOOP\r\n")
	c.expect("a OK NOOP completed")
}

func TestGreetingAndOverride(t *testing.T) {
	srv := NewServer(t, Config{
		Greeting: "* OK " + strings.Repeat("x", 100_000),
		Commands: map[string]CommandFunc{
			"CAPABILITY": func(s *Session, tag, _ string) {
				_ = s.Write([]byte("* CAPABILITY IMAP4rev1 AUTH\n")) // bare LF
				_ = s.Send(tag + " OK CAPABILITY completed")
			},
		},
	})
	c := dial(t, srv)
	if l := c.line(); len(l) != 100_005 {
		t.Fatalf("greeting of %d bytes", len(l))
	}
	c.send("a CAPABILITY\r\n")
	if l, _ := c.r.ReadString('\n'); l != "* CAPABILITY IMAP4rev1 AUTH\n" {
		t.Fatalf("got %q", l)
	}
	c.expect("a OK CAPABILITY completed")
}

func TestAuthenticateContinuation(t *testing.T) {
	srv := NewServer(t, Config{
		Capabilities: "LOGINDISABLED AUTH=CRAM-MD5",
		Commands:     map[string]CommandFunc{"AUTHENTICATE": AuthCRAMMD5},
	})
	c := dial(t, srv)
	c.expect("* OK IMAP4rev1")
	c.send("a AUTHENTICATE CRAM-MD5\r\n")
	c.expect("+ " + CRAMMD5Challenge)
	c.send(CRAMMD5Response + "\r\n")
	c.expect("a OK CRAM-MD5 successful")
	if srv.LoggedUser() != "tim" {
		t.Errorf("LoggedUser = %q", srv.LoggedUser())
	}
	c.send("b AUTHENTICATE CRAM-MD5\r\n")
	c.expect("+ " + CRAMMD5Challenge)
	c.send("*\r\n")
	c.expect("b NO No access")
	if got := FirstArg("CRAM-MD5 =\r\n"); got != "CRAM-MD5" {
		t.Errorf("FirstArg = %q", got)
	}
}

func TestIdle(t *testing.T) {
	both(t, func(t *testing.T, newServer func(testing.TB, Config) *Server) {
		srv := newServer(t, Config{Capabilities: "IDLE", Commands: map[string]CommandFunc{
			"IDLE": IdleIter(50 * time.Millisecond),
		}})
		c := dial(t, srv)
		c.expect("* OK IMAP4rev1")
		c.send("a IDLE\r\n")
		c.expect("* 0 EXISTS", "+ idling", "* 2 EXISTS",
			"* 1 FETCH (BODY[HEADER.FIELDS (DATE)] {41}",
			"Date: Fri, 06 Dec 2024 06:00:00 +0000", "", ")", "* 3 EXISTS", "* 1 RECENT")
		c.send("DONE\r\n")
		c.expect("* 9 RECENT", "a OK Idle completed")

		srv = newServer(t, Config{Capabilities: "IDLE", Commands: map[string]CommandFunc{
			"IDLE": IdleDelayedPacket(20*time.Millisecond, 20*time.Millisecond),
		}})
		c = dial(t, srv)
		c.expect("* OK IMAP4rev1")
		c.send("a IDLE\r\n")
		c.expect("+ idling", "* 1 EXISTS")
		c.send("NOPE\r\n")
		c.expect("a BAD Expected DONE")

		srv = newServer(t, Config{Capabilities: "IDLE", Commands: map[string]CommandFunc{"IDLE": IdleDenied}})
		c = dial(t, srv)
		c.expect("* OK IMAP4rev1")
		c.send("a IDLE\r\n")
		c.expect("a NO IDLE is not allowed at this time")
	})
}

func TestNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("servers", func(t *testing.T) {
		for _, newServer := range []func(testing.TB, Config) *Server{NewServer, NewTLSServer} {
			// A server blocked in a long IDLE pause, one idle connection,
			// one half-finished handshake-less connection.
			srv := newServer(t, Config{Commands: map[string]CommandFunc{"IDLE": IdleIter(time.Hour)}})
			c := dial(t, srv)
			c.expect("* OK IMAP4rev1")
			c.send("a IDLE\r\n")
			c.expect("* 0 EXISTS")
			dial(t, srv).expect("* OK IMAP4rev1")
			raw, err := net.Dial("tcp", srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { raw.Close() })
			// A scripted handler blocked reading.
			srv2 := newServer(t, Config{Handler: func(s *Session) { _, _ = s.ReadLine() }})
			dial(t, srv2)
		}
	})
	start := time.Now()
	deadline := start.Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(),
				buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("cleanup took %v", el)
	}
}
