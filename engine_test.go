package imap_test

// Protocol engine tests through the scripted server: response parsing and
// the cache, literals, timeouts on slow servers, argument encoding and
// safety, state checks, STARTTLS and credential handling.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
	"github.com/imapkit/imap/internal/wire"
)

var plain = fakeTransports[0]

// scriptedNoop is a NOOP that sends the lines stored under "noop" (one
// write each, CRLF added) and then, unless one of them is tagged "TAG",
// "TAG OK NOOP completed".
func scriptedNoop(s *imaptest.Session, tag, _ string) {
	lines, _ := s.Server().Get("noop").([]string)
	tagged := false
	for _, l := range lines {
		if strings.HasPrefix(l, "TAG ") {
			tagged = true
			l = tag + l[3:]
		}
		if s.Send(l) != nil {
			return
		}
	}
	if !tagged {
		_ = s.Send(tag + " OK NOOP completed")
	}
}

func okCmd(s *imaptest.Session, tag, args string) { _ = s.Send(tag + " OK done") }

// noopServer returns a logged-in client of a server whose NOOP is
// scriptedNoop.
func noopServer(t *testing.T, cfg imaptest.Config, opts *imap.Options) (*imap.Client, *imaptest.Server) {
	t.Helper()
	if cfg.Commands == nil {
		cfg.Commands = map[string]imaptest.CommandFunc{}
	}
	cfg.Commands["NOOP"] = scriptedNoop
	srv := plain.server(t, cfg)
	c := plain.connect(t, srv, opts)
	login(t, c)
	return c, srv
}

func TestUntaggedShapes(t *testing.T) {
	t.Parallel()
	c, srv := noopServer(t, imaptest.Config{}, nil)
	for _, tc := range []struct {
		lines []string
		want  map[string][]string
	}{
		{[]string{"* 2 EXISTS"}, map[string][]string{"EXISTS": {"2"}}},
		{[]string{"* 3 EXISTS", "* 4 EXISTS"}, map[string][]string{"EXISTS": {"3", "4"}}},
		{[]string{"* 0 RECENT"}, map[string][]string{"RECENT": {"0"}}},
		{[]string{"* 5 EXPUNGE", "* 5 EXPUNGE"}, map[string][]string{"EXPUNGE": {"5", "5"}}},
		{[]string{"* 2 exists"}, map[string][]string{"EXISTS": {"2"}}},
		{[]string{"* SEARCH"}, map[string][]string{"SEARCH": {""}}},
		{[]string{"* SEARCH 1 2 3"}, map[string][]string{"SEARCH": {"1 2 3"}}},
		{[]string{`* 1 FETCH (FLAGS (\Seen))`}, map[string][]string{"FETCH": {`1 (FLAGS (\Seen))`}}},
		{[]string{"* CAPABILITY IMAP4rev1 IDLE"}, map[string][]string{"CAPABILITY": {"IMAP4rev1 IDLE"}}},
		{[]string{`* LIST (\HasNoChildren) "/" INBOX`}, map[string][]string{"LIST": {`(\HasNoChildren) "/" INBOX`}}},
		{[]string{"* STATUS INBOX (MESSAGES 3)"}, map[string][]string{"STATUS": {"INBOX (MESSAGES 3)"}}},
		// imaplib's Response_code takes the code's data from inside the
		// brackets: [ALERT] has none (imaplib None, here "").
		{[]string{"* OK [ALERT] disk full"}, map[string][]string{"OK": {"[ALERT] disk full"}, "ALERT": {""}}},
		{[]string{"* OK [HIGHESTMODSEQ 9]"}, map[string][]string{"OK": {"[HIGHESTMODSEQ 9]"}, "HIGHESTMODSEQ": {"9"}}},
		{[]string{"* OK [READ-WRITE] x"}, map[string][]string{"READ-WRITE": {""}}},
		{[]string{"* OK [X-WEIRD] y", "* OK [X-WEIRD 2] z"}, map[string][]string{"X-WEIRD": {"", "2"}}},
		{[]string{`* OK [PERMANENTFLAGS (\Seen [x] \*)] Limited`}, map[string][]string{"PERMANENTFLAGS": {`(\Seen [x] \*)`}}},
		{[]string{"* OK"}, map[string][]string{"OK": {""}}},
		{[]string{"* OK no code"}, map[string][]string{"OK": {"no code"}}},
		{[]string{"* OK [unterminated code"}, map[string][]string{"OK": {"[unterminated code"}}},
		{[]string{"* BAD [PARSE] huh"}, map[string][]string{"PARSE": {""}}},
		{[]string{"* ENABLED UTF8=ACCEPT"}, map[string][]string{"ENABLED": {"UTF8=ACCEPT"}}},
		{[]string{"* ID NIL"}, map[string][]string{"ID": {"NIL"}}},
		{[]string{"* 1 FETCH (UID 4)", "* 2 EXISTS", "* 2 FETCH (UID 5)"},
			map[string][]string{"FETCH": {"1 (UID 4)", "2 (UID 5)"}, "EXISTS": {"2"}}},
	} {
		srv.Set("noop", tc.lines)
		mustOK(t)(c.Noop(context.Background()))
		for typ, want := range tc.want {
			if got := texts(c.Response(typ).Data); !slices.Equal(got, want) {
				t.Errorf("%q: %s = %q, want %q", tc.lines, typ, got, want)
			}
		}
	}
	// Response("NO") always returns nothing, like imaplib; the data is
	// still cached.
	srv.Set("noop", []string{"* NO [ALERT] careful"})
	mustOK(t)(c.Noop(context.Background()))
	if r := c.Response("NO"); r.Data != nil || r.Type != "NO" {
		t.Errorf("Response(NO) = %v", r)
	}
	if got := texts(c.Cached("NO")); !slices.Equal(got, []string{"[ALERT] careful"}) {
		t.Errorf("cached NO %q", got)
	}
	if got := texts(c.Response("alert").Data); !slices.Equal(got, []string{""}) {
		t.Errorf("ALERT %q", got)
	}
	if r := c.Response("Alert"); r.Type != "Alert" || r.Data != nil {
		t.Errorf("second Response(Alert) = %v, want Type as passed and no data", r)
	}
	// A new command drops the cached OK/NO/BAD.
	srv.Set("noop", nil)
	mustOK(t)(c.Noop(context.Background()))
	if got := c.Cached("NO"); got != nil {
		t.Errorf("NO still cached: %q", texts(got))
	}
}

// Lines that are no IMAP response abort the connection.
func TestUnexpectedResponses(t *testing.T) {
	t.Parallel()
	for _, line := range []string{"*", "* ", "* 5", "* 5 ", "* 1 2 3", "* FOO(bar)", "garbage", "TAG HUH x", "ZZZ9 OK other tag"} {
		t.Run(line, func(t *testing.T) {
			c, srv := noopServer(t, imaptest.Config{}, nil)
			srv.Set("noop", []string{line})
			_, err := c.Noop(context.Background())
			wantErr(t, err, imap.ErrAbort)
			if c.State() != imap.StateLogout {
				t.Fatalf("state %v", c.State())
			}
			_, err = c.Noop(context.Background())
			wantErr(t, err, imap.ErrAbort)
		})
	}
}

func TestTaggedStatus(t *testing.T) {
	t.Parallel()
	c, srv := noopServer(t, imaptest.Config{}, nil)
	ctx := context.Background()
	srv.Set("noop", []string{"* 1 EXISTS", "TAG NO [TRYCREATE] no such mailbox"})
	res, err := c.Noop(ctx)
	wantErr(t, err, imap.ErrCommand, "NO", "[TRYCREATE] no such mailbox")
	var e *imap.Error
	if !errors.As(err, &e) || e.Status != "NO" || e.Command != "NOOP" || !e.Usable() {
		t.Fatalf("error %#v", e)
	}
	if res.Status != "NO" || !slices.Equal(texts(res.Data), []string{"[TRYCREATE] no such mailbox"}) {
		t.Fatalf("result %v", res)
	}
	if got := texts(c.Response("TRYCREATE").Data); !slices.Equal(got, []string{""}) {
		t.Fatalf("TRYCREATE %q", got)
	}
	if got := texts(c.Response("EXISTS").Data); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("EXISTS %q", got)
	}
	srv.Set("noop", []string{"TAG BAD [CLIENTBUG] what"})
	res, err = c.Noop(ctx)
	wantErr(t, err, imap.ErrCommand, "BAD", "[CLIENTBUG] what")
	if res.Status != "BAD" {
		t.Fatalf("result %v", res)
	}
	srv.Set("noop", nil)
	mustOK(t)(c.Noop(ctx))
}

// BYE in the middle of a command is an abort carrying the server's text.
func TestByeDuringCommand(t *testing.T) {
	t.Parallel()
	c, srv := noopServer(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"CHECK": func(s *imaptest.Session, tag, _ string) {
			_ = s.Send("* BYE server going down")
			s.Close()
		},
	}}, nil)
	_ = srv
	ctx := context.Background()
	mustOK(t)(c.Select(ctx, "INBOX", false))
	_, err := c.Check(ctx)
	wantErr(t, err, imap.ErrAbort, "server going down")
	_, err = c.Noop(ctx)
	wantErr(t, err, imap.ErrAbort)
}

func TestGreeting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		greeting string
		caps     string
		kind     error // nil: success
		state    imap.State
		fragment string
	}{
		{"* OK hello", "", nil, imap.StateNonAuth, ""},
		{"* PREAUTH welcome back", "", nil, imap.StateAuth, ""},
		{"* OK [CAPABILITY IMAP4rev1 IDLE] ready", "", nil, imap.StateNonAuth, ""},
		{"* BYE go away", "", imap.ErrAbort, 0, "go away"},
		{"* NO busy", "", imap.ErrCommand, 0, "busy"},
		{"+ what", "", imap.ErrAbort, 0, ""},
		{"A1 OK tagged", "", imap.ErrAbort, 0, ""},
	} {
		t.Run(tc.greeting, func(t *testing.T) {
			srv := plain.server(t, imaptest.Config{Greeting: tc.greeting, Capabilities: tc.caps})
			c, err := plain.dial(context.Background(), srv, nil)
			if tc.kind != nil {
				wantErr(t, err, tc.kind, tc.fragment)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Shutdown()
			if c.State() != tc.state {
				t.Fatalf("state %v", c.State())
			}
			if string(c.Welcome()) != tc.greeting {
				t.Fatalf("welcome %q", c.Welcome())
			}
			if strings.Contains(tc.greeting, "CAPABILITY") {
				if !c.Has("idle") || countCommand(srv, "CAPABILITY") != 0 {
					t.Fatalf("greeting capabilities not used: %q, %d CAPABILITY sent", c.Capabilities(), countCommand(srv, "CAPABILITY"))
				}
			}
		})
	}
	t.Run("not IMAP4", func(t *testing.T) {
		srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
			"CAPABILITY": func(s *imaptest.Session, tag, _ string) { _ = s.Send("* CAPABILITY POP3", tag+" OK") },
		}})
		_, err := plain.dial(context.Background(), srv, nil)
		wantErr(t, err, imap.ErrCommand, "not IMAP4 compliant")
	})
	t.Run("no CAPABILITY", func(t *testing.T) {
		srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{"CAPABILITY": okCmd}})
		_, err := plain.dial(context.Background(), srv, nil)
		wantErr(t, err, imap.ErrCommand, "no CAPABILITY response")
	})
}

// Tags are a four-letter A–P prefix and a counter from 0.
func TestTags(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{})
	c := plain.connect(t, srv, nil)
	login(t, c)
	mustOK(t)(c.Noop(context.Background()))
	re := regexp.MustCompile(`^([A-P]{4})(\d+) `)
	prefix := ""
	for i, l := range srv.Lines() {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q has no imaplib tag", l)
		}
		if prefix == "" {
			prefix = m[1]
		}
		if m[1] != prefix || m[2] != fmt.Sprint(i) {
			t.Fatalf("line %d %q: want tag %s%d", i, l, prefix, i)
		}
	}
	srv2 := plain.server(t, imaptest.Config{})
	c2 := plain.connect(t, srv2, &imap.Options{Timeout: testTimeout, TagPrefix: "TEST"})
	mustOK(t)(c2.Noop(context.Background()))
	if got := srv2.Lines(); !slices.Equal(got, []string{"TEST0 CAPABILITY", "TEST1 NOOP"}) {
		t.Fatalf("lines %q", got)
	}
}

func TestResponseCodes(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"NOOP": scriptedNoop,
		"SELECT": func(s *imaptest.Session, tag, _ string) {
			_ = s.Send("* 3 EXISTS", "* 0 RECENT", `* FLAGS (\Seen [x])`,
				"* OK [UIDVALIDITY 5] UIDs valid",
				`* OK [PERMANENTFLAGS (\Seen [x] \*)] Limited`,
				tag+" OK [READ-WRITE] SELECT completed")
		},
		"EXAMINE": func(s *imaptest.Session, tag, _ string) {
			_ = s.Send("* 3 EXISTS", tag+" OK [READ-ONLY] EXAMINE completed")
		},
	}})
	c := plain.connect(t, srv, nil)
	login(t, c)
	ctx := context.Background()
	res := mustOK(t)(c.Select(ctx, "INBOX", false))
	if got := texts(res.Data); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("select data %q", got)
	}
	for typ, want := range map[string][]string{
		"UIDVALIDITY":    {"5"},
		"PERMANENTFLAGS": {`(\Seen [x] \*)`},
		"FLAGS":          {`(\Seen [x])`},
		"READ-WRITE":     {""},
		"EXISTS":         {"3"}, // Select leaves EXISTS cached
		"RECENT":         {"0"},
		"OK":             {"[UIDVALIDITY 5] UIDs valid", `[PERMANENTFLAGS (\Seen [x] \*)] Limited`},
	} {
		if got := texts(c.Response(typ).Data); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", typ, got, want)
		}
	}

	// EXAMINE: read-only asked, read-only given.
	mustOK(t)(c.Select(ctx, "INBOX", true))
	if got := texts(c.Response("READ-ONLY").Data); !slices.Equal(got, []string{""}) {
		t.Fatalf("READ-ONLY %q", got)
	}

	// The mailbox turns read-only under a read-write selection: the
	// command that reports it succeeds, the next one fails with
	// ErrReadOnly, and the connection stays usable.
	mustOK(t)(c.Select(ctx, "INBOX", false))
	srv.Set("noop", []string{"* OK [READ-ONLY] now read-only"})
	mustOK(t)(c.Noop(ctx))
	srv.Set("noop", nil)
	_, err := c.Noop(ctx)
	wantErr(t, err, imap.ErrReadOnly, "READ-ONLY")
	if errors.Is(err, imap.ErrAbort) || errors.Is(err, imap.ErrCommand) {
		t.Fatalf("ErrReadOnly error %q also matches another kind", err)
	}
	mustOK(t)(c.Noop(ctx))
}

// SELECT answered with [READ-ONLY] when read-write was asked for is
// ErrReadOnly; the mailbox is selected anyway.
func TestSelectReadOnly(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"SELECT": func(s *imaptest.Session, tag, _ string) {
			_ = s.Send("* 1 EXISTS", tag+" OK [READ-ONLY] SELECT completed")
		},
		"EXAMINE": func(s *imaptest.Session, tag, _ string) {
			_ = s.Send("* 1 EXISTS", tag+" OK [READ-ONLY] EXAMINE completed")
		},
		"FETCH": func(s *imaptest.Session, tag, _ string) { _ = s.Send("* 1 FETCH (UID 1)", tag+" OK") },
	}})
	c := plain.connect(t, srv, nil)
	login(t, c)
	ctx := context.Background()
	_, err := c.Select(ctx, "Archive", false)
	wantErr(t, err, imap.ErrReadOnly, "Archive", "not writable")
	if c.State() != imap.StateSelected {
		t.Fatalf("state %v", c.State())
	}
	mustOK(t)(c.Select(ctx, "Archive", true))
	if c.State() != imap.StateSelected {
		t.Fatalf("state %v", c.State())
	}
	res := mustOK(t)(c.Fetch(ctx, "1", "(UID)"))
	if got := texts(res.Data); !slices.Equal(got, []string{"1 (UID 1)"}) {
		t.Fatalf("fetch %q", got)
	}
}

// Literals in ordinary command responses keep imaplib's shape: one
// (header, literal) pair per literal, then the trailer, for every
// response, in order.
func TestLiteralsInCommandResponses(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"FETCH": func(s *imaptest.Session, tag, _ string) {
			_ = s.Write([]byte("* 1 FETCH (UID 7 BODY[] {5}\r\nhello)\r\n" +
				"* 2 FETCH (BODY[HEADER] {6}\r\nhead\r\n BODY[TEXT] {4}\r\nbody FLAGS (\\Seen))\r\n" +
				"* 3 FETCH (BODY[] {0}\r\n)\r\n" +
				"* 4 FETCH (BODY[] {21}\r\n* 9 EXISTS\r\nA1 OK x\r\n)\r\n" +
				"* 5 EXISTS\r\n" +
				tag + " OK FETCH completed\r\n"))
		},
		"LIST": func(s *imaptest.Session, tag, _ string) {
			_ = s.Write([]byte("* LIST () \"/\" {6}\r\nIN BOX\r\n" + tag + " OK\r\n"))
		},
	}})
	c := plain.connect(t, srv, nil)
	login(t, c)
	ctx := context.Background()
	mustOK(t)(c.Select(ctx, "INBOX", false))
	{
		res := mustOK(t)(c.Fetch(ctx, "1:4", "(UID BODY[])"))
		want := repr("FETCH", []imap.Datum{
			{Text: []byte("1 (UID 7 BODY[] {5}"), Literal: []byte("hello")}, {Text: []byte(")")},
			{Text: []byte("2 (BODY[HEADER] {6}"), Literal: []byte("head\r\n")},
			{Text: []byte(" BODY[TEXT] {4}"), Literal: []byte("body")}, {Text: []byte(` FLAGS (\Seen))`)},
			{Text: []byte("3 (BODY[] {0}"), Literal: []byte{}}, {Text: []byte(")")},
			{Text: []byte("4 (BODY[] {21}"), Literal: []byte("* 9 EXISTS\r\nA1 OK x\r\n")}, {Text: []byte(")")},
		})
		if got := repr("FETCH", res.Data); got != want {
			t.Fatalf("got  %s\nwant %s", got, want)
		}
		if got := texts(c.Response("EXISTS").Data); !slices.Equal(got, []string{"2", "5"}) {
			t.Fatalf("EXISTS %q (the literal's text must not be parsed)", got)
		}
	}
	res := mustOK(t)(c.List(ctx, "", "*"))
	if got, want := repr("LIST", res.Data), `("LIST", [("() \"/\" {6}", "IN BOX"), ""])`; got != want {
		t.Fatalf("LIST %s, want %s", got, want)
	}
}

// A slow but steady server is not timed out: Options.Timeout bounds each
// wait for progress, not a whole line or response.
func TestSlowButSteadyServer(t *testing.T) {
	t.Parallel()
	const gap = 25 * time.Millisecond // each wait well under the 500ms timeout
	trickle := func(s *imaptest.Session, b string) {
		for i := 0; i < len(b); i++ {
			if s.Write([]byte{b[i]}) != nil {
				return
			}
			time.Sleep(gap)
		}
	}
	srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"FETCH": func(s *imaptest.Session, tag, _ string) {
			// About 80 bytes: 2 s in all, four times the timeout.
			trickle(s, "* 1 FETCH (BODY[] {12}\r\nhello, world FLAGS ())\r\n"+tag+" OK FETCH completed\r\n")
		},
		"NOOP": func(s *imaptest.Session, tag, _ string) {
			_ = s.Write([]byte("* 1 EXI"))
			s.Sleep(10 * time.Second)
		},
	}})
	c := plain.connect(t, srv, &imap.Options{Timeout: 500 * time.Millisecond, InsecureAuth: true})
	login(t, c)
	ctx := context.Background()
	mustOK(t)(c.Select(ctx, "INBOX", false))
	start := time.Now()
	res, err := c.Fetch(ctx, "1", "BODY[]")
	if err != nil {
		t.Fatalf("after %v: %v", time.Since(start), err)
	}
	if got, want := repr("FETCH", res.Data), `("FETCH", [("1 (BODY[] {12}", "hello, world"), " FLAGS ())"])`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("the response took only %v: not a test of a slow server", d)
	}
	// A stall longer than the timeout, in the middle of a line, aborts.
	start = time.Now()
	_, err = c.Noop(ctx)
	wantErr(t, err, imap.ErrAbort)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("error %q is not a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stall detected after %v", d)
	}
}

// A line longer than MaxLine is a command error; the rest of the response
// is read, so the connection stays usable as ErrCommand promises.
func TestLineTooLongInCommand(t *testing.T) {
	t.Parallel()
	c, srv := noopServer(t, imaptest.Config{}, &imap.Options{Timeout: testTimeout, InsecureAuth: true, MaxLine: 100})
	ctx := context.Background()
	srv.Set("noop", []string{"* 1 EXISTS", "* OK " + strings.Repeat("x", 5000), "* 2 EXISTS"})
	_, err := c.Noop(ctx)
	wantErr(t, err, imap.ErrCommand, "got more than 100 bytes")
	if !errors.Is(err, wire.ErrLineTooLong) {
		t.Fatalf("error %q does not wrap ErrLineTooLong", err)
	}
	srv.Set("noop", []string{"* 3 EXISTS"})
	mustOK(t)(c.Noop(ctx))
	if got := texts(c.Response("EXISTS").Data); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("EXISTS %q", got)
	}
	// An over-long line announcing a literal cannot be skipped safely: the
	// literal's bytes must never be taken for responses.
	srv.Set("noop", []string{"* 1 FETCH (BODY[] " + strings.Repeat("x", 5000) + " {12}", "* 7 EXISTS", ")"})
	_, err = c.Noop(ctx)
	wantErr(t, err, imap.ErrAbort, "literal")
	if got := texts(c.Cached("EXISTS")); len(got) != 0 {
		t.Fatalf("literal data parsed as responses: EXISTS %q", got)
	}
}

// badArgCalls lists every method that takes a string argument, with the
// bad string put in each argument in turn.
func badArgCalls(c *imap.Client, bad string) map[string]func() error {
	ctx := context.Background()
	r := func(_ imap.Result, err error) error { return err }
	return map[string]func() error{
		"Select":          func() error { return r(c.Select(ctx, bad, false)) },
		"Examine":         func() error { return r(c.Select(ctx, bad, true)) },
		"Create":          func() error { return r(c.Create(ctx, bad)) },
		"Delete":          func() error { return r(c.Delete(ctx, bad)) },
		"Rename/old":      func() error { return r(c.Rename(ctx, bad, "x")) },
		"Rename/new":      func() error { return r(c.Rename(ctx, "x", bad)) },
		"Subscribe":       func() error { return r(c.Subscribe(ctx, bad)) },
		"Unsubscribe":     func() error { return r(c.Unsubscribe(ctx, bad)) },
		"List/ref":        func() error { return r(c.List(ctx, bad, "*")) },
		"List/pattern":    func() error { return r(c.List(ctx, "", bad)) },
		"Lsub/pattern":    func() error { return r(c.Lsub(ctx, "", bad)) },
		"Status/mailbox":  func() error { return r(c.Status(ctx, bad, "(MESSAGES)")) },
		"Status/items":    func() error { return r(c.Status(ctx, "INBOX", bad)) },
		"GetACL":          func() error { return r(c.GetACL(ctx, bad)) },
		"SetACL/mailbox":  func() error { return r(c.SetACL(ctx, bad, "u", "lr")) },
		"SetACL/id":       func() error { return r(c.SetACL(ctx, "x", bad, "lr")) },
		"SetACL/rights":   func() error { return r(c.SetACL(ctx, "x", "u", bad)) },
		"DeleteACL":       func() error { return r(c.DeleteACL(ctx, "x", bad)) },
		"MyRights":        func() error { return r(c.MyRights(ctx, bad)) },
		"GetAnnotation":   func() error { return r(c.GetAnnotation(ctx, "x", bad, "value")) },
		"GetAnnotation/a": func() error { return r(c.GetAnnotation(ctx, "x", "/comment", bad)) },
		"SetAnnotation":   func() error { return r(c.SetAnnotation(ctx, "x", bad)) },
		"GetQuota":        func() error { return r(c.GetQuota(ctx, bad)) },
		"GetQuotaRoot": func() error {
			_, _, err := c.GetQuotaRoot(ctx, bad)
			return err
		},
		"SetQuota/root":   func() error { return r(c.SetQuota(ctx, bad, "(STORAGE 1)")) },
		"SetQuota/limits": func() error { return r(c.SetQuota(ctx, "", bad)) },
		"Login/user":      func() error { return r(c.Login(ctx, bad, "p")) },
		"Login/password":  func() error { return r(c.Login(ctx, "u", bad)) },
		"Authenticate":    func() error { return r(c.Authenticate(ctx, bad, fakeAuth)) },
		"ProxyAuth":       func() error { return r(c.ProxyAuth(ctx, bad)) },
		"Enable":          func() error { return r(c.Enable(ctx, bad)) },
		"ID":              func() error { return r(c.ID(ctx, "name", bad)) },
		"Xatom/arg":       func() error { return r(c.Xatom(ctx, "XFOO", bad)) },
		"Xatom/name":      func() error { return r(c.Xatom(ctx, "X"+bad)) },
		"Append/mailbox":  func() error { return r(c.Append(ctx, bad, "", time.Time{}, []byte("m"))) },
		"Append/flags":    func() error { return r(c.Append(ctx, "INBOX", bad, time.Time{}, []byte("m"))) },
		"Copy/set":        func() error { return r(c.Copy(ctx, bad, "x")) },
		"Copy/mailbox":    func() error { return r(c.Copy(ctx, "1", bad)) },
		"Move/set":        func() error { return r(c.Move(ctx, bad, "x")) },
		"Move/mailbox":    func() error { return r(c.Move(ctx, "1", bad)) },
		"Fetch/set":       func() error { return r(c.Fetch(ctx, bad, "(FLAGS)")) },
		"Fetch/items":     func() error { return r(c.Fetch(ctx, "1", bad)) },
		"Partial":         func() error { return r(c.Partial(ctx, "1", bad, 0, 10)) },
		"Store/set":       func() error { return r(c.Store(ctx, bad, "+FLAGS", `\Seen`)) },
		"Store/op":        func() error { return r(c.Store(ctx, "1", bad, `\Seen`)) },
		"Store/flags":     func() error { return r(c.Store(ctx, "1", "+FLAGS", bad)) },
		"Search/criteria": func() error { return r(c.Search(ctx, "", "SUBJECT", bad)) },
		"Search/charset":  func() error { return r(c.Search(ctx, bad, "ALL")) },
		"Sort/criteria":   func() error { return r(c.Sort(ctx, "", bad, "ALL")) },
		"Sort/charset":    func() error { return r(c.Sort(ctx, bad, "DATE", "ALL")) },
		"Sort/search":     func() error { return r(c.Sort(ctx, "", "DATE", bad)) },
		"Thread/alg":      func() error { return r(c.Thread(ctx, "", bad, "ALL")) },
		"Thread/search":   func() error { return r(c.Thread(ctx, "", "REFERENCES", bad)) },
		"UID/args":        func() error { return r(c.UID(ctx, "FETCH", "1", bad)) },
		"UID/mailbox":     func() error { return r(c.UID(ctx, "COPY", "1", bad)) },
		"UID/command":     func() error { return r(c.UID(ctx, "FETCH"+bad, "1")) },
		"Quote": func() error {
			_, err := imap.Quote(bad)
			return err
		},
	}
}

// CR, LF, NUL (any control character) in an argument never reach the
// wire: the call fails before anything is sent.
func TestArgumentsNoControlChars(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{Capabilities: "MOVE ENABLE ID"})
	c := plain.connect(t, srv, nil)
	login(t, c)
	mustOK(t)(c.Select(context.Background(), "INBOX", false))
	for _, bad := range []string{"a\r\nZ1 INJECTED", "a\nZ1 INJECTED", "a\rZ1 INJECTED", "a\x00INJECTED", "INJECTED\x7f", "INJECTED\x1b"} {
		before := len(srv.Lines())
		for name, call := range badArgCalls(c, bad) {
			err := call()
			if err == nil {
				t.Errorf("%s(%q): no error", name, bad)
				continue
			}
			if !errors.Is(err, imap.ErrCommand) {
				t.Errorf("%s(%q): %v is not ErrCommand", name, bad, err)
			}
		}
		if got := srv.Lines()[before:]; len(got) != 0 {
			t.Fatalf("%q: the server read %q", bad, got)
		}
	}
	for _, l := range srv.Lines() {
		if strings.Contains(l, "INJECTED") {
			t.Fatalf("server saw %q", l)
		}
	}
	mustOK(t)(c.Noop(context.Background()))
}

// Strings go on the wire as atoms when they can, quoted when needed,
// modified UTF-7 for non-ASCII mailbox names, and literals when long;
// LITERAL+ makes literals non-synchronizing.
func TestArgumentQuoting(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 1025)
	type call func(c *imap.Client) (imap.Result, error)
	ctx := context.Background()
	create := func(name string) call {
		return func(c *imap.Client) (imap.Result, error) { return c.Create(ctx, name) }
	}
	for _, tc := range []struct {
		caps string
		call call
		want string // the command after its tag, literals inline
	}{
		{"", create("Drafts"), "CREATE Drafts"},
		{"", create("my box"), `CREATE "my box"`},
		{"", create("inbox"), "CREATE INBOX"},
		{"", create(""), `CREATE ""`},
		{"", create("NIL"), `CREATE "NIL"`},
		{"", create(`a"b\c`), `CREATE "a\"b\\c"`},
		{"", create("a%b*"), `CREATE "a%b*"`},
		{"", create("(x)"), `CREATE "(x)"`},
		{"", create("{5}"), `CREATE "{5}"`},
		{"", create("Entwürfe"), "CREATE Entw&APw-rfe"},
		{"", create("台北"), "CREATE &U,BTFw-"},
		{"", create("Entw&APw-rfe"), "CREATE Entw&APw-rfe"},
		{"", create(long), "CREATE {1025}\r\n" + long},
		{"LITERAL+", create(long), "CREATE {1025+}\r\n" + long},
		{"LITERAL-", create(long), "CREATE {1025+}\r\n" + long},
		{"LITERAL-", create(long + strings.Repeat("b", 4096)), "CREATE {5121}\r\n" + long + strings.Repeat("b", 4096)},
		{"", func(c *imap.Client) (imap.Result, error) { return c.List(ctx, "", "a%b*") }, `LIST "" a%b*`},
		{"", func(c *imap.Client) (imap.Result, error) { return c.List(ctx, "~/Mail", "Entwürfe/%") }, `LIST ~/Mail Entw&APw-rfe/%`},
		{"", func(c *imap.Client) (imap.Result, error) { return c.Rename(ctx, "old box", "New") }, `RENAME "old box" New`},
		{"", func(c *imap.Client) (imap.Result, error) { return c.Store(ctx, "1:*", "+FLAGS", `\Seen`) }, `STORE 1:* +FLAGS (\Seen)`},
		{"", func(c *imap.Client) (imap.Result, error) { return c.Search(ctx, "UTF-8", "SUBJECT", `"x y"`) }, `SEARCH CHARSET UTF-8 SUBJECT "x y"`},
		{"", func(c *imap.Client) (imap.Result, error) {
			return c.Append(ctx, "", `\Seen`, time.Date(2024, 12, 6, 6, 0, 0, 0, time.UTC), []byte("a\nb"))
		}, "APPEND INBOX (\\Seen) \"06-Dec-2024 06:00:00 +0000\" {4}\r\na\r\nb"},
		{"", func(c *imap.Client) (imap.Result, error) { return c.ID(ctx, "name", "imapkit") }, `ID ("name" "imapkit")`},
		{"", func(c *imap.Client) (imap.Result, error) { return c.ID(ctx) }, `ID NIL`},
	} {
		srv := plain.server(t, imaptest.Config{Capabilities: tc.caps, Commands: map[string]imaptest.CommandFunc{
			"CREATE": okCmd, "LIST": okCmd, "RENAME": okCmd, "STORE": okCmd, "SEARCH": okCmd, "APPEND": okCmd, "ID": okCmd,
		}})
		c := plain.connect(t, srv, nil)
		login(t, c)
		mustOK(t)(c.Select(ctx, "INBOX", false))
		mustOK(t)(tc.call(c))
		cmds := srv.Commands()
		_, got, _ := strings.Cut(cmds[len(cmds)-1], " ")
		if got != tc.want {
			t.Errorf("caps %q: sent %.80q, want %.80q", tc.caps, got, tc.want)
		}
		c.Shutdown()
	}
}

// LOGIN quotes what needs it, the password included.
func TestLoginQuoting(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{})
	c := plain.connect(t, srv, nil)
	mustOK(t)(c.Login(context.Background(), "user name", `p"a\ss`))
	if got, want := srv.Lines()[1], `LOGIN "user name" "p\"a\\ss"`; !strings.HasSuffix(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
	if srv.LoggedUser() != "user name" {
		t.Fatalf("server user %q", srv.LoggedUser())
	}
}

// After ENABLE UTF8=ACCEPT, mailbox names are sent as UTF-8 quoted strings.
func TestUTF8Mailbox(t *testing.T) {
	t.Parallel()
	cmds := utf8Commands()
	cmds["CREATE"] = okCmd
	srv := plain.server(t, imaptest.Config{Capabilities: "ENABLE UTF8=ACCEPT", Commands: cmds})
	c := plain.connect(t, srv, nil)
	login(t, c)
	ctx := context.Background()
	mustOK(t)(c.Create(ctx, "Entwürfe"))
	mustOK(t)(c.Enable(ctx, "UTF8=ACCEPT"))
	mustOK(t)(c.Create(ctx, "Entwürfe"))
	cmdsSent := srv.Commands()
	if got := cmdsSent[len(cmdsSent)-3]; !strings.HasSuffix(got, "CREATE Entw&APw-rfe") {
		t.Fatalf("before ENABLE: %q", got)
	}
	if got := cmdsSent[len(cmdsSent)-1]; !strings.HasSuffix(got, `CREATE "Entwürfe"`) {
		t.Fatalf("after ENABLE: %q", got)
	}
}

// Commands fail before anything is sent when the state forbids them.
func TestStateErrorsBeforeSending(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{Capabilities: "IDLE ENABLE STARTTLS"})
	c := plain.connect(t, srv, nil)
	ctx := context.Background()
	r := func(_ imap.Result, err error) error { return err }
	nonAuth := map[string]func() error{
		"SELECT": func() error { return r(c.Select(ctx, "INBOX", false)) },
		"FETCH":  func() error { return r(c.Fetch(ctx, "1", "(FLAGS)")) },
		"IDLE":   func() error { _, err := c.Idle(ctx, 0); return err },
		"CREATE": func() error { return r(c.Create(ctx, "x")) },
		"ENABLE": func() error { return r(c.Enable(ctx, "UTF8=ACCEPT")) },
		"APPEND": func() error { return r(c.Append(ctx, "", "", time.Time{}, []byte("x"))) },
		"LIST":   func() error { return r(c.List(ctx, "", "*")) },
		"CLOSE":  func() error { return r(c.CloseMailbox(ctx)) },
	}
	check := func(state string, calls map[string]func() error) {
		t.Helper()
		before := len(srv.Lines())
		for name, f := range calls {
			err := f()
			wantErr(t, err, imap.ErrCommand, name[strings.LastIndexByte(name, ' ')+1:], "illegal in state "+state)
		}
		if got := srv.Lines()[before:]; len(got) != 0 {
			t.Fatalf("sent %q", got)
		}
	}
	check("NONAUTH", nonAuth)
	login(t, c)
	check("AUTH", map[string]func() error{
		"FETCH":        func() error { return r(c.Fetch(ctx, "1", "(FLAGS)")) },
		"SEARCH":       func() error { return r(c.Search(ctx, "", "ALL")) },
		"STORE":        func() error { return r(c.Store(ctx, "1", "+FLAGS", `\Seen`)) },
		"EXPUNGE":      func() error { return r(c.Expunge(ctx)) },
		"CLOSE":        func() error { return r(c.CloseMailbox(ctx)) },
		"UNSELECT":     func() error { return r(c.Unselect(ctx)) },
		"LOGIN":        func() error { return r(c.Login(ctx, "u", "p")) },
		"AUTHENTICATE": func() error { return r(c.Authenticate(ctx, "PLAIN", fakeAuth)) },
		"STARTTLS":     func() error { return c.StartTLS(ctx, nil) },
		"UID FETCH":    func() error { return r(c.UID(ctx, "FETCH", "1", "(FLAGS)")) },
	})
	mustOK(t)(c.Select(ctx, "INBOX", false))
	check("SELECTED", map[string]func() error{
		"ENABLE": func() error { return r(c.Enable(ctx, "UTF8=ACCEPT")) },
	})
	_, err := c.UID(ctx, "BOGUS", "1")
	wantErr(t, err, imap.ErrCommand, "Unknown IMAP4 UID command")
}

// testCert returns a certificate for "localhost" and a pool trusting it.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// startTLSServer is a plain server offering STARTTLS. Its STARTTLS answers
// reply (with TAG replaced), in one write, and then, if it begins with
// "TAG OK", does the TLS handshake and serves CAPABILITY, LOGIN, NOOP and
// LOGOUT over TLS. The lines read over TLS are stored under "tls".
func startTLSServer(t *testing.T, caps, reply string) (*imaptest.Server, *x509.CertPool) {
	t.Helper()
	cert, pool := testCert(t)
	srv := plain.server(t, imaptest.Config{Capabilities: caps, Commands: map[string]imaptest.CommandFunc{
		"STARTTLS": func(s *imaptest.Session, tag, _ string) {
			if s.Write([]byte(strings.ReplaceAll(reply, "TAG", tag))) != nil || !strings.HasPrefix(reply, "TAG OK") {
				return
			}
			tc := tls.Server(s.Conn(), &tls.Config{Certificates: []tls.Certificate{cert}})
			if err := tc.Handshake(); err != nil {
				s.Server().Set("handshake", err)
				s.Close()
				return
			}
			s.Server().Set("handshake", "ok")
			r := bufio.NewReader(tc)
			var lines []string
			defer func() { s.Server().Set("tls", lines) }()
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimSuffix(line, "\r\n")
				lines = append(lines, line)
				s.Server().Set("tls", slices.Clone(lines))
				tag, rest, _ := strings.Cut(line, " ")
				cmd, _, _ := strings.Cut(rest, " ")
				var out string
				switch strings.ToUpper(cmd) {
				case "CAPABILITY":
					out = "* CAPABILITY IMAP4rev1 AUTH=PLAIN IDLE\r\n" + tag + " OK done\r\n"
				case "LOGOUT":
					out = "* BYE bye\r\n" + tag + " OK done\r\n"
				default:
					out = tag + " OK " + cmd + " completed\r\n"
				}
				if _, err := tc.Write([]byte(out)); err != nil || cmd == "LOGOUT" {
					tc.Close()
					s.Close()
					return
				}
			}
		},
	}})
	return srv, pool
}

func TestStartTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := func(pool *x509.CertPool) *imap.Options {
		return &imap.Options{Timeout: testTimeout, TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}
	}
	t.Run("ok", func(t *testing.T) {
		srv, pool := startTLSServer(t, "STARTTLS LOGINDISABLED", "TAG OK Begin TLS negotiation now\r\n")
		c := plain.connect(t, srv, opts(pool))
		if c.IsTLS() {
			t.Fatal("TLS before STARTTLS")
		}
		// No credentials in plaintext (and LOGINDISABLED).
		_, err := c.Login(ctx, "u", "p")
		wantErr(t, err, imap.ErrCommand)
		if err := c.StartTLS(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if !c.IsTLS() {
			t.Fatal("not TLS")
		}
		if got := c.Capabilities(); !slices.Equal(got, []string{"AUTH=PLAIN", "IDLE", "IMAP4REV1"}) { // sorted
			t.Fatalf("capabilities %q not refreshed", got)
		}
		err = c.StartTLS(ctx, nil)
		wantErr(t, err, imap.ErrCommand, "already")
		mustOK(t)(c.Login(ctx, "u", "p")) // secure now: no InsecureAuth needed
		if _, err := c.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		tlsLines, _ := srv.Get("tls").([]string)
		if !slices.ContainsFunc(tlsLines, func(l string) bool { return strings.HasSuffix(l, " LOGIN u p") }) {
			t.Fatalf("lines over TLS %q", tlsLines)
		}
		if n := countCommand(srv, "LOGIN"); n != 0 {
			t.Fatalf("LOGIN sent in plaintext: %q", srv.Lines())
		}
	})
	t.Run("not advertised", func(t *testing.T) {
		srv, pool := startTLSServer(t, "", "TAG OK go\r\n")
		c := plain.connect(t, srv, opts(pool))
		err := c.StartTLS(ctx, nil)
		wantErr(t, err, imap.ErrAbort, "not supported")
		if countCommand(srv, "STARTTLS") != 0 {
			t.Fatal("STARTTLS sent")
		}
		if c.State() != imap.StateLogout {
			t.Fatalf("state %v", c.State())
		}
		_, err = c.Noop(ctx)
		wantErr(t, err, imap.ErrAbort)
	})
	for _, reply := range []string{"TAG NO not now\r\n", "TAG BAD what\r\n", "* BYE no\r\nTAG NO bye\r\n"} {
		t.Run("refused "+reply[:6], func(t *testing.T) {
			srv, pool := startTLSServer(t, "STARTTLS", reply)
			c := plain.connect(t, srv, opts(pool))
			err := c.StartTLS(ctx, nil)
			wantErr(t, err, imap.ErrAbort)
			_, err = c.Noop(ctx)
			wantErr(t, err, imap.ErrAbort)
			_, err = c.Login(ctx, "u", "p")
			wantErr(t, err, imap.ErrAbort)
			if n := len(srv.Lines()); n != 2 { // CAPABILITY, STARTTLS: never plaintext after
				t.Fatalf("server read %q", srv.Lines())
			}
		})
	}
	t.Run("bad certificate", func(t *testing.T) {
		srv, _ := startTLSServer(t, "STARTTLS", "TAG OK go\r\n")
		c := plain.connect(t, srv, opts(x509.NewCertPool()))
		err := c.StartTLS(ctx, nil)
		wantErr(t, err, imap.ErrAbort, "handshake")
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("error %q is not a verification error", err)
		}
		_, err = c.Noop(ctx)
		wantErr(t, err, imap.ErrAbort)
	})
	// Bytes sent right after the OK, before the handshake, are plaintext a
	// network attacker may have injected: the upgrade is aborted, and
	// nothing of them is parsed or cached.
	t.Run("injection", func(t *testing.T) {
		srv, pool := startTLSServer(t, "STARTTLS",
			"TAG OK Begin TLS\r\n* OK [ALERT] injected\r\n* CAPABILITY IMAP4rev1 INJECTED\r\n* 9 EXISTS\r\n")
		var trace bytes.Buffer
		o := opts(pool)
		o.Trace = &trace
		c := plain.connect(t, srv, o)
		err := c.StartTLS(ctx, nil)
		wantErr(t, err, imap.ErrAbort, "data after STARTTLS response: possible injection")
		if c.Has("INJECTED") || c.IsTLS() {
			t.Fatalf("after the abort: capabilities %q, TLS %v", c.Capabilities(), c.IsTLS())
		}
		for _, typ := range []string{"OK", "ALERT", "CAPABILITY", "EXISTS"} {
			if got := c.Cached(typ); len(got) != 0 {
				t.Fatalf("injected %s cached: %q", typ, texts(got))
			}
		}
		if strings.Contains(trace.String(), "injected") || strings.Contains(trace.String(), "INJECTED") {
			t.Fatalf("injected data parsed:\n%s", trace.String())
		}
	})
}

func TestDialStartTLS(t *testing.T) {
	t.Parallel()
	srv, pool := startTLSServer(t, "STARTTLS", "TAG OK go\r\n")
	c, err := imap.DialStartTLS(context.Background(), fmt.Sprintf("localhost:%d", srv.Port),
		&imap.Options{Timeout: testTimeout, TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	if !c.IsTLS() {
		t.Fatal("not TLS")
	}
	mustOK(t)(c.Login(context.Background(), "u", "p"))

	// PREAUTH on plaintext is refused.
	pre := plain.server(t, imaptest.Config{Greeting: "* PREAUTH hi", Capabilities: "STARTTLS"})
	_, err = imap.DialStartTLS(context.Background(), pre.Addr, &imap.Options{Timeout: testTimeout})
	wantErr(t, err, imap.ErrAbort, "PREAUTH")
}

// Credentials are refused on plaintext without InsecureAuth, and LOGIN on
// a server advertising LOGINDISABLED; nothing is sent.
func TestCredentialsGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("plaintext", func(t *testing.T) {
		srv := plain.server(t, imaptest.Config{Capabilities: "AUTH=PLAIN SASL-IR"})
		c := plain.connect(t, srv, &imap.Options{Timeout: testTimeout})
		_, err := c.Login(ctx, "u", "p")
		wantErr(t, err, imap.ErrCommand, "unencrypted")
		_, err = c.Authenticate(ctx, "PLAIN", fakeAuth)
		wantErr(t, err, imap.ErrCommand, "unencrypted")
		_, err = c.AuthenticateSASL(ctx, sasl.NewPlainClient("", "u", "p"))
		wantErr(t, err, imap.ErrCommand, "unencrypted")
		_, err = c.LoginCRAMMD5(ctx, "u", "p")
		wantErr(t, err, imap.ErrCommand, "unencrypted")
		if got := srv.Lines(); len(got) != 1 {
			t.Fatalf("sent %q", got)
		}
		mustOK(t)(c.Noop(ctx))
	})
	runTransports(t, func(t *testing.T, tr transport) {
		srv := tr.server(t, imaptest.Config{Capabilities: "LOGINDISABLED AUTH=CRAM-MD5",
			Commands: map[string]imaptest.CommandFunc{"AUTHENTICATE": imaptest.AuthCRAMMD5}})
		c := tr.connect(t, srv, nil)
		_, err := c.Login(ctx, "u", "p")
		wantErr(t, err, imap.ErrCommand, "LOGINDISABLED")
		if n := countCommand(srv, "LOGIN"); n != 0 {
			t.Fatalf("sent %d LOGIN", n)
		}
		mustOK(t)(c.LoginCRAMMD5(ctx, "tim", "tanstaaftanstaaf"))
	})
}

// saslServer's AUTHENTICATE stores the decoded initial response under
// "ir" (from the command line with SASL-IR, else after an empty "+"),
// and answers OK if it equals want, else sends an error challenge and NO
// after the client's reply.
func saslAuthenticate(want string) imaptest.CommandFunc {
	return func(s *imaptest.Session, tag, args string) {
		b64, inline, ok := initialResponse(s, args)
		if !ok {
			return
		}
		if inline {
			s.Server().Set("inline", true)
		}
		ir, _ := base64.StdEncoding.DecodeString(b64)
		s.Server().Set("ir", string(ir))
		if string(ir) == want {
			_ = s.Send(tag + " OK authenticated")
			return
		}
		if s.Send("+ "+base64.StdEncoding.EncodeToString([]byte(`{"status":"401"}`))) != nil {
			return
		}
		if _, err := s.ReadLine(); err != nil {
			return
		}
		_ = s.Send(tag + " NO [AUTHENTICATIONFAILED] invalid credentials")
	}
}

// Secrets (the LOGIN password, AUTHENTICATE payloads, XOAUTH2 tokens,
// PLAIN passwords) never appear in the trace, the log or error strings;
// SASL-IR is used when advertised.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const secret = "hunter2-S3CRET"
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	leaks := func(t *testing.T, where, text string, secrets ...string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains %q:\n%s", where, s, text)
			}
		}
	}
	newClient := func(t *testing.T, cfg imaptest.Config) (*imap.Client, *imaptest.Server, *bytes.Buffer, *bytes.Buffer) {
		srv := plain.server(t, cfg)
		var trace, logBuf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c := plain.connect(t, srv, &imap.Options{Timeout: testTimeout, InsecureAuth: true, Trace: &trace, Logger: logger})
		return c, srv, &trace, &logBuf
	}
	t.Run("LOGIN", func(t *testing.T) {
		c, srv, trace, logBuf := newClient(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
			"LOGIN": func(s *imaptest.Session, tag, _ string) { _ = s.Send(tag + " NO [AUTHENTICATIONFAILED] bad") },
		}})
		var errs []string
		for _, pw := range []string{secret, `"` + secret + `"`, secret + " x", secret + strings.Repeat("p", 2000), secret + "\r\n"} {
			_, err := c.Login(ctx, "alice", pw)
			wantErr(t, err, imap.ErrCommand)
			errs = append(errs, err.Error())
		}
		if !slices.ContainsFunc(srv.Lines(), func(l string) bool { return strings.Contains(l, secret) }) {
			t.Fatalf("the password never reached the server: %q", srv.Lines())
		}
		leaks(t, "trace", trace.String(), secret)
		leaks(t, "log", logBuf.String(), secret)
		leaks(t, "errors", strings.Join(errs, "\n"), secret)
		if !strings.Contains(trace.String(), "LOGIN alice") {
			t.Fatalf("no LOGIN in trace:\n%s", trace)
		}
	})
	t.Run("AUTHENTICATE", func(t *testing.T) {
		c, srv, trace, logBuf := newClient(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
			"AUTHENTICATE": saslAuthenticate("nope"),
		}})
		_, err := c.Authenticate(ctx, "X-CUSTOM", func(ch []byte) ([]byte, error) { return []byte(secret), nil })
		wantErr(t, err, imap.ErrCommand, "invalid credentials")
		if srv.Get("ir") != secret {
			t.Fatalf("server got %q", srv.Get("ir"))
		}
		leaks(t, "trace", trace.String(), secret, b64(secret))
		leaks(t, "log", logBuf.String(), secret, b64(secret))
		leaks(t, "error", err.Error(), secret, b64(secret))
	})
	for _, caps := range []string{"AUTH=PLAIN AUTH=XOAUTH2 SASL-IR", "AUTH=PLAIN AUTH=XOAUTH2"} {
		irWanted := strings.Contains(caps, "SASL-IR")
		for _, mech := range []struct {
			name   string
			client func() sasl.Client
			ir     string
		}{
			{"PLAIN", func() sasl.Client { return sasl.NewPlainClient("", "alice", secret) }, "\x00alice\x00" + secret},
			{"XOAUTH2", func() sasl.Client { return imap.NewXOAuth2Client("alice", secret) }, "user=alice\x01auth=Bearer " + secret + "\x01\x01"},
		} {
			for _, succeed := range []bool{true, false} {
				name := fmt.Sprintf("%s/SASL-IR=%v/ok=%v", mech.name, irWanted, succeed)
				t.Run(name, func(t *testing.T) {
					want := mech.ir
					if !succeed {
						want = "something else"
					}
					c, srv, trace, logBuf := newClient(t, imaptest.Config{Capabilities: caps,
						Commands: map[string]imaptest.CommandFunc{"AUTHENTICATE": saslAuthenticate(want)}})
					res, err := c.AuthenticateSASL(ctx, mech.client())
					if succeed {
						mustOK(t)(res, err)
						if c.State() != imap.StateAuth {
							t.Fatalf("state %v", c.State())
						}
					} else {
						wantErr(t, err, imap.ErrCommand, "invalid credentials")
						leaks(t, "error", err.Error(), secret, b64(mech.ir))
						mustOK(t)(c.Noop(ctx)) // the exchange ended cleanly
					}
					if got := srv.Get("ir"); got != mech.ir {
						t.Fatalf("server decoded %q, want %q", got, mech.ir)
					}
					if inline, _ := srv.Get("inline").(bool); inline != irWanted {
						t.Fatalf("initial response inline=%v with caps %q", inline, caps)
					}
					leaks(t, "trace", trace.String(), secret, b64(mech.ir))
					leaks(t, "log", logBuf.String(), secret, b64(mech.ir))
				})
			}
		}
	}
}

// initialResponse reads the SASL initial response of an AUTHENTICATE whose
// arguments are args: sent with the command (SASL-IR; inline) or, after an
// empty "+ " continuation, on a line of its own. ok is false when the
// connection failed.
func initialResponse(s *imaptest.Session, args string) (b64 string, inline, ok bool) {
	if f := strings.Fields(args); len(f) > 1 {
		return f[1], true, true
	}
	if s.Send("+ ") != nil {
		return "", false, false
	}
	line, err := s.ReadLine()
	return line, false, err == nil
}
