package watch

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/imapkit/imap"
)

// session runs one connection: it (re)connects with backoff, resyncs its
// mailboxes and then waits for changes with IDLE or polling (serve.go),
// until ctx is done. Its goroutine (Run's) only waits; commands run on
// workers (see work).
type session struct {
	w         *Watcher
	mailboxes []string // as planned; the first labels the connection's events
	notify    bool
	all       bool // Options.AllMailboxes: the mailboxes come from LIST (mailboxes.go)

	boxes    []*box        // in the order of mailboxes
	primary  *box          // the mailbox kept selected and idled on
	extras   []*box        // mailboxes checked with STATUS (or via NOTIFY)
	selected *box          // the mailbox selected now, if any
	hint     time.Duration // server-suggested minimum backoff
	// extrasAt is when the extra mailboxes were last checked with STATUS.
	extrasAt time.Time
	// conn is the connection now, for the shutdown of a cancelled run.
	conn atomic.Pointer[imap.Client]
	// primaryAt is when the primary was last found on the server (SELECT,
	// or LIST: see checkPrimary).
	primaryAt time.Time

	// With AllMailboxes (mailboxes.go):
	listAt       time.Time         // when LIST last looked for created, renamed and deleted mailboxes
	listDue      bool              // NOTIFY said a mailbox was created, renamed or deleted: LIST now
	listedOK     bool              // a LIST of this run gave every mailbox a box: one not seen since was created
	oldNames     map[string]string // new name → old name, from NOTIFY's OLDNAME since the last LIST
	unselectable map[string]bool   // listed, but the server refuses to select them: not watched
}

// box is a watched mailbox: what the connection knows of it (view) and
// its delivery book (ledger).
type box struct {
	view
	l *ledger
	// selected once: from then on a failing SELECT is a trouble to wait
	// out, not a mistake in the options.
	everSelected bool
	announce     bool      // report Resynced after the next sync (new connection)
	newModSeq    uint64    // highest MODSEQ of New events since the last commit
	noAt         time.Time // last resync caused by an untagged NO
	status       statusSeen
	// createdUnannounced: found created (AllMailboxes) while STATUS could
	// not tell its UIDVALIDITY; its first sync reports the creation.
	createdUnannounced bool
	// dropped: deleted on the server (or renamed away from a name of
	// Options.Mailboxes), reported, and no longer watched.
	dropped bool
	// movedTo is the new name NOTIFY gave for a rename of the mailbox: the
	// text of its deletion, without AllMailboxes.
	movedTo string
	// flags: the reported messages' flags, on a server without CONDSTORE
	// (see flagSnapshot); nil otherwise.
	flags flagSnapshot
}

// statusSeen is what the last sync showed of a mailbox, to tell whether a
// STATUS response reports anything new.
type statusSeen struct {
	uidValidity, uidNext, messages uint32
	highestModSeq                  uint64
}

const (
	// cancelGrace is how long a cancelled session may take to end its
	// IDLE and log out before its connection is simply closed.
	cancelGrace = 300 * time.Millisecond
	// roomPoll is how often a session whose mailbox has a full window
	// checks whether acknowledgements made room.
	roomPoll = 50 * time.Millisecond
	// noResyncInterval limits resyncs caused by untagged NO responses.
	noResyncInterval = 10 * time.Second
	// maxCatchUpRounds bounds the command rounds between two IDLEs.
	maxCatchUpRounds = 10
)

var (
	errProbe    = errors.New("no data from the server: probing")
	errOnceDone = errors.New("once: done")
	// errNoMailboxes ends a session whose every mailbox was deleted.
	errNoMailboxes = errors.New("every mailbox of the connection was deleted")
)

// newSession prepares the session of one connection.
func (w *Watcher) newSession(g group) *session {
	s := &session{w: w, mailboxes: g.mailboxes, notify: g.notify, all: g.all, boxes: make([]*box, 0, len(g.mailboxes))}
	if s.all {
		s.mailboxes = []string{w.label()}
	}
	for _, name := range g.mailboxes {
		s.boxes = append(s.boxes, &box{view: view{name: name}, l: w.ledger(name)})
	}
	s.arrange()
	return s
}

// arrange picks the mailbox kept selected and idled on — none with NOTIFY;
// INBOX with AllMailboxes, where mail arrives; else the first — and makes
// the others extras, after every change of the session's mailboxes.
func (s *session) arrange() {
	s.primary, s.extras = nil, nil
	if !s.notify && len(s.boxes) > 0 {
		s.primary = s.boxes[0]
		if s.all {
			if inbox := s.lookup("INBOX"); inbox != nil {
				s.primary = inbox
			}
		}
	}
	for _, b := range s.boxes {
		if b != s.primary {
			s.extras = append(s.extras, b)
		}
	}
}

// run serves the session's mailboxes until ctx is done. It returns an
// error only when giving up: the first login is refused, a mailbox or its
// saved state is wrong, or (Once) the connection fails before the sync is
// done. An outage gives one Disconnected event, however many attempts it
// takes, and one Reconnected when it ends.
//
// When ctx is cancelled, the connection is closed cancelGrace later
// whatever it is doing: a server that stopped answering must not hold up
// Run. (One context.AfterFunc per session: no goroutine waits for it.)
func (s *session) run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		time.AfterFunc(cancelGrace, func() {
			if c := s.conn.Load(); c != nil {
				c.Shutdown()
			}
		})
	})
	defer stop()
	var o outage
	for ctx.Err() == nil {
		var c *imap.Client
		err := work(func() (err error) {
			c, err = s.w.dial(ctx)
			return err
		})
		s.selected = nil
		if err == nil {
			work(func() error { s.connected(&o); return nil })
			if err = s.serveConn(ctx, c); err == errOnceDone {
				return nil
			} else if err == errNoMailboxes {
				return err
			}
		} else if fatal(err, o.everConnected) && ctx.Err() == nil {
			return err // a refused first login, say
		}
		if stop, err := s.giveUp(ctx, err); stop {
			return err
		}
		if s.wait(ctx, err, &o) != nil {
			return nil
		}
	}
	return nil
}

// outage is what run knows of the connection's failures.
type outage struct {
	failures      int  // attempts failed since the last success
	everConnected bool // a connection succeeded once
	down          bool // Disconnected was reported and Reconnected not yet
	authFailed    bool // AuthFailed was reported in this outage
}

// connected notes a new connection: the end of an outage, if any.
func (s *session) connected(o *outage) {
	if o.down {
		s.w.notice(Event{Kind: EventReconnected, Mailbox: s.mailboxes[0]})
		s.w.opts.Logger.Info("watch: reconnected", "account", s.w.opts.Account, "mailboxes", s.mailboxes, "attempts", o.failures)
		o.down = false
	}
	o.everConnected = true
	o.authFailed = false
	o.failures = 0
	s.hint = 0
	for _, b := range s.boxes {
		b.pendingNew, b.stale, b.announce = false, false, true
	}
}

// giveUp decides, after a connection failed (or ended), whether run must
// return, and with what.
func (s *session) giveUp(ctx context.Context, err error) (bool, error) {
	if ctx.Err() != nil {
		return true, nil
	}
	var missing *MailboxError
	var bad *StateError
	if errors.As(err, &missing) || errors.As(err, &bad) {
		return true, err // the options or the saved state are wrong
	}
	if s.w.opts.Once {
		return true, err
	}
	return false, nil
}

// wait reports the failure (once per outage) and waits before the next
// attempt, with backoff.
func (s *session) wait(ctx context.Context, err error, o *outage) error {
	var delay time.Duration
	work(func() error {
		if !o.down {
			s.w.notice(Event{Kind: EventDisconnected, Mailbox: s.mailboxes[0], Err: err})
			o.down = true
		}
		if authRefused(err) && !o.authFailed {
			// Once an outage: the credentials are read afresh for every
			// attempt, and a fixed password or a new token ends it.
			s.w.notice(Event{Kind: EventAuthFailed, Mailbox: s.mailboxes[0], Err: err})
			o.authFailed = true
		}
		s.noteUnavailable(err)
		delay = s.w.backoff(o.failures, s.hint)
		s.w.opts.Logger.Warn("watch: connection failed", "account", s.w.opts.Account, "mailboxes", s.mailboxes,
			"error", err, "attempt", o.failures+1, "next_attempt_in", delay.Round(time.Millisecond))
		return nil
	})
	o.failures++
	return s.w.sleep(ctx, delay)
}

// serveConn serves one connection and closes it, logging out when the
// work is done (Once, or no mailbox is left) or ctx was cancelled.
func (s *session) serveConn(ctx context.Context, c *imap.Client) error {
	s.conn.Store(c)
	defer s.conn.Store(nil)
	if ctx.Err() != nil {
		c.Shutdown() // cancelled while dialing: the AfterFunc has run
		return ctx.Err()
	}
	err := s.serve(ctx, c)
	work(func() error {
		if err == errOnceDone || err == errNoMailboxes || ctx.Err() != nil {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.w.opts.ProbeTimeout)
			c.Logout(lctx)
			cancel()
		}
		c.Shutdown()
		return nil
	})
	return err
}

// noteUnavailable makes the backoff respect a server that said it is
// unavailable or overloaded.
func (s *session) noteUnavailable(err error) {
	if err != nil && temporary(err) {
		s.hint = 30 * time.Second
	}
}
