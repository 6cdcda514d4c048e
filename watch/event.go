// Package watch turns IMAP IDLE into a service that never misses a message:
// typed events with UIDs, automatic re-IDLE, dead-link detection, a polling
// fallback for servers without IDLE, reconnect with backoff, and resync
// after every (re)connect.
//
// Delivery is at least once. Every event carries an ID that names the
// change (the same change reported again gets the same ID), the consumer
// acknowledges each event with Event.Ack, and the positions saved in a
// Store (OpenStateFile) move only past acknowledged events: after a crash
// or a restart, what was not acknowledged is reported again. At most
// Options.Window events per mailbox wait for acknowledgement; beyond that
// the watcher waits, and the server keeps the changes.
package watch

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/imapkit/imap"
)

// Kind is the kind of an Event.
type Kind int

// The kinds of events.
const (
	EventNew            Kind = iota + 1 // a message arrived: UID, and Envelope on request
	EventExpunge                        // a message was removed: UID
	EventFlags                          // a message's flags changed: UID, Flags, ModSeq
	EventMailboxReset                   // UIDVALIDITY changed: earlier UIDs mean nothing now
	EventAlert                          // the server sent [ALERT] text, to show to the user
	EventDisconnected                   // the connection was lost: Err says why
	EventReconnected                    // a connection was re-established
	EventResynced                       // a mailbox was synchronized after (re)connecting; Text "baseline…" on a first run
	EventStateError                     // a position could not be saved: Err says why (nothing is lost; see Event.Ack)
	EventAuthFailed                     // the server refused credentials that worked before: Err says why; retried with backoff
	EventMailboxCreated                 // a mailbox appeared (Options.AllMailboxes): watched from its first message
	EventMailboxRenamed                 // a watched mailbox was renamed (Options.AllMailboxes): OldMailbox to Mailbox
	EventMailboxDeleted                 // a watched mailbox is gone from the server: no longer watched
)

var kindNames = [...]string{"", "new", "expunge", "flags", "reset", "alert", "disconnected", "reconnected", "resynced", "state_error", "auth_failed",
	"mailbox_created", "mailbox_renamed", "mailbox_deleted"}

// ParseKind returns the Kind named s ("new", "expunge", ...), as String
// writes it.
func ParseKind(s string) (Kind, bool) {
	for k, name := range kindNames {
		if k > 0 && name == s {
			return Kind(k), true
		}
	}
	return 0, false
}

// String returns the kind's name as used in JSON ("new", "expunge", ...).
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event is one change seen by a Watcher. Messages are identified by UID,
// never by sequence number.
type Event struct {
	// ID names the change, not the delivery: the same change gets the same
	// ID every time it is reported, across reconnects and restarts (see
	// eventID), so that a consumer can recognise a repeat.
	ID          string
	Kind        Kind
	Time        time.Time
	Account     string
	Mailbox     string
	OldMailbox  string // MailboxRenamed: the name before
	UIDValidity uint32
	UID         uint32         // New, Expunge, Flags
	Flags       []string       // Flags (and New when known)
	ModSeq      uint64         // Flags, with CONDSTORE
	Envelope    *imap.Envelope // New, with Options.Envelope
	Text        string         // Alert text, Resynced details
	Err         error          // Disconnected, StateError, AuthFailed

	// Gmail's X-GM-EXT-1 attributes of a New message, when the server
	// advertises the extension: its message and thread IDs (64 bits) and
	// its labels, decoded as in imap.Message.GMLabels (empty, not nil,
	// for a message without labels).
	GMMsgID  uint64
	GMThrID  uint64
	GMLabels []string

	ack *pending // nil: nothing to acknowledge
}

// Ack acknowledges the event: the consumer has handled it, so the saved
// position may move past it. Until then the watcher reports it again, with
// the same ID, after a restart: delivery is at least once. Ack may be
// called from any goroutine, in any order, more than once.
//
// A mailbox has at most Options.Window events unacknowledged; while it
// has that many, the watcher makes no more events of that mailbox (the
// server keeps the changes) but keeps its connection alive.
//
// Events that report on the watcher itself (Disconnected, Reconnected,
// Resynced, Alert, StateError, AuthFailed) move no position; acknowledging
// them does nothing. Those of a mailbox as a whole (MailboxReset, and
// MailboxCreated, MailboxRenamed and MailboxDeleted) are changes like the
// others: until one is acknowledged, nothing else of that mailbox is
// handed over, and the saved state is the one from before it, so that a
// restart reports it again (see Options.AllMailboxes). Positions are written to the Store within 20 ms of an
// acknowledgement (at once after Run returned); a write that fails is
// reported as a StateError event and tried again with the next one.
func (ev Event) Ack() {
	if p := ev.ack; p != nil {
		p.l.ack(p)
	}
}

// MailboxError is what Run returns when a mailbox to watch cannot be
// selected the first time it is tried — it does not exist, say, or the
// account may not read it — and the server did not call the failure
// temporary. Such a mistake in the options would otherwise end in
// reconnects for ever. A mailbox that was watched before (selected once,
// or with a saved position) and is no longer on the server (LIST does not
// show it) is reported deleted instead (EventMailboxDeleted); one that is
// still there and fails is waited out, with Disconnected and Reconnected
// events.
type MailboxError struct {
	Mailbox string
	Err     error // the server's refusal, an *imap.Error
}

// Error says which mailbox and why.
func (e *MailboxError) Error() string {
	return "watch: cannot select mailbox " + strconv.Quote(e.Mailbox) + ": " + e.Err.Error()
}

// Unwrap returns the server's refusal.
func (e *MailboxError) Unwrap() error { return e.Err }

// ErrMailboxesDeleted is what Run returns, wrapped with their names, when
// every mailbox of Options.Mailboxes was deleted on the server (each
// reported by a MailboxDeleted event, which the consumer still gets from
// Next after Run returned): nothing is left to watch. With
// Options.AllMailboxes, Run goes on whatever is deleted.
var ErrMailboxesDeleted = errors.New("every watched mailbox was deleted on the server")
