package watch

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/imapkit/imap"
)

// flagSnapshot holds, for a server without CONDSTORE, a digest of the
// flags of each reported message as last seen: the only way a resync can
// tell which flags changed while the link was down (with CONDSTORE,
// CHANGEDSINCE says so). It lives in memory only, so a restart still
// cannot report such changes, and it is kept only for mailboxes of up to
// maxFlagSnapshot messages: a digest and the map's overhead come to about
// 40 bytes a message, and each resync fetches every message's flags.
type flagSnapshot map[uint32]uint64

// maxFlagSnapshot bounds the messages of a mailbox whose flags are kept.
const maxFlagSnapshot = 50_000

// flagDigest digests flags as a set: case and order do not matter.
func flagDigest(flags []string) uint64 {
	lower := make([]string, len(flags))
	for i, f := range flags {
		lower[i] = strings.ToLower(f)
	}
	slices.Sort(lower)
	h := fnv.New64a()
	for _, f := range lower {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// noteFlags records the flags of uid as reported (a New or Flags event).
func (b *box) noteFlags(uid uint32, flags []string) {
	if b.flags != nil {
		b.flags[uid] = flagDigest(flags)
	}
}

// forgetFlags drops an expunged message.
func (b *box) forgetFlags(uid uint32) {
	if b.flags != nil {
		delete(b.flags, uid)
	}
}

// noteEvent keeps the snapshot in step with an event recorded for b.
func (b *box) noteEvent(ev Event) {
	switch ev.Kind {
	case EventNew, EventFlags:
		b.noteFlags(ev.UID, ev.Flags)
	case EventExpunge:
		b.forgetFlags(ev.UID)
	}
}

// resyncFlags fetches the flags of the reported messages of the selected
// mailbox b, on a server without CONDSTORE, and — when report and an
// earlier snapshot exists — records a Flags event for every message whose
// flags differ from it. It then keeps the new snapshot.
func (s *session) resyncFlags(ctx context.Context, c *imap.Client, b *box, report bool) error {
	if c.Has("CONDSTORE") || b.last == 0 || len(b.uids) == 0 {
		b.flags = nil
		return nil
	}
	if len(b.uids) > maxFlagSnapshot {
		if b.flags != nil {
			s.w.opts.Logger.Debug("watch: too many messages to keep their flags without CONDSTORE: flag changes made while disconnected will not be reported",
				"account", s.w.opts.Account, "mailbox", b.name, "messages", len(b.uids), "max", maxFlagSnapshot)
		}
		b.flags = nil
		return nil
	}
	msgs, err := c.UIDFetchMessages(ctx, "1:"+strconv.FormatUint(uint64(b.last), 10), "(UID FLAGS)")
	if errors.Is(err, imap.ErrCommand) {
		// A refusal costs the snapshot, not the connection.
		s.w.opts.Logger.Debug("watch: the server refused the FETCH of every message's flags: flag changes made while disconnected will not be reported",
			"account", s.w.opts.Account, "mailbox", b.name, "error", err)
		b.flags = nil
		return nil
	}
	if err != nil {
		return err
	}
	now := make(flagSnapshot, len(msgs))
	for _, m := range msgs {
		if m.UID == 0 || m.UID > b.last || m.Flags == nil || indexOf(b.uids, m.UID) < 0 {
			continue
		}
		flags := cleanFlags(m.Flags)
		d := flagDigest(flags)
		now[m.UID] = d
		if old, ok := b.flags[m.UID]; report && ok && old != d {
			b.l.record(Event{Kind: EventFlags, Mailbox: b.name, UIDValidity: b.uidValidity, UID: m.UID, Flags: flags})
		}
	}
	b.flags = now
	return nil
}
