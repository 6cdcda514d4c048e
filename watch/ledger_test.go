package watch

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
)

// memStore is a Store in memory that counts its writes.
type memStore struct {
	mu      sync.Mutex
	entries map[string]*AccountState
	saves   int
	fail    error
}

func (m *memStore) Load(account string) (*AccountState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entries[account].clone(), nil
}

func (m *memStore) Save(account string, st *AccountState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.entries == nil {
		m.entries = map[string]*AccountState{}
	}
	m.entries[account] = st.clone()
	m.saves++
	return nil
}

func (m *memStore) get(account, mailbox string) MailboxState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entries[account]; e != nil && e.Mailboxes[mailbox] != nil {
		return *e.Mailboxes[mailbox]
	}
	return MailboxState{}
}

// ledgerFixture is a Watcher with one mailbox at a known position, and the
// events it handed over.
type ledgerFixture struct {
	t     *testing.T
	w     *Watcher
	l     *ledger
	store *memStore
}

func newLedgerFixture(t *testing.T, window int, saved MailboxState) *ledgerFixture {
	t.Helper()
	store := &memStore{entries: map[string]*AccountState{"acct": {Mailboxes: map[string]*MailboxState{"INBOX": &saved}}}}
	w, err := New(nil, &Options{Account: "acct", Store: store, Window: window})
	if err != nil {
		t.Fatal(err)
	}
	return &ledgerFixture{t: t, w: w, l: w.ledger("INBOX"), store: store}
}

// take returns every event queued so far.
func (f *ledgerFixture) take() []Event {
	var evs []Event
	for {
		f.w.mu.Lock()
		n := len(f.w.queue) - f.w.qhead
		f.w.mu.Unlock()
		if n == 0 {
			return evs
		}
		ev, err := f.w.Next(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

// saved is the position the ledger would save now.
func (f *ledgerFixture) saved() MailboxState {
	f.w.mu.Lock()
	defer f.w.mu.Unlock()
	_, st := f.l.savedLocked()
	return *st
}

func (f *ledgerFixture) want(what string, want MailboxState) {
	f.t.Helper()
	if got := f.saved(); got != want {
		f.t.Errorf("%s: saved %+v, want %+v", what, got, want)
	}
}

func newEv(uid uint32) Event {
	return Event{Kind: EventNew, Mailbox: "INBOX", UIDValidity: 7, UID: uid}
}

// TestLedgerNewAckedOutOfOrder: the last UID moves only over a prefix of
// acknowledged New events, whatever the order of the acknowledgements.
func TestLedgerNewAckedOutOfOrder(t *testing.T) {
	f := newLedgerFixture(t, 10, MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	for uid := uint32(11); uid <= 13; uid++ {
		if !f.l.offerNew(newEv(uid)) {
			t.Fatalf("offerNew(%d) refused with room", uid)
		}
	}
	evs := f.take()
	if len(evs) != 3 {
		t.Fatalf("%d events queued, want 3", len(evs))
	}
	f.want("nothing acknowledged", MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	evs[1].Ack()
	f.want("12 acknowledged", MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	evs[0].Ack()
	f.want("11, 12 acknowledged", MailboxState{UIDValidity: 7, LastUID: 12, UIDs: "1:12"})
	evs[2].Ack()
	evs[2].Ack() // twice: no harm
	f.want("all acknowledged", MailboxState{UIDValidity: 7, LastUID: 13, UIDs: "1:13"})
	if f.w.saveNow(); f.store.get("acct", "INBOX").LastUID != 13 {
		t.Errorf("store holds %+v", f.store.get("acct", "INBOX"))
	}
}

// TestLedgerExpungeKeepsUIDUntilAcked: an expunged UID stays in the saved
// set (so that a restart reports the expunge again) until acknowledged.
func TestLedgerExpungeKeepsUIDUntilAcked(t *testing.T) {
	f := newLedgerFixture(t, 10, MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	f.l.record(Event{Kind: EventExpunge, Mailbox: "INBOX", UIDValidity: 7, UID: 5})
	evs := f.take()
	f.want("expunge not acknowledged", MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	evs[0].Ack()
	f.want("expunge acknowledged", MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:4,6:10"})
}

// TestLedgerFlagsModSeq: the saved HIGHESTMODSEQ stays below the oldest
// unacknowledged flag change.
func TestLedgerFlagsModSeq(t *testing.T) {
	f := newLedgerFixture(t, 10, MailboxState{UIDValidity: 7, LastUID: 10, HighestModSeq: 100, UIDs: "1:10"})
	f.l.record(Event{Kind: EventFlags, Mailbox: "INBOX", UIDValidity: 7, UID: 3, Flags: []string{`\Seen`}, ModSeq: 105})
	f.l.record(Event{Kind: EventFlags, Mailbox: "INBOX", UIDValidity: 7, UID: 4, Flags: []string{`\Seen`}, ModSeq: 108})
	f.l.advanceModSeq(108)
	evs := f.take()
	f.want("two flag changes pending", MailboxState{UIDValidity: 7, LastUID: 10, HighestModSeq: 104, UIDs: "1:10"})
	evs[1].Ack()
	f.want("the later one acknowledged", MailboxState{UIDValidity: 7, LastUID: 10, HighestModSeq: 104, UIDs: "1:10"})
	evs[0].Ack()
	f.want("both acknowledged", MailboxState{UIDValidity: 7, LastUID: 10, HighestModSeq: 108, UIDs: "1:10"})
}

// TestLedgerWindow: a full window refuses New events (the server keeps the
// messages) and keeps expunges and flag changes in order, coalesced per
// UID, until acknowledgements make room.
func TestLedgerWindow(t *testing.T) {
	f := newLedgerFixture(t, 2, MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	if !f.l.offerNew(newEv(11)) || !f.l.offerNew(newEv(12)) {
		t.Fatal("refused with room")
	}
	if f.l.offerNew(newEv(13)) {
		t.Fatal("a third New accepted with a window of 2")
	}
	f.l.record(Event{Kind: EventFlags, Mailbox: "INBOX", UIDValidity: 7, UID: 2, Flags: []string{`\Seen`}, ModSeq: 0})
	f.l.record(Event{Kind: EventFlags, Mailbox: "INBOX", UIDValidity: 7, UID: 3, Flags: []string{`\Seen`}})
	f.l.record(Event{Kind: EventExpunge, Mailbox: "INBOX", UIDValidity: 7, UID: 3})
	evs := f.take()
	if len(evs) != 2 {
		t.Fatalf("%d events handed over, want 2", len(evs))
	}
	f.want("window full", MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	evs[0].Ack()
	evs[1].Ack()
	more := f.take()
	if got := describeEvents(more); len(got) != 2 || got[0] != `flags 2 [\Seen] 0` || got[1] != "expunge 3" {
		t.Fatalf("after room: %q, want the flag change of 2 and the expunge of 3 (which replaced its flag change)", got)
	}
	f.want("outbox handed over, not acknowledged", MailboxState{UIDValidity: 7, LastUID: 12, UIDs: "1:12"})
	more[1].Ack()
	f.want("expunge acknowledged", MailboxState{UIDValidity: 7, LastUID: 12, UIDs: "1:2,4:12"})
}

// TestLedgerReset: a reset bars the mailbox and keeps the old position
// saved until it is acknowledged.
func TestLedgerReset(t *testing.T) {
	f := newLedgerFixture(t, 10, MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	f.l.offerNew(newEv(11))
	f.l.startOver(Event{Kind: EventMailboxReset, Mailbox: "INBOX", UIDValidity: 8}, position{uidValidity: 8, last: 3}, fromSorted([]uint32{1, 2, 3}))
	evs := f.take()
	if len(evs) != 2 || evs[1].Kind != EventMailboxReset {
		t.Fatalf("events %v", describeEvents(evs))
	}
	if f.l.offerNew(Event{Kind: EventNew, Mailbox: "INBOX", UIDValidity: 8, UID: 4}) {
		t.Error("New accepted while the reset is unacknowledged")
	}
	f.want("reset pending", MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	evs[1].Ack()
	f.want("reset acknowledged", MailboxState{UIDValidity: 8, LastUID: 3, UIDs: "1:3"})
	evs[0].Ack() // of the old UIDVALIDITY: moves nothing now
	f.want("old event acknowledged", MailboxState{UIDValidity: 8, LastUID: 3, UIDs: "1:3"})
}

// TestLedgerSaveFailure: a failed write becomes one StateError event, and
// the next acknowledgement writes everything.
func TestLedgerSaveFailure(t *testing.T) {
	f := newLedgerFixture(t, 10, MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	f.store.fail = errors.New("disk full")
	f.l.offerNew(newEv(11))
	f.l.offerNew(newEv(12))
	evs := f.take()
	evs[0].Ack()
	f.w.saveNow()
	evs[1].Ack()
	f.w.saveNow()
	notices := f.take()
	if len(notices) != 1 || notices[0].Kind != EventStateError || notices[0].Err == nil {
		t.Fatalf("after two failed writes: %v, want one state_error", describeEvents(notices))
	}
	f.store.fail = nil
	f.w.saveNow()
	if got := f.store.get("acct", "INBOX"); got.LastUID != 12 {
		t.Errorf("after the disk came back the store holds %+v", got)
	}
}

// TestLedgerSavesCoalesce: acknowledgements that come together share a
// write.
func TestLedgerSavesCoalesce(t *testing.T) {
	f := newLedgerFixture(t, 500, MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"})
	for uid := uint32(11); uid < 311; uid++ {
		f.l.offerNew(newEv(uid))
	}
	for _, ev := range f.take() {
		ev.Ack()
	}
	f.w.saveNow()
	if got := f.store.get("acct", "INBOX"); got.LastUID != 310 {
		t.Fatalf("store holds %+v", got)
	}
	if f.store.saves > 5 {
		t.Errorf("%d writes for 300 acknowledgements made at once", f.store.saves)
	}
}

// TestLedgerMailboxEvents: an event of a mailbox as a whole — created,
// renamed, deleted — bars the mailbox like a reset, and until it is
// acknowledged the state saved is the one from before, so that a restart
// finds the change again: a created mailbox is not saved, a renamed one is
// saved under its old name, a deleted one keeps its position. Once it is
// acknowledged, the created one is saved from its first message, the
// renamed one under its new name with its position, and nothing is left
// of the deleted one.
func TestLedgerMailboxEvents(t *testing.T) {
	before := MailboxState{UIDValidity: 7, LastUID: 10, UIDs: "1:10"}
	for _, tc := range []struct {
		name         string
		change       func(w *Watcher, inbox *ledger) *ledger // returns the ledger the event is of
		pending, out map[string]MailboxState                 // the entry saved before and after the acknowledgement
	}{
		{
			name: "created",
			change: func(w *Watcher, _ *ledger) *ledger {
				l, err := w.addLedger("Made")
				if err != nil {
					t.Fatal(err)
				}
				l.created(Event{Kind: EventMailboxCreated, Mailbox: "Made", UIDValidity: 9}, 9)
				return l
			},
			pending: map[string]MailboxState{"INBOX": before},
			out:     map[string]MailboxState{"INBOX": before, "Made": {UIDValidity: 9}},
		},
		{
			name: "renamed",
			change: func(_ *Watcher, inbox *ledger) *ledger {
				inbox.renamed(Event{Kind: EventMailboxRenamed, Mailbox: "Archive", OldMailbox: "INBOX", UIDValidity: 7}, "Archive")
				return inbox
			},
			pending: map[string]MailboxState{"INBOX": before},
			out:     map[string]MailboxState{"Archive": before},
		},
		{
			name: "deleted",
			change: func(_ *Watcher, inbox *ledger) *ledger {
				inbox.deleted(Event{Kind: EventMailboxDeleted, Mailbox: "INBOX", UIDValidity: 7})
				return inbox
			},
			pending: map[string]MailboxState{"INBOX": before},
			out:     map[string]MailboxState{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newLedgerFixture(t, 10, before)
			saved := func(what string, want map[string]MailboxState) {
				t.Helper()
				f.w.mu.Lock()
				st := f.w.snapshotLocked()
				f.w.mu.Unlock()
				got := map[string]MailboxState{}
				for name, mb := range st.Mailboxes {
					got[name] = *mb
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: saved %v, want %v", what, got, want)
				}
			}
			l := tc.change(f.w, f.l)
			evs := f.take()
			if len(evs) != 1 || evs[0].ID == "" {
				t.Fatalf("events %v, want the one change with an ID", describeEvents(evs))
			}
			if l.offerNew(Event{Kind: EventNew, Mailbox: l.name, UIDValidity: 9, UID: 11}) {
				t.Error("New accepted while the change is unacknowledged")
			}
			saved("unacknowledged", tc.pending)
			evs[0].Ack()
			saved("acknowledged", tc.out)
			f.w.mu.Lock()
			n := len(f.w.ledgers)
			f.w.mu.Unlock()
			if want := len(tc.out); n != want {
				t.Errorf("%d ledgers left, want %d", n, want)
			}
		})
	}
}
