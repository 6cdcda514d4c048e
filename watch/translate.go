package watch

import (
	"slices"
	"strconv"
	"strings"

	"github.com/imapkit/imap"
)

// view is what a session knows of the mailbox it has selected, and the
// rules that turn the server's untagged responses into events. It does no
// I/O: the session feeds it responses and hands the events it returns to
// the mailbox's ledger.
type view struct {
	name        string
	uidValidity uint32
	// last is the highest UID reported as new (or the baseline): a message
	// above it has not been reported, so its flag changes and its expunge
	// are no news (it comes as New, or never).
	last uint32
	// uids are the UIDs of the selected mailbox in sequence order.
	uids []uint32
	// ghosts are UIDs that vanished before they could be reported.
	ghosts map[uint32]bool
	// exists is the message count the server last announced.
	exists uint32

	pendingNew bool // EXISTS announced messages not fetched yet
	dirty      bool // needs a resync
	stale      bool // uids no longer map sequence numbers: ignore them until the resync
	// modseq is the highest HIGHESTMODSEQ, or MODSEQ of a flag change,
	// the server announced since the view was last read: every change up
	// to it was sent before it.
	modseq uint64
}

// apply applies one untagged response (EXISTS, EXPUNGE, VANISHED, FETCH,
// HIGHESTMODSEQ) and returns the events it makes: Expunge and Flags, in
// order. The events carry no account, time or ID yet.
func (v *view) apply(r imap.Response) []Event {
	text := ""
	if len(r.Data) > 0 {
		text = string(r.Data[0].Text)
	}
	switch r.Type {
	case "EXISTS":
		n, err := strconv.ParseUint(text, 10, 32)
		if err != nil {
			return nil
		}
		v.exists = uint32(n)
		switch {
		case n > uint64(len(v.uids)):
			v.pendingNew = true
		case n < uint64(len(v.uids)):
			v.confused() // fewer than we know, without EXPUNGE
		}
	case "EXPUNGE":
		if v.stale {
			return nil
		}
		seq, err := strconv.ParseUint(text, 10, 32)
		if err != nil || seq == 0 || seq > uint64(len(v.uids)) {
			v.confused()
			return nil
		}
		uid := v.uids[seq-1]
		v.uids = slices.Delete(v.uids, int(seq-1), int(seq))
		v.oneLess()
		return v.expunged(nil, uid)
	case "VANISHED":
		_, uids, err := parseVanished(text)
		if err != nil {
			v.confused()
			return nil
		}
		var evs []Event
		for _, uid := range uids {
			if i := indexOf(v.uids, uid); i >= 0 {
				v.uids = slices.Delete(v.uids, i, i+1)
				v.oneLess()
				evs = v.expunged(evs, uid)
			}
		}
		return evs
	case "FETCH":
		msg, err := imap.ParseFetchResponse(r)
		if err != nil {
			return nil
		}
		if ev, ok := v.flagsChanged(msg); ok {
			// Its MODSEQ, like HIGHESTMODSEQ, says every change up to it
			// was sent (RFC 7162 §3.2.4: changes in MODSEQ order).
			v.modseq = max(v.modseq, msg.ModSeq)
			return []Event{ev}
		}
	case "HIGHESTMODSEQ":
		if n, err := strconv.ParseUint(strings.TrimSpace(text), 10, 64); err == nil {
			v.modseq = max(v.modseq, n)
		}
	}
	return nil
}

// oneLess counts a known message expunged: one fewer on the server, where
// an EXISTS may have announced messages not fetched yet — still to fetch,
// one place lower.
func (v *view) oneLess() {
	if v.exists > 0 {
		v.exists--
	}
	v.exists = max(v.exists, uint32(len(v.uids)))
}

// confused marks the view as no longer following the server: resync.
func (v *view) confused() { v.dirty, v.stale = true, true }

// expunged appends the Expunge event of uid, if it was ever reported.
func (v *view) expunged(evs []Event, uid uint32) []Event {
	if v.ghosts[uid] {
		delete(v.ghosts, uid)
		return evs
	}
	if uid > v.last {
		return evs // never reported, so nothing to retract
	}
	return append(evs, Event{Kind: EventExpunge, Mailbox: v.name, UIDValidity: v.uidValidity, UID: uid})
}

// flagsChanged turns a FETCH that is not the answer to a request for new
// messages into a Flags event, when it concerns a reported message.
func (v *view) flagsChanged(msg *imap.Message) (Event, bool) {
	if msg.Flags == nil {
		return Event{}, false
	}
	uid := msg.UID
	if uid == 0 {
		if v.stale || msg.Seq == 0 || int(msg.Seq) > len(v.uids) {
			return Event{}, false // the resync reports it (with CONDSTORE)
		}
		uid = v.uids[msg.Seq-1]
	}
	if uid > v.last || v.ghosts[uid] || indexOf(v.uids, uid) < 0 {
		return Event{}, false // not reported yet (it comes as New), or gone
	}
	return Event{Kind: EventFlags, Mailbox: v.name, UIDValidity: v.uidValidity, UID: uid, Flags: cleanFlags(msg.Flags), ModSeq: msg.ModSeq}, true
}

// unreported returns the known UIDs above last, not ghosts: messages to
// report as new.
func (v *view) unreported() []uint32 {
	i, _ := slices.BinarySearch(v.uids, v.last+1)
	var out []uint32
	for _, uid := range v.uids[i:] {
		if !v.ghosts[uid] {
			out = append(out, uid)
		}
	}
	return out
}

// hasUnreported reports whether unreported would return any UID.
func (v *view) hasUnreported() bool {
	i, _ := slices.BinarySearch(v.uids, v.last+1)
	for _, uid := range v.uids[i:] {
		if !v.ghosts[uid] {
			return true
		}
	}
	return false
}

// ghost records that uid vanished before it could be reported.
func (v *view) ghost(uid uint32) {
	if v.ghosts == nil {
		v.ghosts = map[uint32]bool{}
	}
	v.ghosts[uid] = true
}

// parseVanished parses the data of a VANISHED response (RFC 7162):
// "(EARLIER) 1:3,7" or "5".
func parseVanished(text string) (earlier bool, uids []uint32, err error) {
	set := strings.TrimSpace(text)
	if len(set) >= 9 && strings.EqualFold(set[:9], "(EARLIER)") {
		earlier = true
		set = strings.TrimSpace(set[9:])
	}
	uids, err = imap.ParseSequenceSet(set)
	return earlier, uids, err
}

// alertText returns the text of an "[ALERT] text" at the start of an OK or
// NO response: RFC 3501 says the client must show it to the user.
func alertText(text string) (string, bool) {
	const code = "[ALERT]"
	if len(text) >= len(code) && strings.EqualFold(text[:len(code)], code) {
		return strings.TrimSpace(text[len(code):]), true
	}
	return "", false
}

// cleanFlags drops \Recent, which only says which session saw the message
// first (and is gone from IMAP4rev2).
func cleanFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, f)
		}
	}
	return out
}

func indexOf(uids []uint32, uid uint32) int {
	if i, ok := slices.BinarySearch(uids, uid); ok {
		return i
	}
	return -1
}
