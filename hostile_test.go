package imap_test

// Hostile and broken servers: every script must end in a correct result or
// a clear *imap.Error of the right kind, within its time limit, without a
// panic, a hang or a leak (goroutines back to their count and the heap
// roughly back after each case). TestHostileServers runs the hand-written
// scripts; TestHostileTruncations cuts a whole recorded-style session at
// every byte.
//
// These tests are not parallel: they count the process's goroutines.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// hostileCase is one hostile server and what the client must make of it.
type hostileCase struct {
	name     string
	handler  imaptest.Handler                // runs the whole connection, or
	commands map[string]imaptest.CommandFunc // the dispatcher's overrides
	caps     string
	raw      bool // Config.RawLiterals: commands see literal announcements
	opts     func(o *imap.Options)
	// dialErr, if set, is what the dial must fail with (the greeting is
	// the hostile part); otherwise run gets the connected client.
	dialErr *errWant
	run     func(t *testing.T, c *imap.Client)
	limit   time.Duration // wall time allowed; default 5 s
}

type errWant struct {
	kind error
	frag []string
}

func want(kind error, frag ...string) *errWant { return &errWant{kind, frag} }

// hostileOptions are the options of every hostile case: a short timeout.
func hostileOptions() *imap.Options {
	return &imap.Options{Timeout: 400 * time.Millisecond, InsecureAuth: true, TagPrefix: "A",
		MaxLine: 8192, MaxLiteral: 1 << 20, MaxResponseLiterals: 1 << 16, MaxCached: 10_000}
}

// send returns a command that writes raw (TAG replaced) in one write.
func send(raw string) imaptest.CommandFunc {
	return func(s *imaptest.Session, tag, _ string) {
		_ = s.Write([]byte(strings.ReplaceAll(raw, "TAG", tag)))
	}
}

// sendClose is send, then an abrupt close.
func sendClose(raw string) imaptest.CommandFunc {
	return func(s *imaptest.Session, tag, _ string) {
		_ = s.Write([]byte(strings.ReplaceAll(raw, "TAG", tag)))
		s.Close()
	}
}

// sendStall is send, then silence until the server closes.
func sendStall(raw string) imaptest.CommandFunc {
	return func(s *imaptest.Session, tag, _ string) {
		_ = s.Write([]byte(strings.ReplaceAll(raw, "TAG", tag)))
		s.Sleep(time.Minute)
	}
}

// trickle writes raw one byte every gap, for ever if forever is set
// (repeating its last byte), until the connection fails.
func trickle(raw string, gap time.Duration, forever bool) imaptest.CommandFunc {
	return func(s *imaptest.Session, tag, _ string) {
		b := []byte(strings.ReplaceAll(raw, "TAG", tag))
		for i := 0; i < len(b) || forever; i++ {
			if s.Write([]byte{b[min(i, len(b)-1)]}) != nil {
				return
			}
			s.Sleep(gap)
		}
	}
}

// greet returns a handler that writes raw and then serves commands, or
// closes when raw ends with "\x00close".
func greet(raw string) imaptest.Handler {
	return func(s *imaptest.Session) {
		raw, closeIt := strings.CutSuffix(raw, "\x00close")
		if s.Write([]byte(raw)) != nil || closeIt {
			return
		}
		s.Serve()
	}
}

// noop runs NOOP and checks the error (nil want: success).
func noop(t *testing.T, c *imap.Client, w *errWant) {
	t.Helper()
	_, err := c.Noop(context.Background())
	check(t, err, w)
}

func check(t *testing.T, err error, w *errWant) {
	t.Helper()
	if w == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	wantErr(t, err, w.kind, w.frag...)
}

// usable checks that the connection still works, or, after an abort, that
// it stays aborted.
func usable(t *testing.T, c *imap.Client, ok bool) {
	t.Helper()
	// CAPABILITY: the hostile scripts override other commands.
	_, err := c.Capability(context.Background())
	if ok {
		check(t, err, nil)
		return
	}
	check(t, err, want(imap.ErrAbort, "connection is closed after an earlier abort"))
	if c.State() != imap.StateLogout {
		t.Fatalf("state %v after an abort", c.State())
	}
}

// fetchOne selects INBOX and runs a FETCH, returning its result.
func fetchOne(t *testing.T, c *imap.Client) (imap.Result, error) {
	t.Helper()
	ctx := context.Background()
	mustOK(t)(c.Login(ctx, "user", "pass"))
	mustOK(t)(c.Select(ctx, "INBOX", false))
	return c.Fetch(ctx, "1:*", "(UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[])")
}

// parsedWith fetches and parses; the raw result must succeed, the parse
// give a *ParseError containing frag (or succeed when frag is "").
func parsedWith(frag string) func(t *testing.T, c *imap.Client) {
	return func(t *testing.T, c *imap.Client) {
		res, err := fetchOne(t, c)
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		msgs, err := imap.ParseFetch(res.Data)
		var pe *imap.ParseError
		switch {
		case frag == "" && err != nil:
			t.Fatalf("parse: %v", err)
		case frag != "" && (!errors.As(err, &pe) || !strings.Contains(err.Error(), frag)):
			t.Fatalf("parse: %v (messages %d), want a parse error with %q", err, len(msgs), frag)
		}
		usable(t, c, true)
	}
}

// fetchFails fetches, which must fail as w says; an abort must stick.
func fetchFails(w *errWant) func(t *testing.T, c *imap.Client) {
	return func(t *testing.T, c *imap.Client) {
		_, err := fetchOne(t, c)
		check(t, err, w)
		usable(t, c, w.kind != imap.ErrAbort)
	}
}

// noopWith logs in, runs NOOP against the hostile script and checks the
// error and whether the connection survives (it must unless aborted).
func noopWith(w *errWant, after func(t *testing.T, c *imap.Client)) func(t *testing.T, c *imap.Client) {
	return func(t *testing.T, c *imap.Client) {
		mustOK(t)(c.Login(context.Background(), "user", "pass"))
		_, err := c.Noop(context.Background())
		check(t, err, w)
		if after != nil {
			after(t, c)
		}
		usable(t, c, w == nil || w.kind != imap.ErrAbort)
	}
}

// cached checks c.Cached(typ).
func cached(typ string, texts_ ...string) func(t *testing.T, c *imap.Client) {
	return func(t *testing.T, c *imap.Client) {
		t.Helper()
		if got := texts(c.Cached(typ)); !slices.Equal(got, texts_) {
			t.Fatalf("%s cached %q, want %q", typ, got, texts_)
		}
	}
}

// idleWith starts IDLE against the script and collects responses with
// Next(300ms) until an error or none comes; check gets them.
func idleWith(startErr *errWant, check_ func(t *testing.T, c *imap.Client, got []imap.Response, err error, closeErr error)) func(t *testing.T, c *imap.Client) {
	return func(t *testing.T, c *imap.Client) {
		ctx := context.Background()
		mustOK(t)(c.Login(ctx, "user", "pass"))
		id, err := c.Idle(ctx, 2*time.Second)
		if startErr != nil || err != nil {
			check(t, err, startErr)
			usable(t, c, startErr.kind != imap.ErrAbort)
			return
		}
		var got []imap.Response
		var nerr error
		for i := 0; i < 20; i++ {
			r, ok, err := id.Next(300 * time.Millisecond)
			if err != nil {
				nerr = err
				break
			}
			if !ok {
				break
			}
			got = append(got, r)
		}
		check_(t, c, got, nerr, id.Close())
	}
}

func hostileCases() []hostileCase {
	abort := func(frag ...string) *errWant { return want(imap.ErrAbort, frag...) }
	cmdErr := func(frag ...string) *errWant { return want(imap.ErrCommand, frag...) }
	deep := strings.Repeat("(", 5000)
	var flood strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&flood, "* %d EXISTS\r\n", i)
	}
	return []hostileCase{
		// ---- greetings ----
		{name: "greeting/eof", handler: greet("\x00close"), dialErr: abort("socket error: EOF")},
		{name: "greeting/cut", handler: greet("* OK IMAP4rev1\x00close"), dialErr: abort("socket error: unterminated line")},
		{name: "greeting/bare LF", handler: greet("* OK IMAP4rev1\n"), dialErr: abort("unterminated line")},
		{name: "greeting/stall", handler: greet("* OK IMA"), dialErr: abort("timed out waiting for the server")},
		{name: "greeting/binary", handler: greet("\x00\xff\xfe \x80\x81 junk\r\n"), dialErr: abort("unexpected response")},
		{name: "greeting/continuation", handler: greet("+ hello?\r\n"), dialErr: abort("unexpected greeting")},
		{name: "greeting/tagged", handler: greet("A0 OK hi\r\n"), dialErr: abort("unexpected greeting")},
		{name: "greeting/empty line", handler: greet("\r\n"), dialErr: abort("unexpected response")},
		{name: "greeting/huge literal", handler: greet("* OK {99999999999999999999}\r\n"), dialErr: abort("server sent a literal of 9223372036854775807 bytes (limit 65536)")},
		{name: "greeting/literal then EOF", handler: greet("* OK {100}\r\nonly some\x00close"), dialErr: abort("socket error")},
		{name: "greeting/numeric type", handler: greet("* 1 2\r\n"), dialErr: abort("unexpected response")},
		{name: "greeting/deep parens", handler: greet("* OK " + deep + "\r\n"),
			run: func(t *testing.T, c *imap.Client) { usable(t, c, true) }},

		// ---- untagged responses during a command ----
		{name: "unknown response kept", commands: map[string]imaptest.CommandFunc{"NOOP": send("* XYZZY foo (bar \"baz\r\nTAG OK done\r\n")},
			run: noopWith(nil, cached("XYZZY", `foo (bar "baz`))},
		{name: "unknown numeric response kept", commands: map[string]imaptest.CommandFunc{"NOOP": send("* 7 WIBBLE\r\n* 8 WOBBLE x y\r\nTAG OK done\r\n")},
			run: noopWith(nil, func(t *testing.T, c *imap.Client) {
				cached("WIBBLE", "7")(t, c)
				cached("WOBBLE", "8 x y")(t, c)
			})},
		{name: "unknown response with literals", commands: map[string]imaptest.CommandFunc{"NOOP": send("* X-BLOB {3}\r\nabc tail {2}\r\n\r\n\r\nTAG OK done\r\n")},
			run: noopWith(nil, func(t *testing.T, c *imap.Client) {
				got := c.Response("X-BLOB").Data
				if len(got) != 3 || string(got[0].Literal) != "abc" || string(got[1].Text) != " tail {2}" || string(got[1].Literal) != "\r\n" || string(got[2].Text) != "" {
					t.Fatalf("X-BLOB %q", got)
				}
			})},
		{name: "negative number", commands: map[string]imaptest.CommandFunc{"NOOP": send("* -1 EXISTS\r\nTAG OK done\r\n")},
			run: noopWith(nil, cached("-1", "EXISTS"))},
		{name: "huge numbers", commands: map[string]imaptest.CommandFunc{
			"SELECT": send("* 99999999999999999999999 EXISTS\r\n* OK [UIDVALIDITY 4294967296] x\r\n* OK [HIGHESTMODSEQ 20000000000000000000] y\r\n* OK [UIDNEXT -5] z\r\nTAG OK [READ-WRITE] done\r\n")},
			run: func(t *testing.T, c *imap.Client) {
				mustOK(t)(c.Login(context.Background(), "user", "pass"))
				md, err := c.SelectMailbox(context.Background(), "INBOX", false)
				if err != nil {
					t.Fatal(err)
				}
				if md.Exists != 0 || md.UIDValidity != 0 || md.HighestModSeq != 0 || md.UIDNext != 0 {
					t.Fatalf("out-of-range numbers were not ignored: %+v", md)
				}
				usable(t, c, true)
			}},
		{name: "8-bit and NUL bytes", commands: map[string]imaptest.CommandFunc{"NOOP": send("* OK caf\xc3\xa9 \xff\xfe\x00 end\r\n* X-8BIT \x80\x81\r\nTAG OK d\xe9j\xe0\r\n")},
			run: noopWith(nil, func(t *testing.T, c *imap.Client) {
				cached("OK", "caf\xc3\xa9 \xff\xfe\x00 end")(t, c)
				cached("X-8BIT", "\x80\x81")(t, c)
			})},
		{name: "response code garbage", commands: map[string]imaptest.CommandFunc{"NOOP": send("* OK [" + strings.Repeat("[", 300) + "\r\n* OK [ALERT\r\n* OK []\r\n* NO [" + deep[:50] + "] x\r\nTAG OK [\r\n")},
			run: noopWith(nil, nil)},
		{name: "invalid type name", commands: map[string]imaptest.CommandFunc{"NOOP": send("* FOO(bar) x\r\nTAG OK done\r\n")},
			run: noopWith(abort("unexpected response"), nil)},
		{name: "bare asterisk", commands: map[string]imaptest.CommandFunc{"NOOP": send("*\r\nTAG OK done\r\n")},
			run: noopWith(abort("unexpected response"), nil)},
		{name: "cache flood", commands: map[string]imaptest.CommandFunc{"NOOP": send(flood.String() + "TAG OK done\r\n")},
			opts: func(o *imap.Options) { o.MaxCached = 100 },
			run: noopWith(nil, func(t *testing.T, c *imap.Client) {
				if n := len(c.Cached("EXISTS")); n > 100 || c.Dropped() == 0 {
					t.Fatalf("cached %d, dropped %d", n, c.Dropped())
				}
			})},
		{name: "type flood", commands: map[string]imaptest.CommandFunc{"NOOP": func(s *imaptest.Session, tag, _ string) {
			var b strings.Builder
			for i := 0; i < 1000; i++ {
				fmt.Fprintf(&b, "* X-%d y\r\n", i)
			}
			_ = s.Write([]byte(b.String() + tag + " OK done\r\n"))
		}}, run: noopWith(nil, func(t *testing.T, c *imap.Client) {
			if len(c.Cached("X-999")) != 1 || len(c.Cached("X-0")) != 0 || c.Dropped() != 1000-256 {
				t.Fatalf("dropped %d", c.Dropped())
			}
		})},
		{name: "BYE mid-command", commands: map[string]imaptest.CommandFunc{"NOOP": sendClose("* BYE shutting down\r\n")},
			run: noopWith(abort("server said BYE: shutting down"), nil)},
		{name: "BYE then OK", commands: map[string]imaptest.CommandFunc{"NOOP": send("* BYE bye\r\nTAG OK done\r\n")},
			run: noopWith(abort("server said BYE: bye"), nil)},

		// ---- tagged responses ----
		{name: "unknown tag", commands: map[string]imaptest.CommandFunc{"NOOP": send("ZZZ9 OK what\r\n")},
			run: noopWith(abort("unexpected tagged response", "ZZZ9 OK what"), nil)},
		{name: "earlier tag replayed", commands: map[string]imaptest.CommandFunc{"NOOP": send("A0 OK again\r\nTAG OK done\r\n")},
			run: noopWith(abort("unexpected tagged response", "A0 OK again"), nil)},
		{name: "unknown status", commands: map[string]imaptest.CommandFunc{"NOOP": send("TAG MAYBE later\r\n")},
			run: noopWith(abort("unexpected response"), nil)},
		{name: "tag only", commands: map[string]imaptest.CommandFunc{"NOOP": send("TAG\r\n")},
			run: noopWith(abort("unexpected response"), nil)},
		{name: "lower-case status", commands: map[string]imaptest.CommandFunc{"NOOP": send("TAG ok fine\r\n")},
			run: noopWith(nil, nil)},
		{name: "NO with garbage code", commands: map[string]imaptest.CommandFunc{"NOOP": send("TAG NO [" + deep[:100] + "\r\n")},
			run: noopWith(cmdErr("NO"), nil)},
		{name: "line too long", commands: map[string]imaptest.CommandFunc{"NOOP": send("* OK " + strings.Repeat("x", 9000) + "\r\nTAG OK done\r\n")},
			run: noopWith(cmdErr("got more than 8192 bytes"), nil)},
		{name: "line too long with literal", commands: map[string]imaptest.CommandFunc{"NOOP": send("* OK " + strings.Repeat("x", 9000) + " {5}\r\nA0 OK\r\nTAG OK done\r\n")},
			run: noopWith(abort("line too long, ending in a literal"), nil)},

		// ---- continuations at odd times ----
		{name: "stray continuation", commands: map[string]imaptest.CommandFunc{"NOOP": send("+ go ahead\r\n+\r\n+ \xff\r\nTAG OK done\r\n")},
			run: noopWith(nil, nil)},
		{name: "NO instead of continuation", raw: true, commands: map[string]imaptest.CommandFunc{"LOGIN": send("TAG NO [AUTHENTICATIONFAILED] no literals today\r\n")},
			run: func(t *testing.T, c *imap.Client) {
				_, err := c.Login(context.Background(), "user", strings.Repeat("p", 2000)) // a literal
				wantErr(t, err, imap.ErrCommand, "no literals today")
				usable(t, c, true)
			}},
		{name: "AUTHENTICATE undecodable challenge", caps: "AUTH=PLAIN", commands: map[string]imaptest.CommandFunc{"AUTHENTICATE": send("+ !!!not base64!!!\r\n")},
			run: func(t *testing.T, c *imap.Client) {
				_, err := c.Authenticate(context.Background(), "X-TEST", fakeAuth)
				wantErr(t, err, imap.ErrAbort, "undecodable challenge")
				usable(t, c, false)
			}},
		{name: "AUTHENTICATE endless challenges", commands: map[string]imaptest.CommandFunc{"AUTHENTICATE": func(s *imaptest.Session, tag, _ string) {
			for i := 0; i < 200; i++ {
				if s.Send("+ ") != nil {
					return
				}
				if _, err := s.ReadLine(); err != nil {
					return
				}
			}
			_ = s.Send(tag + " NO enough")
		}}, run: func(t *testing.T, c *imap.Client) {
			_, err := c.Authenticate(context.Background(), "X-TEST", fakeAuth)
			wantErr(t, err, imap.ErrCommand, "enough")
			usable(t, c, true)
		}},

		// ---- FETCH data ----
		{name: "fetch/unknown items kept", commands: map[string]imaptest.CommandFunc{"FETCH": send(
			"* 1 FETCH (UID 1 X-GM-LABELS (\\Inbox \"a b\") X-GM-MSGID 123 X-BLOB {3}\r\nabc FLAGS (\\Seen) X-NIL NIL)\r\nTAG OK done\r\n")},
			run: func(t *testing.T, c *imap.Client) {
				res, err := fetchOne(t, c)
				if err != nil {
					t.Fatal(err)
				}
				msgs, err := imap.ParseFetch(res.Data)
				if err != nil || len(msgs) != 1 {
					t.Fatalf("%d messages, %v", len(msgs), err)
				}
				m := msgs[0]
				var extra []string
				for _, x := range m.Extra {
					extra = append(extra, x.Name+"="+string(x.Value))
				}
				// Gmail's items are typed; the rest stay raw.
				want := []string{"X-BLOB={3}\r\nabc", "X-NIL=NIL"}
				if m.UID != 1 || !m.HasFlag(`\Seen`) || !slices.Equal(extra, want) ||
					m.GMMsgID != 123 || !slices.Equal(m.GMLabels, []string{`\Inbox`, "a b"}) {
					t.Fatalf("UID %d flags %q extra %q X-GM-MSGID %d X-GM-LABELS %q", m.UID, m.Flags, extra, m.GMMsgID, m.GMLabels)
				}
				usable(t, c, true)
			}},
		{name: "fetch/unbalanced open", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (UID 1 FLAGS (\\Seen)\r\nTAG OK done\r\n")},
			run: parsedWith("expected")},
		{name: "fetch/unbalanced close", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (UID 1))\r\nTAG OK done\r\n")},
			run: parsedWith("expected end of response")},
		{name: "fetch/deep nesting", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (BODYSTRUCTURE " + deep + ")\r\nTAG OK done\r\n")},
			run: parsedWith("lists nested more than 100 deep")},
		{name: "fetch/huge UID", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (UID 99999999999)\r\nTAG OK done\r\n")},
			run: parsedWith("out of range")},
		{name: "fetch/negative size", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (RFC822.SIZE -5)\r\nTAG OK done\r\n")},
			run: parsedWith("expected number")},
		{name: "fetch/sequence zero", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 0 FETCH (UID 1)\r\nTAG OK done\r\n")},
			run: parsedWith("sequence number 0")},
		{name: "fetch/bogus envelope", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (ENVELOPE (\"date\" \"subject\"))\r\nTAG OK done\r\n")},
			run: parsedWith("ENVELOPE")},
		{name: "fetch/bogus bodystructure", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (BODYSTRUCTURE (\"text\"))\r\nTAG OK done\r\n")},
			run: parsedWith("BODYSTRUCTURE")},
		{name: "fetch/8-bit envelope", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (ENVELOPE (NIL \"K\xf6ln \xff\" NIL NIL NIL NIL NIL NIL NIL NIL))\r\nTAG OK done\r\n")},
			run: func(t *testing.T, c *imap.Client) {
				res, err := fetchOne(t, c)
				if err != nil {
					t.Fatal(err)
				}
				msgs, err := imap.ParseFetch(res.Data)
				if err != nil || msgs[0].Envelope.Subject != "K\xf6ln \xff" {
					t.Fatalf("%+v, %v", msgs, err)
				}
			}},
		{name: "fetch/literal letters", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (BODY[] {abc}\r\nTAG OK done\r\n")},
			run: parsedWith("literal")},
		{name: "fetch/literal negative", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (BODY[] {-5}\r\nTAG OK done\r\n")},
			run: parsedWith("literal")},
		{name: "fetch/literal too large", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (BODY[] {9999999999999}\r\n")},
			run: fetchFails(abort("server sent a literal of 9999999999999 bytes (limit 1048576)"))},
		{name: "fetch/literal longer than sent", commands: map[string]imaptest.CommandFunc{"FETCH": sendClose("* 1 FETCH (BODY[] {100}\r\nonly ten b")},
			run: fetchFails(abort("socket error: unexpected EOF"))},
		{name: "fetch/literal stalls", commands: map[string]imaptest.CommandFunc{"FETCH": sendStall("* 1 FETCH (BODY[] {100}\r\nonly ten b")},
			run: fetchFails(abort("timed out waiting for the server"))},
		{name: "fetch/literal shorter than sent", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (BODY[] {5}\r\nhello world)\r\nTAG OK done\r\n")},
			run: parsedWith("FETCH 1")},
		{name: "fetch/non-sync and binary literals", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (BODY[] {5+}\r\nhello BINARY[1] ~{4}\r\n\x00\x01\r\n)\r\nTAG OK done\r\n")},
			run: func(t *testing.T, c *imap.Client) {
				res, err := fetchOne(t, c)
				if err != nil {
					t.Fatal(err)
				}
				msgs, err := imap.ParseFetch(res.Data)
				if err != nil || len(msgs[0].Sections) != 2 || string(msgs[0].Sections[1].Data) != "\x00\x01\r\n" {
					t.Fatalf("%+v, %v", msgs, err)
				}
			}},
		{name: "fetch/literal holding a tagged line", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (BODY[] {12}\r\nTAG OK fake\r\n)\r\nTAG OK done\r\n")},
			run: parsedWith("")},
		{name: "fetch/continuation between responses", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (UID 1)\r\n+ more?\r\n* 2 FETCH (UID 2)\r\nTAG OK done\r\n")},
			run: parsedWith("")},
		{name: "fetch/close mid-response", commands: map[string]imaptest.CommandFunc{"FETCH": sendClose("* 1 FETCH (UID 1 FLAGS (\\Se")},
			run: fetchFails(abort("socket error"))},
		{name: "fetch/many literals in one response", commands: map[string]imaptest.CommandFunc{"FETCH": send("* 1 FETCH (X-A" + strings.Repeat(" {0}\r\n", 2000) + ")\r\nTAG OK done\r\n")},
			opts: func(o *imap.Options) { o.MaxCached = 500 },
			run: func(t *testing.T, c *imap.Client) {
				_, err := fetchOne(t, c)
				if err != nil {
					t.Fatal(err)
				}
				if c.Dropped() == 0 {
					t.Fatal("nothing dropped")
				}
				usable(t, c, true)
			}},

		// ---- IDLE ----
		{name: "idle/OK without continuation", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": send("TAG OK no idling\r\n")},
			run: idleWith(abort("unexpected status response"), nil)},
		{name: "idle/NO", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": send("TAG NO later\r\n")},
			run: idleWith(cmdErr("idle denied"), nil)},
		{name: "idle/no continuation at all", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": sendStall("* 1 EXISTS\r\n")},
			run: idleWith(abort("timed out waiting for the server to accept IDLE"), nil)},
		{name: "idle/unknown response", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": idleCmd(writes("+ idling\r\n* 1 WIBBLE x\r\n* X-THING (a)\r\n"))},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				if err != nil || closeErr != nil || len(got) != 2 || got[0].Type != "WIBBLE" || string(got[0].Data[0].Text) != "1 x" || got[1].Type != "X-THING" {
					t.Fatalf("got %v, %v, %v", got, err, closeErr)
				}
				usable(t, c, true)
			})},
		{name: "idle/repeated continuation", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": idleCmd(writes("+ idling\r\n+ still\r\n* 2 EXISTS\r\n"))},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				if err != nil || closeErr != nil || len(got) != 1 {
					t.Fatalf("got %v, %v, %v", got, err, closeErr)
				}
				usable(t, c, true)
			})},
		{name: "idle/unknown tag", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": idleCmd(writes("+ idling\r\nZZ1 OK what\r\n"))},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				wantErr(t, err, imap.ErrAbort, "unexpected tagged response")
				wantErr(t, closeErr, imap.ErrAbort)
				usable(t, c, false)
			})},
		{name: "idle/garbage", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": idleCmd(writes("+ idling\r\n\x01\x02garbage\r\n"))},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				wantErr(t, err, imap.ErrAbort, "unexpected response")
				usable(t, c, false)
			})},
		{name: "idle/server ends it", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": send("+ idling\r\n* 1 EXISTS\r\nTAG OK enough\r\n")},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				wantErr(t, err, imap.ErrCommand, "enough")
				if !errors.Is(err, imap.ErrIdleEnded) || len(got) != 1 || closeErr != nil {
					t.Fatalf("got %v, %v, %v", got, err, closeErr)
				}
				usable(t, c, true)
			})},
		{name: "idle/EOF", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": sendClose("+ idling\r\n* 1 EXISTS\r\n")},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				wantErr(t, err, imap.ErrAbort, "socket error: EOF")
				if n := strings.Count(err.Error(), "EOF"); n != 1 {
					t.Errorf("error %q says EOF %d times, want once", err, n)
				}
				wantErr(t, closeErr, imap.ErrAbort)
				if len(got) != 1 {
					t.Fatalf("got %v", got)
				}
				usable(t, c, false)
			})},
		{name: "idle/close mid-literal", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": sendClose("+ idling\r\n* 1 FETCH (BODY[] {50}\r\nshort")},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				wantErr(t, err, imap.ErrAbort, "socket error: unexpected EOF")
				usable(t, c, false)
			})},
		{name: "idle/line too long", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": idleCmd(writes("+ idling\r\n* OK " + strings.Repeat("z", 9000) + "\r\n* 4 EXISTS\r\n"))},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				wantErr(t, err, imap.ErrCommand, "got more than 8192 bytes")
				if closeErr != nil {
					t.Fatal(closeErr)
				}
				cached("EXISTS", "4")(t, c) // left over by the Idler
				usable(t, c, true)
			})},

		// ---- slow servers ----
		{name: "slow/steady within the timeout", commands: map[string]imaptest.CommandFunc{"NOOP": trickle("* 1 EXISTS\r\nTAG OK done\r\n", 20*time.Millisecond, false)},
			run: noopWith(nil, cached("EXISTS", "1"))},
		{name: "slow/stall mid-line", commands: map[string]imaptest.CommandFunc{"NOOP": trickle("* OK hel", 20*time.Millisecond, false)},
			run: func(t *testing.T, c *imap.Client) {
				start := time.Now()
				noopWith(abort("timed out waiting for the server"), nil)(t, c)
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("took %v", d)
				}
			}},
		{name: "slow/endless line", commands: map[string]imaptest.CommandFunc{"NOOP": trickle("* OK x", 10*time.Millisecond, true)},
			opts: func(o *imap.Options) { o.MaxLine = 50 },
			run: func(t *testing.T, c *imap.Client) {
				noopWith(abort("a line longer than MaxLine (50 bytes) did not end within the timeout (400ms)"), nil)(t, c)
			}},
		{name: "slow/endless lines", commands: map[string]imaptest.CommandFunc{"NOOP": func(s *imaptest.Session, tag, _ string) {
			for s.Send("* 1 EXISTS") == nil {
				s.Sleep(20 * time.Millisecond)
			}
		}}, run: func(t *testing.T, c *imap.Client) {
			// Every line is progress: only a deadline ends this.
			mustOK(t)(c.Login(context.Background(), "user", "pass"))
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_, err := c.Noop(ctx)
			wantErr(t, err, imap.ErrAbort, "interrupted in the middle of a response")
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %q", err)
			}
			usable(t, c, false)
		}},
		{name: "slow/endless literal", commands: map[string]imaptest.CommandFunc{"FETCH": trickle("* 1 FETCH (BODY[] {100000}\r\nxxxx", 10*time.Millisecond, true)},
			run: func(t *testing.T, c *imap.Client) {
				mustOK(t)(c.Login(context.Background(), "user", "pass"))
				mustOK(t)(c.Select(context.Background(), "INBOX", false))
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				defer cancel()
				_, err := c.Fetch(ctx, "1", "BODY[]")
				wantErr(t, err, imap.ErrAbort, "interrupted in the middle of a response")
				usable(t, c, false)
			}},
		{name: "slow/idle stalls mid-line", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": sendStall("+ idling\r\n* 1 FETCH (FLAGS")},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				// A first line in progress is kept for the next wait (the
				// Idler's deadline bounds those); DONE then needs it to
				// end, under Timeout.
				if err != nil || len(got) != 0 {
					t.Fatalf("got %v, %v", got, err)
				}
				wantErr(t, closeErr, imap.ErrAbort, "timed out waiting for the server")
				usable(t, c, false)
			})},
		{name: "slow/idle stalls mid-literal", caps: "IDLE", commands: map[string]imaptest.CommandFunc{"IDLE": sendStall("+ idling\r\n* 1 FETCH (BODY[] {10}\r\nabc")},
			run: idleWith(nil, func(t *testing.T, c *imap.Client, got []imap.Response, err, closeErr error) {
				// A response whose first line arrived is read to its end
				// under Timeout.
				wantErr(t, err, imap.ErrAbort, "timed out waiting for the server")
				usable(t, c, false)
			})},
	}
}

// hostileRun runs one case: it starts the server, dials, runs the script
// under a watchdog and shuts everything down. It returns nothing, so that
// nothing it allocated stays reachable for the leak check.
func hostileRun(t *testing.T, tc hostileCase) {
	cfg := imaptest.Config{Handler: tc.handler, Commands: tc.commands, Capabilities: tc.caps, RawLiterals: tc.raw}
	srv := imaptest.NewServer(t, cfg)
	defer srv.Close()
	opts := hostileOptions()
	if tc.opts != nil {
		tc.opts(opts)
	}
	limit := tc.limit
	if limit == 0 {
		limit = 5 * time.Second
	}
	var client *imap.Client
	hung := make(chan struct{})
	watchdog := time.AfterFunc(limit, func() {
		close(hung)
		srv.Close() // unblocks whatever is stuck
	})
	defer func() {
		watchdog.Stop()
		select {
		case <-hung:
			t.Errorf("hung for more than %v", limit)
		default:
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic: %v", r)
		}
	}()
	c, err := imap.Dial(context.Background(), srv.Addr, opts)
	if tc.dialErr != nil {
		if c != nil {
			c.Shutdown()
		}
		check(t, err, tc.dialErr)
		return
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	client = c
	defer client.Shutdown()
	tc.run(t, c)
}

// leakCheck waits (briefly) for the goroutine count to come back to what
// it was, and checks that the heap did too, give or take slack.
func leakCheck(t *testing.T, goroutines int, heap uint64, slack uint64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > goroutines {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, were %d\n%s", runtime.NumGoroutine(), goroutines, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var now uint64
	for i := 0; i < 5; i++ {
		now = heapAlloc()
		if now <= heap+slack {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("heap %d bytes, was %d (slack %d)", now, heap, slack)
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func TestHostileServers(t *testing.T) {
	cases := hostileCases()
	if len(cases) < 60 {
		t.Fatalf("only %d hand-written cases", len(cases))
	}
	names := map[string]bool{}
	for _, tc := range cases {
		if names[tc.name] {
			t.Fatalf("duplicate case %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			goroutines, heap := runtime.NumGoroutine(), heapAlloc()
			hostileRun(t, tc)
			if !t.Failed() {
				leakCheck(t, goroutines, heap, 1<<20)
			}
		})
	}
}

// ---- truncations ----

// session is a whole session in Dovecot's words, split at the points where
// each step of truncatedClient is complete.
var truncSession = []struct{ step, bytes string }{
	{"greeting", "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot ready.\r\n"},
	{"login", "A0 OK [CAPABILITY IMAP4rev1 IDLE LITERAL+ UIDPLUS MOVE] Logged in\r\n"},
	{"select", "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Flags permitted.\r\n* 2 EXISTS\r\n* 0 RECENT\r\n" +
		"* OK [UIDVALIDITY 1700000000] UIDs valid\r\n* OK [UIDNEXT 3] Predicted next UID\r\nA1 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"},
	{"fetch", "* 1 FETCH (UID 1 FLAGS (\\Seen) ENVELOPE (\"Fri, 06 Dec 2024 06:00:00 +0000\" \"Hi\" ((\"Ada\" NIL \"ada\" \"example.org\")) ((\"Ada\" NIL \"ada\" \"example.org\")) " +
		"((\"Ada\" NIL \"ada\" \"example.org\")) ((NIL NIL \"bob\" \"example.net\")) NIL NIL NIL \"<1@example.org>\") BODYSTRUCTURE (\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL) BODY[] {5}\r\nhello)\r\n" +
		"* 2 FETCH (UID 2 FLAGS () ENVELOPE (NIL {5}\r\nSub\r\n NIL NIL NIL NIL NIL NIL NIL NIL) BODY[] {0}\r\n)\r\nA2 OK Fetch completed.\r\n"},
	{"idle", "+ idling\r\n"},
	{"idle-exists", "* 3 EXISTS\r\n"},
	{"idle-fetch", "* 3 FETCH (UID 3 FLAGS (\\Recent))\r\n"},
	{"idle-done", "A3 OK Idle completed (0.001 + 0.000 + 1.000 secs).\r\n"},
	{"logout", "* BYE Logging out\r\n"},
	{"end", "A4 OK Logout completed.\r\n"},
}

// truncatedClient runs the session's steps against a server that sent
// only the first cut bytes, and returns one error per step (nil: done).
// Every step whose bytes all arrived must succeed with the right data;
// the first other one must abort, and so must every later one.
func truncatedClient(t *testing.T, addr string, ends map[string]int, cut int) {
	ctx := context.Background()
	opts := &imap.Options{Timeout: 5 * time.Second, InsecureAuth: true, TagPrefix: "A"}
	failed := false
	step := func(name string, err error) bool {
		t.Helper()
		if cut >= ends[name] {
			if err != nil {
				t.Fatalf("cut %d: %s, complete, failed: %v", cut, name, err)
			}
			return true
		}
		if err == nil {
			t.Fatalf("cut %d: %s, incomplete, succeeded", cut, name)
		}
		frag := "socket error"
		if failed {
			frag = "connection"
		}
		wantErr(t, err, imap.ErrAbort, frag)
		failed = true
		return false
	}
	c, err := imap.Dial(ctx, addr, opts)
	if !step("greeting", err) {
		return
	}
	defer c.Shutdown()
	_, err = c.Login(ctx, "user", "pass")
	step("login", err)
	res, err := c.Select(ctx, "INBOX", false)
	if step("select", err) && (len(res.Data) != 1 || string(res.Data[0].Text) != "2") {
		t.Fatalf("cut %d: select %q", cut, texts(res.Data))
	}
	res, err = c.Fetch(ctx, "1:*", "(UID FLAGS ENVELOPE BODYSTRUCTURE BODY.PEEK[])")
	if step("fetch", err) {
		msgs, err := imap.ParseFetch(res.Data)
		if err != nil || len(msgs) != 2 || msgs[0].Envelope.Subject != "Hi" || string(msgs[0].Sections[0].Data) != "hello" ||
			msgs[1].Envelope.Subject != "Sub\r\n" || len(msgs[0].BodyStructure.Params) != 1 || msgs[0].BodyStructure.Params[0].Value != "utf-8" {
			t.Fatalf("cut %d: fetch parsed as %+v, %v", cut, msgs, err)
		}
	}
	id, err := c.Idle(ctx, 10*time.Second)
	if step("idle", err) {
		for _, name := range []string{"idle-exists", "idle-fetch"} {
			r, ok, err := id.Next(5 * time.Second)
			if err == nil && !ok {
				t.Fatalf("cut %d: %s: nothing within the timeout", cut, name)
			}
			if step(name, err) && r.Type != map[string]string{"idle-exists": "EXISTS", "idle-fetch": "FETCH"}[name] {
				t.Fatalf("cut %d: %s: got %v", cut, name, r)
			}
			if err != nil {
				break
			}
		}
		step("idle-done", id.Close())
	}
	res, err = c.Logout(ctx)
	if step("logout", err) && res.Status != "BYE" {
		t.Fatalf("cut %d: logout %v", cut, res)
	}
}

// TestHostileTruncations cuts the session at every byte: the server sends
// the first N bytes and closes.
func TestHostileTruncations(t *testing.T) {
	var full strings.Builder
	ends := map[string]int{}
	for _, p := range truncSession {
		full.WriteString(p.bytes)
		ends[p.step] = full.Len()
	}
	script := full.String()
	srv := imaptest.NewServer(t, imaptest.Config{Handler: func(s *imaptest.Session) {
		cut, _ := s.Server().Get("cut").(int)
		_ = s.Write([]byte(script[:cut]))
	}})
	goroutines, heap := runtime.NumGoroutine(), heapAlloc()
	start := time.Now()
	for cut := 0; cut <= len(script); cut++ {
		srv.Set("cut", cut)
		hung := make(chan struct{})
		timer := time.AfterFunc(10*time.Second, func() {
			close(hung)
			srv.Close() // unblocks the client
		})
		truncatedClient(t, srv.Addr, ends, cut)
		if !timer.Stop() {
			<-hung
			t.Fatalf("cut %d: hung", cut)
		}
		if t.Failed() {
			return
		}
		// The client's side is gone already; the server's handler may
		// still be finishing (it is waited for at the end).
		leakCheck(t, goroutines+1, heap, 1<<20)
	}
	srv.Close()
	leakCheck(t, goroutines, heap, 1<<20)
	t.Logf("%d truncations in %v", len(script)+1, time.Since(start))
}
