package watch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"sync"
	"time"
)

// saveDelay is how long an acknowledgement may wait before its position is
// written: acknowledgements that come together share one write (one fsync
// of the state file instead of one per event). A crash within it only
// reports those events again.
const saveDelay = 20 * time.Millisecond

// Watcher watches the mailboxes of one account.
type Watcher struct {
	dial Dialer
	opts Options

	mu      sync.Mutex
	ledgers []*ledger // in the order of Options.Mailboxes
	queue   []Event   // handed over, not yet taken by Next
	qhead   int
	ready   chan struct{} // a token when the queue may have grown; closed when Run has returned
	stopped bool
	saving  *time.Timer // a write of the positions is due
	started bool

	saveMu  sync.Mutex    // one write of the positions at a time
	loaded  *AccountState // the Store's entry, for mailboxes not watched now
	written *AccountState // what was last written
	saveErr string        // the last write failure reported, "" when writes work
}

// StateError is what New or Run returns when the saved positions cannot be
// trusted for this account: saved for another server or user, or naming a
// UID the server has not given yet. Starting from a new baseline instead
// would skip mail, so it takes Options.Rebaseline.
type StateError struct {
	Account, Mailbox string // Mailbox is empty for the whole entry
	Problem          string
}

// Error says what is wrong and how to go on.
func (e *StateError) Error() string {
	where := "account " + strconv.Quote(e.Account)
	if e.Mailbox != "" {
		where += " mailbox " + strconv.Quote(e.Mailbox)
	}
	return "watch: saved state of " + where + ": " + e.Problem +
		"; starting again from a baseline would skip what arrived meanwhile: rebaseline to accept that"
}

// New returns a Watcher that connects with dial. It reads the account's
// positions from opts.Store, and fails if they cannot be read or are not
// this account's (a *StateError).
func New(dial Dialer, opts *Options) (*Watcher, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.setDefaults()
	w := &Watcher{dial: dial, opts: o, ledgers: make([]*ledger, 0, len(o.Mailboxes)),
		ready: make(chan struct{}, 1)}
	for _, name := range o.Mailboxes {
		if w.ledger(name) == nil {
			w.ledgers = append(w.ledgers, &ledger{w: w, name: name})
		}
	}
	if o.Store == nil {
		return w, nil
	}
	st, err := o.Store.Load(o.Account)
	if err != nil {
		return nil, fmt.Errorf("watch: account %q: %w", o.Account, err)
	}
	if st == nil {
		return w, nil
	}
	for _, id := range []struct{ what, saved, now string }{{"server", st.Server, o.Server}, {"user", st.User, o.User}} {
		if id.saved != "" && id.now != "" && id.saved != id.now {
			if o.Rebaseline {
				o.Logger.Warn("watch: saved state is for another "+id.what+": starting from a baseline", "account", o.Account, "saved", id.saved, "now", id.now)
				return w, nil
			}
			return nil, &StateError{Account: o.Account, Problem: fmt.Sprintf("it was saved for %s %q, and this account is %q", id.what, id.saved, id.now)}
		}
	}
	w.loaded = st.clone()
	w.written = st.clone()
	for _, l := range w.ledgers {
		if mb := st.Mailboxes[l.name]; mb != nil {
			if err := l.load(mb); err != nil {
				return nil, &StateError{Account: o.Account, Mailbox: l.name, Problem: "its UID set " + strconv.Quote(mb.UIDs) + " is not valid: " + err.Error()}
			}
		}
	}
	return w, nil
}

// Run watches until ctx is done (returning nil) or a setup step fails for
// good: the server refuses the first login (an imap.ErrCommand, such as
// wrong credentials), a mailbox cannot be selected the first time it is
// tried (a *MailboxError: it does not exist, say), or its saved position
// cannot be right (a *StateError). Other failures are not returned: they
// are reported as Disconnected events and followed by reconnects. With
// Options.Once, Run returns nil once every mailbox is synced and every
// change found was handed over, and returns any failure before that.
//
// When Run returns, the positions acknowledged so far are written, and Next
// returns what is left in the queue and then ErrClosed. Run may be called
// once.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.start(); err != nil {
		return err
	}
	defer w.finish()
	groups, err := w.plan(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if len(groups) == 1 {
		// On the caller's goroutine: one goroutine per account.
		return w.newSession(groups[0]).run(ctx)
	}
	return w.runGroups(ctx, groups)
}

// runGroups runs a session per group, each on a goroutine of its own, and
// returns the first error (which stops the others: they would fail the
// same way). Apart from Run, whose frame stays small: it is under the
// parked frames of a single session.
func (w *Watcher) runGroups(ctx context.Context, groups []group) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.newSession(g).run(ctx); err != nil {
				errOnce.Do(func() {
					firstErr = err
					cancel() // the other sessions would fail the same way
				})
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// ledger returns the ledger of a watched mailbox, nil for another.
func (w *Watcher) ledger(name string) *ledger {
	for _, l := range w.ledgers {
		if l.name == name {
			return l
		}
	}
	return nil
}

// start marks the Watcher as running: Run may be called once.
func (w *Watcher) start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("watch: Run called twice")
	}
	w.started = true
	return nil
}

// finish ends Run: pending positions are written and Next learns that no
// more events come.
func (w *Watcher) finish() {
	w.saveNow()
	w.mu.Lock()
	w.stopped = true
	close(w.ready)
	w.mu.Unlock()
}

// group is the work of one connection.
type group struct {
	mailboxes []string
	notify    bool
}

// plan decides how many connections to use: one with NOTIFY when the
// server has it and several mailboxes are watched, otherwise one per
// mailbox up to the budget, the last connection polling the rest.
func (w *Watcher) plan(ctx context.Context) ([]group, error) {
	boxes := w.opts.Mailboxes
	if len(boxes) == 1 {
		return []group{{mailboxes: boxes}}, nil
	}
	notify := false
	if !w.opts.NoNotify && !w.opts.Poll {
		probeCtx, cancel := context.WithTimeout(ctx, 2*w.opts.ProbeTimeout)
		c, err := w.dial(probeCtx)
		cancel()
		if err == nil {
			notify = c.Has("NOTIFY") && c.Has("IDLE")
			lctx, cancel := context.WithTimeout(ctx, w.opts.ProbeTimeout)
			c.Logout(lctx)
			cancel()
			c.Shutdown()
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		} else if fatal(err, false) || w.opts.Once {
			return nil, err
		}
		// A failed probe is not fatal: sessions will retry with backoff.
	}
	if notify {
		return []group{{mailboxes: boxes, notify: true}}, nil
	}
	n := min(len(boxes), w.opts.MaxConnections)
	groups := make([]group, n)
	for i, b := range boxes {
		g := min(i, n-1)
		groups[g].mailboxes = append(groups[g].mailboxes, b)
	}
	return groups, nil
}

// saveSoon has the positions written within saveDelay (at once when Run
// has returned: nothing may be waiting for a timer then).
func (w *Watcher) saveSoon() {
	if w.opts.Store == nil {
		return
	}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		w.saveNow()
		return
	}
	if w.saving == nil {
		w.saving = time.AfterFunc(saveDelay, func() { w.saveNow() })
	}
	w.mu.Unlock()
}

// saveNow writes the positions if they changed, and reports whether they
// are written. A failure becomes a StateError event (once, until a write
// works again).
func (w *Watcher) saveNow() bool {
	if w.opts.Store == nil {
		return true
	}
	w.saveMu.Lock()
	defer w.saveMu.Unlock()
	w.mu.Lock()
	if w.saving != nil {
		w.saving.Stop()
		w.saving = nil
	}
	st := w.snapshotLocked()
	w.mu.Unlock()
	if reflect.DeepEqual(st, w.written) {
		return true
	}
	if err := w.opts.Store.Save(w.opts.Account, st); err != nil {
		w.opts.Logger.Error("watch: cannot save positions", "account", w.opts.Account, "error", err)
		if msg := err.Error(); msg != w.saveErr {
			w.saveErr = msg
			w.notice(Event{Kind: EventStateError, Mailbox: w.opts.Mailboxes[0], Err: err,
				Text: "positions not saved: events since the last save will be reported again after a restart"})
		}
		return false
	}
	w.saveErr = ""
	w.written = st
	return true
}

// snapshotLocked is the account's entry as it may be saved now. With w.mu
// held.
func (w *Watcher) snapshotLocked() *AccountState {
	st := &AccountState{Server: w.opts.Server, User: w.opts.User, Mailboxes: map[string]*MailboxState{}}
	if w.loaded != nil {
		maps.Copy(st.Mailboxes, w.loaded.clone().Mailboxes)
	}
	for _, l := range w.ledgers {
		if mb := l.savedLocked(); mb != nil {
			st.Mailboxes[l.name] = mb
		}
	}
	return st
}
