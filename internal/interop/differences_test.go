package interop

// profile states how one server may differ from what the checks otherwise
// require. It is the only place such differences are written: a check
// never skips on its own, and each difference is verified by the check it
// names (the capability really is absent and the server refuses the
// command cleanly; the quirk really happens and the client copes), so this
// table and docs/compatibility.md cannot claim what the servers no longer do.
type profile struct {
	// lacks lists the capabilities, among those the checks need, that the
	// server does not offer. A check whose needs are lacked runs its
	// without path instead.
	lacks []string
	// quirks maps a check's name to how the server behaves there unlike
	// the others; the check asserts the behaviour and that the client
	// copes with it.
	quirks map[string]string
}

// profiles holds every server's differences, by harness name.
var profiles = map[string]profile{
	"Dovecot": {},
	"Cyrus":   {},
	"mox": {
		quirks: map[string]string{
			"mailboxes":     `LIST names the inbox "Inbox" (INBOX is case-insensitive)`,
			"idle-push":     "v0.0.15 drops a connection that selects a mailbox after another connection's APPEND it was not yet told of (\"uid already present\"); the client reports the abort, and a NOOP before SELECT avoids it",
			"list-only-own": "sends LIST during SELECT; the client keeps it out of the next LIST's result",
		},
	},
	"Courier": {
		lacks: []string{"MOVE", "UNSELECT", "CONDSTORE"},
		quirks: map[string]string{
			"select":         "SELECT sends no UIDNEXT (STATUS does); the watcher takes the highest UID it finds",
			"watch-cut-link": "without CONDSTORE the watcher finds the flags changed while away by comparing every message's flags with those it saw (kept in memory, up to 50,000 messages a mailbox)",
			"mailboxes":      "the personal namespace is \"INBOX.\" with delimiter \".\": CREATE Foo is refused, INBOX.Foo works",
			"watch-all-mailboxes": "RENAME gives the mailbox a new UIDVALIDITY (and an empty one gets a new UIDVALIDITY at every SELECT): " +
				"without NOTIFY the rename is reported as mailbox_deleted and mailbox_created, its mail as new",
		},
	},
}

// lacks reports whether the server is declared to lack capability.
func (p profile) lacksCap(capability string) bool {
	for _, c := range p.lacks {
		if c == capability {
			return true
		}
	}
	return false
}
