package watch

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// eventID names a change: a hash of the account, the mailbox, the
// UIDVALIDITY, the UID, the kind and what tells two changes of one message
// apart (the MODSEQ of a flag change, or without CONDSTORE its flags); for
// a rename, the old name too. The
// same change reported twice — after a reconnect, after a restart — gets
// the same ID, so that a consumer (or JetStream's duplicate window) can
// recognise the repeat. 32 hex digits: 128 bits, safe in HTTP headers and
// NATS message IDs.
func eventID(ev *Event) string {
	h := sha256.New()
	field := func(s string) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	field(ev.Account)
	field(ev.Mailbox)
	field(strconv.FormatUint(uint64(ev.UIDValidity), 10))
	field(ev.Kind.String())
	switch ev.Kind {
	case EventNew, EventExpunge:
		field(strconv.FormatUint(uint64(ev.UID), 10))
	case EventFlags:
		field(strconv.FormatUint(uint64(ev.UID), 10))
		if ev.ModSeq > 0 {
			field("modseq " + strconv.FormatUint(ev.ModSeq, 10))
		} else {
			flags := make([]string, len(ev.Flags))
			for i, f := range ev.Flags {
				flags[i] = strings.ToLower(f)
			}
			slices.Sort(flags)
			field("flags " + strings.Join(flags, " "))
		}
	case EventMailboxReset, EventMailboxCreated, EventMailboxDeleted:
		// The UIDVALIDITY (above) tells this mailbox from an earlier or
		// later one of the same name.
	case EventMailboxRenamed:
		field(ev.OldMailbox)
	case EventAlert:
		field(ev.Text)
	default:
		// Reports of the watcher's own life (disconnected, resynced, …)
		// are not changes of the mailbox: each is its own.
		field(ev.Time.UTC().Format("2006-01-02T15:04:05.000000000"))
		field(ev.Text)
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}
