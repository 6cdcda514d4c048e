package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/imapkit/imap/watch"
)

// openState opens --state for every account and says on stderr what a
// user should know: a first run, migrations, entries no account uses.
func openState(path string, rebaseline bool, accounts []account, stderr io.Writer) (*watch.StateFile, error) {
	sf, err := watch.OpenStateFile(path, &watch.StateFileOptions{Rebaseline: rebaseline})
	if err != nil {
		return nil, err
	}
	for _, note := range sf.Migrated() {
		fmt.Fprintln(stderr, "imapkit watch:", note)
	}
	if err := migratePositional(sf, path, accounts, stderr); err != nil {
		sf.Close()
		return nil, err
	}
	names := make([]string, len(accounts))
	for i, a := range accounts {
		names[i] = a.name
	}
	var unused []string
	for _, name := range sf.Accounts() {
		if !slices.Contains(names, name) {
			unused = append(unused, strconv.Quote(name))
		}
	}
	if len(unused) > 0 {
		fmt.Fprintf(stderr, "imapkit watch: state file %s holds positions of accounts no longer configured, kept as they are: %s\n", path, strings.Join(unused, ", "))
	}
	if sf.Fresh() {
		fmt.Fprintf(stderr, "imapkit watch: state file %s does not exist yet: first run, starting from the mail there now\n", path)
	}
	return sf, nil
}

// migratePositional moves the per-account files of earlier versions,
// FILE.0, FILE.1, … (keyed by the account's position in --config, so that
// reordering accounts lost their positions), into FILE under the account's
// name, once: each is renamed FILE.N.migrated afterwards.
func migratePositional(sf *watch.StateFile, path string, accounts []account, stderr io.Writer) error {
	if len(accounts) < 2 {
		return nil // a single account never had a FILE.N
	}
	for i, a := range accounts {
		old := path + "." + strconv.Itoa(i)
		b, err := os.ReadFile(old)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("migrating %s: %w", old, err)
		}
		st, err := parseV1(b, a.name)
		if err != nil {
			return fmt.Errorf("migrating %w", inFile(old, err))
		}
		if st != nil {
			added, err := sf.Import(a.name, st)
			if err != nil {
				return fmt.Errorf("migrating %s: %w", old, err)
			}
			if !added {
				fmt.Fprintf(stderr, "imapkit watch: %s: %s already has account %q; the old file is set aside\n", old, path, a.name)
			}
		}
		if err := os.Rename(old, old+".migrated"); err != nil {
			return fmt.Errorf("migrating %s: %w", old, err)
		}
		fmt.Fprintf(stderr, "imapkit watch: migrated %s (account %d of the config) into %s as account %q; renamed it %s.migrated\n", old, i+1, path, a.name, old)
	}
	return nil
}

// parseV1 reads a state file of format 1 — {"mailboxes": {"ACCOUNT/MAILBOX":
// position}} — written for account name. Nil when it holds nothing.
func parseV1(b []byte, name string) (*watch.AccountState, error) {
	var f struct {
		Mailboxes map[string]*watch.MailboxState `json:"mailboxes"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, jsonError(b, err)
	}
	if len(f.Mailboxes) == 0 {
		return nil, nil
	}
	st := &watch.AccountState{Mailboxes: map[string]*watch.MailboxState{}}
	for key, mb := range f.Mailboxes {
		mailbox, ok := strings.CutPrefix(key, name+"/")
		if !ok {
			_, mailbox, ok = strings.Cut(key, "/")
		}
		if !ok || mb == nil {
			return nil, fmt.Errorf("entry %q is not of the form ACCOUNT/MAILBOX", key)
		}
		st.Mailboxes[mailbox] = mb
	}
	return st, nil
}
