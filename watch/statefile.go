package watch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// stateFileVersion is the format OpenStateFile writes. Format 1 (one
// "mailboxes" object keyed by account + "/" + mailbox, no version field) is
// migrated on open.
const stateFileVersion = 2

// StateFileOptions configures OpenStateFile. A nil *StateFileOptions is a
// zero StateFileOptions.
type StateFileOptions struct {
	// Rebaseline accepts a file that holds no state (null, {}, empty) as
	// empty instead of refusing it.
	Rebaseline bool
}

// StateFile is a Store kept in one JSON file for every account: the Store of
// the command line. While open it holds an exclusive lock on path + ".lock",
// so that two processes never write the same file. Its methods may be called
// from several goroutines at once.
type StateFile struct {
	path     string
	lock     *os.File // holds the flock; closing it releases the lock
	fresh    bool
	migrated []string

	mu       sync.Mutex
	cond     *sync.Cond // signalled when a write completes
	accounts map[string]*AccountState
	closed   bool
	writing  bool   // a write is in progress (its caller released mu)
	next     *batch // changes not yet in any write, and their waiters
	writes   int    // writes attempted, for tests

	// beforeWrite, when set (by tests), is called before write number n.
	beforeWrite func(n int)
}

var _ Store = (*StateFile)(nil)

// batch is the outcome of one write, shared by every Save it covers.
type batch struct {
	done bool
	err  error
}

// OpenStateFile opens (or prepares to create) the state file at path. The
// file's directory must exist and be writable; the file itself is created at
// the first Save. A file that exists but holds no state is refused unless
// opts.Rebaseline: starting from a baseline would skip mail that arrived
// while away.
func OpenStateFile(path string, opts *StateFileOptions) (*StateFile, error) {
	if path == "" {
		return nil, errors.New("watch: state file: empty path")
	}
	if opts == nil {
		opts = &StateFileOptions{}
	}
	// Check the directory now: a Save that fails later, after events were
	// acknowledged, is much harder to act on than an error at startup.
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("watch: state file %s: directory %s does not exist", path, dir)
	} else if err != nil {
		return nil, fmt.Errorf("watch: state file %s: %w", path, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("watch: state file %s: %s is not a directory", path, dir)
	}
	probe, err := os.CreateTemp(dir, ".imapkit-state-*")
	if err != nil {
		return nil, fmt.Errorf("watch: state file %s: directory %s is not writable: %w", path, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())

	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("watch: state file %s: opening the lock file: %w", path, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("watch: state file %s is in use by another imapkit (%s is locked)", path, path+".lock")
		}
		return nil, fmt.Errorf("watch: state file %s: locking %s: %w", path, path+".lock", err)
	}
	f := &StateFile{path: path, lock: lock, accounts: map[string]*AccountState{}}
	f.cond = sync.NewCond(&f.mu)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f.fresh, err = true, nil
	case err != nil:
		err = fmt.Errorf("watch: state file %s: %w", path, err)
	default:
		err = f.decode(data, opts.Rebaseline)
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	return f, nil
}

// decode fills f.accounts (and f.migrated) from the file's contents.
func (f *StateFile) decode(data []byte, rebaseline bool) error {
	noState := func() error {
		if rebaseline {
			return nil
		}
		return fmt.Errorf("watch: state file %s holds no state: starting from a baseline would skip "+
			"mail that arrived while away; to accept that, pass --rebaseline (StateFileOptions.Rebaseline)", f.path)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return noState()
	}
	var file struct {
		Version   int                      `json:"version"`
		Accounts  map[string]*AccountState `json:"accounts"`
		Mailboxes map[string]*MailboxState `json:"mailboxes"` // format 1
	}
	if err := json.Unmarshal(data, &file); err != nil {
		return fmt.Errorf("watch: state file %s: %w", f.path, err)
	}
	switch {
	case file.Version == stateFileVersion:
		if len(file.Accounts) == 0 {
			return noState()
		}
		for name, st := range file.Accounts {
			if st == nil {
				return fmt.Errorf("watch: state file %s: account %q has no entry (null)", f.path, name)
			}
			for mb, pos := range st.Mailboxes {
				if pos == nil {
					return fmt.Errorf("watch: state file %s: account %q: mailbox %q has no position (null)", f.path, name, mb)
				}
			}
			f.accounts[name] = st.clone()
		}
		return nil
	case file.Version == 0 || file.Version == 1:
		if file.Accounts != nil {
			return fmt.Errorf("watch: state file %s: \"accounts\" without a \"version\"", f.path)
		}
		if len(file.Mailboxes) == 0 {
			return noState()
		}
		return f.migrate(file.Mailboxes)
	default:
		return fmt.Errorf("watch: state file %s: format version %d is not supported (this imapkit reads up to %d)",
			f.path, file.Version, stateFileVersion)
	}
}

// migrate loads format 1 entries. The file is rewritten as format 2 at the
// first Save, not here: opening must not change a file that an older
// imapkit may still need.
func (f *StateFile) migrate(boxes map[string]*MailboxState) error {
	counts := map[string]int{}
	for key, pos := range boxes {
		account, mailbox, ok := strings.Cut(key, "/")
		if !ok {
			return fmt.Errorf("watch: state file %s: format 1 entry %q is not account/mailbox", f.path, key)
		}
		if pos == nil {
			return fmt.Errorf("watch: state file %s: format 1 entry %q has no position (null)", f.path, key)
		}
		st := f.accounts[account]
		if st == nil {
			st = &AccountState{Mailboxes: map[string]*MailboxState{}}
			f.accounts[account] = st
		}
		p := *pos
		st.Mailboxes[mailbox] = &p
		counts[account]++
	}
	for _, account := range slices.Sorted(maps.Keys(counts)) {
		noun := "mailboxes"
		if counts[account] == 1 {
			noun = "mailbox"
		}
		f.migrated = append(f.migrated, fmt.Sprintf("state file %s: migrated %d %s of account %q from format 1",
			f.path, counts[account], noun, account))
	}
	return nil
}

// Load returns a copy of account's entry, or nil and no error when the file
// holds none.
func (f *StateFile) Load(account string) (*AccountState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accounts[account].clone(), nil
}

// Save replaces account's entry with a copy of st and writes the file. It
// returns once a write that includes this change has completed, with that
// write's error. Concurrent Saves share writes: a Save that arrives while a
// write is in progress waits for it and is covered, along with every other
// Save that arrived meanwhile, by the next one. After a failed write, the
// next Save writes everything again.
func (f *StateFile) Save(account string, st *AccountState) error {
	_, err := f.put("saving", account, st, true)
	return err
}

// Import adds a copy of st as account's entry only if the file holds none,
// and writes the file; it reports whether it added the entry. It is meant
// for migrations from other stores. If the write fails the entry stays
// added, and the next successful write includes it.
func (f *StateFile) Import(account string, st *AccountState) (bool, error) {
	return f.put("importing", account, st, false)
}

// put sets account's entry (unless it exists and !replace) and flushes.
func (f *StateFile) put(op, account string, st *AccountState, replace bool) (bool, error) {
	if st == nil {
		return false, fmt.Errorf("watch: state file %s: %s account %q: nil state", f.path, op, account)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false, fmt.Errorf("watch: state file %s: %s account %q: the state file is closed", f.path, op, account)
	}
	if _, ok := f.accounts[account]; ok && !replace {
		return false, nil
	}
	f.accounts[account] = st.clone()
	return true, f.flushLocked()
}

// flushLocked returns once a write that includes every change made so far
// has completed, with that write's error. It is called with f.mu held, and
// releases it while writing or waiting.
func (f *StateFile) flushLocked() error {
	if f.next == nil {
		f.next = &batch{}
	}
	b := f.next
	for !b.done {
		if f.writing {
			f.cond.Wait()
			continue
		}
		// No write is in progress, so b has not started: this caller writes
		// it for every Save waiting on it. The snapshot is taken under f.mu
		// and writes are serial, so the file never goes backwards.
		f.writing, f.next = true, nil
		f.writes++
		n := f.writes
		data, err := json.MarshalIndent(struct {
			Version  int                      `json:"version"`
			Accounts map[string]*AccountState `json:"accounts"`
		}{stateFileVersion, f.accounts}, "", "  ")
		f.mu.Unlock()
		if err == nil {
			if f.beforeWrite != nil {
				f.beforeWrite(n)
			}
			err = f.write(append(data, '\n'))
		} else {
			err = fmt.Errorf("watch: state file %s: encoding: %w", f.path, err)
		}
		f.mu.Lock()
		b.done, b.err = true, err
		f.writing = false
		f.cond.Broadcast()
	}
	return b.err
}

// write replaces the file with data atomically and durably: a temporary
// file in the same directory, synced, renamed over the file, and then the
// directory synced so that the rename itself survives a crash.
func (f *StateFile) write(data []byte) (err error) {
	fail := func(what string, err error) error {
		return fmt.Errorf("watch: state file %s: %s: %w", f.path, what, err)
	}
	dir := filepath.Dir(f.path)
	tmp, err := os.CreateTemp(dir, ".imapkit-state-*")
	if err != nil {
		return fail("creating a temporary file", err)
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp's 0600 is subject to the umask; the positions are private
	// whatever the umask or the old file's mode.
	if err := tmp.Chmod(0o600); err != nil {
		return fail("setting the mode", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fail("writing", err)
	}
	if err := tmp.Sync(); err != nil {
		return fail("syncing", err)
	}
	if err := tmp.Close(); err != nil {
		return fail("closing", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fail("replacing the file", err)
	}
	renamed = true
	d, err := os.Open(dir)
	if err != nil {
		return fail("syncing the directory", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail("syncing the directory", err)
	}
	return nil
}

// Accounts returns the sorted names of the file's entries.
func (f *StateFile) Accounts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.accounts))
}

// Fresh reports whether the file did not exist at open: a first run.
func (f *StateFile) Fresh() bool { return f.fresh }

// Migrated returns a note, for people, for each account OpenStateFile
// migrated from format 1; none when it migrated nothing.
func (f *StateFile) Migrated() []string { return slices.Clone(f.migrated) }

// Path returns the file's path.
func (f *StateFile) Path() string { return f.path }

// Close waits for the writes of Saves already under way, then releases the
// lock. Later Saves and Imports fail; Load still works. Closing twice is a
// no-op.
func (f *StateFile) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	// Every pending batch has a waiting Save that will write it.
	for f.writing || f.next != nil {
		f.cond.Wait()
	}
	f.mu.Unlock()
	if err := f.lock.Close(); err != nil {
		return fmt.Errorf("watch: state file %s: releasing the lock: %w", f.path, err)
	}
	return nil
}
