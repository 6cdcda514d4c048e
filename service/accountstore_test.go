package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeSealer stands for Sealer: what it returns depends on the account and
// the secret, and never contains the secret.
type fakeSealer struct{}

func (fakeSealer) Seal(account, secret string) string {
	sum := sha256.Sum256([]byte(account + "\x00" + secret))
	return "sealed:" + hex.EncodeToString(sum[:])
}

// newAccountStore returns a store over a fresh bucket (keeping 5 revisions
// per key, so that a delete that left old ones would show) on a fresh
// server.
func newAccountStore(t *testing.T) (*AccountStore, jetstream.KeyValue) {
	t.Helper()
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.ClientURL())
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: BucketAccounts, History: 5})
	if err != nil {
		t.Fatal(err)
	}
	return NewAccountStore(kv, fakeSealer{}), kv
}

func testAccount(name, password string) Account {
	return Account{Name: name, Server: "imap.example.org:993", User: name + "@example.org", Password: password, Mailboxes: []string{"INBOX", "Sent"}}
}

// rawValue is the bytes the bucket holds for name.
func rawValue(t *testing.T, kv jetstream.KeyValue, name string) string {
	t.Helper()
	e, err := kv.Get(t.Context(), name)
	if err != nil {
		t.Fatalf("raw get %s: %v", name, err)
	}
	return string(e.Value())
}

func TestAccountStoreRoundTrip(t *testing.T) {
	st, kv := newAccountStore(t)
	ctx := t.Context()
	const pw1, pw2 = "correct horse battery staple", "Tr0ub4dor&3"

	pub, err := st.Create(ctx, testAccount("alice", pw1))
	if err != nil {
		t.Fatal(err)
	}
	if pub.Password != "" || pub.PasswordSealed != "" {
		t.Errorf("Create returned password fields: %+v", pub)
	}
	raw := rawValue(t, kv, "alice")
	if strings.Contains(raw, pw1) {
		t.Fatalf("the bucket holds the clear password: %s", raw)
	}
	if !strings.Contains(raw, fakeSealer{}.Seal("alice", pw1)) {
		t.Errorf("the bucket does not hold the sealed password: %s", raw)
	}

	got, err := st.Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := testAccount("alice", "")
	if got.Server != want.Server || got.User != want.User || !slices.Equal(got.Mailboxes, want.Mailboxes) || got.Password != "" || got.PasswordSealed != "" {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	sealed, err := st.GetSealed(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if sealed.PasswordSealed != (fakeSealer{}).Seal("alice", pw1) || sealed.Password != "" {
		t.Errorf("GetSealed = %+v, want the sealed password only", sealed)
	}

	// An update without a password keeps the sealed one.
	upd := testAccount("alice", "")
	upd.Server, upd.Mode, upd.Mailboxes = "mail.example.org:143", ModeStartTLS, nil
	if _, err := st.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	sealed, _ = st.GetSealed(ctx, "alice")
	if sealed.PasswordSealed != (fakeSealer{}).Seal("alice", pw1) || sealed.Server != "mail.example.org:143" || sealed.Mode != ModeStartTLS || len(sealed.Mailboxes) != 0 {
		t.Errorf("after an update without a password: %+v", sealed)
	}
	// A sealed password in the request is never taken as such.
	upd.PasswordSealed = "sealed:forged"
	if _, err := st.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if sealed, _ = st.GetSealed(ctx, "alice"); sealed.PasswordSealed != (fakeSealer{}).Seal("alice", pw1) {
		t.Errorf("a given PasswordSealed was stored: %+v", sealed)
	}
	// An update with one seals the new one.
	upd.Password = pw2
	if _, err := st.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if sealed, _ = st.GetSealed(ctx, "alice"); sealed.PasswordSealed != (fakeSealer{}).Seal("alice", pw2) {
		t.Errorf("after an update with a password: %+v", sealed)
	}
	if raw := rawValue(t, kv, "alice"); strings.Contains(raw, pw2) || strings.Contains(raw, `"password"`) {
		t.Errorf("the bucket holds a clear password: %s", raw)
	}

	// Put creates, then updates.
	if _, created, err := st.Put(ctx, testAccount("bob", pw1)); err != nil || !created {
		t.Fatalf("Put of a new account: created %v, %v", created, err)
	}
	if _, created, err := st.Put(ctx, testAccount("bob", "")); err != nil || created {
		t.Fatalf("Put of an existing account: created %v, %v", created, err)
	}
	list, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
		if a.Password != "" || a.PasswordSealed != "" {
			t.Errorf("List returned password fields: %+v", a)
		}
	}
	if !slices.Equal(names, []string{"alice", "bob"}) {
		t.Errorf("List names %v, want [alice bob]", names)
	}

	// Delete leaves nothing of the account, its old revisions included.
	if err := st.Delete(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "alice"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("Get after Delete: %v, want ErrNoAccount", err)
	}
	if err := st.Delete(ctx, "alice"); !errors.Is(err, ErrNoAccount) {
		t.Errorf("second Delete: %v, want ErrNoAccount", err)
	}
	hist, err := kv.History(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist {
		if len(e.Value()) != 0 {
			t.Errorf("revision %d of a deleted account is kept: %s", e.Revision(), e.Value())
		}
	}
	if list, _ = st.List(ctx); len(list) != 1 || list[0].Name != "bob" {
		t.Errorf("List after Delete: %+v", list)
	}
	// The name can be taken again.
	if _, err := st.Create(ctx, testAccount("alice", pw2)); err != nil {
		t.Errorf("Create after Delete: %v", err)
	}
}

func TestAccountStoreRefuses(t *testing.T) {
	st, kv := newAccountStore(t)
	ctx := t.Context()
	if _, err := st.Create(ctx, testAccount("taken", "pw")); err != nil {
		t.Fatal(err)
	}
	with := func(f func(*Account)) Account {
		a := testAccount("new", "pw")
		f(&a)
		return a
	}
	for _, tc := range []struct {
		name string
		op   string // create, put, update, get or delete
		a    Account
		is   error
		says string
	}{
		{"name with a dot", "create", with(func(a *Account) { a.Name = "a.b" }), ErrInvalidAccount, `account name "a.b"`},
		{"name with a wildcard", "put", with(func(a *Account) { a.Name = "a*" }), ErrInvalidAccount, `account name "a*"`},
		{"empty name", "create", with(func(a *Account) { a.Name = "" }), ErrInvalidAccount, `account name ""`},
		{"server without port", "create", with(func(a *Account) { a.Server = "imap.example.org" }), ErrInvalidAccount, "want HOST:PORT"},
		{"bad mode", "create", with(func(a *Account) { a.Mode = "ssl" }), ErrInvalidAccount, `mode "ssl"`},
		{"no user", "create", with(func(a *Account) { a.User = "" }), ErrInvalidAccount, "user is required"},
		{"empty mailbox", "create", with(func(a *Account) { a.Mailboxes = []string{""} }), ErrInvalidAccount, "mailbox name is empty"},
		{"CA that is no PEM", "create", with(func(a *Account) { a.CAPEM = "not a certificate" }), ErrInvalidAccount, "no PEM certificate"},
		{"new without password", "create", with(func(a *Account) { a.Password = "" }), ErrInvalidAccount, "needs a password"},
		{"put new without password", "put", with(func(a *Account) { a.Password = "" }), ErrInvalidAccount, "needs a password"},
		{"new with only a sealed password", "create", with(func(a *Account) { a.Password, a.PasswordSealed = "", "sealed:forged" }), ErrInvalidAccount, "needs a password"},
		{"create existing", "create", testAccount("taken", "pw"), ErrAccountExists, "taken"},
		{"update missing", "update", testAccount("missing", "pw"), ErrNoAccount, "missing"},
		{"get missing", "get", Account{Name: "missing"}, ErrNoAccount, "missing"},
		{"get bad name", "get", Account{Name: "a/b"}, ErrInvalidAccount, `account name "a/b"`},
		{"delete missing", "delete", Account{Name: "missing"}, ErrNoAccount, "missing"},
		{"delete bad name", "delete", Account{Name: "a b"}, ErrInvalidAccount, `account name "a b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch tc.op {
			case "create":
				_, err = st.Create(ctx, tc.a)
			case "put":
				_, _, err = st.Put(ctx, tc.a)
			case "update":
				_, err = st.Update(ctx, tc.a)
			case "get":
				_, err = st.Get(ctx, tc.a.Name)
			case "delete":
				err = st.Delete(ctx, tc.a.Name)
			}
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
	if keys, err := kv.Keys(ctx); err != nil || !slices.Equal(keys, []string{"taken"}) {
		t.Errorf("keys after the refusals: %v, %v; want only [taken]", keys, err)
	}
}

// TestAccountStoreConcurrent has writers of one account race: Creates
// (exactly one wins), then Puts (all succeed, none loses the password).
func TestAccountStoreConcurrent(t *testing.T) {
	st, _ := newAccountStore(t)
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = st.Create(ctx, testAccount("race", fmt.Sprint("pw", i))) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrAccountExists):
			t.Errorf("Create: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d concurrent Creates succeeded, want 1", won)
	}
	for i := range n {
		wg.Go(func() {
			a := testAccount("race", "")
			if i%2 == 0 {
				a.Password = fmt.Sprint("new", i)
			}
			a.Mailboxes = []string{fmt.Sprint("box", i)}
			_, _, errs[i] = st.Put(ctx, a)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("Put: %v", err)
		}
	}
	a, err := st.GetSealed(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.PasswordSealed, "sealed:") {
		t.Errorf("after concurrent Puts, the sealed password is %q", a.PasswordSealed)
	}
}

func TestAccountStoreWatch(t *testing.T) {
	st, kv := newAccountStore(t)
	ctx := t.Context()
	for _, name := range []string{"carol", "alice", "gone"} {
		if _, err := st.Create(ctx, testAccount(name, "pw")); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "junk", []byte("not JSON")); err != nil {
		t.Fatal(err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	current, changes, err := st.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range current {
		names = append(names, c.Name)
		switch {
		case c.Name == "junk":
			if c.Err == nil || c.Account != nil || strings.Contains(c.Err.Error(), "not JSON") {
				t.Errorf("junk: %+v, want an error that does not quote the value", c)
			}
		case c.Err != nil || c.Account == nil || c.Account.PasswordSealed != (fakeSealer{}).Seal(c.Name, "pw"):
			t.Errorf("current %+v, want the stored account with its sealed password", c)
		}
	}
	if !slices.Equal(names, []string{"alice", "carol", "junk"}) {
		t.Errorf("current accounts %v, want [alice carol junk]", names)
	}

	upd := testAccount("alice", "")
	upd.Mailboxes = []string{"Archive"}
	if _, err := st.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, testAccount("dave", "pw")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, want := range []struct {
		name    string
		deleted bool
		box     string
	}{{"alice", false, "Archive"}, {"dave", false, "Sent"}, {"carol", true, ""}} {
		var c AccountChange
		select {
		case c = <-changes:
		case <-time.After(10 * time.Second):
			t.Fatalf("no change for %s within 10 s", want.name)
		}
		if c.Name != want.name || (c.Account == nil) != want.deleted || c.Err != nil {
			t.Fatalf("change %+v, want %s (deleted %v)", c, want.name, want.deleted)
		}
		if !want.deleted && (!slices.Contains(c.Account.Mailboxes, want.box) || c.Account.PasswordSealed == "") {
			t.Errorf("change %+v, want mailbox %s and the sealed password", c.Account, want.box)
		}
		if c.Revision <= last {
			t.Errorf("revision %d after %d", c.Revision, last)
		}
		last = c.Revision
	}

	cancel()
	select {
	case c, ok := <-changes:
		if ok {
			t.Errorf("a change after cancel: %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("changes not closed within 5 s of cancel")
	}

	if _, err := st.List(ctx); err == nil || !strings.Contains(err.Error(), "junk") {
		t.Errorf("List over an entry that is no account: %v, want an error naming it", err)
	}
}

func TestAccountStoreWatchEmpty(t *testing.T) {
	st, _ := newAccountStore(t)
	current, _, err := st.Watch(t.Context())
	if err != nil || len(current) != 0 {
		t.Fatalf("Watch of an empty bucket: %v, %v", current, err)
	}
	list, err := st.List(t.Context())
	if err != nil || len(list) != 0 {
		t.Fatalf("List of an empty bucket: %v, %v", list, err)
	}
}
