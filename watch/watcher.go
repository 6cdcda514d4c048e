package watch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/imapkit/imap"
)

// Watcher watches the mailboxes of one account.
type Watcher struct {
	dial   Dialer
	opts   Options
	events chan Event
	state  *stateStore

	mu       sync.Mutex
	lost     map[string]int // mailbox → events that did not fit
	lostSent bool
}

// New returns a Watcher that connects with dial. It fails only if the state
// file cannot be read.
func New(dial Dialer, opts *Options) (*Watcher, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	o.setDefaults()
	st, err := loadState(o.StateFile)
	if err != nil {
		return nil, err
	}
	return &Watcher{dial: dial, opts: o, events: make(chan Event, o.Buffer), state: st, lost: map[string]int{}}, nil
}

// Events returns the channel on which events are delivered. Drain it at
// your own pace: see Options.Buffer for what happens when it fills. It is
// closed when Run returns.
func (w *Watcher) Events() <-chan Event { return w.events }

// Run watches until ctx is done (returning nil) or a setup step fails for
// good: the server refuses the first login (an imap.ErrCommand, such as
// wrong credentials), or a mailbox cannot be selected the first time it is
// tried (a *MailboxError: it does not exist, say). Other failures are not
// returned: they are reported as Disconnected events and followed by
// reconnects. With
// Options.Once, Run returns nil after the first sync of every mailbox and
// any failure before that.
func (w *Watcher) Run(ctx context.Context) error {
	defer close(w.events)
	groups, err := w.plan(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
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
			s := &session{w: w, mailboxes: g.mailboxes, notify: g.notify}
			if err := s.run(ctx); err != nil {
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
			c.Shutdown()
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		} else if fatal(err) || w.opts.Once {
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

// fatal reports whether a failure to connect is not worth retrying: the
// server answered, and refused (a LOGIN rejected with NO, say) for a
// reason other than a temporary one such as too many connections.
func fatal(err error) bool {
	return errors.Is(err, imap.ErrCommand) && !temporary(err)
}

// temporary reports whether err says the server is unavailable or
// overloaded for now.
func temporary(err error) bool {
	msg := strings.ToUpper(err.Error())
	for _, s := range []string{"[UNAVAILABLE]", "[LIMIT]", "[INUSE]", "[SERVERBUG]", "TOO MANY", "TRY AGAIN", "TEMPORAR"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// emit delivers ev without ever blocking. It reports false when the buffer
// is full; the caller must then not record the event as delivered.
func (w *Watcher) emit(ev Event) bool {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Account = w.opts.Account
	w.flushLost()
	select {
	case w.events <- ev:
		return true
	default:
		w.mu.Lock()
		w.lost[ev.Mailbox]++
		w.mu.Unlock()
		w.opts.Logger.Warn("watch: event buffer full", "mailbox", ev.Mailbox, "kind", ev.Kind.String())
		return false
	}
}

// flushLost sends one Overflow event per mailbox that lost events, once
// there is room for it.
func (w *Watcher) flushLost() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for mb, n := range w.lost {
		ev := Event{Kind: EventStateError, Time: time.Now(), Account: w.opts.Account, Mailbox: mb,
			Text: fmt.Sprintf("%d events did not fit the buffer; what they reported is reported again after a resync (flag changes only with CONDSTORE)", n)}
		select {
		case w.events <- ev:
			delete(w.lost, mb)
		default:
			return
		}
	}
}

// hasRoom reports whether the buffer is at most half full, so that a
// resync after an overflow is likely to fit.
func (w *Watcher) hasRoom() bool { return len(w.events) <= cap(w.events)/2 }

// backoff returns the delay before reconnect attempt n (0-based).
func (w *Watcher) backoff(n int, hint time.Duration) time.Duration {
	d := w.opts.MinBackoff
	for i := 0; i < n && d < w.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.opts.MaxBackoff)
	d = max(d, hint)
	// ±25% jitter so that many watchers do not reconnect in step.
	j := time.Duration(time.Now().UnixNano() % int64(d/2+1))
	return d - d/4 + j
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
