package imap_test

// IDLE: CPython's five IDLE tests (test_idle_capability, test_idle_denied,
// test_idle_iter, test_idle_burst, test_idle_delayed_packet), each over
// plain TCP and TLS, then one test per semantic the Go port adds or fixes
// (see imaplib-3.14.md §2.5, §2.11 and §5).
//
// Python's next(idler) is a pull from Idler.Responses; imaplib's burst()
// is the first batch of Idler.Burst.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// repr renders a response like imaplib's (typ, [data]) tuple, e.g.
// ('FETCH', [(b'1 (BODY[] {5}', b'hello'), b')']).
func repr(typ string, data []imap.Datum) string {
	var b strings.Builder
	fmt.Fprintf(&b, "(%q, [", typ)
	if data == nil {
		b.WriteString("None")
	}
	for i, d := range data {
		if i > 0 {
			b.WriteString(", ")
		}
		if d.IsLiteral() {
			fmt.Fprintf(&b, "(%q, %q)", d.Text, d.Literal)
		} else {
			fmt.Fprintf(&b, "%q", d.Text)
		}
	}
	b.WriteString("])")
	return b.String()
}

func reprResp(r imap.Response) string { return repr(r.Type, r.Data) }

// idleCmd returns an IDLE command that runs script (which must send the
// "+" itself, or not), then waits for DONE and answers with after and
// "TAG OK Idle completed" ("TAG BAD Expected DONE" for another line).
func idleCmd(script func(s *imaptest.Session, tag string), after ...string) imaptest.CommandFunc {
	return func(s *imaptest.Session, tag, _ string) {
		script(s, tag)
		line, err := s.ReadLine()
		if err != nil {
			return
		}
		if line != "DONE" {
			_ = s.Send(tag + " BAD Expected DONE")
			return
		}
		_ = s.Send(append(after, tag+" OK Idle completed")...)
	}
}

// writes returns a script writing each chunk with one write.
func writes(chunks ...string) func(s *imaptest.Session, tag string) {
	return func(s *imaptest.Session, tag string) {
		for _, c := range chunks {
			if s.Write([]byte(c)) != nil {
				return
			}
		}
	}
}

// idleClient starts a server with IDLE and cmd as its IDLE command and
// returns a logged-in client.
func idleClient(t *testing.T, tr transport, cmd imaptest.CommandFunc, opts *imap.Options) (*imap.Client, *imaptest.Server) {
	t.Helper()
	srv := tr.server(t, imaptest.Config{Capabilities: "IDLE", Commands: map[string]imaptest.CommandFunc{"IDLE": cmd}})
	c := tr.connect(t, srv, opts)
	login(t, c)
	return c, srv
}

func startIdle(t *testing.T, c *imap.Client, d time.Duration) *imap.Idler {
	t.Helper()
	id, err := c.Idle(context.Background(), d)
	if err != nil {
		t.Fatalf("idle: %v", err)
	}
	return id
}

// nextN calls Next(timeout) n times, each of which must deliver.
func nextN(t *testing.T, id *imap.Idler, n int, timeout time.Duration) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		r, ok, err := id.Next(timeout)
		if err != nil || !ok {
			t.Fatalf("Next #%d: ok=%v err=%v (after %q)", i, ok, err, out)
		}
		out = append(out, reprResp(r))
	}
	return out
}

func wantSeq(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// collect ranges over Responses and returns what it yielded and the error
// it yielded last, if any.
func collect(id *imap.Idler) (got []string, err error) {
	for r, e := range id.Responses() {
		if e != nil {
			return got, e
		}
		got = append(got, reprResp(r))
	}
	return got, nil
}

// ---- CPython's IDLE tests ----

func TestIdleCapability(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{})
		c := tr.connect(t, srv, nil)
		_, err := c.Idle(context.Background(), 0)
		wantErr(t, err, imap.ErrCommand, "does not support IMAP4 IDLE")
		if n := countCommand(srv, "IDLE"); n != 0 {
			t.Fatalf("server saw %d IDLE", n)
		}
	})
}

func TestIdleDenied(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, imaptest.IdleDenied, nil)
		_, err := c.Idle(context.Background(), 0)
		wantErr(t, err, imap.ErrCommand, "idle denied", "IDLE is not allowed at this time")
		if c.State() != imap.StateAuth {
			t.Fatalf("state %v", c.State())
		}
		mustOK(t)(c.Noop(context.Background()))
	})
}

var idleIterFetch = repr("FETCH", []imap.Datum{
	{Text: []byte("1 (BODY[HEADER.FIELDS (DATE)] {41}"), Literal: []byte(imaptest.IdleFetchLiteral)},
	{Text: []byte(")")},
})

func TestIdleIter(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, imaptest.IdleIter(time.Second), nil)
		id := startIdle(t, c, 0)
		next, stop := iter.Pull2(id.Responses())
		var got []string
		for i := 0; i < 4; i++ {
			r, err, ok := next()
			if !ok || err != nil {
				t.Fatalf("next #%d: ok=%v err=%v", i, ok, err)
			}
			got = append(got, reprResp(r))
		}
		stop()
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
		wantSeq(t, got,
			`("EXISTS", ["0"])`, // sent before "+ idling"
			`("EXISTS", ["2"])`,
			idleIterFetch, // one item, literal included
			`("EXISTS", ["3"])`)
		// Iterated responses were consumed.
		if r := c.Response("EXISTS"); r.Data != nil {
			t.Fatalf("EXISTS %q still cached", texts(r.Data))
		}
		// Not iterated, plus received after DONE.
		if got := texts(c.Response("RECENT").Data); !slices.Equal(got, []string{"1", "9"}) {
			t.Fatalf("RECENT %q, want [1 9]", got)
		}
		if c.State() != imap.StateAuth {
			t.Fatalf("state %v", c.State())
		}
	})
}

func TestIdleBurst(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, imaptest.IdleIter(time.Second), nil)
		id := startIdle(t, c, 0)
		var batch []imap.Response
		for b, err := range id.Burst(100 * time.Millisecond) {
			if err != nil {
				t.Fatal(err)
			}
			batch = b // imaplib's burst() is the first batch
			break
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
		if len(batch) != 4 {
			t.Fatalf("batch of %d, want 4: %v", len(batch), batch)
		}
		if got := reprResp(batch[2]); got != idleIterFetch {
			t.Fatalf("batch[2] %s", got)
		}
		if got := texts(c.Response("RECENT").Data); !slices.Equal(got, []string{"1", "9"}) {
			t.Fatalf("RECENT %q, want [1 9]", got)
		}
	})
}

func TestIdleDelayedPacket(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, imaptest.IdleDelayedPacket(200*time.Millisecond, time.Second), nil)
		id := startIdle(t, c, 500*time.Millisecond)
		next, stop := iter.Pull2(id.Responses())
		r, err, ok := next()
		stop()
		if ok {
			t.Fatalf("next: got %s, %v; want StopIteration", reprResp(r), err)
		}
		if err := id.Close(); err != nil {
			t.Fatalf("multi-packet response was corrupted by the idle timeout: %v", err)
		}
		// The line completed after the timeout was parsed on exit.
		if got := texts(c.Response("EXISTS").Data); !slices.Equal(got, []string{"1"}) {
			t.Fatalf("EXISTS %q, want [1]", got)
		}
		mustOK(t)(c.Noop(context.Background()))
	})
}

// ---- Semantics of the Go port ----

// Untagged responses sent before "+" are delivered first, in order, and a
// response code yields its own item after the response carrying it
// (imaplib order: ('OK', [b'[ALERT] hi']) then ('ALERT', [None]); the
// code's data is what is inside the brackets, here none).
func TestIdleResponsesBeforeContinuation(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, idleCmd(writes(
			"* 5 EXISTS\r\n", "* OK [ALERT] hi\r\n", "* 3 RECENT\r\n", "+ idling\r\n", "* 6 EXISTS\r\n")), nil)
		id := startIdle(t, c, 0)
		got := nextN(t, id, 5, 5*time.Second)
		wantSeq(t, got,
			`("EXISTS", ["5"])`,
			`("OK", ["[ALERT] hi"])`,
			`("ALERT", [""])`,
			`("RECENT", ["3"])`,
			`("EXISTS", ["6"])`)
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// A response with literals is one Response: (header, literal) pairs, then
// the trailer. Bytes inside a literal that look like responses are data.
func TestIdleLiteralResponses(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, idleCmd(writes(
			"+ idling\r\n",
			"* 1 FETCH (BODY[] {5}\r\n", "hello", ")\r\n",
			"* 2 FETCH (BODY[HEADER] {6}\r\nhead\r\n BODY[TEXT] {4}\r\nbody)\r\n",
			"* 3 FETCH (BODY[] {15}\r\n* 9 EXISTS\r\nx\r\n)\r\n",
			"* 4 FETCH (BODY[] {0}\r\n FLAGS (\\Seen))\r\n",
			"* 7 EXISTS\r\n")), nil)
		id := startIdle(t, c, 0)
		got := nextN(t, id, 5, 5*time.Second)
		wantSeq(t, got,
			`("FETCH", [("1 (BODY[] {5}", "hello"), ")"])`,
			`("FETCH", [("2 (BODY[HEADER] {6}", "head\r\n"), (" BODY[TEXT] {4}", "body"), ")"])`,
			`("FETCH", [("3 (BODY[] {15}", "* 9 EXISTS\r\nx\r\n"), ")"])`,
			`("FETCH", [("4 (BODY[] {0}", ""), " FLAGS (\\Seen))"])`,
			`("EXISTS", ["7"])`)
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// The duration's clock starts when "+" arrives: a server slow to accept
// IDLE does not eat the duration.
func TestIdleDeadlineStartsAtContinuation(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, idleCmd(func(s *imaptest.Session, tag string) {
			s.Sleep(800 * time.Millisecond)
			_ = s.Send("+ idling")
			s.Sleep(50 * time.Millisecond)
			_ = s.Send("* 1 EXISTS")
		}), nil)
		start := time.Now()
		id := startIdle(t, c, 600*time.Millisecond)
		if d := id.Deadline().Sub(start); d < 1380*time.Millisecond {
			t.Fatalf("deadline %v after the IDLE command, want ≥ 800ms (the wait for +) + 600ms", d)
		}
		got, err := collect(id)
		if err != nil {
			t.Fatal(err)
		}
		wantSeq(t, got, `("EXISTS", ["1"])`)
		if late := time.Since(id.Deadline()); late > time.Second {
			t.Fatalf("iteration ended %v after the deadline", late)
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// Responses queued before the deadline are still delivered after it; no
// new wait starts once it has passed.
func TestIdleQueuedAfterDeadline(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, idleCmd(func(s *imaptest.Session, tag string) {
			_ = s.Write([]byte("* 0 EXISTS\r\n* 1 EXPUNGE\r\n+ idling\r\n* 1 EXISTS\r\n"))
			s.Sleep(time.Second) // after the deadline: must not be waited for
			_ = s.Send("* 2 EXISTS")
		}), nil)
		id := startIdle(t, c, 200*time.Millisecond)
		time.Sleep(400 * time.Millisecond)
		start := time.Now()
		got, err := collect(id)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Fatalf("an expired Idler waited %v", d)
		}
		if len(got) < 2 || got[0] != `("EXISTS", ["0"])` || got[1] != `("EXPUNGE", ["1"])` {
			t.Fatalf("got %q, want the queued EXISTS 0 and EXPUNGE 1 first", got)
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
		// What was not iterated is in the cache: EXISTS 1 (maybe
		// iterated, when it came with "+") and EXISTS 2, sent after the
		// deadline.
		rest := got[2:]
		for _, d := range c.Response("EXISTS").Data {
			rest = append(rest, repr("EXISTS", []imap.Datum{d}))
		}
		wantSeq(t, rest, `("EXISTS", ["1"])`, `("EXISTS", ["2"])`)
	})
}

// Only the wait for the start of a response is bounded by the duration or
// Next's timeout: a literal trickling in with gaps longer than the duration
// (but shorter than Options.Timeout) is delivered whole.
func TestIdleTimeoutCoversOnlyStart(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		const gap = 400 * time.Millisecond
		c, _ := idleClient(t, tr, idleCmd(func(s *imaptest.Session, tag string) {
			for i, part := range []string{"+ idling\r\n* 1 FETCH (BODY[] {11}\r\nhel", "lo wor", "ld", ")\r\n"} {
				if i > 0 {
					s.Sleep(gap)
				}
				if s.Write([]byte(part)) != nil {
					return
				}
			}
		}), &imap.Options{Timeout: 5 * time.Second, InsecureAuth: true})
		id := startIdle(t, c, 200*time.Millisecond)
		got, err := collect(id)
		if err != nil {
			t.Fatal(err)
		}
		wantSeq(t, got, `("FETCH", [("1 (BODY[] {11}", "hello world"), ")"])`)
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// A line cut by Next's timeout is kept and completes on a later Next,
// also when the cut falls inside a literal announcement.
func TestIdleHalfLineKept(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		release := make(chan struct{}, 2)
		c, _ := idleClient(t, tr, idleCmd(func(s *imaptest.Session, tag string) {
			for i, step := range []string{"+ idling\r\n* 7 EXI", "STS\r\n* 1 FETCH (BODY[] {1", "1}\r\nhello world)\r\n"} {
				if i > 0 {
					select {
					case <-release:
					case <-time.After(5 * time.Second):
					}
				}
				if s.Write([]byte(step)) != nil {
					return
				}
			}
		}), nil)
		id := startIdle(t, c, 0)
		for i, want := range []string{`("EXISTS", ["7"])`, `("FETCH", [("1 (BODY[] {11}", "hello world"), ")"])`} {
			if r, ok, err := id.Next(100 * time.Millisecond); ok || err != nil {
				t.Fatalf("step %d: Next on half a line: %s %v %v", i, reprResp(r), ok, err)
			}
			release <- struct{}{}
			r, ok, err := id.Next(5 * time.Second)
			if !ok || err != nil {
				t.Fatalf("step %d: %v %v", i, ok, err)
			}
			if got := reprResp(r); got != want {
				t.Fatalf("step %d: got %s, want %s", i, got, want)
			}
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// A server stalling inside a response for longer than Options.Timeout is
// an abort, never a hang.
func TestIdleStallMidResponse(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		for _, tc := range []struct{ name, sent string }{
			{"literal", "* 1 FETCH (BODY[] {11}\r\nhello"},
			{"trailer", "* 1 FETCH (BODY[] {5}\r\nhello FLAGS"},
			{"second literal", "* 1 FETCH (BODY[] {5}\r\nhello BODY[1] {3}\r\n"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				c, _ := idleClient(t, tr, idleCmd(func(s *imaptest.Session, tag string) {
					_ = s.Write([]byte("+ idling\r\n" + tc.sent))
					s.Sleep(20 * time.Second)
				}), &imap.Options{Timeout: time.Second, InsecureAuth: true})
				id := startIdle(t, c, 0)
				done := make(chan error, 1)
				go func() {
					_, _, err := id.Next(20 * time.Second)
					done <- err
				}()
				select {
				case err := <-done:
					wantErr(t, err, imap.ErrAbort)
				case <-time.After(8 * time.Second):
					c.Shutdown()
					<-done
					t.Fatal("Next hung on a stalled response")
				}
				wantErr(t, id.Close(), imap.ErrAbort)
				_, err := c.Noop(context.Background())
				wantErr(t, err, imap.ErrAbort)
			})
		}
	})
}

// The server may end IDLE on its own with a tagged OK: iteration ends
// cleanly and the connection stays usable.
func TestIdleServerEndsIdle(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		ending := func(s *imaptest.Session, tag, _ string) {
			_ = s.Send("+ idling", "* 1 EXISTS", "* 2 EXPUNGE")
			_ = s.Write([]byte("* 3 EXISTS\r\n" + tag + " OK IDLE terminated (timeout)\r\n* 4 RECENT\r\n"))
		}
		t.Run("Next", func(t *testing.T) {
			c, srv := idleClient(t, tr, ending, nil)
			id := startIdle(t, c, 0)
			wantSeq(t, nextN(t, id, 3, 5*time.Second),
				`("EXISTS", ["1"])`, `("EXPUNGE", ["2"])`, `("EXISTS", ["3"])`)
			_, ok, err := id.Next(5 * time.Second)
			if ok || !errors.Is(err, imap.ErrIdleEnded) {
				t.Fatalf("Next: ok=%v err=%v, want ErrIdleEnded", ok, err)
			}
			if !errors.Is(id.Ended(), imap.ErrIdleEnded) {
				t.Fatalf("Ended() = %v", id.Ended())
			}
			if err := id.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if c.State() != imap.StateAuth {
				t.Fatalf("state %v", c.State())
			}
			mustOK(t)(c.Noop(context.Background()))
			if got := texts(c.Response("RECENT").Data); !slices.Equal(got, []string{"4"}) {
				t.Fatalf("RECENT %q", got)
			}
			for _, l := range srv.Lines() {
				if l == "DONE" {
					t.Fatal("DONE sent after the server ended IDLE")
				}
			}
		})
		t.Run("Responses", func(t *testing.T) {
			c, _ := idleClient(t, tr, ending, nil)
			id := startIdle(t, c, 0)
			got, err := collect(id)
			if err != nil {
				t.Fatalf("Responses yielded %v", err)
			}
			wantSeq(t, got, `("EXISTS", ["1"])`, `("EXPUNGE", ["2"])`, `("EXISTS", ["3"])`)
			if !errors.Is(id.Ended(), imap.ErrIdleEnded) {
				t.Fatalf("Ended() = %v", id.Ended())
			}
			if err := id.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			mustOK(t)(c.Noop(context.Background()))
		})
	})
}

// BYE during IDLE is delivered, then iteration ends; Close reports the
// abort.
func TestIdleBye(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, func(s *imaptest.Session, tag, _ string) {
			_ = s.Send("+ idling", "* 1 EXISTS", "* BYE server shutting down")
			s.Close()
		}, nil)
		id := startIdle(t, c, 0)
		got, err := collect(id)
		if err != nil {
			t.Fatalf("Responses yielded %v", err)
		}
		wantSeq(t, got, `("EXISTS", ["1"])`, `("BYE", ["server shutting down"])`)
		if !errors.Is(id.Ended(), imap.ErrIdleEnded) {
			t.Fatalf("Ended() = %v", id.Ended())
		}
		wantErr(t, id.Close(), imap.ErrAbort, "server shutting down")
		_, err = c.Noop(context.Background())
		wantErr(t, err, imap.ErrAbort)
	})
}

// EOF during IDLE is an abort.
func TestIdleEOF(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		for _, tc := range []struct{ name, sent string }{
			{"between responses", "+ idling\r\n* 1 EXISTS\r\n"},
			{"mid-line", "+ idling\r\n* 1 EXI"},
			{"mid-literal", "+ idling\r\n* 1 FETCH (BODY[] {10}\r\nhel"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, _ := idleClient(t, tr, func(s *imaptest.Session, tag, _ string) {
					_ = s.Write([]byte(tc.sent))
					s.Close()
				}, nil)
				id := startIdle(t, c, 0)
				got, err := collect(id)
				wantErr(t, err, imap.ErrAbort)
				if tc.name == "between responses" {
					wantSeq(t, got, `("EXISTS", ["1"])`)
				} else if len(got) != 0 {
					t.Fatalf("got %q from a cut response", got)
				}
				wantErr(t, id.Close(), imap.ErrAbort)
				wantErr(t, id.Ended(), imap.ErrAbort)
			})
		}
	})
}

// A stray "+" during IDLE is ignored.
func TestIdleStrayContinuation(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, idleCmd(writes("+ idling\r\n", "+ stray\r\n", "+\r\n", "* 4 EXISTS\r\n")), nil)
		id := startIdle(t, c, 0)
		wantSeq(t, nextN(t, id, 1, 5*time.Second), `("EXISTS", ["4"])`)
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
		mustOK(t)(c.Noop(context.Background()))
	})
}

// A tagged response that is not IDLE's, or a line that is no response, is
// an abort.
func TestIdleUnexpectedTagged(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		for _, line := range []string{"ZZZZ9 OK what", "garbage", "A1 HUH x"} {
			t.Run(line, func(t *testing.T) {
				c, _ := idleClient(t, tr, idleCmd(writes("+ idling\r\n"+line+"\r\n")), nil)
				id := startIdle(t, c, 0)
				_, ok, err := id.Next(5 * time.Second)
				if ok {
					t.Fatal("delivered")
				}
				wantErr(t, err, imap.ErrAbort)
				wantErr(t, id.Close(), imap.ErrAbort)
				_, err = c.Noop(context.Background())
				wantErr(t, err, imap.ErrAbort)
			})
		}
	})
}

// Cancelling the Idler's context interrupts a blocked Next at once; the
// Idler sends DONE and reads the completion, so the connection stays
// usable.
//
// The 50ms bound is on the interruption: from cancel to the server
// reading DONE. On a loaded machine one run can be descheduled for longer,
// so the bound must hold for the best of three runs (a wait that is not
// interrupted fails all three), and every run must return within a second.
func TestIdleContextCancel(t *testing.T) {
	// Not parallel: it measures a 50ms bound.
	runTransportsSeq(t, func(t *testing.T, tr transport) {
		for _, how := range []string{"Next", "Responses"} {
			t.Run(how, func(t *testing.T) {
				srv := tr.server(t, imaptest.Config{Capabilities: "IDLE", Commands: map[string]imaptest.CommandFunc{
					"IDLE": func(s *imaptest.Session, tag, _ string) {
						_ = s.Send("+ idling")
						line, err := s.ReadLine()
						s.Server().Set("doneAt", time.Now())
						if err == nil && line == "DONE" {
							_ = s.Send(tag + " OK Idle completed")
						}
					},
				}})
				c := tr.connect(t, srv, nil)
				login(t, c)
				best := time.Hour
				for run := 0; run < 3 && best > 50*time.Millisecond; run++ {
					ctx, cancel := context.WithCancel(context.Background())
					id, err := c.Idle(ctx, 0)
					if err != nil {
						t.Fatal(err)
					}
					cancelledAt := make(chan time.Time, 1)
					timer := time.AfterFunc(100*time.Millisecond, func() {
						cancelledAt <- time.Now()
						cancel()
					})
					if how == "Next" {
						_, ok, e := id.Next(30 * time.Second)
						if ok {
							t.Fatal("delivered")
						}
						err = e
					} else {
						var got []string
						got, err = collect(id)
						if len(got) != 0 {
							t.Fatalf("got %q", got)
						}
					}
					returned := time.Now()
					at := <-cancelledAt
					timer.Stop()
					cancel()
					if err == nil || !errors.Is(err, context.Canceled) {
						t.Fatalf("err %v, want context.Canceled", err)
					}
					if d := returned.Sub(at); d > time.Second {
						t.Fatalf("returned %v after the cancellation", d)
					}
					doneAt, ok := srv.Get("doneAt").(time.Time)
					if !ok || !slices.Contains(srv.Lines(), "DONE") {
						t.Fatalf("no DONE sent: %q", srv.Lines())
					}
					best = min(best, doneAt.Sub(at))
					if err := id.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
					if c.State() != imap.StateAuth {
						t.Fatalf("state %v", c.State())
					}
					mustOK(t)(c.Noop(context.Background()))
				}
				if best > 50*time.Millisecond {
					t.Fatalf("DONE reached the server %v after the cancellation (best of 3)", best)
				}
			})
		}
	})
}

// Cancelling the context while waiting for "+" ends IDLE properly once
// the server accepts it, and reports the cancellation.
func TestIdleCancelBeforeContinuation(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, srv := idleClient(t, tr, idleCmd(func(s *imaptest.Session, tag string) {
			s.Sleep(500 * time.Millisecond)
			_ = s.Send("* 1 EXISTS", "+ idling")
		}), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		id, err := c.Idle(ctx, 0)
		if id != nil {
			t.Fatal("got an Idler")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the context's error", err)
		}
		wantErr(t, err, imap.ErrCommand)
		if !slices.Contains(srv.Lines(), "DONE") {
			t.Fatalf("IDLE not ended: %q", srv.Lines())
		}
		if c.State() != imap.StateAuth {
			t.Fatalf("state %v", c.State())
		}
		mustOK(t)(c.Noop(context.Background()))
		if got := texts(c.Response("EXISTS").Data); !slices.Equal(got, []string{"1"}) {
			t.Fatalf("EXISTS %q, want [1] in the cache", got)
		}
	})
}

// While an Idler is open every other command fails at once with a state
// error naming IDLING, also from another goroutine while Next is blocked.
func TestIdleOtherCommandsFail(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Capabilities: "IDLE ENABLE MOVE STARTTLS",
			Commands: map[string]imaptest.CommandFunc{"IDLE": idleCmd(writes("+ idling\r\n"))}})
		c := tr.connect(t, srv, nil)
		login(t, c)
		ctx := context.Background()
		mustOK(t)(c.Select(ctx, "INBOX", false))
		id := startIdle(t, c, 0)
		if c.State() != imap.StateIdling {
			t.Fatalf("state %v", c.State())
		}
		cmds := map[string]func() error{
			"NOOP":       func() error { _, err := c.Noop(ctx); return err },
			"RECENT":     func() error { _, err := c.Recent(ctx); return err },
			"CAPABILITY": func() error { _, err := c.Capability(ctx); return err },
			"LOGOUT":     func() error { _, err := c.Logout(ctx); return err },
			"LOGIN":      func() error { _, err := c.Login(ctx, "u", "p"); return err },
			"SELECT":     func() error { _, err := c.Select(ctx, "INBOX", false); return err },
			"EXAMINE":    func() error { _, err := c.Select(ctx, "INBOX", true); return err },
			"FETCH":      func() error { _, err := c.Fetch(ctx, "1", "(FLAGS)"); return err },
			"UID":        func() error { _, err := c.UID(ctx, "FETCH", "1", "(FLAGS)"); return err },
			"IDLE":       func() error { _, err := c.Idle(ctx, 0); return err },
			"STARTTLS":   func() error { return c.StartTLS(ctx, nil) },
			"APPEND":     func() error { _, err := c.Append(ctx, "", "", time.Time{}, []byte("x")); return err },
			"ENABLE":     func() error { _, err := c.Enable(ctx, "UTF8=ACCEPT"); return err },
			"XATOM":      func() error { _, err := c.Xatom(ctx, "XFOO"); return err },
			"MOVE":       func() error { _, err := c.Move(ctx, "1", "Trash"); return err },
			"CLOSE":      func() error { _, err := c.CloseMailbox(ctx); return err },
			"GETQUOTAROOT": func() error {
				_, _, err := c.GetQuotaRoot(ctx, "INBOX")
				return err
			},
			"AUTHENTICATE": func() error { _, err := c.Authenticate(ctx, "X", fakeAuth); return err },
		}
		check := func(name string, f func() error) {
			t.Helper()
			start := time.Now()
			err := f()
			wantErr(t, err, imap.ErrCommand, "IDLING")
			if d := time.Since(start); d > 400*time.Millisecond {
				t.Errorf("%s waited %v before failing", name, d)
			}
		}
		for name, f := range cmds {
			check(name, f)
		}

		// Again while Next is blocked on this goroutine.
		nextDone := make(chan error, 1)
		go func() {
			_, _, err := id.Next(time.Second)
			nextDone <- err
		}()
		time.Sleep(100 * time.Millisecond)
		for name, f := range cmds {
			check(name, f)
		}
		if err := <-nextDone; err != nil {
			t.Fatalf("Next: %v", err)
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
		if c.State() != imap.StateSelected {
			t.Fatalf("state %v after Close", c.State())
		}
		mustOK(t)(c.Noop(ctx))
		// While idling the server read only IDLE and DONE.
		lines := srv.Lines()
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasSuffix(l, " IDLE") })
		if got := lines[i:]; len(got) != 3 || got[1] != "DONE" || !strings.HasSuffix(got[2], " NOOP") {
			t.Fatalf("server read %q after IDLE", got)
		}
	})
}

// Next(0) polls: it never waits, and returns what is already received.
func TestIdlePoll(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		release := make(chan struct{})
		c, _ := idleClient(t, tr, idleCmd(func(s *imaptest.Session, tag string) {
			_ = s.Send("+ idling")
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			_ = s.Write([]byte("* 1 EXISTS\r\n* 2 EXISTS\r\n"))
		}), nil)
		id := startIdle(t, c, 0)
		for i := 0; i < 3; i++ {
			start := time.Now()
			if r, ok, err := id.Next(0); ok || err != nil {
				t.Fatalf("poll: %s %v %v", reprResp(r), ok, err)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Fatalf("poll took %v", d)
			}
		}
		close(release)
		wantSeq(t, nextN(t, id, 1, 5*time.Second), `("EXISTS", ["1"])`)
		// The second line came in the same packet: polled without waiting.
		wantSeq(t, nextN(t, id, 1, 0), `("EXISTS", ["2"])`)
		if _, ok, err := id.Next(0); ok || err != nil {
			t.Fatalf("poll after draining: %v %v", ok, err)
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// Burst's interval waits never run past the Idler's deadline.
func TestIdleBurstDeadline(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, idleCmd(func(s *imaptest.Session, tag string) {
			_ = s.Write([]byte("+ idling\r\n* 1 EXISTS\r\n"))
			s.Sleep(800 * time.Millisecond)
			_ = s.Send("* 2 EXISTS")
		}), nil)
		id := startIdle(t, c, 300*time.Millisecond)
		start := time.Now()
		var batches [][]string
		for b, err := range id.Burst(5 * time.Second) {
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range b {
				names = append(names, reprResp(r))
			}
			batches = append(batches, names)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Burst ran %v, past the 300ms deadline", d)
		}
		if len(batches) != 1 || !slices.Equal(batches[0], []string{`("EXISTS", ["1"])`}) {
			t.Fatalf("batches %q", batches)
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
		if got := texts(c.Response("EXISTS").Data); !slices.Equal(got, []string{"2"}) {
			t.Fatalf("EXISTS %q", got)
		}
	})
}

// Burst batches responses that follow each other within the interval and
// starts a new batch after a pause.
func TestIdleBurstBatches(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, idleCmd(func(s *imaptest.Session, tag string) {
			_ = s.Write([]byte("+ idling\r\n* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n"))
			s.Sleep(700 * time.Millisecond)
			_ = s.Write([]byte("* 5 EXISTS\r\n* 1 RECENT\r\n"))
		}), nil)
		id := startIdle(t, c, 0)
		var batches []int
		for b, err := range id.Burst(200 * time.Millisecond) {
			if err != nil {
				t.Fatal(err)
			}
			batches = append(batches, len(b))
			if len(batches) == 2 {
				break
			}
		}
		if !slices.Equal(batches, []int{3, 2}) {
			t.Fatalf("batch sizes %v, want [3 2]", batches)
		}
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// Close is idempotent: DONE is sent once.
func TestIdleCloseIdempotent(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, srv := idleClient(t, tr, idleCmd(writes("+ idling\r\n")), nil)
		id := startIdle(t, c, 0)
		for i := 0; i < 3; i++ {
			if err := id.Close(); err != nil {
				t.Fatalf("Close #%d: %v", i, err)
			}
		}
		n := 0
		for _, l := range srv.Lines() {
			if l == "DONE" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("DONE sent %d times", n)
		}
		_, _, err := id.Next(0)
		wantErr(t, err, imap.ErrCommand)
		mustOK(t)(c.Noop(context.Background()))
		// A second Idler on the same client works.
		id2 := startIdle(t, c, 0)
		if err := id2.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// Responses not iterated, and those sent after DONE, land in the cache;
// iterated ones do not; data cached before IDLE stays.
func TestIdleLeftoversCached(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Capabilities: "IDLE", Commands: map[string]imaptest.CommandFunc{
			"IDLE": idleCmd(writes("* 1 EXPUNGE\r\n* 2 EXPUNGE\r\n+ idling\r\n"), "* 3 EXISTS", "* 4 RECENT"),
			"NOOP": func(s *imaptest.Session, tag, _ string) { _ = s.Send("* 7 RECENT", tag+" OK NOOP completed") },
		}})
		c := tr.connect(t, srv, nil)
		login(t, c)
		mustOK(t)(c.Noop(context.Background())) // caches RECENT 7
		id := startIdle(t, c, 0)
		wantSeq(t, nextN(t, id, 1, 5*time.Second), `("EXPUNGE", ["1"])`)
		if err := id.Close(); err != nil {
			t.Fatal(err)
		}
		for typ, want := range map[string][]string{"EXPUNGE": {"2"}, "EXISTS": {"3"}, "RECENT": {"7", "4"}} {
			if got := texts(c.Response(typ).Data); !slices.Equal(got, want) {
				t.Errorf("%s %q, want %q", typ, got, want)
			}
		}
	})
}

// A whole session with IDLE fed one byte at a time gives the same results
// as the same bytes sent in one write per reply.
func TestIdleByteAtATime(t *testing.T) {
	t.Parallel()
	whole := func(s *imaptest.Session, b string) error { return s.Write([]byte(b)) }
	bytewise := func(s *imaptest.Session, b string) error {
		for i := 0; i < len(b); i++ {
			if err := s.Write([]byte{b[i]}); err != nil {
				return err
			}
			if i%4 == 0 {
				time.Sleep(200 * time.Microsecond)
			}
		}
		return nil
	}
	expected := []string{
		`LOGIN ("OK", ["[CAPABILITY IMAP4rev1 IDLE] LOGIN completed"])`,
		`SELECT ("OK", ["3"])`,
		`UIDVALIDITY ("UIDVALIDITY", ["7"])`,
		`("RECENT", ["0"])`,
		`("EXISTS", ["4"])`,
		`("FETCH", [("1 (UID 9 BODY[] {11}", "hello world"), (" BODY[HEADER] {0}", ""), ")"])`,
		`("FETCH", [("2 (BODY[] {3}", "a\r\n"), ")"])`,
		`("OK", ["[ALERT] beware"])`,
		`("ALERT", [""])`,
		`("EXPUNGE", ["2"])`,
		`close <nil>`,
		`RECENT ("RECENT", ["5"])`,
		`LOGOUT ("BYE", ["bye"])`,
	}
	runTransports(t, func(t *testing.T, tr transport) {
		for _, mode := range []struct {
			name string
			emit func(*imaptest.Session, string) error
		}{{"whole", whole}, {"bytewise", bytewise}} {
			t.Run(mode.name, func(t *testing.T) {
				srv := tr.server(t, imaptest.Config{Handler: func(s *imaptest.Session) {
					emit := mode.emit
					reply := func(want, text string) bool {
						line, err := s.ReadLine()
						if err != nil {
							return false
						}
						tag, rest, _ := strings.Cut(line, " ")
						if !strings.HasPrefix(rest, want) {
							t.Errorf("server got %q, want %s", line, want)
							return false
						}
						s.Server().Set("tag", tag)
						return emit(s, strings.ReplaceAll(text, "TAG", tag)) == nil
					}
					if emit(s, "* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n") != nil ||
						!reply("LOGIN", "TAG OK [CAPABILITY IMAP4rev1 IDLE] LOGIN completed\r\n") ||
						!reply("SELECT", "* 3 EXISTS\r\n* OK [UIDVALIDITY 7] UIDs valid\r\nTAG OK [READ-WRITE] done\r\n") ||
						!reply("IDLE", "* 0 RECENT\r\n+ idling\r\n* 4 EXISTS\r\n"+
							"* 1 FETCH (UID 9 BODY[] {11}\r\nhello world BODY[HEADER] {0}\r\n)\r\n"+
							"* 2 FETCH (BODY[] {3}\r\na\r\n)\r\n"+
							"* OK [ALERT] beware\r\n* 2 EXPUNGE\r\n") {
						return
					}
					line, err := s.ReadLine()
					if err != nil || line != "DONE" {
						t.Errorf("server got %q, %v; want DONE", line, err)
						return
					}
					tag, _ := s.Server().Get("tag").(string)
					if emit(s, "* 5 RECENT\r\n"+tag+" OK Idle completed\r\n") != nil {
						return
					}
					reply("LOGOUT", "* BYE bye\r\nTAG OK LOGOUT completed\r\n")
				}})
				c := tr.connect(t, srv, nil)
				ctx := context.Background()
				var got []string
				res, err := c.Login(ctx, "user", "pass")
				got = append(got, "LOGIN "+repr(res.Status, res.Data))
				if err != nil {
					t.Fatal(err)
				}
				if !c.Has("IDLE") {
					t.Fatalf("capabilities %q", c.Capabilities())
				}
				res, err = c.Select(ctx, "INBOX", false)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, "SELECT "+repr(res.Status, res.Data))
				got = append(got, "UIDVALIDITY "+reprResp(c.Response("UIDVALIDITY")))
				id := startIdle(t, c, 0)
				got = append(got, nextN(t, id, 7, 10*time.Second)...)
				got = append(got, fmt.Sprint("close ", id.Close()))
				got = append(got, "RECENT "+reprResp(c.Response("RECENT")))
				res, err = c.Logout(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, "LOGOUT "+repr(res.Status, res.Data))
				wantSeq(t, got, expected...)
			})
		}
	})
}

// Concurrent use from several goroutines never races: Shutdown from
// another goroutine ends a blocked Next with an abort.
func TestIdleShutdownWhileBlocked(t *testing.T) {
	t.Parallel()
	runTransports(t, func(t *testing.T, tr transport) {
		c, _ := idleClient(t, tr, idleCmd(writes("+ idling\r\n")), nil)
		id := startIdle(t, c, 0)
		var wg sync.WaitGroup
		wg.Add(1)
		var err error
		go func() {
			defer wg.Done()
			_, _, err = id.Next(30 * time.Second)
		}()
		time.Sleep(100 * time.Millisecond)
		c.Shutdown()
		wg.Wait()
		wantErr(t, err, imap.ErrAbort)
		wantErr(t, id.Close(), imap.ErrAbort)
	})
}
