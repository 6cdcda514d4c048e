package watch

import (
	"context"
	"log/slog"
	"time"

	"github.com/imapkit/imap"
)

// Dialer returns a new authenticated Client. The Watcher calls it for every
// connection and reconnection; it should set the Client's Options.Timeout,
// which bounds every command and DONE.
type Dialer func(ctx context.Context) (*imap.Client, error)

// Defaults for zero Options fields.
const (
	DefaultIdleRestart  = 9 * time.Minute // Gmail drops IDLE at about 10
	MaxIdleRestart      = 29 * time.Minute
	DefaultInactivity   = 5 * time.Minute
	DefaultProbeTimeout = 15 * time.Second
	DefaultPollInterval = time.Minute
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 5 * time.Minute
	DefaultBuffer       = 1024
	DefaultConnections  = 5
)

// Options configures a Watcher. A nil *Options is a zero Options; zero
// fields mean their defaults.
type Options struct {
	// Account labels the events.
	Account string
	// Mailboxes to watch (default INBOX).
	Mailboxes []string

	// IdleRestart re-issues IDLE this often (default 9 minutes, at most 29).
	IdleRestart time.Duration
	// Inactivity: when no byte arrives from the server for this long, the
	// link is probed with DONE and NOOP (default 5 minutes).
	Inactivity time.Duration
	// ProbeTimeout bounds the NOOP probe (default 15 s).
	ProbeTimeout time.Duration
	// PollInterval is the NOOP/STATUS polling interval when the server has
	// no IDLE (or for mailboxes beyond the connection budget); default 1 min.
	PollInterval time.Duration
	// Poll forces polling even when the server offers IDLE.
	Poll bool

	// MinBackoff and MaxBackoff bound the reconnect delay, which doubles
	// after each failure with ±25% jitter.
	MinBackoff, MaxBackoff time.Duration

	// Envelope fetches the envelope of new messages into Event.Envelope.
	Envelope bool

	// StateFile, if set, persists what has been reported (written
	// atomically after each change) so that a restarted Watcher reports
	// exactly what happened while it was away.
	StateFile string

	// Buffer is the capacity of the events channel (default 1024). When the
	// consumer falls behind and the buffer fills, the Watcher never blocks
	// the connection and never drops silently: it stops recording what was
	// delivered, sends an Overflow event as soon as there is room, and
	// resynchronizes, so every new message is still reported.
	Buffer int

	// MaxConnections is the per-account connection budget when NOTIFY is
	// not available (default 5). Mailboxes beyond it are polled with STATUS.
	MaxConnections int
	// NoNotify disables NOTIFY even when the server offers it.
	NoNotify bool

	// Once makes Run return after the first sync of every mailbox: report
	// what changed since the state file was written, then stop.
	Once bool

	// Logger receives what the Watcher does at debug and info levels.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if len(o.Mailboxes) == 0 {
		o.Mailboxes = []string{"INBOX"}
	}
	if o.IdleRestart <= 0 {
		o.IdleRestart = DefaultIdleRestart
	}
	if o.IdleRestart > MaxIdleRestart {
		o.IdleRestart = MaxIdleRestart
	}
	if o.Inactivity <= 0 {
		o.Inactivity = DefaultInactivity
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = DefaultProbeTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultConnections
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}
