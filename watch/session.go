package watch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/imapkit/imap"
)

// session runs one connection: it (re)connects with backoff, resyncs its
// mailboxes and then waits for changes with IDLE or polling (serve.go),
// until ctx is done.
type session struct {
	w         *Watcher
	mailboxes []string
	notify    bool

	boxes    map[string]*box
	primary  *box          // the mailbox kept selected and idled on
	extras   []*box        // mailboxes checked with STATUS (or via NOTIFY)
	selected *box          // the mailbox selected now, if any
	hint     time.Duration // server-suggested minimum backoff
	// extrasAt is when the extra mailboxes were last checked with STATUS.
	extrasAt time.Time
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
)

func (w *Watcher) newSession(g group) *session {
	s := &session{w: w, mailboxes: g.mailboxes, notify: g.notify, boxes: map[string]*box{}}
	for _, name := range g.mailboxes {
		b := &box{view: view{name: name}, l: w.ledgers[name]}
		s.boxes[name] = b
		if s.primary == nil && !s.notify {
			s.primary = b
		} else {
			s.extras = append(s.extras, b)
		}
	}
	return s
}

// run serves the session's mailboxes until ctx is done. It returns an
// error only when giving up: the first login is refused, a mailbox or its
// saved state is wrong, or (Once) the connection fails before the sync is
// done. An outage gives one Disconnected event, however many attempts it
// takes, and one Reconnected when it ends.
func (s *session) run(ctx context.Context) error {
	failures := 0
	everConnected, down := false, false
	for ctx.Err() == nil {
		c, err := s.w.dial(ctx)
		s.selected = nil
		if err == nil {
			if down {
				s.w.notice(Event{Kind: EventReconnected, Mailbox: s.mailboxes[0]})
				s.w.opts.Logger.Info("watch: reconnected", "account", s.w.opts.Account, "mailboxes", s.mailboxes, "attempts", failures)
				down = false
			}
			everConnected = true
			failures = 0
			s.hint = 0
			for _, b := range s.boxes {
				b.pendingNew, b.stale, b.announce = false, false, true
			}
			err = s.serveConn(ctx, c)
			if err == errOnceDone {
				return nil
			}
		} else if fatal(err, everConnected) && ctx.Err() == nil {
			return err
		}
		var missing *MailboxError
		var bad *StateError
		if (errors.As(err, &missing) || errors.As(err, &bad)) && ctx.Err() == nil {
			return err // the options or the saved state are wrong
		}
		if ctx.Err() != nil {
			return nil
		}
		if s.w.opts.Once {
			return err
		}
		if !down {
			s.w.notice(Event{Kind: EventDisconnected, Mailbox: s.mailboxes[0], Err: err})
			down = true
		}
		s.noteUnavailable(err)
		delay := s.w.backoff(failures, s.hint)
		s.w.opts.Logger.Warn("watch: connection failed", "account", s.w.opts.Account, "mailboxes", s.mailboxes,
			"error", err, "attempt", failures+1, "next_attempt_in", delay.Round(time.Millisecond))
		if sleep(ctx, delay) != nil {
			return nil
		}
		failures++
	}
	return nil
}

// serveConn serves one connection and closes it. When ctx is cancelled it
// logs out, but never takes more than cancelGrace for it: a server that
// stopped answering must not hold up Run. (context.AfterFunc, not a
// goroutine: an idle account costs no goroutine for this.)
func (s *session) serveConn(ctx context.Context, c *imap.Client) error {
	var (
		mu       sync.Mutex
		finished bool
		grace    *time.Timer
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !finished {
			grace = time.AfterFunc(cancelGrace, func() { c.Shutdown() })
		}
	})
	defer func() {
		stop()
		mu.Lock()
		finished = true
		if grace != nil {
			grace.Stop()
		}
		mu.Unlock()
	}()
	err := s.serve(ctx, c)
	if err == errOnceDone || ctx.Err() != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.w.opts.ProbeTimeout)
		c.Logout(lctx)
		cancel()
	}
	c.Shutdown()
	return err
}

// noteUnavailable makes the backoff respect a server that said it is
// unavailable or overloaded.
func (s *session) noteUnavailable(err error) {
	if err != nil && temporary(err) {
		s.hint = 30 * time.Second
	}
}
