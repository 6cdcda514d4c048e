package imap_test

// FetchEach, FetchEachMessage and the streaming FetchMessages through the
// scripted server: the responses handed over are exactly what Fetch
// returns, other untagged data survives the reuse of the read buffer, a
// failing or panicking function leaves the connection in a known state,
// and memory does not grow with the size of the response.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

// bigFetch writes n FETCH responses, every third with literals, and an
// EXISTS and an EXPUNGE in the middle, then completes the command. The
// bytes are prepared once, so that serving them allocates little.
func bigFetch(n int) imaptest.CommandFunc {
	body := []byte(bigFetchBody(n))
	return func(s *imaptest.Session, tag, _ string) {
		for rest := body; len(rest) > 0; {
			k := min(len(rest), 32<<10)
			if s.Write(rest[:k]) != nil {
				return
			}
			rest = rest[k:]
		}
		_ = s.Send(tag + " OK FETCH completed")
	}
}

func bigFetchBody(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		switch i % 3 {
		case 0:
			subj := fmt.Sprintf("Grüße %d", i)
			fmt.Fprintf(&b, "* %d FETCH (UID %d ENVELOPE (\"d\" {%d}\r\n%s ((NIL NIL \"a\" \"x\")) NIL NIL NIL NIL NIL NIL NIL) BODY[] {%d}\r\nbody %d\r\n)\r\n",
				i, 100+i, len(subj), subj, len(fmt.Sprintf("body %d\r\n", i)), i)
		default:
			fmt.Fprintf(&b, "* %d FETCH (UID %d FLAGS (\\Seen) RFC822.SIZE %d)\r\n", i, 100+i, 1000+i)
		}
		if i == n/2 {
			b.WriteString("* 4242 EXISTS\r\n* 7 EXPUNGE\r\n")
		}
	}
	return b.String()
}

func bigFetchClient(t *testing.T, n int, extra map[string]imaptest.CommandFunc) *imap.Client {
	t.Helper()
	cmds := map[string]imaptest.CommandFunc{"FETCH": bigFetch(n), "UID": bigFetch(n)}
	for k, v := range extra {
		cmds[k] = v
	}
	srv := plain.server(t, imaptest.Config{Commands: cmds})
	c := plain.connect(t, srv, nil)
	login(t, c)
	mustOK(t)(c.Select(context.Background(), "INBOX", false))
	return c
}

// deepCopy returns data with every byte copied, so that it can be kept
// past a FetchEach call.
func deepCopy(data []imap.Datum) []imap.Datum {
	out := make([]imap.Datum, len(data))
	for i, d := range data {
		out[i].Text = slices.Clone(d.Text)
		if d.Literal != nil {
			out[i].Literal = append([]byte{}, d.Literal...)
		}
	}
	return out
}

func TestFetchEachMatchesFetch(t *testing.T) {
	t.Parallel()
	const n = 3000 // about 150 KiB: the read buffer is reused many times
	c := bigFetchClient(t, n, nil)
	ctx := context.Background()
	c.Response("EXISTS") // SELECT's
	res := mustOK(t)(c.Fetch(ctx, "1:*", "(UID)"))
	wantExists := texts(c.Response("EXISTS").Data)
	wantExpunge := texts(c.Response("EXPUNGE").Data)

	for _, uid := range []bool{false, true} {
		var got []imap.Datum
		responses := 0
		fn := func(r imap.Response) error {
			if r.Type != "FETCH" {
				t.Errorf("type %q", r.Type)
			}
			responses++
			got = append(got, deepCopy(r.Data)...)
			return nil
		}
		var each imap.Result
		var err error
		if uid {
			each, err = c.UIDFetchEach(ctx, "1:*", "(UID)", fn)
		} else {
			each, err = c.FetchEach(ctx, "1:*", "(UID)", fn)
		}
		if err != nil {
			t.Fatal(err)
		}
		if each.Status != "OK" || len(each.Data) != 0 {
			t.Errorf("result %q with %d data, want OK and none", each.Status, len(each.Data))
		}
		if responses != n {
			t.Errorf("%d responses handed over, want %d", responses, n)
		}
		if g, w := repr("FETCH", got), repr("FETCH", res.Data); g != w {
			t.Fatalf("FetchEach data differs from Fetch's:\n got %.300s\nwant %.300s", g, w)
		}
		// Data cached during FetchEach was copied before the buffer was
		// reused for later responses.
		if got := texts(c.Response("EXISTS").Data); !slices.Equal(got, wantExists) {
			t.Errorf("EXISTS after FetchEach %q, want %q", got, wantExists)
		}
		if got := texts(c.Response("EXPUNGE").Data); !slices.Equal(got, wantExpunge) {
			t.Errorf("EXPUNGE after FetchEach %q, want %q", got, wantExpunge)
		}
	}
	mustOK(t)(c.Noop(ctx))
}

func TestFetchMessagesStreamsLikeParseFetch(t *testing.T) {
	t.Parallel()
	const n = 3000
	c := bigFetchClient(t, n, nil)
	ctx := context.Background()
	res := mustOK(t)(c.Fetch(ctx, "1:*", "(UID)"))
	want, err := imap.ParseFetch(res.Data)
	if err != nil {
		t.Fatal(err)
	}
	collect := func(each func(context.Context, string, string, func(*imap.Message) error) error) func(context.Context, string, string) ([]*imap.Message, error) {
		return func(ctx context.Context, set, items string) ([]*imap.Message, error) {
			var msgs []*imap.Message
			err := each(ctx, set, items, func(m *imap.Message) error {
				msgs = append(msgs, m) // the message is ours to keep
				return nil
			})
			return msgs, err
		}
	}
	for _, form := range []struct {
		name  string
		fetch func(context.Context, string, string) ([]*imap.Message, error)
	}{
		{"FetchMessages", c.FetchMessages},
		{"UIDFetchMessages", c.UIDFetchMessages},
		{"FetchEachMessage", collect(c.FetchEachMessage)},
		{"UIDFetchEachMessage", collect(c.UIDFetchEachMessage)},
	} {
		got, err := form.fetch(ctx, "1:*", "(UID)")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s gave %d messages, differing from ParseFetch's %d", form.name, len(got), len(want))
		}
		// Nothing of the messages lives in the read buffer: another big
		// command overwrites it, and the messages stay the same.
		mustOK(t)(c.Fetch(ctx, "1:*", "(UID)"))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: messages changed when the read buffer was reused", form.name)
		}
		last := got[n-1]
		if s, ok := last.FindSection("BODY[]"); !ok || string(s.Data) != fmt.Sprintf("body %d\r\n", n) {
			t.Fatalf("%s: last message's BODY[] %q", form.name, s.Data)
		}
	}
}

// TestFetchEachMessageBoundedLiveMemory checks that FetchEachMessage holds
// one message at a time: the memory still in use when the last message is
// handed over does not grow with the number of messages.
func TestFetchEachMessageBoundedLiveMemory(t *testing.T) {
	live := func(n int) int64 {
		c := bigFetchClient(t, n, nil)
		ctx := context.Background()
		var before, last runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		seen := 0
		err := c.FetchEachMessage(ctx, "1:*", "(UID FLAGS)", func(*imap.Message) error {
			if seen++; seen == n {
				runtime.GC()
				runtime.ReadMemStats(&last)
			}
			return nil
		})
		if err != nil || seen != n {
			t.Fatalf("%d messages, %v", seen, err)
		}
		return int64(last.HeapAlloc) - int64(before.HeapAlloc)
	}
	small, large := live(2000), live(20000)
	t.Logf("in use at the last message: %d bytes of 2,000, %d of 20,000", small, large)
	// 20,000 kept messages would be over 3 MiB.
	if large > small+512<<10 {
		t.Fatalf("%d bytes in use at the last of 20,000 messages, %d at the last of 2,000: messages are kept", large, small)
	}
}

// TestFetchEachFunctionError checks, for FetchEach and FetchEachMessage,
// that the function is not called after its error, the error comes back
// as ErrCommand, and the rest of the response is read.
func TestFetchEachFunctionError(t *testing.T) {
	t.Parallel()
	stop := errors.New("enough")
	for _, form := range []struct {
		name string
		run  func(c *imap.Client, call func() error) error
	}{
		{"FetchEach", func(c *imap.Client, call func() error) error {
			_, err := c.FetchEach(context.Background(), "1:*", "(UID)", func(imap.Response) error { return call() })
			return err
		}},
		{"FetchEachMessage", func(c *imap.Client, call func() error) error {
			return c.FetchEachMessage(context.Background(), "1:*", "(UID)", func(*imap.Message) error { return call() })
		}},
	} {
		t.Run(form.name, func(t *testing.T) {
			c := bigFetchClient(t, 500, nil)
			calls := 0
			err := form.run(c, func() error {
				if calls++; calls == 10 {
					return stop
				}
				return nil
			})
			if !errors.Is(err, stop) || !errors.Is(err, imap.ErrCommand) {
				t.Fatalf("error %v: want the function's error, as ErrCommand", err)
			}
			if calls != 10 {
				t.Errorf("function called %d times after failing at 10", calls)
			}
			// The rest of the response was read: the next command works.
			mustOK(t)(c.Noop(context.Background()))
			if got := texts(c.Response("EXISTS").Data); !slices.Contains(got, "4242") {
				t.Errorf("EXISTS after the failed function %q: the rest of the response was not read", got)
			}
		})
	}
}

func TestFetchEachFunctionPanic(t *testing.T) {
	t.Parallel()
	c := bigFetchClient(t, 500, nil)
	ctx := context.Background()
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Fatalf("recovered %v, want the function's panic", p)
			}
		}()
		c.FetchEach(ctx, "1:*", "(UID)", func(imap.Response) error { panic("boom") })
	}()
	// Half a response was left unread: the connection must not be used.
	if _, err := c.Noop(ctx); !errors.Is(err, imap.ErrAbort) {
		t.Fatalf("NOOP after a panic in the function: %v, want ErrAbort", err)
	}
}

func TestFetchEachRefusals(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"FETCH": func(s *imaptest.Session, tag, _ string) {
			_ = s.Send("* 1 FETCH (UID 5)", tag+" NO some messages could not be fetched")
		},
	}})
	c := plain.connect(t, srv, nil)
	login(t, c)
	ctx := context.Background()
	mustOK(t)(c.Select(ctx, "INBOX", false))
	if _, err := c.FetchEach(ctx, "1:*", "(UID)", nil); !errors.Is(err, imap.ErrCommand) {
		t.Errorf("nil function: %v", err)
	}
	if _, err := c.FetchEach(ctx, "1:*\r\nA LOGOUT", "(UID)", func(imap.Response) error { return nil }); !errors.Is(err, imap.ErrCommand) {
		t.Errorf("CRLF in the set: %v", err)
	}
	n := 0
	_, err := c.FetchEach(ctx, "1:*", "(UID)", func(imap.Response) error { n++; return nil })
	var e *imap.Error
	if !errors.As(err, &e) || e.Status != "NO" || n != 1 {
		t.Errorf("NO completion: %v after %d responses", err, n)
	}
	msgs, err := c.FetchMessages(ctx, "1:*", "(UID)")
	if !errors.Is(err, imap.ErrCommand) || len(msgs) != 1 || msgs[0].UID != 5 {
		t.Errorf("FetchMessages on NO: %d messages, %v; want the one received and the error", len(msgs), err)
	}
	if err := c.FetchEachMessage(ctx, "1:*", "(UID)", nil); !errors.Is(err, imap.ErrCommand) {
		t.Errorf("FetchEachMessage, nil function: %v", err)
	}
	var uids []uint32
	err = c.FetchEachMessage(ctx, "1:*", "(UID)", func(m *imap.Message) error { uids = append(uids, m.UID); return nil })
	if !errors.Is(err, imap.ErrCommand) || !slices.Equal(uids, []uint32{5}) {
		t.Errorf("FetchEachMessage on NO: UIDs %v, %v; want the one received and the error", uids, err)
	}
}

// TestFetchEachMessageSkipsMalformed checks that a response that does not
// parse is skipped, the others are handed over, and the first parse error
// is returned once the command has completed.
func TestFetchEachMessageSkipsMalformed(t *testing.T) {
	t.Parallel()
	srv := plain.server(t, imaptest.Config{Commands: map[string]imaptest.CommandFunc{
		"FETCH": func(s *imaptest.Session, tag, _ string) {
			_ = s.Send("* 1 FETCH (UID 5)", "* 2 FETCH (UID five)", "* 3 FETCH (UID 7)", tag+" OK done")
		},
	}})
	c := plain.connect(t, srv, nil)
	login(t, c)
	ctx := context.Background()
	mustOK(t)(c.Select(ctx, "INBOX", false))
	var uids []uint32
	err := c.FetchEachMessage(ctx, "1:*", "(UID)", func(m *imap.Message) error { uids = append(uids, m.UID); return nil })
	var pe *imap.ParseError
	if !errors.As(err, &pe) || pe.Seq != 2 {
		t.Errorf("error %v, want a *ParseError for message 2", err)
	}
	if !slices.Equal(uids, []uint32{5, 7}) {
		t.Errorf("UIDs handed over %v, want [5 7]", uids)
	}
	mustOK(t)(c.Noop(ctx))
}

// TestFetchEachBoundedMemory checks that what FetchEach allocates does not
// grow with the response: a 10x larger response costs about the same.
func TestFetchEachBoundedMemory(t *testing.T) {
	alloc := func(n int) uint64 {
		c := bigFetchClient(t, n, nil)
		ctx := context.Background()
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		_, err := c.FetchEach(ctx, "1:*", "(UID)", func(imap.Response) error { return nil })
		runtime.ReadMemStats(&m1)
		if err != nil {
			t.Fatal(err)
		}
		return m1.TotalAlloc - m0.TotalAlloc
	}
	small, large := alloc(2000), alloc(20000) // about 100 KiB and 1 MiB of responses
	t.Logf("allocated %d bytes for 2,000 responses, %d for 20,000", small, large)
	// The scripted server runs in this process and allocates too, so
	// allow slack; a FetchEach keeping the data would take over 1 MiB more.
	if large > small+512<<10 {
		t.Fatalf("FetchEach allocated %d bytes for 20,000 responses and %d for 2,000: memory grows with the response", large, small)
	}
}

// fetchOutcome runs one FETCH over a scripted stream (greeting, LOGIN and
// SELECT answers, then the FETCH's) with Fetch or FetchEach and returns the
// FETCH data it saw and the kind of error.
func fetchOutcome(stream []byte, mode string) (data string, kind error) {
	conn := &scriptConn{r: bytesReader(stream)}
	opts := &imap.Options{TagPrefix: "A", InsecureAuth: true, MaxLine: 4096, MaxLiteral: 1 << 16, MaxResponseLiterals: 1 << 16}
	c, err := imap.NewClient(conn, opts)
	if err != nil {
		return "", errKind(err)
	}
	ctx := context.Background()
	if _, err := c.Login(ctx, "user", "pass"); err != nil {
		return "", errKind(err)
	}
	if _, err := c.Select(ctx, "INBOX", false); err != nil {
		return "", errKind(err)
	}
	switch mode {
	case "Fetch":
		res, err := c.Fetch(ctx, "1:*", "(UID BODY.PEEK[])")
		if err != nil {
			// On NO or BAD the FETCH data stays cached, as in imaplib.
			return repr("FETCH", c.Cached("FETCH")), errKind(err)
		}
		return repr("FETCH", res.Data), nil
	default: // FetchEach
		var got []imap.Datum
		_, err := c.FetchEach(ctx, "1:*", "(UID BODY.PEEK[])", func(r imap.Response) error {
			got = append(got, deepCopy(r.Data)...)
			return nil
		})
		return repr("FETCH", got), errKind(err)
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func errKind(err error) error {
	for _, k := range []error{imap.ErrCommand, imap.ErrAbort, imap.ErrReadOnly} {
		if errors.Is(err, k) {
			return k
		}
	}
	return err
}

// FuzzFetchEach checks, on arbitrary server output, that FetchEach hands
// over exactly the FETCH data Fetch returns, or keeps cached on NO (the
// buffer reuse never shows), and fails the same way.
func FuzzFetchEach(f *testing.F) {
	head := "* OK [CAPABILITY IMAP4rev1] hi\r\nA0 OK logged in\r\n* 2 EXISTS\r\nA1 OK [READ-WRITE] done\r\n"
	f.Add([]byte(head + "* 1 FETCH (UID 1 BODY[] {5}\r\nhello)\r\n* 3 EXISTS\r\n* 2 FETCH (UID 2 BODY[] {0}\r\n)\r\nA2 OK done\r\n"))
	f.Add([]byte(head + "* 1 FETCH (UID 1 BODY[] {5}\r\nhel"))
	f.Add([]byte(head + bigFetchBody(200) + "A2 OK done\r\n"))
	f.Add([]byte(head + bigFetchBody(50) + "A2 NO partly\r\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		fetchData, fetchErr := fetchOutcome(stream, "Fetch")
		eachData, eachErr := fetchOutcome(stream, "FetchEach")
		if fetchErr != eachErr {
			t.Fatalf("Fetch failed with %v, FetchEach with %v", fetchErr, eachErr)
		}
		if (fetchErr == nil || fetchErr == imap.ErrCommand) && fetchData != eachData {
			t.Fatalf("FETCH data differs:\nFetch     %.400s\nFetchEach %.400s", fetchData, eachData)
		}
	})
}
