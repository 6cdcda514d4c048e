package watch

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/imapkit/imap"
)

// Dialer returns a new authenticated Client. The Watcher calls it for every
// connection and reconnection, and it must obtain the credentials afresh
// each time — read the password source again, take the token from an
// oauth2.TokenSource (Client.AuthenticateOAuth2) — so that a password
// changed on the server and in its source, or an access token that
// expired, is picked up at the next reconnect: credentials refused after
// the account logged in before are retried with backoff (EventAuthFailed)
// only for that reason. It should set the Client's Options.Timeout, which
// bounds every command and DONE.
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
	DefaultWindow       = 100
	DefaultConnections  = 5
	DefaultListInterval = time.Minute
	// MinListInterval is the shortest Options.ListInterval: LIST "*" asks
	// the server for every mailbox of the account.
	MinListInterval = time.Second
)

// Options configures a Watcher. A nil *Options is a zero Options; zero
// fields mean their defaults.
type Options struct {
	// Account labels the events and names the account's entry in Store.
	Account string
	// Server and User say which server and user the account is (for
	// example "imap.example.org:993" and "alice"); they are saved with the
	// positions, and an entry saved for another server or user is refused
	// (unless Rebaseline), since its UIDs would mean nothing here.
	Server, User string
	// Mailboxes to watch (default INBOX). A mailbox deleted on the server
	// is reported (EventMailboxDeleted) and no longer watched — renamed
	// away too, since the name is what was asked for — and Run returns
	// ErrMailboxesDeleted once none is left.
	Mailboxes []string

	// AllMailboxes follows every mailbox of the account instead of
	// Mailboxes (which it ignores): every one LIST "" "*" shows but those
	// that cannot be selected (\Noselect, \NonExistent). A mailbox
	// created while watched is reported (EventMailboxCreated) and watched
	// from its first message: mail delivered into it right after it was
	// created is reported as new, as is everything moved into it. A
	// renamed one is reported (EventMailboxRenamed) and goes on under its
	// new name from its position (a new UIDVALIDITY then resets it), a
	// deleted one is reported (EventMailboxDeleted); Run goes on whatever
	// is deleted.
	//
	// A server with NOTIFY says at once when a mailbox is created,
	// renamed or deleted (its MailboxName event: one connection for the
	// whole account). Without it (or with NoNotify) one connection idles
	// on INBOX, checks the other mailboxes with STATUS every PollInterval
	// and the list with LIST every ListInterval (MaxConnections does not
	// apply). A rename is then told from a deletion and a creation by the
	// UIDVALIDITY, which servers keep on a rename (but Courier: there it
	// is reported as the deletion of one and the creation of the other).
	//
	// With a Store, what happened to the list while the watcher was away
	// is reported at the next start: the saved state says it covered every
	// mailbox, so one it does not hold was created since. The first run,
	// or the first one after a run with Mailboxes, starts every mailbox
	// from a baseline instead.
	AllMailboxes bool
	// ListInterval is how often LIST looks for created, renamed and deleted
	// mailboxes under AllMailboxes without NOTIFY (default 1 minute, at
	// least MinListInterval). Without AllMailboxes, it is how often, at
	// most, a connection that ends IDLE without NOTIFY looks with LIST for
	// the mailbox it keeps selected: some servers (Cyrus, Courier) say
	// nothing to a connection whose selected mailbox is deleted.
	ListInterval time.Duration

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

	// Store keeps the positions, so that a restarted Watcher reports
	// everything that happened while it was away and every event that was
	// not acknowledged (see OpenStateFile). Nil: positions live in memory
	// only, and each Run starts from a baseline.
	Store Store
	// Rebaseline accepts what would otherwise be refused as a sign of a
	// wrong or damaged state: an entry saved for another Server or User,
	// or a last UID the server has not given yet. Such a mailbox starts
	// from a new baseline instead, which skips what arrived while away.
	Rebaseline bool

	// Window is the number of events per mailbox that may be
	// unacknowledged at once (default 100). When a mailbox has that many,
	// the Watcher makes no more events of it — the server keeps the
	// changes, and flag changes and expunges already seen wait in memory —
	// while its connection stays alive. A slow consumer delays; nothing
	// is dropped.
	Window int

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
	if len(o.Mailboxes) > 1 { // a name given twice is watched once
		seen := map[string]bool{}
		o.Mailboxes = slices.DeleteFunc(slices.Clone(o.Mailboxes), func(m string) bool {
			dup := seen[m]
			seen[m] = true
			return dup
		})
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
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultConnections
	}
	if o.ListInterval <= 0 {
		o.ListInterval = DefaultListInterval
	}
	o.ListInterval = max(o.ListInterval, MinListInterval)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}
