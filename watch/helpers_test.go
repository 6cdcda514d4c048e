package watch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/watch"
)

// waitTime bounds every wait for an event. Dovecot pushes IDLE changes
// about half a second late; everything else is local.
const waitTime = 15 * time.Second

// account is a fresh Dovecot user.
type account struct {
	srv        *dovecot.Server
	user, pass string
}

func newAccount(t *testing.T, srv *dovecot.Server) *account {
	t.Helper()
	user, pass, err := srv.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	return &account{srv: srv, user: user, pass: pass}
}

// clientTimeout bounds each wait of the watcher's connections: short, so
// that dead links are noticed within the test's patience, but not so short
// that a loaded machine trips it.
var clientTimeout = 5 * time.Second

func clientOpts(timeout time.Duration) *imap.Options {
	o := &imap.Options{InsecureAuth: true, Timeout: timeout, StreamStderr: io.Discard}
	if os.Getenv("IMAPKIT_TRACE") != "" {
		o.Trace = os.Stderr
	}
	return o
}

// dialer returns a watch.Dialer that logs in over plain TCP to addr (the
// server or a proxy in front of it).
func (a *account) dialer(addr string) watch.Dialer {
	return a.dialerTimeout(addr, clientTimeout)
}

func (a *account) dialerTimeout(addr string, timeout time.Duration) watch.Dialer {
	return func(ctx context.Context) (*imap.Client, error) {
		c, err := imap.Dial(ctx, addr, clientOpts(timeout))
		if err != nil {
			return nil, err
		}
		if _, err := c.Login(ctx, a.user, a.pass); err != nil {
			c.Shutdown()
			return nil, err
		}
		return c, nil
	}
}

// streamDialer returns a watch.Dialer over Dovecot's stream command.
func (a *account) streamDialer() watch.Dialer {
	return func(ctx context.Context) (*imap.Client, error) {
		return imap.DialStream(ctx, a.srv.StreamCommand(a.user), clientOpts(clientTimeout))
	}
}

// other opens a separate connection (a stream session, which KillIMAP does
// not touch) to make changes while the watcher watches.
func (a *account) other(t *testing.T) *mailer {
	t.Helper()
	m := &mailer{t: t, a: a}
	m.connect()
	t.Cleanup(func() { m.c.Shutdown() })
	return m
}

// mailer makes changes to the account from its own connection.
type mailer struct {
	t   *testing.T
	a   *account
	c   *imap.Client
	sel string
	n   int
}

func (m *mailer) connect() {
	m.t.Helper()
	opts := &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard}
	if os.Getenv("IMAPKIT_TRACE") != "" {
		opts.StreamStderr = os.Stderr
	}
	c, err := imap.DialStream(context.Background(), m.a.srv.StreamCommand(m.a.user), opts)
	if err != nil {
		m.t.Fatal(err)
	}
	m.c = c
	m.sel = ""
}

// reconnect replaces the mailer's connection.
func (m *mailer) reconnect() {
	m.t.Helper()
	m.c.Shutdown()
	m.connect()
}

func (m *mailer) must(what string, _ imap.Result, err error) {
	m.t.Helper()
	if err != nil {
		m.t.Fatalf("%s: %v", what, err)
	}
}

// append adds a message to mailbox and returns its subject.
func (m *mailer) append(mailbox string) string {
	m.t.Helper()
	subject := m.nextSubject()
	res, err := m.c.Append(context.Background(), mailbox, "", time.Time{}, message(subject))
	m.must("APPEND", res, err)
	return subject
}

func (m *mailer) nextSubject() string {
	m.n++
	return fmt.Sprintf("message %d", m.n)
}

// appendErr is append for goroutines other than the test's.
func (m *mailer) appendErr(mailbox string) error {
	_, err := m.c.Append(context.Background(), mailbox, "", time.Time{}, message(m.nextSubject()))
	return err
}

func message(subject string) []byte {
	return []byte("From: Ada <ada@example.org>\r\nTo: u@localhost\r\nSubject: " + subject + "\r\n\r\nbody\r\n")
}

func (m *mailer) create(mailbox string) {
	m.t.Helper()
	res, err := m.c.Create(context.Background(), mailbox)
	m.must("CREATE "+mailbox, res, err)
}

func (m *mailer) selectBox(mailbox string) {
	m.t.Helper()
	if m.sel == mailbox {
		return
	}
	res, err := m.c.Select(context.Background(), mailbox, false)
	m.must("SELECT "+mailbox, res, err)
	m.sel = mailbox
}

// store changes flags by UID.
func (m *mailer) store(mailbox string, uid uint32, op, flags string) {
	m.t.Helper()
	m.selectBox(mailbox)
	res, err := m.c.UID(context.Background(), "STORE", fmt.Sprint(uid), op, "("+flags+")")
	m.must("UID STORE", res, err)
}

// expunge removes the messages with the given UIDs.
func (m *mailer) expunge(mailbox string, uids ...uint32) {
	m.t.Helper()
	m.selectBox(mailbox)
	set := imap.FormatSequenceSet(uids)
	res, err := m.c.UID(context.Background(), "STORE", set, "+FLAGS.SILENT", `(\Deleted)`)
	m.must("UID STORE", res, err)
	res, err = m.c.Expunge(context.Background())
	m.must("EXPUNGE", res, err)
}

// delete deletes mailbox (leaving it first if the mailer has it selected).
func (m *mailer) delete(mailbox string) {
	m.t.Helper()
	if m.sel == mailbox {
		m.unselect()
	}
	res, err := m.c.Delete(context.Background(), mailbox)
	m.must("DELETE "+mailbox, res, err)
}

// rename renames a mailbox.
func (m *mailer) rename(from, to string) {
	m.t.Helper()
	if m.sel == from {
		m.unselect()
	}
	res, err := m.c.Rename(context.Background(), from, to)
	m.must("RENAME "+from+" "+to, res, err)
}

// unselect leaves the mailbox so that it can be deleted.
func (m *mailer) unselect() {
	m.t.Helper()
	if m.sel != "" {
		res, err := m.c.Unselect(context.Background())
		m.must("UNSELECT", res, err)
		m.sel = ""
	}
}

// run is a running Watcher and the events it delivered.
type run struct {
	t      *testing.T
	w      *watch.Watcher
	cancel context.CancelFunc
	done   chan error // Run's result
	closed chan struct{}

	mu       sync.Mutex
	evs      []watch.Event
	unacked  []watch.Event // taken while gated: acknowledged when the gate opens
	gate     chan struct{} // closed when the consumer may acknowledge
	accepted error         // what Run returned by itself, as the test expected (see result)
}

// startWatcher runs a Watcher and collects its events, acknowledging each
// once it is recorded. A gated consumer takes events but acknowledges none
// until open: the window fills. The events are logged when the test fails.
// stop is registered as a cleanup.
func startWatcher(t *testing.T, dial watch.Dialer, opts *watch.Options, gated bool) *run {
	t.Helper()
	w, err := watch.New(dial, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{t: t, w: w, cancel: cancel, done: make(chan error, 1), closed: make(chan struct{}), gate: make(chan struct{})}
	if !gated {
		close(r.gate)
	}
	go func() { r.done <- w.Run(ctx) }()
	go func() {
		defer close(r.closed)
		for ev := range w.Events() {
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			select {
			case <-r.gate:
				ev.Ack()
			default:
				r.unacked = append(r.unacked, ev)
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			for i, ev := range r.events() {
				t.Logf("event %d: %s", i, describe(ev))
			}
		}
	})
	return r
}

// open lets a gated consumer acknowledge: what it took so far, and from
// then on each event as it comes.
func (r *run) open() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.gate:
		return
	default:
	}
	close(r.gate)
	for _, ev := range r.unacked {
		ev.Ack()
	}
	r.unacked = nil
}

// stop cancels Run, which must return within a second, and Events must
// end once the queue is drained.
func (r *run) stop() {
	r.t.Helper()
	r.open()
	r.cancel()
	start := time.Now()
	select {
	case err := <-r.done:
		r.mu.Lock()
		accepted := r.accepted
		r.mu.Unlock()
		if err != nil && err != accepted {
			r.t.Errorf("Run returned %v", err)
		}
		r.done <- err // for later calls
	case <-time.After(5 * time.Second):
		r.t.Fatalf("Run did not return within 5 s of cancellation")
	}
	if d := time.Since(start); d > time.Second {
		r.t.Errorf("Run returned %v after cancellation, want < 1 s", d)
	}
	select {
	case <-r.closed:
	case <-time.After(time.Second):
		r.t.Fatalf("Events did not end when Run returned")
	}
}

// result waits, at most d, for Run to return by itself, and then for
// Events to end; it returns Run's error, which stop then accepts.
func (r *run) result(d time.Duration) error {
	r.t.Helper()
	select {
	case err := <-r.done:
		r.mu.Lock()
		r.accepted = err
		r.mu.Unlock()
		r.done <- err
		select {
		case <-r.closed:
		case <-time.After(time.Second):
			r.t.Fatalf("Events did not end when Run returned")
		}
		return err
	case <-time.After(d):
		r.t.Fatalf("Run did not return within %v", d)
		return nil
	}
}

func (r *run) events() []watch.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// waitFor waits until cond holds for the events delivered so far.
func (r *run) waitFor(what string, cond func([]watch.Event) bool) []watch.Event {
	r.t.Helper()
	return r.waitForWithin(waitTime, what, cond)
}

func (r *run) waitForWithin(d time.Duration, what string, cond func([]watch.Event) bool) []watch.Event {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		evs := r.events()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no %s within %v", what, d)
		}
		select {
		case err := <-r.done:
			r.done <- err
			r.t.Fatalf("waiting for %s: Run returned %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// describe renders an event for logs.
func describe(ev watch.Event) string {
	s := fmt.Sprintf("%s %s", ev.Kind, ev.Mailbox)
	if ev.OldMailbox != "" {
		s += " old=" + ev.OldMailbox
	}
	if ev.UIDValidity != 0 {
		s += fmt.Sprintf(" uidvalidity=%d", ev.UIDValidity)
	}
	if ev.UID != 0 {
		s += fmt.Sprintf(" uid=%d", ev.UID)
	}
	if ev.Flags != nil {
		s += fmt.Sprintf(" flags=%v", ev.Flags)
	}
	if ev.ModSeq != 0 {
		s += fmt.Sprintf(" modseq=%d", ev.ModSeq)
	}
	if ev.Envelope != nil {
		s += fmt.Sprintf(" subject=%q", ev.Envelope.Subject)
	}
	if ev.Text != "" {
		s += " text=" + ev.Text
	}
	if ev.ID != "" {
		s += " id=" + ev.ID[:8]
	}
	if ev.Err != nil {
		s += " err=" + ev.Err.Error()
	}
	return s
}

// Predicates and selections over events.

func ofKind(evs []watch.Event, kind watch.Kind, mailbox string) []watch.Event {
	var out []watch.Event
	for _, ev := range evs {
		if ev.Kind == kind && (mailbox == "" || ev.Mailbox == mailbox) {
			out = append(out, ev)
		}
	}
	return out
}

func count(kind watch.Kind, mailbox string, n int) func([]watch.Event) bool {
	return func(evs []watch.Event) bool { return len(ofKind(evs, kind, mailbox)) >= n }
}

func has(kind watch.Kind, mailbox string, uid uint32) func([]watch.Event) bool {
	return func(evs []watch.Event) bool {
		for _, ev := range ofKind(evs, kind, mailbox) {
			if ev.UID == uid {
				return true
			}
		}
		return false
	}
}

func hasFlags(mailbox string, uid uint32, flag string) func([]watch.Event) bool {
	return func(evs []watch.Event) bool {
		for _, ev := range ofKind(evs, watch.EventFlags, mailbox) {
			if ev.UID == uid && slices.ContainsFunc(ev.Flags, func(f string) bool { return strings.EqualFold(f, flag) }) {
				return true
			}
		}
		return false
	}
}

// newUIDs counts the New events per UID.
func newUIDs(evs []watch.Event, mailbox string) map[uint32]int {
	m := map[uint32]int{}
	for _, ev := range ofKind(evs, watch.EventNew, mailbox) {
		m[ev.UID]++
	}
	return m
}

// allNew reports whether every UID in 1..n was reported as New.
func allNew(mailbox string, n uint32) func([]watch.Event) bool {
	return func(evs []watch.Event) bool {
		m := newUIDs(evs, mailbox)
		for uid := uint32(1); uid <= n; uid++ {
			if m[uid] == 0 {
				return false
			}
		}
		return true
	}
}

// checkExactlyOnce fails unless the New UIDs of mailbox are exactly want,
// each reported once.
func checkExactlyOnce(t *testing.T, evs []watch.Event, mailbox string, want []uint32) {
	t.Helper()
	got := newUIDs(evs, mailbox)
	for uid, n := range got {
		if n > 1 {
			t.Errorf("%s: UID %d reported as New %d times", mailbox, uid, n)
		}
		if !slices.Contains(want, uid) {
			t.Errorf("%s: UID %d reported as New, not expected", mailbox, uid)
		}
	}
	for _, uid := range want {
		if got[uid] == 0 {
			t.Errorf("%s: UID %d never reported as New", mailbox, uid)
		}
	}
}

func seq(from, to uint32) []uint32 {
	var out []uint32
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// checkOrder fails when a UID's Flags or Expunge event comes before its New
// event, or anything follows its Expunge.
func checkOrder(t *testing.T, evs []watch.Event) {
	t.Helper()
	type key struct {
		mb  string
		uid uint32
	}
	seen := map[key]bool{}
	gone := map[key]bool{}
	for i, ev := range evs {
		k := key{ev.Mailbox, ev.UID}
		switch ev.Kind {
		case watch.EventNew:
			if gone[k] {
				t.Errorf("event %d: New for %s uid %d after its Expunge", i, ev.Mailbox, ev.UID)
			}
			seen[k] = true
		case watch.EventFlags, watch.EventExpunge:
			if gone[k] {
				t.Errorf("event %d: %s for %s uid %d after its Expunge", i, ev.Kind, ev.Mailbox, ev.UID)
			}
			if ev.Kind == watch.EventExpunge {
				gone[k] = true
			}
		case watch.EventMailboxReset:
			for k := range seen {
				if k.mb == ev.Mailbox {
					delete(seen, k)
					delete(gone, k)
				}
			}
		}
	}
}

// checkGoroutines waits for the number of goroutines to settle back to at
// most base.
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", n, base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openState opens a state file for the test's watchers, closed at the end.
func openState(t *testing.T, path string) *watch.StateFile {
	t.Helper()
	st, err := watch.OpenStateFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// savedMailboxes returns the mailboxes of account in the state file at
// path, and whether the entry says it holds them all.
func savedMailboxes(t *testing.T, path, account string) (map[string]watch.MailboxState, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Accounts map[string]watch.AccountState `json:"accounts"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatalf("state file %s: %v", path, err)
	}
	st := file.Accounts[account]
	out := map[string]watch.MailboxState{}
	for name, mb := range st.Mailboxes {
		out[name] = *mb
	}
	return out, st.AllMailboxes
}

// waitSaved waits until the state file's mailboxes of account satisfy cond.
func waitSaved(t *testing.T, path, account, what string, cond func(map[string]watch.MailboxState, bool) bool) map[string]watch.MailboxState {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mbs, all := savedMailboxes(t, path, account)
		if cond(mbs, all) {
			return mbs
		}
		if time.Now().After(deadline) {
			t.Fatalf("state file: no %s within 5 s: %v (all_mailboxes %v)", what, mbs, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logBuffer collects a watcher's log, for tests that read it.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func fastOptions(mailboxes ...string) *watch.Options {
	return &watch.Options{
		Account:      "acct",
		Mailboxes:    mailboxes,
		Envelope:     true,
		Inactivity:   2 * time.Second,
		ProbeTimeout: time.Second,
		PollInterval: 300 * time.Millisecond,
		MinBackoff:   50 * time.Millisecond,
		MaxBackoff:   500 * time.Millisecond,
	}
}
