package watch

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/imapkit/imap"
)

// sync selects b (read-only) and reconciles it with what was reported: a
// changed UIDVALIDITY resets it, UIDs gone since are reported as expunged,
// flags changed since (CONDSTORE, or compared with flagSnapshot) as Flags,
// and every UID above the last one reported as New. The first sync of a mailbox with no saved position
// only records a baseline: mail that was there before the watch started is
// not "new". A mailbox found deleted is dropped (see selectFailed), and
// sync returns nil.
func (s *session) sync(ctx context.Context, c *imap.Client, b *box) error {
	// What arrived for the mailbox selected until now still concerns it;
	// SELECT would clear it from the cache.
	s.handleCached(c)
	s.selected = nil
	if _, err := c.Select(ctx, b.name, true); err != nil {
		return s.selectFailed(ctx, c, b, err) // deleted, maybe
	}
	b.everSelected = true
	s.selected = b
	if b == s.primary {
		s.primaryAt = time.Now()
	}
	md := imap.ParseMailboxData(c.Cached)
	for _, typ := range []string{"EXISTS", "RECENT", "EXPUNGE", "FETCH", "VANISHED"} {
		c.Response(typ)
	}
	s.selectedList(c, b)
	b.pendingNew, b.dirty, b.stale = false, false, false
	b.ghosts = nil
	current, err := s.searchAll(ctx, c, b)
	if err != nil {
		return err
	}
	b.uids = current
	b.exists = uint32(len(current))
	b.uidValidity = md.UIDValidity
	b.status = statusSeen{uidValidity: md.UIDValidity, uidNext: md.UIDNext, messages: uint32(len(current)), highestModSeq: md.HighestModSeq}

	l := b.l
	if b.createdUnannounced {
		b.createdUnannounced = false
		l.created(Event{Kind: EventMailboxCreated, Mailbox: b.name, UIDValidity: md.UIDValidity}, md.UIDValidity)
	}
	known := l.known
	if uv := l.uidValidity(); known && uv != md.UIDValidity && (uv == 0 || l.lastUID() == 0) {
		// No UIDVALIDITY was known, or no UID of the old one was ever
		// given: a reset would mean nothing, and what is there now is new.
		// (Courier gives an empty folder a new UIDVALIDITY at every SELECT,
		// and keeps the one it has when the first message arrives: a reset
		// would skip that message.)
		s.w.opts.Logger.Debug("watch: UIDVALIDITY changed on a mailbox that had no message: nothing to reset",
			"account", s.w.opts.Account, "mailbox", b.name, "old", uv, "new", md.UIDValidity)
		l.setUIDValidity(md.UIDValidity)
	}
	if known && l.pos.uidValidity == md.UIDValidity && md.UIDNext > 0 && l.pos.last >= md.UIDNext {
		problem := fmt.Sprintf("last_uid is %d, but the server has given UIDs only up to %d (UIDNEXT %d)", l.pos.last, md.UIDNext-1, md.UIDNext)
		if !s.w.opts.Rebaseline {
			return &StateError{Account: s.w.opts.Account, Mailbox: b.name, Problem: problem}
		}
		s.w.opts.Logger.Warn("watch: rebaselining", "account", s.w.opts.Account, "mailbox", b.name, "problem", problem)
		known = false
	}
	base := position{uidValidity: md.UIDValidity, modseq: md.HighestModSeq}
	if md.UIDNext > 0 {
		base.last = md.UIDNext - 1
	}
	if n := len(current); n > 0 {
		base.last = max(base.last, current[n-1])
	}
	if md.UIDNext == 0 {
		// Courier, for one, sends none. New mail is still found by EXISTS
		// and by UIDs above the last one reported; what is lost is the
		// check of a saved position against the server.
		s.w.opts.Logger.Debug("watch: the server sent no UIDNEXT: taking the highest UID present as the last one given, and not checking the saved position against it",
			"account", s.w.opts.Account, "mailbox", b.name, "highest_uid", base.last, "saved_last_uid", l.pos.last)
	}
	switch {
	case known && l.pos.uidValidity != md.UIDValidity:
		// The mailbox was recreated: earlier UIDs mean nothing now, and the
		// messages there now are its new baseline.
		prev := l.pos.uidValidity
		b.last = base.last
		l.startOver(Event{Kind: EventMailboxReset, Mailbox: b.name, UIDValidity: md.UIDValidity,
			Text: "UIDVALIDITY changed from " + strconv.FormatUint(uint64(prev), 10)}, base, fromSorted(current))
		b.announce = false
		b.flags = nil
		return s.resyncFlags(ctx, c, b, false)
	case !known:
		b.last = base.last
		l.setBaseline(base, fromSorted(current))
		s.w.saveNow()
		text := "baseline"
		if s.w.opts.Store != nil {
			text = "baseline: first run for this mailbox (no saved position); the mail there now is not reported"
		}
		s.w.notice(Event{Kind: EventResynced, Mailbox: b.name, UIDValidity: md.UIDValidity, Text: text})
		b.announce = false
		return s.resyncFlags(ctx, c, b, false)
	}
	b.last = l.pos.last

	// Expunged while we were away.
	var gone []uint32
	s.w.mu.Lock()
	l.present.each(func(uid uint32) {
		if indexOf(current, uid) < 0 {
			gone = append(gone, uid)
		}
	})
	s.w.mu.Unlock()
	for _, uid := range gone {
		l.record(Event{Kind: EventExpunge, Mailbox: b.name, UIDValidity: md.UIDValidity, UID: uid})
		b.forgetFlags(uid)
	}
	// Flags changed while we were away.
	since := l.pos.modseq
	if since > 0 && md.HighestModSeq > since && b.last > 0 && c.Has("CONDSTORE") {
		msgs, err := c.UIDFetchMessages(ctx, "1:"+strconv.FormatUint(uint64(b.last), 10),
			"(UID FLAGS) (CHANGEDSINCE "+strconv.FormatUint(since, 10)+")")
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.UID == 0 || m.UID > b.last || m.Flags == nil || indexOf(b.uids, m.UID) < 0 {
				continue
			}
			l.record(Event{Kind: EventFlags, Mailbox: b.name, UIDValidity: md.UIDValidity, UID: m.UID, Flags: cleanFlags(m.Flags), ModSeq: m.ModSeq})
		}
	}
	if err := s.resyncFlags(ctx, c, b, true); err != nil {
		return err
	}
	if !b.dirty && md.HighestModSeq > 0 {
		l.advanceModSeq(md.HighestModSeq)
	}
	s.w.saveSoon()
	if err := s.reportNew(ctx, c, b); err != nil {
		return err
	}
	if b.announce && !b.dirty {
		s.w.notice(Event{Kind: EventResynced, Mailbox: b.name, UIDValidity: md.UIDValidity})
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
		// VANISHED carries a set of UIDs, never a literal: one datum each.
		for _, d := range c.Response("VANISHED").Data {
			if _, uids, err := parseVanished(string(d.Text)); err == nil {
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

// newItems are the FETCH items of a New event.
func (s *session) newItems(c *imap.Client) string {
	items := "(UID FLAGS"
	if s.w.opts.Envelope {
		items += " ENVELOPE"
	}
	if c.Has("CONDSTORE") {
		items += " MODSEQ"
	}
	if c.Has("X-GM-EXT-1") {
		// Other servers would answer BAD to items they do not know.
		items += " X-GM-MSGID X-GM-THRID X-GM-LABELS"
	}
	return items + ")"
}

// newChunk bounds the messages fetched by one command.
const newChunk = 500

// fetchNew fetches the messages announced by EXISTS, by sequence number —
// one command: the server may not send EXPUNGE during a FETCH by sequence
// number, so the numbers hold — and reports them. When they are many, or
// the window has room for fewer, it learns only their UIDs and leaves the
// rest to reportNew.
func (s *session) fetchNew(ctx context.Context, c *imap.Client, b *box) error {
	from := uint32(len(b.uids)) + 1
	to := b.exists
	if to < from {
		return nil
	}
	n := int(to - from + 1)
	// New events go out in UID order: while older messages wait for room,
	// these only join the queue of the unreported.
	full := n <= newChunk && n <= b.l.roomLeft() && !b.hasUnreported()
	items := "(UID)"
	if full {
		items = s.newItems(c)
	}
	set := strconv.FormatUint(uint64(from), 10) + ":" + strconv.FormatUint(uint64(to), 10)
	msgs, err := c.FetchMessages(ctx, set, items)
	if err != nil {
		return err
	}
	bySeq := make(map[uint32]*imap.Message, n)
	for _, m := range msgs {
		if m.Seq < from || m.Seq > to {
			s.fetched(b, m) // a flag change of an older message
			continue
		}
		if prev := bySeq[m.Seq]; prev != nil {
			merge(prev, m)
			continue
		}
		bySeq[m.Seq] = m
	}
	var fresh []*imap.Message
	for seq := from; seq <= to; seq++ {
		m := bySeq[seq]
		if m == nil || m.UID == 0 || m.UID <= b.lastKnown() {
			b.confused() // the server did not answer as it must: look again
			return nil
		}
		b.uids = append(b.uids, m.UID)
		fresh = append(fresh, m)
	}
	if !full {
		return s.reportNew(ctx, c, b)
	}
	s.offerNew(b, fresh)
	return nil
}

// lastKnown is the highest UID the view knows of.
func (v *view) lastKnown() uint32 {
	if n := len(v.uids); n > 0 {
		return max(v.uids[n-1], v.last)
	}
	return v.last
}

// merge folds a second FETCH response for the same message (a flag change
// after our answer) into the first.
func merge(into, m *imap.Message) {
	if m.Flags != nil {
		into.Flags = m.Flags
	}
	if m.Envelope != nil {
		into.Envelope = m.Envelope
	}
	if m.UID != 0 {
		into.UID = m.UID
	}
	if m.GMMsgID != 0 {
		into.GMMsgID = m.GMMsgID
	}
	if m.GMThrID != 0 {
		into.GMThrID = m.GMThrID
	}
	if m.GMLabels != nil {
		into.GMLabels = m.GMLabels
	}
	into.ModSeq = max(into.ModSeq, m.ModSeq)
}

// reportNew fetches and reports, in UID order, the known messages above
// the last one reported, as many as the window has room for. FETCH
// responses the server sends meanwhile for other messages (flag changes)
// are handled too: they would otherwise be lost in the result.
func (s *session) reportNew(ctx context.Context, c *imap.Client, b *box) error {
	fresh := b.unreported()
	for len(fresh) > 0 {
		n := min(len(fresh), newChunk, b.l.roomLeft())
		if n == 0 {
			return nil // the window is full: the rest waits on the server
		}
		part := fresh[:n]
		fresh = fresh[n:]
		msgs, err := c.UIDFetchMessages(ctx, imap.FormatSequenceSet(part), s.newItems(c))
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
				merge(prev, m)
				continue
			}
			byUID[m.UID] = m
		}
		var got []*imap.Message
		for _, uid := range part {
			if m := byUID[uid]; m != nil {
				got = append(got, m)
			} else {
				b.ghost(uid) // expunged before we could fetch it: never reported
			}
		}
		if !s.offerNew(b, got) {
			return nil
		}
	}
	return nil
}

// offerNew hands over New events for msgs, in order, while the window has
// room, and reports whether all were.
func (s *session) offerNew(b *box, msgs []*imap.Message) bool {
	for _, m := range msgs {
		ev := Event{Kind: EventNew, Mailbox: b.name, UIDValidity: b.uidValidity, UID: m.UID, Flags: cleanFlags(m.Flags), ModSeq: m.ModSeq, Envelope: m.Envelope,
			GMMsgID: m.GMMsgID, GMThrID: m.GMThrID, GMLabels: m.GMLabels}
		if !b.l.offerNew(ev) {
			return false // reported when there is room
		}
		b.last = m.UID
		b.newModSeq = max(b.newModSeq, m.ModSeq)
		b.noteEvent(ev)
	}
	return true
}

// fetched handles a FETCH response that is not the answer to our own
// request for new messages: a flag change.
func (s *session) fetched(b *box, msg *imap.Message) {
	if b == nil || !b.l.known {
		return
	}
	if ev, ok := b.flagsChanged(msg); ok {
		b.l.record(ev)
		b.noteEvent(ev)
		if !b.dirty && msg.ModSeq > 0 {
			b.l.advanceModSeq(msg.ModSeq)
		}
	}
}
