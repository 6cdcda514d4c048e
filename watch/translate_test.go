package watch

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
)

// resp builds an untagged response of one datum: resp("EXPUNGE", "2").
func resp(typ, text string) imap.Response {
	return imap.Response{Type: typ, Data: []imap.Datum{{Text: []byte(text)}}}
}

// describeEvents renders events compactly: "expunge 2", "flags 3 [\Seen] 7".
func describeEvents(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		s := fmt.Sprintf("%s %d", ev.Kind, ev.UID)
		if ev.Kind == EventFlags {
			s += fmt.Sprintf(" %v %d", ev.Flags, ev.ModSeq)
		}
		out = append(out, s)
	}
	return out
}

// TestViewApply turns server responses into events with no server: the
// translation the session relies on.
func TestViewApply(t *testing.T) {
	for _, tc := range []struct {
		name      string
		uids      []uint32 // in sequence order
		last      uint32   // highest UID reported
		ghosts    []uint32
		responses []imap.Response
		want      []string // events
		wantUIDs  []uint32
		exists    uint32 // afterwards, when not len(wantUIDs)
		pending   bool   // pendingNew afterwards
		confused  bool   // dirty and stale afterwards
		modseq    uint64
	}{
		{name: "exists more: new mail to fetch", uids: []uint32{1, 2}, last: 2,
			responses: []imap.Response{resp("EXISTS", "3")}, wantUIDs: []uint32{1, 2}, exists: 3, pending: true},
		{name: "exists more, then an expunge: the new mail is still to fetch", uids: []uint32{1, 2, 3}, last: 3,
			responses: []imap.Response{resp("EXISTS", "4"), resp("EXPUNGE", "1")},
			want:      []string{"expunge 1"}, wantUIDs: []uint32{2, 3}, exists: 3, pending: true},
		{name: "exists more, then vanished", uids: []uint32{1, 2, 3}, last: 3,
			responses: []imap.Response{resp("EXISTS", "5"), resp("VANISHED", "1,3")},
			want:      []string{"expunge 1", "expunge 3"}, wantUIDs: []uint32{2}, exists: 3, pending: true},
		{name: "exists same: nothing", uids: []uint32{1, 2}, last: 2,
			responses: []imap.Response{resp("EXISTS", "2")}, wantUIDs: []uint32{1, 2}},
		{name: "exists fewer without expunge: resync", uids: []uint32{1, 2}, last: 2,
			responses: []imap.Response{resp("EXISTS", "1")}, wantUIDs: []uint32{1, 2}, confused: true},
		{name: "expunge by sequence number", uids: []uint32{4, 7, 9}, last: 9,
			responses: []imap.Response{resp("EXPUNGE", "2"), resp("EXPUNGE", "2")},
			want:      []string{"expunge 7", "expunge 9"}, wantUIDs: []uint32{4}},
		{name: "expunge of a message never reported", uids: []uint32{4, 7, 9}, last: 7,
			responses: []imap.Response{resp("EXPUNGE", "3")}, wantUIDs: []uint32{4, 7}},
		{name: "expunge of a ghost", uids: []uint32{4, 7}, last: 7, ghosts: []uint32{7},
			responses: []imap.Response{resp("EXPUNGE", "2")}, wantUIDs: []uint32{4}},
		{name: "expunge out of range: resync", uids: []uint32{4}, last: 4,
			responses: []imap.Response{resp("EXPUNGE", "2")}, wantUIDs: []uint32{4}, confused: true},
		{name: "expunge after confusion is ignored", uids: []uint32{4, 5}, last: 5,
			responses: []imap.Response{resp("EXPUNGE", "9"), resp("EXPUNGE", "1")}, wantUIDs: []uint32{4, 5}, confused: true},
		{name: "vanished by UID", uids: []uint32{1, 2, 3, 5}, last: 5,
			responses: []imap.Response{resp("VANISHED", "2:3,8")},
			want:      []string{"expunge 2", "expunge 3"}, wantUIDs: []uint32{1, 5}},
		{name: "vanished earlier", uids: []uint32{1, 2}, last: 2,
			responses: []imap.Response{resp("VANISHED", "(EARLIER) 1")}, want: []string{"expunge 1"}, wantUIDs: []uint32{2}},
		{name: "flags by UID", uids: []uint32{3, 6}, last: 6,
			responses: []imap.Response{resp("FETCH", `2 (UID 6 FLAGS (\Seen \Recent) MODSEQ (41))`)},
			want:      []string{`flags 6 [\Seen] 41`}, wantUIDs: []uint32{3, 6}, modseq: 41},
		{name: "flags by sequence number", uids: []uint32{3, 6}, last: 6,
			responses: []imap.Response{resp("FETCH", `1 (FLAGS (\Flagged))`)},
			want:      []string{`flags 3 [\Flagged] 0`}, wantUIDs: []uint32{3, 6}},
		{name: "flags of an unreported message come with its New", uids: []uint32{3, 6}, last: 3,
			responses: []imap.Response{resp("FETCH", `2 (UID 6 FLAGS (\Seen))`)}, wantUIDs: []uint32{3, 6}},
		{name: "fetch without flags", uids: []uint32{3}, last: 3,
			responses: []imap.Response{resp("FETCH", `1 (UID 3 RFC822.SIZE 10)`)}, wantUIDs: []uint32{3}},
		{name: "highestmodseq", uids: []uint32{3}, last: 3,
			responses: []imap.Response{resp("HIGHESTMODSEQ", "77"), resp("HIGHESTMODSEQ", "70")}, wantUIDs: []uint32{3}, modseq: 77},
		{name: "expunge, then flags by sequence number of the shifted message", uids: []uint32{1, 2, 3}, last: 3,
			responses: []imap.Response{resp("EXPUNGE", "1"), resp("FETCH", `2 (FLAGS (\Deleted))`)},
			want:      []string{"expunge 1", `flags 3 [\Deleted] 0`}, wantUIDs: []uint32{2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &view{name: "INBOX", uidValidity: 9, last: tc.last, uids: slices.Clone(tc.uids), exists: uint32(len(tc.uids))}
			for _, g := range tc.ghosts {
				v.ghost(g)
			}
			var evs []Event
			for _, r := range tc.responses {
				evs = append(evs, v.apply(r)...)
			}
			if got := describeEvents(evs); !slices.Equal(got, tc.want) {
				t.Errorf("events %q, want %q", got, tc.want)
			}
			for _, ev := range evs {
				if ev.Mailbox != "INBOX" || ev.UIDValidity != 9 {
					t.Errorf("event %v: mailbox %q uidvalidity %d", ev.Kind, ev.Mailbox, ev.UIDValidity)
				}
			}
			if !slices.Equal(v.uids, tc.wantUIDs) {
				t.Errorf("uids %v, want %v", v.uids, tc.wantUIDs)
			}
			if want := max(tc.exists, uint32(len(tc.wantUIDs))); v.exists != want && !tc.confused {
				t.Errorf("exists %d, want %d", v.exists, want)
			}
			if v.pendingNew != tc.pending {
				t.Errorf("pendingNew %v, want %v", v.pendingNew, tc.pending)
			}
			if v.dirty != tc.confused || v.stale != tc.confused {
				t.Errorf("dirty %v stale %v, want both %v", v.dirty, v.stale, tc.confused)
			}
			if v.modseq != tc.modseq {
				t.Errorf("modseq %d, want %d", v.modseq, tc.modseq)
			}
		})
	}
}

func TestViewUnreported(t *testing.T) {
	v := &view{last: 5, uids: []uint32{2, 5, 6, 8, 9}}
	v.ghost(8)
	if got := v.unreported(); !slices.Equal(got, []uint32{6, 9}) {
		t.Errorf("unreported %v, want [6 9]", got)
	}
	if !v.hasUnreported() {
		t.Error("hasUnreported false")
	}
	v.last = 9
	if v.hasUnreported() || len(v.unreported()) != 0 {
		t.Error("nothing above last, yet unreported")
	}
}

func TestAlertText(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"[ALERT] Mailbox over quota", "Mailbox over quota", true},
		{"[alert]  shutting down ", "shutting down", true},
		{"[READ-ONLY] EXAMINE done", "", false},
		{"Still here", "", false},
	} {
		got, ok := alertText(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("alertText(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEventID(t *testing.T) {
	base := Event{Kind: EventNew, Account: "work", Mailbox: "INBOX", UIDValidity: 7, UID: 42}
	id := eventID(&base)
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Fatalf("ID %q: want 32 lowercase hex digits", id)
	}
	same := base
	same.Flags = []string{`\Seen`}
	same.Envelope = &imap.Envelope{Subject: "other fields do not count"}
	if eventID(&same) != id {
		t.Error("the same change got another ID")
	}
	flags := func(modseq uint64, f ...string) string {
		ev := Event{Kind: EventFlags, Account: "work", Mailbox: "INBOX", UIDValidity: 7, UID: 42, Flags: f, ModSeq: modseq}
		return eventID(&ev)
	}
	differ := map[string]Event{
		"account":     {Kind: EventNew, Account: "home", Mailbox: "INBOX", UIDValidity: 7, UID: 42},
		"mailbox":     {Kind: EventNew, Account: "work", Mailbox: "Lists", UIDValidity: 7, UID: 42},
		"uidvalidity": {Kind: EventNew, Account: "work", Mailbox: "INBOX", UIDValidity: 8, UID: 42},
		"uid":         {Kind: EventNew, Account: "work", Mailbox: "INBOX", UIDValidity: 7, UID: 43},
		"kind":        {Kind: EventExpunge, Account: "work", Mailbox: "INBOX", UIDValidity: 7, UID: 42},
	}
	for what, ev := range differ {
		if eventID(&ev) == id {
			t.Errorf("another %s, same ID", what)
		}
	}
	if flags(10, `\Seen`) != flags(10, `\Flagged`) {
		t.Error("flag changes with the same MODSEQ got different IDs")
	}
	if flags(10, `\Seen`) == flags(11, `\Seen`) {
		t.Error("flag changes with different MODSEQs got the same ID")
	}
	if flags(0, `\Seen`, `\Flagged`) != flags(0, `\flagged`, `\seen`) {
		t.Error("without MODSEQ, the same flags in another order or case got another ID")
	}
	if flags(0, `\Seen`) == flags(0, `\Seen`, `\Flagged`) {
		t.Error("without MODSEQ, different flags got the same ID")
	}
}

// TestEventIDMailboxes: the creation, rename and deletion of a mailbox are
// changes, named by the mailbox and its UIDVALIDITY (and the old name of a
// rename), not by when they were seen: reported again after a restart,
// they get the same ID. Another mailbox of the same name (another
// UIDVALIDITY) gets another.
func TestEventIDMailboxes(t *testing.T) {
	at := time.Date(2025, 3, 4, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		ev       Event
		same     func(*Event) // seen again: the same ID
		differ   func(*Event) // another change: another ID
		whatDiff string
	}{
		{"created", Event{Kind: EventMailboxCreated, Mailbox: "Made", UIDValidity: 9},
			func(ev *Event) { ev.Time = at.Add(time.Hour); ev.Text = "x" }, func(ev *Event) { ev.UIDValidity = 10 }, "uidvalidity"},
		{"deleted", Event{Kind: EventMailboxDeleted, Mailbox: "Box", UIDValidity: 9},
			func(ev *Event) { ev.Time = at.Add(time.Hour); ev.Text = `renamed to "X"` }, func(ev *Event) { ev.UIDValidity = 10 }, "uidvalidity"},
		{"deleted, not created", Event{Kind: EventMailboxDeleted, Mailbox: "Made", UIDValidity: 9},
			func(ev *Event) {}, func(ev *Event) { ev.Kind = EventMailboxCreated }, "kind"},
		{"renamed", Event{Kind: EventMailboxRenamed, Mailbox: "Archive", OldMailbox: "Lists", UIDValidity: 9},
			func(ev *Event) { ev.Time = at.Add(time.Hour) }, func(ev *Event) { ev.OldMailbox = "Old" }, "old name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Account, tc.ev.Time = "work", at
			id := eventID(&tc.ev)
			again := tc.ev
			tc.same(&again)
			if eventID(&again) != id {
				t.Error("seen again, it got another ID")
			}
			other := tc.ev
			tc.differ(&other)
			if eventID(&other) == id {
				t.Errorf("another %s, same ID", tc.whatDiff)
			}
		})
	}
}

func TestUIDSet(t *testing.T) {
	var s uidSet
	for _, u := range []uint32{5, 3, 4, 9, 1, 10, 2} {
		s.add(u)
	}
	if got := s.String(); got != "1:5,9:10" {
		t.Fatalf("after adds: %q", got)
	}
	s.remove(3)
	s.remove(10)
	s.remove(7)
	if got := s.String(); got != "1:2,4:5,9" {
		t.Fatalf("after removes: %q", got)
	}
	if got := s.upTo(4).String(); got != "1:2,4" {
		t.Errorf("upTo(4) = %q", got)
	}
	if s.String() != "1:2,4:5,9" {
		t.Error("upTo changed the set")
	}
	if !s.contains(9) || s.contains(3) || s.contains(11) {
		t.Error("contains")
	}
	p, err := parseUIDSet("7,1:3,5")
	if err != nil || p.String() != "1:3,5,7" {
		t.Errorf("parseUIDSet = %q, %v", p.String(), err)
	}
	var all []uint32
	p.each(func(u uint32) { all = append(all, u) })
	if !slices.Equal(all, []uint32{1, 2, 3, 5, 7}) {
		t.Errorf("each: %v", all)
	}
	if got := fromSorted([]uint32{1, 2, 3, 7, 8}).String(); got != "1:3,7:8" {
		t.Errorf("fromSorted: %q", got)
	}
}
