package watch

import (
	"context"
	"slices"
	"strings"

	"github.com/imapkit/imap"
)

// setNotify asks the server (NOTIFY, RFC 5465) to report changes in any
// watched mailbox as STATUS while the client idles with no mailbox selected
// (Dovecot sends MESSAGES, UIDNEXT, UNSEEN and, with CONDSTORE,
// HIGHESTMODSEQ; UIDVALIDITY when it changed); each mailbox whose STATUS
// differs from what its last sync saw is then resynced (catchUpNotify).
// Mailboxes created, deleted or renamed come as untagged LIST (the
// MailboxName event; see listChanged). With AllMailboxes, the filter is
// the personal namespace, where mailboxes come and go.
//
// NOTIFY is set before the first sync, so that a change made between a
// mailbox's sync and the start of IDLE still produces a STATUS.
func (s *session) setNotify(ctx context.Context, c *imap.Client) error {
	if s.all {
		_, err := c.Xatom(ctx, "NOTIFY", "SET", "(SELECTED (MessageNew MessageExpunge FlagChange))",
			"(personal (MessageNew MessageExpunge FlagChange MailboxName))")
		return err
	}
	var names []string
	for _, b := range s.extras {
		q, err := imap.Quote(mailboxWire(c, b.name))
		if err != nil {
			return err
		}
		names = append(names, q)
	}
	events := "(MessageNew MessageExpunge FlagChange)"
	// SELECTED too: a sync selects each mailbox in turn, and without it a
	// server may say nothing of mail arriving in the mailbox being synced
	// (mox sends neither EXISTS nor STATUS then), which would be missed
	// until the next change there. MailboxName for the personal namespace
	// as well as the watched mailboxes: the rename of a watched mailbox is
	// announced under its new name, which MAILBOXES does not match.
	_, err := c.Xatom(ctx, "NOTIFY", "SET", "(SELECTED "+events+")",
		"(MAILBOXES ("+strings.Join(names, " ")+") (MessageNew MessageExpunge FlagChange MailboxName))", "(personal (MailboxName))")
	return err
}

// catchUpNotify resyncs the mailboxes that changed, then leaves the last
// one, until nothing is left to do.
func (s *session) catchUpNotify(ctx context.Context, c *imap.Client) error {
	for range maxCatchUpRounds {
		s.handleCached(c)
		if s.listDue {
			if err := s.reconcile(ctx, c); err != nil {
				return err
			}
		}
		worked := false
		for _, b := range slices.Clone(s.extras) {
			if b.dropped {
				continue
			}
			if b.pendingNew {
				// New mail in a mailbox while it was selected for a sync.
				b.pendingNew, b.dirty = false, true
			}
			if b.dirty || b.hasUnreported() && b.l.hasRoom() {
				if err := s.sync(ctx, c, b); err != nil {
					return err
				}
				worked = true
			}
		}
		if err := s.unselect(ctx, c); err != nil {
			return err
		}
		if !worked && !s.needsCommand() {
			break
		}
	}
	s.commit()
	return nil
}

// unselect leaves the selected mailbox, handling what the server said about
// it first.
func (s *session) unselect(ctx context.Context, c *imap.Client) error {
	s.handleCached(c)
	if c.State() != imap.StateSelected {
		s.selected = nil
		return nil
	}
	var err error
	if c.Has("UNSELECT") {
		_, err = c.Unselect(ctx)
	} else {
		_, err = c.CloseMailbox(ctx) // read-only: expunges nothing
	}
	s.handleCached(c) // responses to UNSELECT still concern the mailbox
	s.selected = nil
	return err
}

// mailboxWire is the name as the server lists it: modified UTF-7 unless
// UTF8=ACCEPT is on.
func mailboxWire(c *imap.Client, name string) string {
	if c.UTF8Enabled() {
		return name
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return imap.EncodeMailbox(name)
		}
	}
	return name
}
