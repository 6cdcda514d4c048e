package main

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

func TestLiteralLen(t *testing.T) {
	for _, c := range []struct {
		line string
		n    int64
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {12}\r\n", 12, true},
		{"a APPEND INBOX {310+}\r\n", 310, true},
		{"* 3 EXISTS\r\n", 0, false},
		{"* OK {not a literal}\r\n", 0, false},
		{"}\r\n", 0, false},
	} {
		n, ok := literalLen([]byte(c.line))
		if n != c.n || ok != c.ok {
			t.Errorf("literalLen(%q) = %d, %v; want %d, %v", c.line, n, ok, c.n, c.ok)
		}
	}
}

// TestWireProxy checks the proxy's view of IDLE and of EXISTS lines, and
// that literals pass through without being read as lines.
func TestWireProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverSide := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			serverSide <- c
		}
	}()
	p, err := startProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv := <-serverSide
	defer srv.Close()
	cr, sr := bufio.NewReader(client), bufio.NewReader(srv)
	client.SetDeadline(time.Now().Add(10 * time.Second))
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	send := func(c net.Conn, s string) {
		t.Helper()
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(r *bufio.Reader, want string) {
		t.Helper()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	idling := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.idling
	}

	send(client, "a IDLE\r\n")
	expect(sr, "a IDLE\r\n")
	if n := idling(); n != 0 {
		t.Fatalf("idling %d before the continuation", n)
	}
	send(srv, "+ idling\r\n")
	expect(cr, "+ idling\r\n")
	if err := p.waitIdle(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	// An EXISTS inside a literal is not a line; the one after is noted.
	p.arm()
	lit := "* 9 EXISTS\r\n"
	push := "* 1 FETCH (BODY[] {" + strconv.Itoa(len(lit)) + "}\r\n" + lit + ")\r\n"
	send(srv, push)
	expect(cr, push)
	if at := p.armedExists(); !at.IsZero() {
		t.Fatalf("EXISTS inside a literal noted at %v", at)
	}
	before := time.Now()
	send(srv, "* 4 EXISTS\r\n")
	expect(cr, "* 4 EXISTS\r\n")
	if at := p.armedExists(); at.Before(before) || at.After(time.Now()) {
		t.Fatalf("EXISTS noted at %v, want between %v and now", at, before)
	}

	send(client, "DONE\r\n")
	expect(sr, "DONE\r\n")
	if n := idling(); n != 0 {
		t.Fatalf("idling %d after DONE", n)
	}
	send(srv, "a OK Idle completed.\r\n")
	expect(cr, "a OK Idle completed.\r\n")

	// A tagged response ends an IDLE too (the server may end it).
	send(client, "b idle\r\n")
	expect(sr, "b idle\r\n")
	send(srv, "+ idling\r\n")
	expect(cr, "+ idling\r\n")
	if n := idling(); n != 1 {
		t.Fatalf("idling %d after the second IDLE", n)
	}
	send(srv, "b NO [LIMIT] too long\r\n")
	expect(cr, "b NO [LIMIT] too long\r\n")
	if n := idling(); n != 0 {
		t.Fatalf("idling %d after a tagged response", n)
	}
}
