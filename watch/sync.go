package watch

import (
	"context"
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
	s.selected = nil
	if _, err := c.Select(ctx, b.name, true); err != nil {
		return err
	}
	s.selected = b
	md := imap.ParseMailboxData(c.Cached)
	for _, typ := range []string{"EXISTS", "RECENT", "EXPUNGE", "FETCH", "VANISHED"} {
		c.Response(typ)
	}
	res, err := c.UID(ctx, "SEARCH", "ALL")
	if err != nil {
		return err
	}
	current, err := imap.ParseSearch(res.Data)
	if err != nil {
		return err
	}
	slices.Sort(current)
	b.uids = current
	b.exists = uint32(len(current))
	b.pendingNew = false
	b.dirty = false

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
		s.save(b)
		s.w.emit(Event{Kind: EventResynced, Mailbox: b.name, UIDValidity: md.UIDValidity, Text: "baseline"})
		return nil
	}
	b.st = prev

	// Expunged while we were away.
	known := decodeUIDs(prev.UIDs)
	for _, uid := range known {
		if indexOf(current, uid) < 0 {
			if !s.w.emit(Event{Kind: EventExpunge, Mailbox: b.name, UIDValidity: prev.UIDValidity, UID: uid}) {
				b.dirty = true
			}
		}
	}
	// Flags changed while we were away.
	if prev.HighestModSeq > 0 && md.HighestModSeq > prev.HighestModSeq && prev.LastUID > 0 && c.Has("CONDSTORE") {
		res, err := c.UID(ctx, "FETCH", "1:"+strconv.FormatUint(uint64(prev.LastUID), 10),
			"(UID FLAGS) (CHANGEDSINCE "+strconv.FormatUint(prev.HighestModSeq, 10)+")")
		if err != nil {
			return err
		}
		msgs, err := imap.ParseFetch(res.Data)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.UID == 0 || m.UID > prev.LastUID || m.Flags == nil {
				continue
			}
			if !s.w.emit(Event{Kind: EventFlags, Mailbox: b.name, UIDValidity: prev.UIDValidity, UID: m.UID, Flags: m.Flags, ModSeq: m.ModSeq}) {
				b.dirty = true
			}
		}
	}
	if !b.dirty {
		b.st.HighestModSeq = md.HighestModSeq
	}
	b.st.UIDs = encodeUIDs(uidsUpTo(current, b.st.LastUID))
	s.save(b)
	if err := s.reportNew(ctx, c, b); err != nil {
		return err
	}
	s.w.emit(Event{Kind: EventResynced, Mailbox: b.name, UIDValidity: b.st.UIDValidity})
	return nil
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
	for _, uid := range nums {
		if uid > b.lastKnown() {
			b.uids = append(b.uids, uid)
		}
	}
	slices.Sort(b.uids)
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
func (s *session) reportNew(ctx context.Context, c *imap.Client, b *box) error {
	var fresh []uint32
	for _, uid := range b.uids {
		if uid > b.st.LastUID {
			fresh = append(fresh, uid)
		}
	}
	const chunk = 500
	for len(fresh) > 0 {
		n := min(len(fresh), chunk)
		part := fresh[:n]
		fresh = fresh[n:]
		items := "(UID FLAGS)"
		if s.w.opts.Envelope {
			items = "(UID FLAGS ENVELOPE)"
		}
		res, err := c.UID(ctx, "FETCH", imap.FormatSequenceSet(part), items)
		if err != nil {
			return err
		}
		msgs, err := imap.ParseFetch(res.Data)
		if err != nil {
			return err
		}
		byUID := make(map[uint32]*imap.Message, len(msgs))
		for _, m := range msgs {
			byUID[m.UID] = m
		}
		for _, uid := range part {
			m := byUID[uid]
			if m == nil {
				continue // expunged before we could fetch it
			}
			ev := Event{Kind: EventNew, Mailbox: b.name, UIDValidity: b.st.UIDValidity, UID: uid, Flags: m.Flags, Envelope: m.Envelope}
			if !s.w.emit(ev) {
				b.dirty = true // reported again after the next resync
				s.save(b)
				return nil
			}
			b.st.LastUID = uid
		}
		b.st.UIDs = encodeUIDs(uidsUpTo(b.uids, b.st.LastUID))
		s.save(b)
	}
	return nil
}
