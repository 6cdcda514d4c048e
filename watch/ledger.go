package watch

import (
	"maps"
	"slices"
)

// ledger is the delivery book of one mailbox: the events handed to the
// consumer and not yet acknowledged (at most Options.Window), the changes
// waiting for room, and from both, the position that may be saved — which
// moves only over what the consumer acknowledged.
//
// The session that watches the mailbox writes it; acknowledgements, on the
// consumer's goroutine, read it and mark it. Everything is guarded by the
// Watcher's mu.
type ledger struct {
	w    *Watcher
	name string

	// known: pos means something (loaded from the Store, or synced).
	known bool
	// pos is what the consumer has been told, acknowledged or not:
	// UIDVALIDITY, the highest UID reported as new (or the baseline), and
	// the mod-sequence up to which every flag change was handed over or
	// recorded in the outbox.
	pos position
	// present are the UIDs up to pos.last that were reported (or were in
	// the baseline), are still there, and whose Expunge is not recorded.
	present uidSet
	// inflight are the events handed over (queued or taken), oldest first;
	// an acknowledged prefix is dropped.
	inflight []*pending
	unacked  int
	// outbox holds expunges and flag changes that came while the window
	// was full, one per UID (an expunge replaces a flag change; a flag
	// change replaces an older one). Bounded by the mailbox size.
	outbox map[uint32]Event
	// barrier is the last unacknowledged event of the mailbox as a whole:
	// MailboxReset, or the mailbox created, renamed or deleted. Until it
	// is acknowledged nothing else of the mailbox is handed over, and what
	// is saved is before, under the name beforeName (nothing when before
	// is nil): the state from before the first of them, so that a restart
	// finds the change again and reports it again.
	barrier    *pending
	before     *MailboxState
	beforeName string
	// gone: the mailbox was deleted. Nothing is saved of it once its
	// MailboxDeleted is acknowledged.
	gone bool
}

type position struct {
	uidValidity uint32
	last        uint32
	modseq      uint64
}

// pending is one handed-over event, as its acknowledgement needs it.
type pending struct {
	l           *ledger
	kind        Kind
	uidValidity uint32
	uid         uint32
	modseq      uint64
	acked       bool
}

// load sets the position read from the Store.
func (l *ledger) load(st *MailboxState) error {
	present, err := parseUIDSet(st.UIDs)
	if err != nil {
		return err
	}
	l.known = true
	l.pos = position{uidValidity: st.UIDValidity, last: st.LastUID, modseq: st.HighestModSeq}
	l.present = present.upTo(st.LastUID)
	return nil
}

// uidValidity is the UIDVALIDITY of the position.
func (l *ledger) uidValidity() uint32 {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.pos.uidValidity
}

// setUIDValidity gives a position that holds no UID a new UIDVALIDITY,
// and forgets the mod-sequence of the old one.
func (l *ledger) setUIDValidity(uv uint32) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	l.pos.uidValidity, l.pos.modseq = uv, 0
}

// lastUID is the highest UID reported as new (or the baseline).
func (l *ledger) lastUID() uint32 {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.pos.last
}

// room reports whether an event may be handed over now.
func (l *ledger) room() bool {
	return l.barrier == nil && l.unacked < l.w.opts.Window
}

// hasRoom is room for callers that do not hold w.mu.
func (l *ledger) hasRoom() bool {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.room()
}

// roomLeft is how many events may be handed over now.
func (l *ledger) roomLeft() int {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	if l.barrier != nil {
		return 0
	}
	return max(0, l.w.opts.Window-l.unacked)
}

// handOver gives ev to the consumer and books it. With w.mu held.
func (l *ledger) handOver(ev Event) {
	p := &pending{l: l, kind: ev.Kind, uidValidity: ev.UIDValidity, uid: ev.UID, modseq: ev.ModSeq}
	ev.ack = p
	l.inflight = append(l.inflight, p)
	l.unacked++
	l.w.push(ev)
}

// offerNew hands over a New event if there is room; otherwise the message
// stays on the server, to be fetched again when there is.
func (l *ledger) offerNew(ev Event) bool {
	w := l.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if !l.room() {
		return false
	}
	w.stamp(&ev)
	l.handOver(ev)
	l.pos.last = max(l.pos.last, ev.UID)
	l.present.add(ev.UID)
	return true
}

// record hands over an Expunge or Flags event, or keeps it in the outbox
// until there is room. Nothing is dropped.
func (l *ledger) record(ev Event) {
	w := l.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stamp(&ev)
	if ev.Kind == EventExpunge {
		l.present.remove(ev.UID)
	}
	if _, waiting := l.outbox[ev.UID]; waiting || !l.room() {
		if l.outbox == nil {
			l.outbox = map[uint32]Event{}
		}
		l.outbox[ev.UID] = ev
		return
	}
	l.handOver(ev)
}

// startOver replaces the position with a new baseline after UIDVALIDITY
// changed, and hands over the reset, which bars everything else of the
// mailbox until it is acknowledged.
func (l *ledger) startOver(ev Event, base position, present uidSet) {
	l.bar(ev, func() { l.pos, l.present, l.outbox = base, present, nil })
}

// created books a mailbox created while watched (or while away): known
// from its start, so that every message in it is reported as new. Nothing
// is saved of it until its MailboxCreated is acknowledged.
func (l *ledger) created(ev Event, uidValidity uint32) {
	l.bar(ev, func() {
		l.known, l.pos, l.present, l.outbox = true, position{uidValidity: uidValidity}, nil, nil
	})
}

// renamed gives the mailbox its new name, which it is saved under once the
// MailboxRenamed is acknowledged.
func (l *ledger) renamed(ev Event, name string) {
	l.bar(ev, func() {
		if l.w.loaded != nil {
			delete(l.w.loaded.Mailboxes, l.name) // saved under beforeName until acknowledged
		}
		l.name = name
	})
}

// deleted ends the book of a mailbox deleted on the server: what waited
// for room is dropped (the deletion says it all), and once the
// MailboxDeleted is acknowledged, nothing is saved of it.
func (l *ledger) deleted(ev Event) {
	l.bar(ev, func() {
		if l.w.loaded != nil {
			delete(l.w.loaded.Mailboxes, l.name)
		}
		l.gone, l.outbox = true, nil
	})
}

// bar applies change and hands over ev, an event of the mailbox as a
// whole, which bars everything else of the mailbox until it is
// acknowledged; meanwhile what is saved is what was before the first
// unacknowledged one.
func (l *ledger) bar(ev Event, change func()) {
	w := l.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if l.barrier == nil {
		l.beforeName, l.before = l.savedLocked()
	}
	change()
	w.stamp(&ev)
	l.handOver(ev)
	l.barrier = l.inflight[len(l.inflight)-1]
}

// setBaseline sets the position of a mailbox seen for the first time.
func (l *ledger) setBaseline(base position, present uidSet) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	l.known, l.pos, l.present = true, base, present
}

// advanceModSeq records that every flag change up to modseq was handed
// over (or is in the outbox).
func (l *ledger) advanceModSeq(modseq uint64) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	if modseq > l.pos.modseq {
		l.pos.modseq = modseq
	}
}

// ack marks p acknowledged, hands over what waited for room, and has the
// position saved.
func (l *ledger) ack(p *pending) {
	w := l.w
	w.mu.Lock()
	if p.acked {
		w.mu.Unlock()
		return
	}
	p.acked = true
	l.unacked--
	n := 0
	for n < len(l.inflight) && l.inflight[n].acked {
		n++
	}
	l.inflight = slices.Delete(l.inflight, 0, n)
	if p == l.barrier {
		l.barrier, l.before, l.beforeName = nil, nil, ""
		if l.gone {
			w.forgetLocked(l)
		}
	}
	if len(l.outbox) > 0 {
		// Only then: drain's frame is large, and this runs on the
		// consumer's goroutine, which may stay within its first 2 KiB.
		l.drain()
	}
	if len(l.inflight) == 0 {
		l.inflight = nil // a quiet mailbox keeps no memory for it
	}
	w.mu.Unlock()
	w.saveSoon()
}

// drain hands over outbox entries, lowest UID first, while there is room.
func (l *ledger) drain() {
	if !l.room() {
		return
	}
	for _, uid := range slices.Sorted(maps.Keys(l.outbox)) {
		if !l.room() {
			return
		}
		l.handOver(l.outbox[uid])
		delete(l.outbox, uid)
	}
}

// savedLocked is the position that may be saved, and the name to save it
// under: what was told, less what is not acknowledged. Nil when there is
// none. With w.mu held.
func (l *ledger) savedLocked() (string, *MailboxState) {
	if l.barrier != nil {
		return l.beforeName, l.before
	}
	if !l.known || l.gone {
		return "", nil
	}
	last, modseq := l.pos.last, l.pos.modseq
	var owed []uint32 // expunges not acknowledged: their UIDs stay known
	note := func(kind Kind, uid uint32, ms uint64) {
		switch kind {
		case EventNew:
			last = min(last, uid-1)
		case EventFlags:
			if ms > 0 {
				modseq = min(modseq, ms-1)
			}
		case EventExpunge:
			owed = append(owed, uid)
		}
	}
	for _, p := range l.inflight {
		if !p.acked && p.uidValidity == l.pos.uidValidity {
			note(p.kind, p.uid, p.modseq)
		}
	}
	for _, ev := range l.outbox {
		note(ev.Kind, ev.UID, ev.ModSeq)
	}
	uids := l.present.upTo(last)
	if len(owed) > 0 {
		uids = slices.Clone(uids)
		for _, u := range owed {
			uids.add(u)
		}
	}
	return l.name, &MailboxState{UIDValidity: l.pos.uidValidity, LastUID: last, HighestModSeq: modseq, UIDs: uids.String()}
}

// busy reports whether events of the mailbox are unacknowledged or wait
// for room.
func (l *ledger) busy() bool {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.unacked > 0 || len(l.outbox) > 0
}
