package service

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Errors of an AccountStore, to be tested with errors.Is.
var (
	// ErrNoAccount: no account has the name.
	ErrNoAccount = errors.New("no such account")
	// ErrAccountExists: Create found an account of that name.
	ErrAccountExists = errors.New("account already exists")
	// ErrInvalidAccount: the account cannot be stored as given (a bad
	// name, server or mode, no password for a new account...); the error
	// says what is wrong.
	ErrInvalidAccount = errors.New("invalid account")
)

// secretSealer seals a secret of an account's. *Sealer is one.
type secretSealer interface {
	// Seal returns secret sealed for account, fit to store.
	Seal(account, secret string) string
}

// maxPutAttempts bounds the read-modify-write rounds of a put that keeps
// losing to concurrent writers of the same account.
const maxPutAttempts = 10

// An AccountStore keeps the accounts in the bucket IMAPKIT_ACCOUNTS: one
// JSON Account per key, the key the account's name, the password only
// sealed (PasswordSealed).
//
// Every write is conditional on the revision read before it, so that two
// writers of one account never lose each other's password: one of them
// reads again. It is safe for concurrent use.
type AccountStore struct {
	kv     jetstream.KeyValue
	sealer secretSealer
}

// NewAccountStore returns a store of the accounts in kv (the bucket
// IMAPKIT_ACCOUNTS), sealing passwords with sealer.
func NewAccountStore(kv jetstream.KeyValue, sealer secretSealer) *AccountStore {
	return &AccountStore{kv: kv, sealer: sealer}
}

// Create stores a new account and returns its Public form. It fails with
// ErrAccountExists if one of that name exists, and with ErrInvalidAccount
// if a does not validate or has no Password.
func (s *AccountStore) Create(ctx context.Context, a Account) (Account, error) {
	pub, _, err := s.put(ctx, a, putCreate)
	return pub, err
}

// Update replaces the settings of an existing account and returns its
// Public form. An empty Password keeps the stored one. It fails with
// ErrNoAccount if no account has the name, and with ErrInvalidAccount if
// a does not validate.
func (s *AccountStore) Update(ctx context.Context, a Account) (Account, error) {
	pub, _, err := s.put(ctx, a, putUpdate)
	return pub, err
}

// Put creates the account or replaces its settings, as Create or Update
// would, and reports which (created).
func (s *AccountStore) Put(ctx context.Context, a Account) (pub Account, created bool, err error) {
	return s.put(ctx, a, putAny)
}

type putMode int

const (
	putAny putMode = iota
	putCreate
	putUpdate
)

func (s *AccountStore) put(ctx context.Context, a Account, mode putMode) (Account, bool, error) {
	if err := check(&a); err != nil {
		return Account{}, false, err
	}
	// What is stored: no clear password, no sealed one from the caller.
	secret := a.Password
	a.Password, a.PasswordSealed = "", ""
	a.Mailboxes = slices.Clone(a.Mailboxes)
	var sealed string
	if secret != "" {
		sealed = s.sealer.Seal(a.Name, secret)
	}
	for range maxPutAttempts {
		e, err := s.kv.Get(ctx, a.Name)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if mode == putUpdate {
				return Account{}, false, fmt.Errorf("%w: %s", ErrNoAccount, a.Name)
			}
			if sealed == "" {
				return Account{}, false, fmt.Errorf("%w %s: a new account needs a password", ErrInvalidAccount, a.Name)
			}
			a.PasswordSealed = sealed
			b, err := json.Marshal(a)
			if err != nil {
				return Account{}, false, fmt.Errorf("account %s: encode: %w", a.Name, err)
			}
			_, err = s.kv.Create(ctx, a.Name, b)
			if errors.Is(err, jetstream.ErrKeyExists) {
				if mode == putCreate {
					return Account{}, false, fmt.Errorf("%w: %s", ErrAccountExists, a.Name)
				}
				continue // created meanwhile: update it
			}
			if err != nil {
				return Account{}, false, fmt.Errorf("accounts bucket: create %s: %w", a.Name, err)
			}
			return a.Public(), true, nil
		case err != nil:
			return Account{}, false, fmt.Errorf("accounts bucket: get %s: %w", a.Name, err)
		}
		if mode == putCreate {
			return Account{}, false, fmt.Errorf("%w: %s", ErrAccountExists, a.Name)
		}
		a.PasswordSealed = sealed
		if sealed == "" {
			old, err := decodeAccount(e)
			if err != nil {
				return Account{}, false, fmt.Errorf("%w; give a password to replace it", err)
			}
			if old.PasswordSealed == "" {
				return Account{}, false, fmt.Errorf("%w %s: no password is stored: give one", ErrInvalidAccount, a.Name)
			}
			a.PasswordSealed = old.PasswordSealed
		}
		b, err := json.Marshal(a)
		if err != nil {
			return Account{}, false, fmt.Errorf("account %s: encode: %w", a.Name, err)
		}
		_, err = s.kv.Update(ctx, a.Name, b, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // written meanwhile: read again
		}
		if err != nil {
			return Account{}, false, fmt.Errorf("accounts bucket: update %s: %w", a.Name, err)
		}
		return a.Public(), false, nil
	}
	return Account{}, false, fmt.Errorf("account %s: changed by others %d times while being written; try again", a.Name, maxPutAttempts)
}

// check validates a as Account.Validate does, and its CA certificates.
func check(a *Account) error {
	if err := a.Validate(); err != nil {
		if ValidName(a.Name) != nil {
			return fmt.Errorf("%w: %w", ErrInvalidAccount, err)
		}
		return fmt.Errorf("%w %s: %w", ErrInvalidAccount, a.Name, err)
	}
	if a.CAPEM != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(a.CAPEM)) {
		return fmt.Errorf("%w %s: ca_pem holds no PEM certificate", ErrInvalidAccount, a.Name)
	}
	return nil
}

// Get returns the Public form of the account of that name, or an error
// wrapping ErrNoAccount.
func (s *AccountStore) Get(ctx context.Context, name string) (Account, error) {
	a, err := s.GetSealed(ctx, name)
	if err != nil {
		return Account{}, err
	}
	return a.Public(), nil
}

// GetSealed returns the account of that name as stored, its password
// sealed (PasswordSealed), for the node that watches it. It must not go
// into a reply or a log: use Public.
func (s *AccountStore) GetSealed(ctx context.Context, name string) (Account, error) {
	e, err := s.get(ctx, name)
	if err != nil {
		return Account{}, err
	}
	return decodeAccount(e)
}

func (s *AccountStore) get(ctx context.Context, name string) (jetstream.KeyValueEntry, error) {
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidAccount, err)
	}
	e, err := s.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoAccount, name)
	}
	if err != nil {
		return nil, fmt.Errorf("accounts bucket: get %s: %w", name, err)
	}
	return e, nil
}

// Delete removes the account of that name, its sealed password with it
// (no earlier revision is kept), or returns an error wrapping ErrNoAccount.
func (s *AccountStore) Delete(ctx context.Context, name string) error {
	for range maxPutAttempts {
		e, err := s.get(ctx, name)
		if err != nil {
			return err
		}
		err = s.kv.Purge(ctx, name, jetstream.LastRevision(e.Revision()))
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // written meanwhile: it still exists, delete that
		}
		if err != nil {
			return fmt.Errorf("accounts bucket: delete %s: %w", name, err)
		}
		return nil
	}
	return fmt.Errorf("account %s: changed by others %d times while being deleted; try again", name, maxPutAttempts)
}

// List returns the Public form of every account, sorted by name.
func (s *AccountStore) List(ctx context.Context) ([]Account, error) {
	w, err := s.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("accounts bucket: list: %w", err)
	}
	defer w.Stop()
	current, err := initialValues(ctx, w)
	if err != nil {
		return nil, err
	}
	out := make([]Account, 0, len(current))
	for _, c := range current {
		if c.Err != nil {
			return nil, c.Err
		}
		out = append(out, c.Account.Public())
	}
	return out, nil
}

// An AccountChange is what Watch reports of one account.
type AccountChange struct {
	// Name is the account's name.
	Name string
	// Account is the account as stored, its password sealed; nil when
	// the account was deleted or cannot be read (Err).
	Account *Account
	// Err says why the stored value is not an account (it was not written
	// by an AccountStore).
	Err error
	// Revision is the bucket's revision of the change; a later change of
	// the same account has a greater one.
	Revision uint64
}

// Watch returns the accounts stored now (current, sorted by name), then
// reports every later creation, update and deletion on changes, in the
// order they were made, until ctx ends. Changes are not buffered: the
// caller must keep receiving. The channel is closed when ctx ends, or
// before if the watch itself ends (the NATS connection was closed); a
// caller whose ctx is still live should then watch again and reconcile
// with the new current accounts.
func (s *AccountStore) Watch(ctx context.Context) (current []AccountChange, changes <-chan AccountChange, err error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("accounts bucket: watch: %w", err)
	}
	if current, err = initialValues(ctx, w); err != nil {
		w.Stop()
		return nil, nil, err
	}
	ch := make(chan AccountChange)
	go func() {
		defer close(ch)
		defer w.Stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				select {
				case ch <- change(e):
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return current, ch, nil
}

// initialValues reads w's entries up to the marker that all the values
// stored when it started were delivered. Deleted accounts are left out.
func initialValues(ctx context.Context, w jetstream.KeyWatcher) ([]AccountChange, error) {
	var out []AccountChange
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("accounts bucket: the watch ended before the accounts were read")
			}
			if e == nil {
				slices.SortFunc(out, func(a, b AccountChange) int { return strings.Compare(a.Name, b.Name) })
				return out, nil
			}
			if c := change(e); c.Account != nil || c.Err != nil {
				out = append(out, c)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("accounts bucket: reading the accounts: %w", context.Cause(ctx))
		}
	}
}

// change makes an AccountChange of a bucket entry.
func change(e jetstream.KeyValueEntry) AccountChange {
	c := AccountChange{Name: e.Key(), Revision: e.Revision()}
	if e.Operation() != jetstream.KeyValuePut {
		return c
	}
	a, err := decodeAccount(e)
	if err != nil {
		c.Err = err
		return c
	}
	c.Account = &a
	return c
}

// decodeAccount decodes a stored account. The error names the key, never
// the value (which holds a sealed secret).
func decodeAccount(e jetstream.KeyValueEntry) (Account, error) {
	var a Account
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		return Account{}, fmt.Errorf("account %s: the stored value is not an account (revision %d): %s", e.Key(), e.Revision(), jsonErrorKind(err))
	}
	if a.Name != e.Key() {
		return Account{}, fmt.Errorf("account %s: the stored value names account %q (revision %d)", e.Key(), a.Name, e.Revision())
	}
	a.Password = "" // never stored by this package; never passed on
	return a, nil
}

// jsonErrorKind describes a decoding error without quoting the input.
func jsonErrorKind(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s is not a %s", typ.Field, typ.Type)
	}
	return "invalid JSON"
}
