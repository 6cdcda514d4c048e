// Package delivery hands watcher events to the user's code — a command
// (hook), a webhook, a JSON stream — at least once: each sink retries with
// backoff, an event that still fails goes to a dead-letter file, and the
// event is acknowledged only once every sink has it.
package delivery

// Event is an event as sinks see it: its JSON form (the body of a webhook,
// a line of --json, a line on a hook's stdin) and the fields hooks get in
// IMAPKIT_* variables.
type Event struct {
	ID          string   `json:"id"`
	Kind        string   `json:"event"`
	Time        string   `json:"time"`
	Account     string   `json:"account"`
	Mailbox     string   `json:"mailbox"`
	UIDValidity uint32   `json:"uidvalidity,omitempty"`
	UID         uint32   `json:"uid,omitempty"`
	Flags       []string `json:"flags,omitempty"`
	ModSeq      uint64   `json:"modseq,omitempty"`
	From        string   `json:"from,omitempty"`
	Subject     string   `json:"subject,omitempty"`
	MessageID   string   `json:"message_id,omitempty"`
	Text        string   `json:"text,omitempty"`
	Error       string   `json:"error,omitempty"`
}
