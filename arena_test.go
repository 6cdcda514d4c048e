package imap

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/imaptest"
)

// TestIdleBurstMemory checks what a burst of pushes costs: a few
// allocations for thousands of responses (the arena and the reused queue
// slot), every response intact, and, once the Idler waits again, no grown
// buffer or spare chunk kept.
func TestIdleBurstMemory(t *testing.T) {
	const n = 5000
	var burst strings.Builder
	for i := n; i > 0; i-- {
		fmt.Fprintf(&burst, "* %d EXPUNGE\r\n", i)
	}
	c, id := burstIdler(t, burst.String())
	var got []Response
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for batch, err := range id.Burst(20 * time.Millisecond) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, batch...)
		if len(got) >= n {
			break
		}
	}
	runtime.ReadMemStats(&m1)
	if len(got) != n {
		t.Fatalf("%d responses, want %d", len(got), n)
	}
	for i, r := range got {
		if want := fmt.Sprint(n - i); r.Type != "EXPUNGE" || len(r.Data) != 1 || string(r.Data[0].Text) != want || cap(r.Data) != 1 {
			t.Fatalf("response %d: %s %q (cap %d), want EXPUNGE %s", i, r.Type, r.Data, cap(r.Data), want)
		}
	}
	// Before the arena and the reused queue slot it took three
	// allocations per response. How many chunks it now takes depends on
	// how the burst arrives (a few hundred when it is read in large
	// pieces); the scripted server runs in this process too, but
	// allocates little.
	mallocs := m1.Mallocs - m0.Mallocs
	t.Logf("%d allocations, %d bytes for %d responses", mallocs, m1.TotalAlloc-m0.TotalAlloc, n)
	if mallocs >= n {
		t.Errorf("%d allocations for %d pushed responses: want fewer than one per response", mallocs, n)
	}
	if r, ok, err := id.Next(20 * time.Millisecond); err != nil || ok {
		t.Fatalf("Next after the burst: %v %v %v", r, ok, err)
	}
	c.mu.Lock()
	size, arena := c.rd.BufferSize(), id.arena
	c.mu.Unlock()
	if size > 128 || arena != nil {
		t.Errorf("waiting Idler keeps a %d-byte buffer and arena %v; want 128 bytes and none", size, arena != nil)
	}
	if err := id.Close(); err != nil {
		t.Fatal(err)
	}
}

// burstIdler returns an open Idler whose server writes burst, in one
// write, right after "+ idling".
func burstIdler(t *testing.T, burst string) (*Client, *Idler) {
	t.Helper()
	srv := imaptest.NewServer(t, imaptest.Config{Capabilities: "IDLE", Commands: map[string]imaptest.CommandFunc{
		"IDLE": func(s *imaptest.Session, tag, _ string) {
			if s.Send("+ idling") != nil || s.Write([]byte(burst)) != nil {
				return
			}
			if line, err := s.ReadLine(); err == nil && line == "DONE" {
				_ = s.Send(tag + " OK Idle completed")
			}
		},
	}})
	ctx := context.Background()
	c, err := Dial(ctx, srv.Addr, &Options{InsecureAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown() })
	if _, err := c.Login(ctx, "user", "pass"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select(ctx, "INBOX", false); err != nil {
		t.Fatal(err)
	}
	id, err := c.Idle(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c, id
}

// TestIdleBurstAfterLongLine checks that a burst read through a buffer
// that a long line has grown (more than an arena chunk buffered) still
// shares arena chunks among responses instead of taking one each.
func TestIdleBurstAfterLongLine(t *testing.T) {
	const n = 2000
	var burst strings.Builder
	burst.WriteString("* 1 FETCH (FLAGS (")
	for i := range 1000 {
		fmt.Fprintf(&burst, " $Keyword%d", i)
	}
	burst.WriteString("))\r\n")
	for i := n; i > 0; i-- {
		fmt.Fprintf(&burst, "* %d EXPUNGE\r\n", i)
	}
	_, id := burstIdler(t, burst.String())
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	got := 0
	for r, err := range id.Responses() {
		if err != nil {
			t.Fatal(err)
		}
		if got++; got == n+1 {
			if r.Type != "EXPUNGE" || string(r.Data[0].Text) != "1" {
				t.Fatalf("last response %s %q", r.Type, r.Data)
			}
			break
		}
	}
	runtime.ReadMemStats(&m1)
	perResponse := (m1.TotalAlloc - m0.TotalAlloc) / n
	t.Logf("%d bytes allocated per response", perResponse)
	if perResponse > 512 {
		t.Errorf("%d bytes allocated per pushed EXPUNGE: chunks are not shared", perResponse)
	}
	if err := id.Close(); err != nil {
		t.Fatal(err)
	}
}
