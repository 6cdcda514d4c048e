package watch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	ledgers []*ledger // in the order of Options.Mailboxes, then of their creation (AllMailboxes)
	// listed (AllMailboxes): a LIST gave every mailbox of the account a
	// ledger, so the saved state may say it covers them all (see
	// allSavedLocked).
	listed  bool
	queue   []Event // handed over, not yet taken by Next
	qhead   int
	ready   chan struct{} // a token when the queue may have grown; closed when Run has returned
	stopped bool
	saving  *time.Timer // a write of the positions is due
	started bool

	// sleep waits between reconnect attempts: sleepCtx, but in tests,
	// where a fake lets hours of backoff pass at once. (Network deadlines
	// are not the watcher's to fake: reads keep real time.)
	sleep func(ctx context.Context, d time.Duration) error

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
	w := &Watcher{dial: dial, opts: o, ready: make(chan struct{}, 1), sleep: sleepCtx}
	if !o.AllMailboxes { // with AllMailboxes, the session's LIST makes them
		for _, name := range o.Mailboxes {
			if w.ledger(name) == nil {
				w.ledgers = append(w.ledgers, &ledger{w: w, name: name})
			}
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
// tried (a *MailboxError: it does not exist, say, and was never watched),
// or its saved position cannot be right (a *StateError). It also returns
// when every mailbox of Options.Mailboxes was deleted on the server (an
// error wrapping ErrMailboxesDeleted). Other failures are not returned:
// they are reported as Disconnected events and followed by reconnects.
// With Options.Once, Run returns nil once every mailbox is synced and
// every change found was handed over, and returns any failure before
// that.
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
		err = w.newSession(groups[0]).run(ctx)
	} else {
		err = w.runGroups(ctx, groups)
	}
	if err == errNoMailboxes {
		return w.deletedError()
	}
	return err
}

// deletedError is what Run returns once every watched mailbox was deleted.
func (w *Watcher) deletedError() error {
	names := make([]string, len(w.opts.Mailboxes))
	for i, name := range w.opts.Mailboxes {
		names[i] = strconv.Quote(name)
	}
	return fmt.Errorf("watch: %s: %w: nothing is left to watch", strings.Join(names, ", "), ErrMailboxesDeleted)
}

// runGroups runs a session per group, each on a goroutine of its own, and
// returns the first error (which stops the others: they would fail the
// same way). A session whose every mailbox was deleted ends alone; when
// all have, runGroups returns errNoMailboxes. Apart from Run, whose frame
// stays small: it is under the parked frames of a single session.
func (w *Watcher) runGroups(ctx context.Context, groups []group) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		emptied  atomic.Int32
	)
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.newSession(g).run(ctx)
			switch {
			case err == errNoMailboxes:
				emptied.Add(1) // the others go on
			case err != nil:
				errOnce.Do(func() {
					firstErr = err
					cancel() // the other sessions would fail the same way
				})
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && int(emptied.Load()) == len(groups) {
		return errNoMailboxes
	}
	return firstErr
}

// ledger returns the ledger of a watched mailbox, nil for another.
func (w *Watcher) ledger(name string) *ledger {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.ledgers {
		if l.name == name && !l.gone {
			return l
		}
	}
	return nil
}

// addLedger books a mailbox found by LIST (AllMailboxes), with its saved
// position if the Store has one.
func (w *Watcher) addLedger(name string) (*ledger, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := &ledger{w: w, name: name}
	if w.loaded != nil {
		if mb := w.loaded.Mailboxes[name]; mb != nil {
			if err := l.load(mb); err != nil {
				return nil, &StateError{Account: w.opts.Account, Mailbox: name, Problem: "its UID set " + strconv.Quote(mb.UIDs) + " is not valid: " + err.Error()}
			}
		}
	}
	w.ledgers = append(w.ledgers, l)
	return l, nil
}

// forget drops the ledger of a mailbox that is no longer watched and has
// nothing to save.
func (w *Watcher) forget(l *ledger) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.forgetLocked(l)
}

// forgetLocked drops the ledger of a deleted mailbox once its deletion is
// acknowledged. With w.mu held.
func (w *Watcher) forgetLocked(l *ledger) {
	w.ledgers = slices.DeleteFunc(w.ledgers, func(x *ledger) bool { return x == l })
}

// savedNames returns the mailboxes of the loaded state, sorted.
func (w *Watcher) savedNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.loaded == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(w.loaded.Mailboxes))
}

// savedAll reports whether the loaded state covered every mailbox of the
// account (AccountState.AllMailboxes).
func (w *Watcher) savedAll() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.loaded != nil && w.loaded.AllMailboxes
}

// setListed notes that every mailbox LIST showed has a ledger.
func (w *Watcher) setListed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.listed = true
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
	all       bool // AllMailboxes: the session lists them itself
}

// plan decides how many connections to use: one with NOTIFY when the
// server has it and several mailboxes are watched, otherwise one per
// mailbox up to the budget, the last connection polling the rest. With
// AllMailboxes, one: it learns at each connection whether the server has
// NOTIFY.
func (w *Watcher) plan(ctx context.Context) ([]group, error) {
	if w.opts.AllMailboxes {
		return []group{{all: true}}, nil
	}
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
			w.notice(Event{Kind: EventStateError, Mailbox: w.label(), Err: err,
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
	st := &AccountState{Server: w.opts.Server, User: w.opts.User, AllMailboxes: w.allSavedLocked(),
		Mailboxes: map[string]*MailboxState{}}
	if w.loaded != nil {
		maps.Copy(st.Mailboxes, w.loaded.clone().Mailboxes)
	}
	for _, l := range w.ledgers { // a later ledger of a name wins: a mailbox created after one was deleted
		if name, mb := l.savedLocked(); mb != nil {
			st.Mailboxes[name] = mb
		}
	}
	return st
}

// allSavedLocked reports whether the entry saved now holds every mailbox
// of the account: with AllMailboxes, once every mailbox LIST showed has a
// position (a mailbox on its first run has none until its baseline, and
// one created while away must not then be taken for a baseline); until
// the first LIST, what was loaded. With w.mu held.
func (w *Watcher) allSavedLocked() bool {
	if !w.opts.AllMailboxes {
		return false
	}
	if !w.listed {
		return w.loaded != nil && w.loaded.AllMailboxes
	}
	for _, l := range w.ledgers {
		if !l.known && !l.gone {
			return false
		}
	}
	return true
}

// label is the mailbox named by events of the whole connection
// (disconnected, say): the first watched, INBOX with AllMailboxes.
func (w *Watcher) label() string {
	if w.opts.AllMailboxes {
		return "INBOX"
	}
	return w.opts.Mailboxes[0]
}
