package watch

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/imapkit/imap"
)

// sync selects b (read-only) and reconciles it with what was reported:
// a changed UIDVALIDITY resets it, UIDs gone since are reported as
// expunged, flags changed since (CONDSTORE) as Flags, and every UID above
// the last one reported as New. The first sync of a mailbox with no saved
// state only records a baseline: mail that was there before the watch
// started is not "new".
func (s *session) sync(ctx context.Context, c *imap.Client, b *box) error {
	// What arrived for the mailbox selected until now still concerns it;
	// SELECT would clear it from the cache.
	s.handleCached(c)
	s.selected = nil
	if _, err := c.Select(ctx, b.name, true); err != nil {
		if !b.everSelected && errors.Is(err, imap.ErrCommand) && !temporary(err) {
			return &MailboxError{Mailbox: b.name, Err: err}
		}
		return err
	}
	b.everSelected = true
	s.selected = b
	md := imap.ParseMailboxData(c.Cached)
	for _, typ := range []string{"EXISTS", "RECENT", "EXPUNGE", "FETCH", "VANISHED"} {
		c.Response(typ)
	}
	b.pendingNew, b.dirty, b.stale = false, false, false
	b.ghosts = nil
	current, err := s.searchAll(ctx, c, b)
	if err != nil {
		return err
	}
	b.uids = current
	b.status = statusSeen{uidValidity: md.UIDValidity, uidNext: md.UIDNext, messages: uint32(len(current)), highestModSeq: md.HighestModSeq}

	prev := b.st
	if prev == nil {
		prev = s.w.state.get(b.key)
	}
	if prev != nil && prev.UIDValidity != md.UIDValidity {
		s.w.emit(Event{Kind: EventMailboxReset, Mailbox: b.name, UIDValidity: md.UIDValidity,
			Text: "UIDVALIDITY changed from " + strconv.FormatUint(uint64(prev.UIDValidity), 10)})
		prev = nil
	}
	if prev == nil {
		last := uint32(0)
		if md.UIDNext > 0 {
			last = md.UIDNext - 1
		}
		if n := len(current); n > 0 && current[n-1] > last {
			last = current[n-1]
		}
		b.st = &mailboxState{UIDValidity: md.UIDValidity, LastUID: last, HighestModSeq: md.HighestModSeq, UIDs: encodeUIDs(current)}
		b.undelivered = nil
		s.save(b)
		s.w.emit(Event{Kind: EventResynced, Mailbox: b.name, UIDValidity: md.UIDValidity, Text: "baseline"})
		b.announce = false
		return nil
	}
	b.st = prev

	// Expunged while we were away (or while the buffer was full).
	var owed []uint32
	for _, uid := range decodeUIDs(prev.UIDs) {
		if indexOf(current, uid) < 0 {
			if !s.w.emit(Event{Kind: EventExpunge, Mailbox: b.name, UIDValidity: prev.UIDValidity, UID: uid}) {
				b.dirty = true
				owed = append(owed, uid)
			}
		}
	}
	b.undelivered = owed
	// Flags changed while we were away.
	if prev.HighestModSeq > 0 && md.HighestModSeq > prev.HighestModSeq && prev.LastUID > 0 && c.Has("CONDSTORE") {
		msgs, err := c.UIDFetchMessages(ctx, "1:"+strconv.FormatUint(uint64(prev.LastUID), 10),
			"(UID FLAGS) (CHANGEDSINCE "+strconv.FormatUint(prev.HighestModSeq, 10)+")")
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.UID == 0 || m.UID > prev.LastUID || m.Flags == nil || indexOf(b.uids, m.UID) < 0 {
				continue
			}
			if !s.w.emit(Event{Kind: EventFlags, Mailbox: b.name, UIDValidity: prev.UIDValidity, UID: m.UID, Flags: cleanFlags(m.Flags), ModSeq: m.ModSeq}) {
				b.dirty = true
			}
		}
	}
	if !b.dirty && md.HighestModSeq > b.st.HighestModSeq {
		b.st.HighestModSeq = md.HighestModSeq
	}
	b.st.UIDs = encodeUIDs(b.knownUIDs())
	s.save(b)
	if err := s.reportNew(ctx, c, b); err != nil {
		return err
	}
	if b.announce && !b.dirty {
		s.w.emit(Event{Kind: EventResynced, Mailbox: b.name, UIDValidity: b.st.UIDValidity})
		b.announce = false
	}
	return nil
}

// searchAll returns the UIDs of the selected mailbox. Sequence-numbered
// EXPUNGEs that arrive during the search cannot be placed before or after
// its result, so the search is repeated until none does.
func (s *session) searchAll(ctx context.Context, c *imap.Client, b *box) ([]uint32, error) {
	for attempt := 0; ; attempt++ {
		res, err := c.UID(ctx, "SEARCH", "ALL")
		if err != nil {
			return nil, err
		}
		current, err := imap.ParseSearch(res.Data)
		if err != nil {
			return nil, err
		}
		slices.Sort(current)
		current = slices.Compact(current)
		for _, r := range splitResponses("VANISHED", c.Response("VANISHED").Data) {
			if _, uids, err := parseVanished(string(r.Data[0].Text)); err == nil {
				slices.Sort(uids)
				current = slices.DeleteFunc(current, func(u uint32) bool {
					_, gone := slices.BinarySearch(uids, u)
					return gone
				})
			}
		}
		if len(c.Response("EXPUNGE").Data) == 0 {
			return current, nil
		}
		if attempt == 3 {
			b.dirty = true // try again later
			return current, nil
		}
	}
}

// fetchNew learns the UIDs of messages announced by EXISTS and reports them.
func (s *session) fetchNew(ctx context.Context, c *imap.Client, b *box) error {
	res, err := c.UID(ctx, "SEARCH", "UID", strconv.FormatUint(uint64(b.lastKnown())+1, 10)+":*")
	if err != nil {
		return err
	}
	nums, err := imap.ParseSearch(res.Data)
	if err != nil {
		return err
	}
	if len(c.Cached("EXPUNGE")) > 0 {
		// Sequence numbers moved during the search in a way we cannot
		// follow: start over.
		b.dirty, b.stale = true, true
		return nil
	}
	slices.Sort(nums)
	for _, uid := range nums {
		if uid > b.lastKnown() {
			b.uids = append(b.uids, uid)
		}
	}
	return s.reportNew(ctx, c, b)
}

func (b *box) lastKnown() uint32 {
	if n := len(b.uids); n > 0 {
		return max(b.uids[n-1], b.st.LastUID)
	}
	return b.st.LastUID
}

// reportNew emits New for every known UID above the last one reported, in
// UID order, advancing the state only past events that were delivered.
// FETCH responses the server sends meanwhile for other messages (flag
// changes) are handled too: they would otherwise be lost in the result.
func (s *session) reportNew(ctx context.Context, c *imap.Client, b *box) error {
	var fresh []uint32
	for _, uid := range b.uids {
		if uid > b.st.LastUID && !b.ghosts[uid] {
			fresh = append(fresh, uid)
		}
	}
	items := "(UID FLAGS"
	if s.w.opts.Envelope {
		items += " ENVELOPE"
	}
	if c.Has("CONDSTORE") {
		items += " MODSEQ"
	}
	items += ")"
	const chunk = 500
	for len(fresh) > 0 {
		n := min(len(fresh), chunk)
		part := fresh[:n]
		fresh = fresh[n:]
		msgs, err := c.UIDFetchMessages(ctx, imap.FormatSequenceSet(part), items)
		if err != nil {
			return err
		}
		byUID := make(map[uint32]*imap.Message, len(msgs))
		for _, m := range msgs {
			if _, ok := slices.BinarySearch(part, m.UID); !ok || m.UID == 0 {
				s.fetched(b, m)
				continue
			}
			if prev := byUID[m.UID]; prev != nil {
				// A flag change of the new message, after our answer.
				if m.Flags != nil {
					prev.Flags = m.Flags
				}
				if m.Envelope != nil {
					prev.Envelope = m.Envelope
				}
				prev.ModSeq = max(prev.ModSeq, m.ModSeq)
				continue
			}
			byUID[m.UID] = m
		}
		for _, uid := range part {
			m := byUID[uid]
			if m == nil {
				// Expunged before we could fetch it: never reported.
				if b.ghosts == nil {
					b.ghosts = map[uint32]bool{}
				}
				b.ghosts[uid] = true
				continue
			}
			ev := Event{Kind: EventNew, Mailbox: b.name, UIDValidity: b.st.UIDValidity, UID: uid, Flags: cleanFlags(m.Flags), Envelope: m.Envelope}
			if !s.w.emit(ev) {
				b.dirty, b.announce = true, true // reported again after the next resync
				b.st.UIDs = encodeUIDs(b.knownUIDs())
				s.save(b)
				return nil
			}
			b.st.LastUID = uid
			b.newModSeq = max(b.newModSeq, m.ModSeq)
		}
		b.st.UIDs = encodeUIDs(b.knownUIDs())
		s.save(b)
	}
	return nil
}
