package watch

// Store keeps, per account, the positions the Watcher may resume from: for
// each mailbox, what the consumer has acknowledged. A Watcher reads its
// account's entry once, in New, and writes it whenever an acknowledgement
// (or a new baseline) moves a position. Several Watchers, one per account,
// may share a Store.
//
// OpenStateFile returns the Store of the command line: one JSON file for
// every account. imapkit serve keeps its positions in NATS.
type Store interface {
	// Load returns account's entry, or nil and no error when the store
	// holds none (the account's first run).
	Load(account string) (*AccountState, error)
	// Save replaces account's entry and returns once it is durable. It may
	// be called from several goroutines at once; the Store must not keep
	// st, which the caller reuses.
	Save(account string, st *AccountState) error
}

// AccountState is one account's entry in a Store.
type AccountState struct {
	// Server and User say which mailbox store the positions belong to: a
	// Watcher refuses an entry whose Server or User differs from its
	// Options (unless Options.Rebaseline), since UIDs of another server
	// mean nothing here. Empty means unknown (an entry migrated from an
	// older format); the next save fills them in.
	Server string `json:"server,omitempty"`
	User   string `json:"user,omitempty"`
	// AllMailboxes says that Mailboxes holds every mailbox of the account
	// (Options.AllMailboxes): one the server has and Mailboxes does not
	// was created since. Without it, such a mailbox starts from a
	// baseline.
	AllMailboxes bool `json:"all_mailboxes,omitempty"`
	// Mailboxes maps a mailbox name to its position.
	Mailboxes map[string]*MailboxState `json:"mailboxes"`
}

// MailboxState is the position of one mailbox: everything up to it has been
// acknowledged by the consumer.
type MailboxState struct {
	UIDValidity uint32 `json:"uidvalidity"`
	// LastUID: every message with a UID up to it was reported as new and
	// acknowledged, or was there when watching began (the baseline).
	LastUID uint32 `json:"last_uid"`
	// HighestModSeq (CONDSTORE): every flag change up to it was
	// acknowledged.
	HighestModSeq uint64 `json:"highestmodseq,omitempty"`
	// UIDs are the messages up to LastUID known to be present, as an IMAP
	// sequence set: those missing at the next sync were expunged meanwhile.
	UIDs string `json:"uids,omitempty"`
}

// clone returns a deep copy of st (nil for nil).
func (st *AccountState) clone() *AccountState {
	if st == nil {
		return nil
	}
	cp := &AccountState{Server: st.Server, User: st.User, AllMailboxes: st.AllMailboxes, Mailboxes: make(map[string]*MailboxState, len(st.Mailboxes))}
	for name, mb := range st.Mailboxes {
		if mb != nil {
			m := *mb
			cp.Mailboxes[name] = &m
		}
	}
	return cp
}
