package imap_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
)

// dovecotClient connects to a private Dovecot over the given transport and
// authenticates as a fresh user. It fails (never skips) without Dovecot.
func dovecotClient(t *testing.T, srv *dovecot.Server, transport string) (*imap.Client, string) {
	t.Helper()
	user, pass, err := srv.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard, TLSConfig: &tls.Config{RootCAs: srv.CertPool, ServerName: "localhost"}}
	var c *imap.Client
	switch transport {
	case "plain":
		opts.InsecureAuth = true
		c, err = imap.Dial(ctx, srv.Addr, opts)
	case "tls":
		c, err = imap.DialTLS(ctx, srv.TLSAddr, opts)
	case "starttls":
		c, err = imap.DialStartTLS(ctx, srv.Addr, opts)
	case "stream":
		c, err = imap.DialStream(ctx, srv.StreamCommand(user), opts)
	}
	if err != nil {
		t.Fatalf("%s dial: %v", transport, err)
	}
	t.Cleanup(func() { c.Shutdown() })
	if c.State() == imap.StateNonAuth {
		if _, err := c.Login(ctx, user, pass); err != nil {
			t.Fatalf("%s login: %v", transport, err)
		}
	}
	return c, user
}

var transports = []string{"plain", "tls", "starttls", "stream"}

func TestDovecotConnect(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c, _ := dovecotClient(t, srv, tr)
			if !c.Has("IDLE") {
				t.Errorf("capabilities lack IDLE: %v", c.Capabilities())
			}
			if got, want := c.IsTLS(), tr == "tls" || tr == "starttls"; got != want {
				t.Errorf("IsTLS = %v, want %v", got, want)
			}
			res, err := c.Logout(context.Background())
			if err != nil || res.Status != "BYE" {
				t.Fatalf("Logout = %v, %v", res, err)
			}
		})
	}
}

// TestDovecotCommands runs every command Dovecot supports, checking results.
func TestDovecotCommands(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			c, _ := dovecotClient(t, srv, tr)
			testCommands(t, c)
		})
	}
}

func must(t *testing.T, what string) func(imap.Result, error) imap.Result {
	return func(r imap.Result, err error) imap.Result {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if r.Status != "OK" {
			t.Fatalf("%s: status %q", what, r.Status)
		}
		return r
	}
}

func testCommands(t *testing.T, c *imap.Client) {
	ctx := context.Background()
	must(t, "NOOP")(c.Noop(ctx))
	must(t, "CAPABILITY")(c.Capability(ctx))
	if r := must(t, "ID")(c.ID(ctx, "name", "imapkit")); len(r.Data) != 1 {
		t.Errorf("ID data = %v", r.Data)
	}
	must(t, "NAMESPACE")(c.Namespace(ctx))
	must(t, "ENABLE")(c.Enable(ctx, "CONDSTORE"))

	// Mailbox management, including a non-ASCII name (modified UTF-7).
	must(t, "CREATE")(c.Create(ctx, "Work"))
	must(t, "CREATE")(c.Create(ctx, "Entwürfe"))
	must(t, "CREATE")(c.Create(ctx, "With Space"))
	must(t, "RENAME")(c.Rename(ctx, "With Space", "Renamed Box"))
	must(t, "SUBSCRIBE")(c.Subscribe(ctx, "Work"))
	list := must(t, "LIST")(c.List(ctx, "", "*"))
	entries, err := imap.ParseList(list.Data)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name] = true
	}
	for _, want := range []string{"INBOX", "Work", "Entwürfe", "Renamed Box"} {
		if !names[want] {
			t.Errorf("LIST lacks %q: %v", want, names)
		}
	}
	lsub := must(t, "LSUB")(c.Lsub(ctx, "", "*"))
	if len(lsub.Data) != 1 {
		t.Errorf("LSUB = %v", lsub.Texts())
	}
	must(t, "UNSUBSCRIBE")(c.Unsubscribe(ctx, "Work"))
	must(t, "DELETE")(c.Delete(ctx, "Renamed Box"))
	if _, err := c.Delete(ctx, "No Such Box"); !errors.Is(err, imap.ErrCommand) {
		t.Errorf("DELETE missing box: %v, want ErrCommand", err)
	}

	// APPEND with flags and date; read back with FETCH.
	date := time.Date(2024, 12, 6, 6, 0, 0, 0, time.FixedZone("", 3600))
	for i := 1; i <= 5; i++ {
		msg := fmt.Sprintf("From: a@example.org\nSubject: message %d\nMessage-ID: <m%d@example.org>\n\nbody %d\n", i, i, i)
		flags := ""
		if i%2 == 0 {
			flags = `\Flagged`
		}
		must(t, "APPEND")(c.Append(ctx, "INBOX", flags, date, []byte(msg)))
	}
	st := must(t, "STATUS")(c.Status(ctx, "INBOX", "MESSAGES UIDNEXT UIDVALIDITY"))
	sts, err := imap.ParseStatus(st.Data)
	if err != nil || len(sts) != 1 || sts[0].Messages != 5 || sts[0].UIDNext != 6 {
		t.Fatalf("STATUS = %+v, %v", sts, err)
	}
	ex := must(t, "EXAMINE")(c.Select(ctx, "INBOX", true))
	if len(ex.Data) == 0 || string(ex.Data[0].Text) != "5" {
		t.Fatalf("EXAMINE EXISTS = %v", ex.Texts())
	}
	if r := c.Response("READ-ONLY"); r.Data == nil {
		t.Error("EXAMINE did not cache READ-ONLY")
	}
	sel := must(t, "SELECT")(c.Select(ctx, "INBOX", false))
	if string(sel.Data[0].Text) != "5" {
		t.Fatalf("SELECT EXISTS = %v", sel.Texts())
	}
	if r := c.Response("UIDVALIDITY"); len(r.Data) != 1 {
		t.Errorf("UIDVALIDITY = %v", r.Data)
	}
	fetch := must(t, "FETCH")(c.Fetch(ctx, "1:5", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])"))
	msgs, err := imap.ParseFetch(fetch.Data)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("FETCH parsed %d messages, %v", len(msgs), err)
	}
	for i, m := range msgs {
		n := i + 1
		if m.UID != uint32(n) || !m.InternalDate.Equal(date) {
			t.Errorf("message %d: UID %d date %v", n, m.UID, m.InternalDate)
		}
		if got, want := hasFlag(m.Flags, `\Flagged`), n%2 == 0; got != want {
			t.Errorf("message %d flags %v", n, m.Flags)
		}
		if len(m.Sections) != 2 || string(m.Sections[0].Data) != fmt.Sprintf("Subject: message %d\r\n\r\n", n) ||
			string(m.Sections[1].Data) != fmt.Sprintf("body %d\r\n", n) {
			t.Errorf("message %d sections %+v", n, m.Sections)
		}
	}
	// Literals in FETCH arrive as (header, literal) pairs, imaplib's shape.
	if !fetch.Data[0].IsLiteral() {
		t.Errorf("first FETCH datum is not a literal pair: %q", fetch.Data[0].Text)
	}

	search := must(t, "SEARCH")(c.Search(ctx, "", "FLAGGED"))
	if nums, _ := imap.ParseSearch(search.Data); fmt.Sprint(nums) != "[2 4]" {
		t.Errorf("SEARCH FLAGGED = %v", nums)
	}
	usearch := must(t, "UID SEARCH")(c.UID(ctx, "SEARCH", "SUBJECT", `"message 3"`))
	if nums, _ := imap.ParseSearch(usearch.Data); fmt.Sprint(nums) != "[3]" {
		t.Errorf("UID SEARCH = %v", nums)
	}
	sortRes := must(t, "SORT")(c.Sort(ctx, "UTF-8", "REVERSE SUBJECT", "ALL"))
	if got := sortRes.Texts(); len(got) != 1 || got[0] != "5 4 3 2 1" {
		t.Errorf("SORT = %q", got)
	}
	thread := must(t, "THREAD")(c.Thread(ctx, "UTF-8", "ORDEREDSUBJECT", "ALL"))
	if len(thread.Data) != 1 {
		t.Errorf("THREAD = %q", thread.Texts())
	}
	store := must(t, "STORE")(c.Store(ctx, "1", "+FLAGS", `\Seen $Label`))
	if len(store.Data) != 1 || !strings.Contains(string(store.Data[0].Text), `\Seen`) {
		t.Errorf("STORE = %q", store.Texts())
	}
	must(t, "UID STORE")(c.UID(ctx, "STORE", "2", "+FLAGS.SILENT", `(\Answered)`))
	must(t, "COPY")(c.Copy(ctx, "1:2", "Work"))
	must(t, "UID COPY")(c.UID(ctx, "COPY", "3", "Entwürfe"))
	must(t, "MOVE")(c.Move(ctx, "5", "Work"))
	must(t, "UID MOVE")(c.UID(ctx, "MOVE", "4", "Work"))
	// MOVE reports the moved-away messages as EXPUNGE, cached like imaplib.
	if got := c.Response("EXPUNGE"); len(got.Data) != 2 || string(got.Data[0].Text) != "5" || string(got.Data[1].Text) != "4" {
		t.Errorf("EXPUNGE after MOVE = %+v", got)
	}
	must(t, "CHECK")(c.Check(ctx))
	must(t, "STORE")(c.Store(ctx, "1", "+FLAGS", `\Deleted`))
	exp := must(t, "EXPUNGE")(c.Expunge(ctx))
	if got := exp.Texts(); fmt.Sprint(got) != "[1]" {
		t.Errorf("EXPUNGE = %q", got)
	}
	must(t, "UID EXPUNGE")(c.UID(ctx, "EXPUNGE", "1:*"))
	if c.Has("UNSELECT") {
		must(t, "UNSELECT")(c.Unselect(ctx))
	}
	work := must(t, "STATUS")(c.Status(ctx, "Work", "(MESSAGES)"))
	if sts, _ := imap.ParseStatus(work.Data); len(sts) != 1 || sts[0].Messages != 4 {
		t.Errorf("Work STATUS = %q", work.Texts())
	}
	must(t, "SELECT Work")(c.Select(ctx, "Work", false))
	must(t, "CLOSE")(c.CloseMailbox(ctx))
	if c.State() != imap.StateAuth {
		t.Errorf("state after CLOSE = %v", c.State())
	}
	roots, quotas, err := c.GetQuotaRoot(ctx, "INBOX")
	if err != nil || len(roots.Data) == 0 || len(quotas.Data) == 0 {
		t.Errorf("GETQUOTAROOT = %q, %q, %v", roots.Texts(), quotas.Texts(), err)
	}
	if _, err := c.Fetch(ctx, "1", "FLAGS"); !errors.Is(err, imap.ErrCommand) || !strings.Contains(err.Error(), "illegal in state AUTH") {
		t.Errorf("FETCH in AUTH state: %v", err)
	}
	res, err := c.Logout(ctx)
	if err != nil || res.Status != "BYE" {
		t.Errorf("LOGOUT = %v, %v", res, err)
	}
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

// TestDovecotFetch5000 appends 5,000 generated messages and compares a FETCH
// of all of them, item by item, with what was appended.
func TestDovecotFetch5000(t *testing.T) {
	srv := dovecot.StartT(t)
	c, _ := dovecotClient(t, srv, "plain")
	ctx := context.Background()
	const n = 5000
	type sent struct {
		body    []byte
		subject string
		flags   string
		date    time.Time
	}
	msgs := make([]sent, n)
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	subjects := []string{"plain subject", "Grüße aus Köln", "日本語の件名", "with \"quotes\" and \\ backslash", "a very long subject " + strings.Repeat("x", 300)}
	for i := range msgs {
		subj := fmt.Sprintf("%s #%d", subjects[i%len(subjects)], i)
		body := fmt.Sprintf("From: Sender %d <s%d@example.org>\r\nTo: r@example.org\r\nSubject: %s\r\nMessage-ID: <gen%d@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
			i, i, subj, i, strings.Repeat(fmt.Sprintf("line %d of message %d\r\n", i, i), i%7+1))
		flags := []string{"", `\Seen`, `\Flagged \Seen`, `$Work`}[i%4]
		msgs[i] = sent{body: []byte(body), subject: subj, flags: flags, date: base.Add(time.Duration(i) * time.Minute)}
		if _, err := c.Append(ctx, "INBOX", flags, msgs[i].date, msgs[i].body); err != nil {
			t.Fatalf("APPEND %d: %v", i, err)
		}
	}
	if _, err := c.Select(ctx, "INBOX", true); err != nil {
		t.Fatal(err)
	}
	res, err := c.Fetch(ctx, "1:*", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY.PEEK[])")
	if err != nil {
		t.Fatal(err)
	}
	got, err := imap.ParseFetch(res.Data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("FETCH returned %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		want := msgs[i]
		if m.Seq != uint32(i+1) || m.UID != uint32(i+1) {
			t.Fatalf("message %d: seq %d uid %d", i, m.Seq, m.UID)
		}
		if len(m.Sections) != 1 || !bytes.Equal(m.Sections[0].Data, want.body) {
			t.Fatalf("message %d: body differs", i)
		}
		if m.Size != int64(len(want.body)) {
			t.Errorf("message %d: RFC822.SIZE %d, want %d", i, m.Size, len(want.body))
		}
		if !m.InternalDate.Equal(want.date) {
			t.Errorf("message %d: INTERNALDATE %v, want %v", i, m.InternalDate, want.date)
		}
		if m.Envelope == nil || m.Envelope.Subject != want.subject || m.Envelope.MessageID != fmt.Sprintf("<gen%d@example.org>", i) {
			t.Fatalf("message %d: envelope %+v, want subject %q", i, m.Envelope, want.subject)
		}
		for _, f := range strings.Fields(want.flags) {
			if !hasFlag(m.Flags, f) {
				t.Errorf("message %d: flags %v lack %s", i, m.Flags, f)
			}
		}
		if nonRecent(m.Flags) != len(strings.Fields(want.flags)) {
			t.Errorf("message %d: flags %v, want %q", i, m.Flags, want.flags)
		}
	}

	// The streaming forms give the same: FetchEach hands over Fetch's data
	// response by response, and FetchMessages (and UIDFetchMessages) and
	// FetchEachMessage what ParseFetch makes of it, reading every body
	// through one reused buffer.
	const items = "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY.PEEK[])"
	var each []imap.Datum
	responses := 0
	if _, err := c.FetchEach(ctx, "1:*", items, func(r imap.Response) error {
		responses++
		each = append(each, deepCopy(r.Data)...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if responses != n || !reflect.DeepEqual(each, res.Data) {
		t.Fatalf("FetchEach: %d responses, data equal to Fetch's: %v", responses, reflect.DeepEqual(each, res.Data))
	}
	typed, err := c.FetchMessages(ctx, "1:*", items)
	if err != nil || !reflect.DeepEqual(typed, got) {
		t.Fatalf("FetchMessages: %d messages (%v), equal to ParseFetch's: %v", len(typed), err, reflect.DeepEqual(typed, got))
	}
	byUID, err := c.UIDFetchMessages(ctx, "1:*", items)
	if err != nil || !reflect.DeepEqual(byUID, got) {
		t.Fatalf("UIDFetchMessages: %d messages (%v), equal to ParseFetch's: %v", len(byUID), err, reflect.DeepEqual(byUID, got))
	}
	var streamed []*imap.Message
	if err := c.FetchEachMessage(ctx, "1:*", items, func(m *imap.Message) error {
		streamed = append(streamed, m)
		return nil
	}); err != nil || !reflect.DeepEqual(streamed, got) {
		t.Fatalf("FetchEachMessage: %d messages (%v), equal to ParseFetch's: %v", len(streamed), err, reflect.DeepEqual(streamed, got))
	}
}

// nonRecent counts the flags other than \Recent, which the server adds.
func nonRecent(flags []string) int {
	n := 0
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			n++
		}
	}
	return n
}

// TestDovecotAuth authenticates with every mechanism Dovecot offers here.
func TestDovecotAuth(t *testing.T) {
	srv := dovecot.StartT(t)
	ctx := context.Background()
	user, pass, err := srv.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	dial := func(t *testing.T) *imap.Client {
		c, err := imap.DialTLS(ctx, srv.TLSAddr, &imap.Options{Timeout: 20 * time.Second, TLSConfig: &tls.Config{RootCAs: srv.CertPool, ServerName: "localhost"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Shutdown() })
		return c
	}
	tests := []struct {
		name string
		auth func(c *imap.Client) (imap.Result, error)
		ok   bool
	}{
		{"LOGIN", func(c *imap.Client) (imap.Result, error) { return c.Login(ctx, user, pass) }, true},
		{"LOGIN wrong password", func(c *imap.Client) (imap.Result, error) { return c.Login(ctx, user, "wrong") }, false},
		{"PLAIN with SASL-IR", func(c *imap.Client) (imap.Result, error) {
			return c.AuthenticateSASL(ctx, sasl.NewPlainClient("", user, pass))
		}, true},
		{"LOGIN mechanism", func(c *imap.Client) (imap.Result, error) {
			return c.AuthenticateSASL(ctx, sasl.NewLoginClient(user, pass))
		}, true},
		{"CRAM-MD5", func(c *imap.Client) (imap.Result, error) { return c.LoginCRAMMD5(ctx, user, pass) }, true},
		{"PLAIN via AuthFunc", func(c *imap.Client) (imap.Result, error) {
			return c.Authenticate(ctx, "PLAIN", func([]byte) ([]byte, error) { return []byte("\x00" + user + "\x00" + pass), nil })
		}, true},
		{"XOAUTH2 unsupported", func(c *imap.Client) (imap.Result, error) {
			return c.AuthenticateSASL(ctx, imap.NewXOAuth2Client(user, "token"))
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t)
			_, err := tt.auth(c)
			if tt.ok {
				if err != nil || c.State() != imap.StateAuth {
					t.Fatalf("auth failed: %v (state %v)", err, c.State())
				}
				if !c.Has("QUOTA") && !c.Has("MOVE") {
					t.Errorf("capabilities not refreshed after auth: %v", c.Capabilities())
				}
				return
			}
			if !errors.Is(err, imap.ErrCommand) || c.State() != imap.StateNonAuth {
				t.Fatalf("err = %v, state %v; want a command error in NONAUTH", err, c.State())
			}
			if _, err := c.Noop(ctx); err != nil {
				t.Fatalf("connection unusable after failed auth: %v", err)
			}
		})
	}
}

// TestDovecotFetchTo streams bodies to writers: a 20 MB message passes with
// bounded memory, and a failing writer leaves the connection usable.
func TestDovecotFetchTo(t *testing.T) {
	srv := dovecot.StartT(t)
	c, user := dovecotClient(t, srv, "plain")
	ctx := context.Background()
	big := append([]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 20<<20/64)...)
	msgs := [][]byte{[]byte("Subject: small one\r\n\r\nhi\r\n"), big, []byte("Subject: small two\r\n\r\nho\r\n")}
	if err := srv.DeliverMaildir(user, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	must(t, "EXAMINE")(c.Select(ctx, "INBOX", true))

	hashes := map[int]hash.Hash{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := c.FetchTo(ctx, "1:*", "BODY.PEEK[]", func(header []byte) io.Writer {
		var seq int
		fmt.Sscanf(string(header), "%d", &seq)
		h := sha256.New()
		hashes[seq] = h
		return h
	})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("streaming a 20 MB body allocated %d bytes", grew)
	}
	for i, m := range msgs {
		want := sha256.Sum256(m)
		if h := hashes[i+1]; h == nil || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Errorf("message %d: streamed body differs", i+1)
		}
	}
	if n := len(res.Data); n != 6 || res.Data[0].Literal == nil || len(res.Data[0].Literal) != 0 {
		t.Errorf("result data: %d datums, first %+v", n, res.Data[0])
	}

	// A writer that fails: the command reports it, the connection survives.
	boom := errors.New("disk full")
	_, err = c.FetchTo(ctx, "2", "BODY.PEEK[]", func([]byte) io.Writer { return failWriter{boom} })
	if !errors.Is(err, boom) || !errors.Is(err, imap.ErrCommand) {
		t.Fatalf("FetchTo with failing writer: %v", err)
	}
	must(t, "NOOP")(c.Noop(ctx))
	// nil from the sink keeps the literal in memory, as Fetch does.
	res, err = c.FetchTo(ctx, "1", "BODY.PEEK[]", func([]byte) io.Writer { return nil })
	if err != nil || !bytes.Equal(res.Data[0].Literal, msgs[0]) {
		t.Fatalf("FetchTo keeping in memory: %v", err)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

// TestDovecotMoveThenExpunge: the EXPUNGE Dovecot sends with UID MOVE is
// not part of the next EXPUNGE's result, but stays cached for Response.
func TestDovecotMoveThenExpunge(t *testing.T) {
	srv := dovecot.StartT(t)
	c, user := dovecotClient(t, srv, "plain")
	ctx := context.Background()
	var msgs [][]byte
	for i := 1; i <= 4; i++ {
		msgs = append(msgs, fmt.Appendf(nil, "Subject: %d\r\n\r\nbody %d\r\n", i, i))
	}
	if err := srv.DeliverMaildir(user, "INBOX", msgs); err != nil {
		t.Fatal(err)
	}
	must(t, "CREATE")(c.Create(ctx, "Archive"))
	must(t, "SELECT")(c.Select(ctx, "INBOX", false))
	must(t, "STORE")(c.Store(ctx, "1", "+FLAGS.SILENT", `(\Deleted)`))
	c.Unsolicited()
	must(t, "UID MOVE")(c.UID(ctx, "MOVE", "4", "Archive"))
	res := must(t, "EXPUNGE")(c.Expunge(ctx))
	if got := texts(res.Data); !reflect.DeepEqual(got, []string{"1"}) {
		t.Errorf("EXPUNGE result %q, want [1]", got)
	}
	if got := texts(c.Response("EXPUNGE").Data); !reflect.DeepEqual(got, []string{"4"}) {
		t.Errorf("cached EXPUNGE %q, want [4] (from UID MOVE)", got)
	}
}
