package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap/watch"
)

// ErrStateConflict is wrapped by the errors of KVStore.Save that wrote
// nothing because the account's entry changed since this node read or wrote
// it (another node owns the account now), or because this node did not load
// the account or released it.
var ErrStateConflict = errors.New("state conflict: another node owns the account, or this node released it")

// kvTimeout bounds each request of a KVStore: watch.Store's methods take no
// context, and a Watcher must not hang on a store that does not answer.
const kvTimeout = 10 * time.Second

// KVStore is a watch.Store kept in a KV bucket (IMAPKIT_STATE): the key is
// the account's name, the value the JSON of its watch.AccountState.
//
// Writes are fenced: Load remembers the revision of the entry it read, and
// Save writes only if the entry is still at the revision this node read or
// wrote last. So a node that lost an account (its lease expired while it
// was cut off, say) and still saves cannot move the position that the
// account's new owner loaded: its Save fails with ErrStateConflict.
//
// A KVStore is one node's view, for the accounts it owns; its methods may
// be called from several goroutines at once. Loads and Saves of one account
// are serialized, each one KV request.
type KVStore struct {
	kv jetstream.KeyValue

	mu       sync.Mutex
	accounts map[string]*kvAccount // the accounts being loaded or loaded, and not forgotten
}

// kvAccount is what a KVStore remembers of one account.
type kvAccount struct {
	name string
	// mu is held for the whole of a Load, Save or Forget of the account, KV
	// request included, so that each Save starts from the revision the one
	// before it left.
	mu     sync.Mutex
	loaded bool   // a Load succeeded
	rev    uint64 // the entry's revision as last read or written; 0: no entry
	gone   bool   // removed from KVStore.accounts: look the account up again
	// unsure is what the last Save sent when it got no answer: it may be
	// stored, at a revision this node does not know.
	unsure []byte
}

var _ watch.Store = (*KVStore)(nil)

// NewKVStore returns a KVStore that keeps the positions in kv (normally
// Infra.State).
func NewKVStore(kv jetstream.KeyValue) *KVStore {
	return &KVStore{kv: kv, accounts: map[string]*kvAccount{}}
}

// lock returns account's kvAccount with its mu held, creating it if create,
// or nil if there is none.
func (s *KVStore) lock(account string, create bool) *kvAccount {
	for {
		s.mu.Lock()
		a := s.accounts[account]
		if a == nil && create {
			a = &kvAccount{name: account}
			s.accounts[account] = a
		}
		s.mu.Unlock()
		if a == nil {
			return nil
		}
		a.mu.Lock()
		if !a.gone {
			return a
		}
		// Forgotten while this goroutine waited: a later Load may have made
		// another kvAccount.
		a.mu.Unlock()
	}
}

// remove drops a, whose mu is held, from s.accounts.
func (s *KVStore) remove(a *kvAccount) {
	a.gone = true
	s.mu.Lock()
	delete(s.accounts, a.name)
	s.mu.Unlock()
}

// Load returns account's entry, or nil when the bucket holds none, and
// remembers its revision for the next Save: loading is taking the account's
// position over, so Load also follows a conflict, once this node owns the
// account again.
func (s *KVStore) Load(account string) (*watch.AccountState, error) {
	a := s.lock(account, true)
	defer a.mu.Unlock()
	st, rev, err := s.get(account)
	if err != nil {
		if !a.loaded {
			s.remove(a)
		}
		return nil, err
	}
	a.loaded, a.rev = true, rev
	return st, nil
}

// get reads account's entry and its revision (0 and nil when there is
// none).
func (s *KVStore) get(account string) (*watch.AccountState, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	e, err := s.kv.Get(ctx, account)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("service: loading the state of account %q from %s: %w", account, s.kv.Bucket(), err)
	}
	var st *watch.AccountState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, 0, fmt.Errorf("service: the state of account %q in %s (revision %d): %w", account, s.kv.Bucket(), e.Revision(), err)
	}
	if st == nil {
		return nil, 0, fmt.Errorf("service: the state of account %q in %s (revision %d) is null", account, s.kv.Bucket(), e.Revision())
	}
	for mb, pos := range st.Mailboxes {
		if pos == nil {
			return nil, 0, fmt.Errorf("service: the state of account %q in %s (revision %d): mailbox %q has no position (null)", account, s.kv.Bucket(), e.Revision(), mb)
		}
	}
	if st.Mailboxes == nil {
		st.Mailboxes = map[string]*watch.MailboxState{}
	}
	return st, e.Revision(), nil
}

// Save writes st as account's entry if the entry is still at the revision
// this node read (Load) or wrote (Save) last, and returns once JetStream has
// stored it. It writes nothing, and returns an error wrapping
// ErrStateConflict, if the entry changed since, or if this node did not
// load the account or has forgotten it (Forget).
//
// After a Save that failed otherwise (no answer in time, say), whether the
// write happened is not known: the next Save finds out, and if it did,
// writes from there.
func (s *KVStore) Save(account string, st *watch.AccountState) error {
	if st == nil {
		return fmt.Errorf("service: saving the state of account %q: nil state", account)
	}
	// Encoded before anything else: st is the caller's again once Save
	// returns, and it is not read after this.
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("service: saving the state of account %q: %w", account, err)
	}
	a := s.lock(account, false)
	if a == nil {
		return fmt.Errorf("service: saving the state of account %q: this node has not loaded it or has released it: %w", account, ErrStateConflict)
	}
	defer a.mu.Unlock()
	if !a.loaded {
		// A Load in progress when this Save began failed since.
		return fmt.Errorf("service: saving the state of account %q: this node has not loaded it: %w", account, ErrStateConflict)
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	var rev uint64
	if a.rev == 0 {
		rev, err = s.kv.Create(ctx, account, data)
	} else {
		rev, err = s.kv.Update(ctx, account, data, a.rev)
	}
	conflict := errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
	if conflict && a.unsure != nil {
		// The Save that got no answer may have been stored: then the entry
		// is what it sent, and this one is written from there.
		if e := s.readPast(ctx, account, a.rev); e != nil && bytes.Equal(e.Value(), a.unsure) {
			a.rev, a.unsure = e.Revision(), nil
			rev, err = s.kv.Update(ctx, account, data, a.rev)
			conflict = errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
		}
	}
	switch {
	case err == nil:
		a.rev, a.unsure = rev, nil
		return nil
	case conflict:
		if a.rev == 0 {
			return fmt.Errorf("service: saving the state of account %q in %s: this node found no entry, and now there is one: %w", account, s.kv.Bucket(), ErrStateConflict)
		}
		return fmt.Errorf("service: saving the state of account %q in %s: the entry is no longer at revision %d: %w", account, s.kv.Bucket(), a.rev, ErrStateConflict)
	default:
		a.unsure = data
		return fmt.Errorf("service: saving the state of account %q in %s: %w", account, s.kv.Bucket(), err)
	}
}

// readPast reads account's entry once it is past revision rev, which the
// write that just failed on rev says it is: a replica may answer a read
// before it has the latest write. It returns nil if it cannot within ctx.
func (s *KVStore) readPast(ctx context.Context, account string, rev uint64) jetstream.KeyValueEntry {
	for {
		e, err := s.kv.Get(ctx, account)
		if err == nil && e.Revision() != rev {
			return e
		}
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) && !transient(err) {
			return nil
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Forget drops what the store remembers of account, once this node has
// released it: later Saves of the account write nothing and fail with
// ErrStateConflict, until a Load. Forget waits for a Load or Save of the
// account in progress, so that none writes after it returns: the node may
// then let another node take the account.
func (s *KVStore) Forget(account string) {
	if a := s.lock(account, false); a != nil {
		s.remove(a)
		a.mu.Unlock()
	}
}

// leaseStore is the watch.Store of one account's watcher on a node: it
// saves only while valid reports that the node holds the account's lease,
// as publishes do. The revision check of KVStore.Save alone does not stop a
// node that lost the account while the new owner has only loaded the entry
// (both read the same revision): a watcher stopping on a node that was
// paused past its lease would save, and every later Save of the new owner
// would fail with ErrStateConflict, its position stuck.
type leaseStore struct {
	*KVStore
	valid func() bool
}

// Save is KVStore.Save while the lease is valid, tried again while NATS
// does not answer (a stream leader election, a server down), as
// publishRetry does: the watcher saves again only after its next event,
// and a quiet mailbox would keep its old position. Once the lease is no
// longer valid it writes nothing and returns an error wrapping
// ErrStateConflict.
func (s leaseStore) Save(account string, st *watch.AccountState) error {
	delay := 100 * time.Millisecond
	for {
		if !s.valid() {
			return fmt.Errorf("service: saving the state of account %q: this node no longer holds its lease: %w", account, ErrStateConflict)
		}
		err := s.KVStore.Save(account, st)
		if err == nil || !transient(err) {
			return err
		}
		time.Sleep(delay)
		delay = min(2*delay, 2*time.Second)
	}
}
