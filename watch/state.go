package watch

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/imapkit/imap"
)

// mailboxState is what has been reported for one mailbox.
type mailboxState struct {
	UIDValidity   uint32 `json:"uidvalidity"`
	LastUID       uint32 `json:"last_uid"` // highest UID reported (or the baseline)
	HighestModSeq uint64 `json:"highestmodseq,omitempty"`
	UIDs          string `json:"uids,omitempty"` // UIDs known present, for expunges while away
}

// stateStore holds every mailbox's state and writes the state file.
type stateStore struct {
	mu    sync.Mutex
	path  string
	boxes map[string]*mailboxState
}

func loadState(path string) (*stateStore, error) {
	s := &stateStore{path: path, boxes: map[string]*mailboxState{}}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("watch: reading state file: %w", err)
	}
	var f struct {
		Mailboxes map[string]*mailboxState `json:"mailboxes"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("watch: state file %s: %w", path, err)
	}
	if f.Mailboxes != nil {
		s.boxes = f.Mailboxes
	}
	return s, nil
}

func stateKey(account, mailbox string) string { return account + "/" + mailbox }

// get returns a copy of a mailbox's state (nil when unknown).
func (s *stateStore) get(key string) *mailboxState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.boxes[key]; st != nil {
		cp := *st
		return &cp
	}
	return nil
}

// put records a mailbox's state and writes the file atomically.
func (s *stateStore) put(key string, st *mailboxState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := *st
	s.boxes[key] = &cp
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(struct {
		Mailboxes map[string]*mailboxState `json:"mailboxes"`
	}{s.boxes}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".imapkit-state-*")
	if err != nil {
		return fmt.Errorf("watch: writing state: %w", err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("watch: writing state: %w", err)
	}
	return nil
}

func encodeUIDs(uids []uint32) string { return imap.FormatSequenceSet(uids) }

func decodeUIDs(s string) []uint32 {
	if s == "" {
		return nil
	}
	uids, err := imap.ParseSequenceSet(s)
	if err != nil {
		return nil
	}
	slices.Sort(uids)
	return uids
}
