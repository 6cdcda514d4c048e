package imap_test

// Every bound the client puts on what a server may send, each hit on
// purpose: the exact error kind and message, and whether the connection
// survives (a command error) or not (an abort, only when the stream can no
// longer be trusted). See docs/robustness.md for the table.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
	"github.com/imapkit/imap/internal/wire"
)

// wantExact checks err's kind and its whole message.
func wantExact(t *testing.T, err, kind error, msg string) {
	t.Helper()
	wantErr(t, err, kind)
	if err.Error() != msg {
		t.Fatalf("error\n%q, want\n%q", err, msg)
	}
}

// limitClient returns a logged-in client of a server whose NOOP sends the
// bytes stored under "noop" (TAG replaced, one write) and whose IDLE sends
// those under "idle" before waiting for DONE.
func limitClient(t *testing.T, opts imap.Options) (*imap.Client, *imaptest.Server) {
	t.Helper()
	send := func(key string) func(s *imaptest.Session, tag string) {
		return func(s *imaptest.Session, tag string) {
			b, _ := s.Server().Get(key).(string)
			_ = s.Write([]byte(strings.ReplaceAll(b, "TAG", tag)))
		}
	}
	srv := plain.server(t, imaptest.Config{Capabilities: "IDLE", Commands: map[string]imaptest.CommandFunc{
		"NOOP":  func(s *imaptest.Session, tag, _ string) { send("noop")(s, tag) },
		"FETCH": func(s *imaptest.Session, tag, _ string) { send("noop")(s, tag) },
		"LIST":  func(s *imaptest.Session, tag, _ string) { send("noop")(s, tag) },
		"IDLE":  idleCmd(send("idle")),
	}})
	if opts.Timeout == 0 {
		opts.Timeout = testTimeout
	}
	opts.InsecureAuth = true
	c := plain.connect(t, srv, &opts)
	login(t, c)
	mustOK(t)(c.Select(context.Background(), "INBOX", false))
	c.Response("EXISTS") // an empty cache
	c.Response("READ-WRITE")
	return c, srv
}

func TestLimitDefaults(t *testing.T) {
	t.Parallel()
	if imap.DefaultTimeout != 60*time.Second || imap.DefaultMaxLine != 1_000_000 || imap.DefaultMaxLiteral != 1<<30 ||
		imap.DefaultMaxResponseLiterals != 16<<20 || imap.DefaultMaxCached != 1_000_000 || imap.MaxNesting != 100 {
		t.Fatal("a default changed: update docs/robustness.md")
	}
}

// MaxLine: a longer line is skipped and reported as a command error; the
// connection stays usable. If the line announced a literal, its bytes
// cannot be told from lines: abort.
func TestLimitMaxLine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, srv := limitClient(t, imap.Options{MaxLine: 100})
	srv.Set("noop", "* 1 EXISTS\r\n* OK "+strings.Repeat("x", 96)+"\r\n* 2 EXISTS\r\nTAG OK done\r\n") // 101 bytes
	_, err := c.Noop(ctx)
	wantExact(t, err, imap.ErrCommand, "imap: NOOP: got more than 100 bytes: line too long")
	if !errors.Is(err, wire.ErrLineTooLong) {
		t.Fatal("not ErrLineTooLong")
	}
	srv.Set("noop", "* OK "+strings.Repeat("x", 95)+"\r\nTAG OK done\r\n") // exactly 100 bytes
	mustOK(t)(c.Noop(ctx))
	if got := texts(c.Response("EXISTS").Data); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("EXISTS %q", got)
	}
	srv.Set("noop", "* 1 FETCH (BODY[] "+strings.Repeat("x", 200)+" {12}\r\n* 7 EXISTS\r\n)\r\nTAG OK done\r\n")
	_, err = c.Noop(ctx)
	wantExact(t, err, imap.ErrAbort, "imap: NOOP: connection aborted: line too long, ending in a literal: got more than 100 bytes")
	if len(c.Cached("EXISTS")) != 0 {
		t.Fatal("the literal was parsed as responses")
	}
}

// A line that never ends is skipped only up to 16 × (MaxLine + 1 KiB)
// bytes; past that the stream is given up on.
func TestLimitMaxLineEndless(t *testing.T) {
	t.Parallel()
	c, srv := limitClient(t, imap.Options{MaxLine: 100})
	srv.Set("noop", "* OK "+strings.Repeat("x", 40_000))
	_, err := c.Noop(context.Background())
	wantExact(t, err, imap.ErrAbort, "imap: NOOP: connection aborted: socket error: unterminated line: more than 17984 bytes without a line end")
}

// A server trickling an over-long line keeps each read within Timeout, so
// the timeout alone would never end it: past MaxLine, the rest of the line
// must arrive within one Timeout.
func TestLimitMaxLineTrickle(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"NOOP": func(s *imaptest.Session, tag, _ string) {
			_ = s.Write([]byte("* OK "))
			for s.Write([]byte("x")) == nil {
				s.Sleep(20 * time.Millisecond)
			}
		},
	}})
	c := plain.connect(t, srv, &imap.Options{Timeout: 300 * time.Millisecond, MaxLine: 40})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // caps the test
	defer cancel()
	_, err := c.Noop(ctx)
	wantErr(t, err, imap.ErrAbort)
	if !strings.HasPrefix(err.Error(), "imap: NOOP: connection aborted: a line longer than MaxLine (40 bytes) did not end within the timeout (300ms): ") ||
		!errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("error %q", err)
	}
	// 40 bytes at 50 per second, then the timeout.
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}

// A command's own tagged completion longer than MaxLine ends the command
// at once with the command error (waiting on would only time out), and the
// connection stays usable.
func TestLimitMaxLineCompletion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, srv := limitClient(t, imap.Options{MaxLine: 100, Timeout: 2 * time.Second})
	srv.Set("noop", "* 1 EXISTS\r\nTAG OK "+strings.Repeat("x", 200)+"\r\n")
	start := time.Now()
	_, err := c.Noop(ctx)
	wantExact(t, err, imap.ErrCommand, "imap: NOOP: got more than 100 bytes: line too long")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
	srv.Set("noop", "TAG OK done\r\n")
	mustOK(t)(c.Noop(ctx))
}

// While the client waits for "+" to send a literal, an over-long line that
// is not the command's completion leaves the exchange in an unknown state:
// abort. The command's own completion, too long, is a command error.
func TestLimitMaxLineBeforeLiteral(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pass := strings.Repeat("p", 2000) // sent as a synchronizing literal
	for _, tc := range []struct {
		reply string
		kind  error
		msg   string
	}{
		{"TAG NO " + strings.Repeat("n", 200) + "\r\n", imap.ErrCommand, "imap: LOGIN: got more than 100 bytes: line too long"},
		{"* OK " + strings.Repeat("o", 200) + "\r\n+ go\r\n", imap.ErrAbort, "imap: LOGIN: connection aborted: line too long while waiting to send a literal: got more than 100 bytes"},
	} {
		srv := plain.server(t, imaptest.Config{RawLiterals: true, Commands: map[string]imaptest.CommandFunc{
			"LOGIN": func(s *imaptest.Session, tag, _ string) {
				_ = s.Write([]byte(strings.ReplaceAll(tc.reply, "TAG", tag)))
			},
		}})
		c := plain.connect(t, srv, &imap.Options{Timeout: 2 * time.Second, MaxLine: 100, InsecureAuth: true})
		_, err := c.Login(ctx, "alice", pass)
		wantExact(t, err, tc.kind, tc.msg)
		if tc.kind == imap.ErrCommand {
			mustOK(t)(c.Noop(ctx))
		}
	}
}

// MaxLiteral bounds one literal, of FETCH data too.
func TestLimitMaxLiteral(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, srv := limitClient(t, imap.Options{MaxLiteral: 1000})
	srv.Set("noop", "* 1 FETCH (BODY[] {1000}\r\n"+strings.Repeat("a", 1000)+")\r\nTAG OK done\r\n")
	res := mustOK(t)(c.Fetch(ctx, "1", "BODY[]"))
	if len(res.Data) != 2 || len(res.Data[0].Literal) != 1000 {
		t.Fatalf("fetch %q", texts(res.Data))
	}
	srv.Set("noop", "* 1 FETCH (BODY[] {1001}\r\n"+strings.Repeat("a", 1001)+")\r\nTAG OK done\r\n")
	_, err := c.Fetch(ctx, "1", "BODY[]")
	wantExact(t, err, imap.ErrAbort, "imap: FETCH: connection aborted: server sent a literal of 1001 bytes (limit 1000): literal too large")
	if !errors.Is(err, wire.ErrLiteralLimit) {
		t.Fatal("not ErrLiteralLimit")
	}
	// A size no int64 holds is a literal too, and over any limit.
	c, srv = limitClient(t, imap.Options{})
	srv.Set("noop", "* 1 FETCH (BODY[] {99999999999999999999999}\r\n")
	_, err = c.Fetch(ctx, "1", "BODY[]")
	wantExact(t, err, imap.ErrAbort, "imap: FETCH: connection aborted: server sent a literal of 9223372036854775807 bytes (limit 1073741824): literal too large")
}

// MaxResponseLiterals bounds the sum of the literals of one response that
// is not FETCH data (a LIST, a greeting, an ENVELOPE-less response...).
func TestLimitMaxResponseLiterals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lit := strings.Repeat("m", 600)
	c, srv := limitClient(t, imap.Options{MaxResponseLiterals: 1000})
	// FETCH data is exempt: three 600-byte literals in one response.
	srv.Set("noop", "* 1 FETCH (BODY[1] {600}\r\n"+lit+" BODY[2] {600}\r\n"+lit+" BODY[3] {600}\r\n"+lit+")\r\nTAG OK done\r\n")
	mustOK(t)(c.Fetch(ctx, "1", "BODY[]"))
	srv.Set("noop", "* LIST () \"/\" {600}\r\n"+lit+"\r\n* LIST () \"/\" {600}\r\n"+lit+"\r\nTAG OK done\r\n")
	mustOK(t)(c.List(ctx, "", "*")) // per response, not per command
	srv.Set("noop", "* LIST () {600}\r\n"+lit+" {600}\r\n"+lit+"\r\nTAG OK done\r\n")
	_, err := c.List(ctx, "", "*")
	wantExact(t, err, imap.ErrAbort, "imap: LIST: connection aborted: server sent a literal of 600 bytes (limit 400): literal too large")
}

// MaxCached bounds the untagged data kept for Response: a flood drops the
// oldest half of the biggest list and counts it; no error.
func TestLimitMaxCached(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, srv := limitClient(t, imap.Options{MaxCached: 100})
	var b strings.Builder
	for i := 1; i <= 500; i++ {
		fmt.Fprintf(&b, "* %d EXISTS\r\n", i)
	}
	srv.Set("noop", b.String()+"TAG OK done\r\n")
	mustOK(t)(c.Noop(ctx))
	got := texts(c.Cached("EXISTS"))
	if len(got) != 100 || got[0] != "401" || got[99] != "500" || c.Dropped() != 400 {
		t.Fatalf("kept %d (%q...%q), dropped %d", len(got), got[0], got[len(got)-1], c.Dropped())
	}
}

// The cache also holds at most 256 response types: a server inventing
// names cannot make it grow (or lookups slow). What is evicted counts as
// dropped.
func TestLimitCachedTypes(t *testing.T) {
	t.Parallel()
	c, srv := limitClient(t, imap.Options{})
	var b strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "* X-T%03d v\r\n", i)
	}
	srv.Set("noop", b.String()+"TAG OK done\r\n")
	mustOK(t)(c.Noop(context.Background()))
	if len(c.Cached("X-T043")) != 0 || len(c.Cached("X-T044")) != 1 || len(c.Cached("X-T299")) != 1 {
		t.Fatal("not the newest 256 types")
	}
	if c.Dropped() != 44 {
		t.Fatalf("dropped %d, want 44", c.Dropped())
	}
}

// While IDLE starts, responses before the "+" are queued for the Idler:
// MaxCached bounds that queue as it bounds the cache.
func TestLimitIdleQueue(t *testing.T) {
	t.Parallel()
	c, srv := limitClient(t, imap.Options{MaxCached: 100})
	var b strings.Builder
	for i := 1; i <= 500; i++ {
		fmt.Fprintf(&b, "* %d EXISTS\r\n", i)
	}
	srv.Set("idle", b.String()+"+ idling\r\n")
	id, err := c.Idle(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		r, ok, err := id.Next(0)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, texts(r.Data)...)
	}
	if err := id.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) > 100 || got[len(got)-1] != "500" || c.Dropped()+len(got) != 500 {
		t.Fatalf("delivered %d (last %q), dropped %d", len(got), got[len(got)-1], c.Dropped())
	}
}

// One response captured by an Idler is bounded too: a FETCH of endless
// empty literals cannot grow without limit. Its parts cannot be dropped
// without corrupting it: abort.
func TestLimitIdleResponseParts(t *testing.T) {
	t.Parallel()
	c, srv := limitClient(t, imap.Options{MaxCached: 100})
	srv.Set("idle", "+ idling\r\n* 1 FETCH (X-A"+strings.Repeat(" {0}\r\n", 200)+")\r\n")
	id, err := c.Idle(context.Background(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = id.Next(time.Second)
	wantExact(t, err, imap.ErrAbort, "imap: IDLE: connection aborted: response FETCH has more than 100 literals (MaxCached)")
	// The same response outside IDLE goes to the cache, whose bound drops
	// its oldest parts.
	c, srv = limitClient(t, imap.Options{MaxCached: 100})
	srv.Set("noop", "* 1 FETCH (X-A"+strings.Repeat(" {0}\r\n", 200)+")\r\nTAG OK done\r\n")
	mustOK(t)(c.Noop(context.Background()))
	if n := len(c.Cached("FETCH")); n > 100 || c.Dropped() == 0 {
		t.Fatalf("cached %d, dropped %d", n, c.Dropped())
	}
}

// MaxNesting bounds how deeply the typed parsers follow nested lists.
func TestLimitMaxNesting(t *testing.T) {
	t.Parallel()
	parse := func(depth int) error {
		// The FETCH list itself is the first level.
		v := strings.Repeat("(", depth-1) + strings.Repeat(")", depth-1)
		_, err := imap.ParseFetchResponse(imap.Response{Type: "FETCH", Data: []imap.Datum{{Text: []byte("1 (X-DEEP " + v + " UID 5)")}}})
		return err
	}
	if err := parse(imap.MaxNesting); err != nil {
		t.Fatalf("depth %d: %v", imap.MaxNesting, err)
	}
	err := parse(imap.MaxNesting + 1)
	var pe *imap.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v", err)
	}
	off := len("1 (X-DEEP ") + imap.MaxNesting - 1
	if want := "imap: parse FETCH 1: X-DEEP: lists nested more than 100 deep at offset " + strconv.Itoa(off); err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	// BODYSTRUCTURE recursion is bounded by the same count.
	bs := strings.Repeat(`(`, 200) + `"text" "plain" NIL NIL NIL "7bit" 1 1` + strings.Repeat(` "mixed")`, 200)
	_, err = imap.ParseFetchResponse(imap.Response{Type: "FETCH", Data: []imap.Datum{{Text: []byte("1 (BODYSTRUCTURE " + bs + ")")}}})
	if err == nil || !strings.Contains(err.Error(), "lists nested more than 100 deep") {
		t.Fatalf("deep BODYSTRUCTURE: %v", err)
	}
}

// Timeout bounds each wait for progress: a stall mid-response aborts after
// about Timeout.
func TestLimitTimeout(t *testing.T) {
	t.Parallel()
	c, srv := limitClient(t, imap.Options{Timeout: 200 * time.Millisecond})
	srv.Set("noop", "* 1 EXI")
	start := time.Now()
	_, err := c.Noop(context.Background())
	d := time.Since(start)
	wantErr(t, err, imap.ErrAbort)
	if !strings.HasPrefix(err.Error(), "imap: NOOP: connection aborted: timed out waiting for the server: ") || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("error %q", err)
	}
	if d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("stall detected after %v", d)
	}
}

// TestLimitMaxNestingConfigurable: Parser.MaxNesting (and through it
// Options.MaxNesting) moves the bound both ways.
func TestLimitMaxNestingConfigurable(t *testing.T) {
	nested := func(depth int) []imap.Datum {
		body := strings.Repeat("(", depth-1) + `"text" "plain" NIL NIL NIL "7bit" 1 1` + strings.Repeat(")", depth-1)
		return []imap.Datum{{Text: []byte("1 (BODYSTRUCTURE " + body + ")")}}
	}
	for _, tc := range []struct {
		limit, depth int
		ok           bool
	}{
		{5, 5, true},
		{5, 6, false},
		{0, imap.MaxNesting, true},
		{0, imap.MaxNesting + 1, false},
		{300, 250, true},
	} {
		_, err := imap.Parser{MaxNesting: tc.limit}.ParseFetch(nested(tc.depth))
		if ok := err == nil; ok != tc.ok {
			t.Errorf("limit %d, depth %d: err %v", tc.limit, tc.depth, err)
		} else if !ok && !strings.Contains(err.Error(), "nested more than") {
			t.Errorf("limit %d, depth %d: unexpected error %v", tc.limit, tc.depth, err)
		}
	}
}

// floodChildEnv runs TestLimitCachedBytesFlood's measurement in a child
// process, whose peak RSS (VmHWM) is its own.
const floodChildEnv = "IMAPKIT_FLOOD_CHILD"

// MaxCachedBytes bounds the unsolicited data kept during a command: a
// server sending 200 MB of "* OK [ALERT] ..." during SELECT leaves the
// SELECT successful, the flood counted as dropped, and the process far
// below the 200 MB it was sent. Peak RSS is the honest measure (what the
// kernel had to give, garbage not yet collected included), so the flood
// runs in a child process, which reads its own VmHWM.
func TestLimitCachedBytesFlood(t *testing.T) {
	if os.Getenv(floodChildEnv) != "" {
		floodChild(t)
		return
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc/self/status to read peak RSS from")
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLimitCachedBytesFlood$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), floodChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	i := strings.Index(string(out), "FLOOD ")
	if i < 0 {
		t.Fatalf("child printed no measurement:\n%s", out)
	}
	var peak, dropped int
	if _, err := fmt.Sscanf(string(out[i:]), "FLOOD peak=%d dropped=%d", &peak, &dropped); err != nil {
		t.Fatalf("child output: %v\n%s", err, out)
	}
	t.Logf("200 MB of ALERTs during SELECT: peak RSS %d MiB, %d data dropped", peak>>20, dropped)
	if raceEnabled {
		return // the race detector's shadow memory: no RSS bound to check
	}
	if peak > 150<<20 {
		t.Errorf("peak RSS %d MiB, want at most 150 MiB", peak>>20)
	}
}

func floodChild(t *testing.T) {
	const total, lineLen = 200 << 20, 1000
	line := "* OK [ALERT] " + strings.Repeat("x", lineLen-len("* OK [ALERT] ")-2) + "\r\n"
	chunk := []byte(strings.Repeat(line, (1<<20)/lineLen)) // written again and again: the server's memory stays small
	srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"SELECT": func(s *imaptest.Session, tag, _ string) {
			s.SetSelected(true)
			_ = s.Send("* FLAGS (\\Seen)", "* 3 EXISTS")
			for sent := 0; sent < total; sent += len(chunk) {
				if s.Write(chunk) != nil {
					return
				}
			}
			_ = s.Send("* OK [UIDVALIDITY 7] ok", tag+" OK [READ-WRITE] done")
		},
	}})
	c := plain.connect(t, srv, &imap.Options{InsecureAuth: true, Timeout: testTimeout})
	login(t, c)
	res, err := c.Select(context.Background(), "INBOX", false)
	if err != nil || !reflect.DeepEqual(texts(res.Data), []string{"3"}) {
		t.Fatalf("SELECT = %q, %v", texts(res.Data), err)
	}
	if got := texts(c.Cached("UIDVALIDITY")); !reflect.DeepEqual(got, []string{"7"}) {
		t.Fatalf("UIDVALIDITY = %q", got)
	}
	if c.Dropped() == 0 {
		t.Fatal("nothing dropped")
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var peak int
	for l := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			peak = kb << 10
		}
	}
	fmt.Printf("FLOOD peak=%d dropped=%d\n", peak, c.Dropped())
}
