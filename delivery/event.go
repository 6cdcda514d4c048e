// Package delivery hands watcher events to the user's code — a command
// (hook), a webhook, a JSON stream — at least once: each sink retries with
// backoff, an event that still fails goes to a dead-letter file, and the
// event is acknowledged only once every sink has it.
package delivery

import (
	"mime"
	"slices"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/watch"
)

// Event is an event as sinks see it: its JSON form (the body of a webhook,
// a line of --json, a line on a hook's stdin) and the fields hooks get in
// IMAPKIT_* variables.
type Event struct {
	ID          string   `json:"id"`
	Kind        string   `json:"event"`
	Time        string   `json:"time"`
	Account     string   `json:"account"`
	Mailbox     string   `json:"mailbox"`
	OldMailbox  string   `json:"old_mailbox,omitempty"` // mailbox_renamed: the name before
	UIDValidity uint32   `json:"uidvalidity,omitempty"`
	UID         uint32   `json:"uid,omitempty"`
	Flags       []string `json:"flags,omitempty"`
	ModSeq      uint64   `json:"modseq,omitempty"`
	From        string   `json:"from,omitempty"`
	Subject     string   `json:"subject,omitempty"`
	MessageID   string   `json:"message_id,omitempty"`
	Text        string   `json:"text,omitempty"`
	Error       string   `json:"error,omitempty"`

	// Gmail's X-GM-EXT-1 attributes of a new message, present when the
	// server has the extension. The IDs are 64-bit, so they are JSON
	// strings of decimal digits ("1278455344230334865"): readers that
	// hold numbers as doubles, as JavaScript does, would round them.
	// Labels are an empty list for a message without labels, absent when
	// not known.
	GMMsgID  uint64   `json:"gm_msgid,string,omitempty"`
	GMThrID  uint64   `json:"gm_thrid,string,omitempty"`
	GMLabels []string `json:"gm_labels,omitzero"`
}

// FromWatch converts a watcher's event to its delivered form: the kind by
// name, the time in UTC (RFC 3339 with nanoseconds), the envelope's Subject
// decoded from RFC 2047 encoded words (the raw text when it cannot be), its
// Message-ID, the first From address, and the error as text.
func FromWatch(ev watch.Event) Event {
	out := Event{
		ID:          ev.ID,
		Kind:        ev.Kind.String(),
		Time:        ev.Time.UTC().Format(time.RFC3339Nano),
		Account:     ev.Account,
		Mailbox:     ev.Mailbox,
		OldMailbox:  ev.OldMailbox,
		UIDValidity: ev.UIDValidity,
		UID:         ev.UID,
		Flags:       slices.Clone(ev.Flags), // nil stays nil, [] stays []
		ModSeq:      ev.ModSeq,
		GMMsgID:     ev.GMMsgID,
		GMThrID:     ev.GMThrID,
		GMLabels:    slices.Clone(ev.GMLabels),
		Text:        ev.Text,
	}
	if env := ev.Envelope; env != nil {
		out.Subject = decodeHeader(env.Subject)
		out.MessageID = env.MessageID
		out.From = firstAddr(env.From)
	}
	if ev.Err != nil {
		out.Error = ev.Err.Error()
	}
	return out
}

// decodeHeader decodes RFC 2047 encoded words for display, keeping the raw
// text when it cannot: a badly encoded subject is still worth showing.
func decodeHeader(s string) string {
	var dec mime.WordDecoder
	if out, err := dec.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

// firstAddr returns the first mailbox of an address list as
// mailbox@host. RFC 5322 group markers (no host) are skipped when a real
// address follows, so "From: team: ada@example.org;" gives ada's address.
func firstAddr(list []imap.Address) string {
	for _, a := range list {
		if a.Host != "" {
			return a.Addr()
		}
	}
	if len(list) > 0 {
		return list[0].Addr()
	}
	return ""
}
