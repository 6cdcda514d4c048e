package interop

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/watch"
)

// watchChecks run the watcher's scenarios: what `imapkit watch` does for a
// user, with changes made by another connection of the same user.
func watchChecks() []*check {
	return []*check{
		{name: "watch-new", what: "watch: new mail is reported with its UID and envelope, once", run: checkWatchNew},
		{name: "watch-flags", what: "watch: another client's flag change is reported", run: checkWatchFlags},
		{name: "watch-expunge", what: "watch: another client's expunge is reported with the UID", run: checkWatchExpunge},
		{name: "watch-mailboxes", what: "watch: three mailboxes at once (one NOTIFY connection where offered)", run: checkWatchMailboxes},
		{name: "watch-once-state", what: "watch --once with a state file: baseline, then exactly what arrived between runs", run: checkWatchOnce},
		{name: "watch-cut-link", what: "watch: a cut link gives one disconnected event; what changed while away is reported after reconnecting", run: checkWatchCutLink},
		{name: "watch-deleted", what: "watch: a watched mailbox another client deletes is reported once (mailbox_deleted) and no longer watched; the others go on", run: checkWatchDeleted},
		{name: "watch-all-mailboxes", what: "watch with AllMailboxes: a mailbox created (and mail delivered into it at once), renamed (with its old name, and its position) and deleted is reported", run: checkWatchAllMailboxes},
	}
}

// watching is a running Watcher whose events are collected and
// acknowledged.
type watching struct {
	e      *env
	cancel context.CancelFunc
	done   chan error

	mu  sync.Mutex
	evs []watch.Event
}

// dialer connects as the check's user through addr (the server's or a
// linkCutter's), with STARTTLS.
func (e *env) dialer(addr string) watch.Dialer {
	return func(ctx context.Context) (*imap.Client, error) {
		c, err := imap.DialStartTLS(ctx, addr, e.options())
		if err != nil {
			return nil, err
		}
		if _, err := c.Login(ctx, e.user, e.pass); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

// watchOptions are quick options for tests: a silent link is probed after
// 3 s, reconnects start after 200 ms.
func (e *env) watchOptions(mailboxes ...string) *watch.Options {
	return &watch.Options{
		Account: e.user, Server: e.srv.addr, User: e.user, Mailboxes: mailboxes, Envelope: true,
		Inactivity: 3 * time.Second, ProbeTimeout: 3 * time.Second,
		MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second,
	}
}

func (e *env) startWatch(addr string, opts *watch.Options) *watching {
	e.t.Helper()
	w, err := watch.New(e.dialer(addr), opts)
	if err != nil {
		e.fatalf("watch.New: %v", err)
	}
	ctx, cancel := context.WithCancel(e.ctx())
	r := &watching{e: e, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	go func() {
		for ev := range w.Events() {
			ev.Ack()
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			r.mu.Unlock()
		}
	}()
	e.t.Cleanup(r.stop)
	return r
}

func (r *watching) stop() {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.e.errorf("the Watcher did not stop within 10 s of its context's end")
	}
}

func (r *watching) events() []watch.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// waitFor waits up to 15 s for cond over the events so far.
func (r *watching) waitFor(what string, cond func([]watch.Event) bool) []watch.Event {
	r.e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		evs := r.events()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			r.e.fatalf("watch: no %s within 15 s; events:\n%s", what, describe(evs))
		}
		select {
		case err := <-r.done:
			r.e.fatalf("watch: Run ended (%v) while waiting for %s; events:\n%s", err, what, describe(evs))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func describe(evs []watch.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s %s uid=%d flags=%v %s %v\n", ev.Kind, ev.Mailbox, ev.UID, ev.Flags, ev.Text, ev.Err)
	}
	return b.String()
}

func ofKind(evs []watch.Event, kind watch.Kind, mailbox string) []watch.Event {
	var out []watch.Event
	for _, ev := range evs {
		if ev.Kind == kind && (mailbox == "" || ev.Mailbox == mailbox) {
			out = append(out, ev)
		}
	}
	return out
}

// counted is a condition: at least n events of kind in mailbox.
func counted(kind watch.Kind, mailbox string, n int) func([]watch.Event) bool {
	return func(evs []watch.Event) bool { return len(ofKind(evs, kind, mailbox)) >= n }
}

// uidsOf returns the UIDs the server gives the messages of mailbox.
func (e *env) uidsOf(c *imap.Client, mailbox string) []uint32 {
	e.t.Helper()
	e.must("EXAMINE")(c.Select(e.ctx(), mailbox, true))
	uids, err := c.UIDSearchNumbers(e.ctx(), "", "ALL")
	if err != nil {
		e.fatalf("UID SEARCH ALL: %v", err)
	}
	return uids
}

// exactlyOnce checks that the New events of mailbox name exactly want,
// each once.
func (e *env) exactlyOnce(evs []watch.Event, mailbox string, want []uint32) {
	e.t.Helper()
	var got []uint32
	for _, ev := range ofKind(evs, watch.EventNew, mailbox) {
		got = append(got, ev.UID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		e.errorf("new in %s: UIDs %v, want %v exactly once", mailbox, got, want)
	}
}

func checkWatchNew(e *env) {
	r := e.startWatch(e.srv.addr, e.watchOptions("INBOX"))
	r.waitFor("resynced", counted(watch.EventResynced, "INBOX", 1))
	other := e.dial()
	e.appendN(other, "INBOX", 3, testDate)
	evs := r.waitFor("3 new", counted(watch.EventNew, "INBOX", 3))
	e.exactlyOnce(evs, "INBOX", e.uidsOf(other, "INBOX"))
	for i, ev := range ofKind(evs, watch.EventNew, "INBOX") {
		if want := fmt.Sprintf("message %d", i+1); ev.Envelope == nil || ev.Envelope.Subject != want || ev.ID == "" {
			e.errorf("new event %d: envelope %+v id %q, want subject %q", i, ev.Envelope, ev.ID, want)
		}
	}
}

func checkWatchFlags(e *env) {
	other := e.dial()
	e.appendN(other, "INBOX", 2, testDate)
	uids := e.uidsOf(other, "INBOX")
	r := e.startWatch(e.srv.addr, e.watchOptions("INBOX"))
	r.waitFor("resynced", counted(watch.EventResynced, "INBOX", 1))
	e.must("SELECT")(other.Select(e.ctx(), "INBOX", false))
	e.must("UID STORE")(other.UID(e.ctx(), "STORE", fmt.Sprint(uids[0]), "+FLAGS.SILENT", `(\Seen)`))
	evs := r.waitFor("flags", func(evs []watch.Event) bool {
		for _, ev := range ofKind(evs, watch.EventFlags, "INBOX") {
			if ev.UID == uids[0] && slices.ContainsFunc(ev.Flags, func(f string) bool { return strings.EqualFold(f, `\Seen`) }) {
				return true
			}
		}
		return false
	})
	for _, ev := range ofKind(evs, watch.EventFlags, "INBOX") {
		if ev.UID != uids[0] {
			e.errorf("flags event for UID %d, which did not change", ev.UID)
		}
	}
}

func checkWatchExpunge(e *env) {
	other := e.dial()
	e.appendN(other, "INBOX", 3, testDate)
	uids := e.uidsOf(other, "INBOX")
	r := e.startWatch(e.srv.addr, e.watchOptions("INBOX"))
	r.waitFor("resynced", counted(watch.EventResynced, "INBOX", 1))
	e.must("SELECT")(other.Select(e.ctx(), "INBOX", false))
	e.must("UID STORE")(other.UID(e.ctx(), "STORE", fmt.Sprint(uids[1]), "+FLAGS.SILENT", `(\Deleted)`))
	e.must("EXPUNGE")(other.Expunge(e.ctx()))
	evs := r.waitFor("expunge", counted(watch.EventExpunge, "INBOX", 1))
	if x := ofKind(evs, watch.EventExpunge, "INBOX"); len(x) != 1 || x[0].UID != uids[1] {
		e.errorf("expunge events %s, want UID %d", describe(x), uids[1])
	}
}

func checkWatchMailboxes(e *env) {
	boxes := []string{"INBOX", e.box("Work"), e.box("Lists")}
	other := e.dial()
	for _, b := range boxes[1:] {
		e.must("CREATE")(other.Create(e.ctx(), b))
	}
	r := e.startWatch(e.srv.addr, e.watchOptions(boxes...))
	for _, b := range boxes {
		r.waitFor("resynced "+b, counted(watch.EventResynced, b, 1))
	}
	for i, b := range boxes {
		e.appendN(other, b, i+1, testDate)
	}
	for i, b := range boxes {
		evs := r.waitFor(fmt.Sprintf("%d new in %s", i+1, b), counted(watch.EventNew, b, i+1))
		e.exactlyOnce(evs, b, e.uidsOf(other, b))
	}
}

func checkWatchOnce(e *env) {
	path := filepath.Join(e.t.TempDir(), "state.json")
	once := func() []watch.Event {
		e.t.Helper()
		st, err := watch.OpenStateFile(path, nil)
		if err != nil {
			e.fatalf("OpenStateFile: %v", err)
		}
		defer st.Close()
		opts := e.watchOptions("INBOX")
		opts.Once, opts.Store = true, st
		r := e.startWatch(e.srv.addr, opts)
		select {
		case err := <-r.done:
			r.done <- err // for stop
			if err != nil {
				e.fatalf("watch --once: %v", err)
			}
		case <-time.After(30 * time.Second):
			e.fatalf("watch --once did not return within 30 s")
		}
		time.Sleep(50 * time.Millisecond) // the event collector drains the closed channel
		return r.events()
	}
	other := e.dial()
	e.appendN(other, "INBOX", 2, testDate)
	if evs := once(); len(ofKind(evs, watch.EventNew, "")) != 0 {
		e.errorf("first run (baseline) reported new mail:\n%s", describe(evs))
	}
	e.appendN(other, "INBOX", 2, testDate)
	evs := once()
	e.exactlyOnce(evs, "INBOX", e.uidsOf(other, "INBOX")[2:])
	if evs := once(); len(ofKind(evs, watch.EventNew, "")) != 0 {
		e.errorf("third run reported again:\n%s", describe(evs))
	}
}

func checkWatchCutLink(e *env) {
	other := e.dial()
	e.appendN(other, "INBOX", 3, testDate)
	before := e.uidsOf(other, "INBOX")
	link := newLinkCutter(e.t, e.srv.addr)
	r := e.startWatch(link.Addr(), e.watchOptions("INBOX"))
	r.waitFor("resynced", counted(watch.EventResynced, "INBOX", 1))

	link.Cut()
	r.waitFor("disconnected", counted(watch.EventDisconnected, "", 1))
	e.must("SELECT")(other.Select(e.ctx(), "INBOX", false))
	e.must("UID STORE")(other.UID(e.ctx(), "STORE", fmt.Sprint(before[0]), "+FLAGS.SILENT", `(\Flagged)`))
	e.must("UID STORE")(other.UID(e.ctx(), "STORE", fmt.Sprint(before[1]), "+FLAGS.SILENT", `(\Deleted)`))
	e.must("EXPUNGE")(other.Expunge(e.ctx()))
	e.appendN(other, "INBOX", 2, testDate)
	time.Sleep(1500 * time.Millisecond) // a few failed reconnect attempts
	link.Restore()

	after := e.uidsOf(other, "INBOX")
	evs := r.waitFor("what changed while away", func(evs []watch.Event) bool {
		return len(ofKind(evs, watch.EventNew, "INBOX")) >= 2 && len(ofKind(evs, watch.EventExpunge, "INBOX")) >= 1 &&
			len(ofKind(evs, watch.EventFlags, "INBOX")) >= 1
	})
	e.exactlyOnce(evs, "INBOX", after[len(after)-2:])
	if n := len(ofKind(evs, watch.EventDisconnected, "")); n != 1 {
		e.errorf("%d disconnected events for one outage, want 1:\n%s", n, describe(evs))
	}
	if len(ofKind(evs, watch.EventReconnected, "")) < 1 {
		e.errorf("no reconnected event:\n%s", describe(evs))
	}
	if x := ofKind(evs, watch.EventExpunge, "INBOX"); len(x) != 1 || x[0].UID != before[1] {
		e.errorf("expunge events %s, want UID %d", describe(x), before[1])
	}
	if f := ofKind(evs, watch.EventFlags, "INBOX"); len(f) != 1 || f[0].UID != before[0] {
		e.errorf("flags events %s, want UID %d", describe(f), before[0])
	}
}

func checkWatchDeleted(e *env) {
	box := e.box("Doomed")
	other := e.dial()
	e.must("CREATE")(other.Create(e.ctx(), box))
	opts := e.watchOptions("INBOX", box)
	// Cyrus and Courier say nothing to the connection that has the mailbox
	// selected: it looks with LIST as IDLE ends (every Inactivity here).
	opts.ListInterval = time.Second
	r := e.startWatch(e.srv.addr, opts)
	r.waitFor("resynced "+box, counted(watch.EventResynced, box, 1))
	r.waitFor("resynced INBOX", counted(watch.EventResynced, "INBOX", 1))
	e.must("DELETE")(other.Delete(e.ctx(), box))
	r.waitFor("mailbox_deleted", counted(watch.EventMailboxDeleted, box, 1))
	e.appendN(other, "INBOX", 1, testDate)
	evs := r.waitFor("new in INBOX", counted(watch.EventNew, "INBOX", 1))
	if n := len(ofKind(evs, watch.EventMailboxDeleted, "")); n != 1 {
		e.errorf("%d mailbox_deleted events, want 1:\n%s", n, describe(evs))
	}
}

func checkWatchAllMailboxes(e *env) {
	lists, kept, fresh := e.box("Lists"), e.box("Kept"), e.box("Fresh") // mox has an Archive
	other := e.dial()
	e.must("CREATE")(other.Create(e.ctx(), lists))
	e.appendN(other, lists, 1, testDate)
	opts := e.watchOptions()
	// Without NOTIFY, the list and the other mailboxes are polled.
	opts.AllMailboxes, opts.ListInterval, opts.PollInterval = true, time.Second, time.Second
	r := e.startWatch(e.srv.addr, opts)
	r.waitFor("resynced "+lists, counted(watch.EventResynced, lists, 1))
	r.waitFor("resynced INBOX", counted(watch.EventResynced, "INBOX", 1))

	e.must("CREATE")(other.Create(e.ctx(), fresh))
	e.appendN(other, fresh, 2, testDate) // right after the creation
	evs := r.waitFor("mailbox_created and its mail", func(evs []watch.Event) bool {
		return counted(watch.EventMailboxCreated, fresh, 1)(evs) && counted(watch.EventNew, fresh, 2)(evs)
	})
	e.exactlyOnce(evs, fresh, e.uidsOf(e.dial(), fresh))

	e.must("RENAME")(other.Rename(e.ctx(), lists, kept))
	// A server that gives the renamed mailbox a new UIDVALIDITY (the
	// differences table says which) made it another mailbox, as far as a
	// client without NOTIFY can tell.
	q, _ := e.quirk()
	renamedAnew := strings.Contains(q, "new UIDVALIDITY")
	if renamedAnew {
		r.waitFor("mailbox_deleted and mailbox_created", func(evs []watch.Event) bool {
			return counted(watch.EventMailboxDeleted, lists, 1)(evs) && counted(watch.EventMailboxCreated, kept, 1)(evs)
		})
	} else {
		evs = r.waitFor("mailbox_renamed", counted(watch.EventMailboxRenamed, kept, 1))
		if ren := ofKind(evs, watch.EventMailboxRenamed, kept)[0]; ren.OldMailbox != lists {
			e.errorf("renamed from %q, want %q", ren.OldMailbox, lists)
		}
	}
	e.appendN(other, kept, 1, testDate)
	want := e.uidsOf(e.dial(), kept)
	if !renamedAnew {
		want = want[1:] // the first was there before the watch, and kept its UID
	}
	evs = r.waitFor("new in "+kept, counted(watch.EventNew, kept, len(want)))
	e.exactlyOnce(evs, kept, want)

	e.must("DELETE")(other.Delete(e.ctx(), fresh))
	evs = r.waitFor("mailbox_deleted", counted(watch.EventMailboxDeleted, fresh, 1))
	counts := map[watch.Kind]int{watch.EventMailboxCreated: 1, watch.EventMailboxRenamed: 1, watch.EventMailboxDeleted: 1}
	if renamedAnew {
		counts = map[watch.Kind]int{watch.EventMailboxCreated: 2, watch.EventMailboxRenamed: 0, watch.EventMailboxDeleted: 2}
	}
	for kind, want := range counts {
		if n := len(ofKind(evs, kind, "")); n != want {
			e.errorf("%d %s events, want %d:\n%s", n, kind, want, describe(evs))
		}
	}
	if n := len(ofKind(evs, watch.EventMailboxReset, "")); n != 0 {
		e.errorf("%d reset events:\n%s", n, describe(evs))
	}
}
