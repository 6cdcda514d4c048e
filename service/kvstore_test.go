package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap/internal/natstest"
	"github.com/imapkit/imap/watch"
)

// stateBucket returns IMAPKIT_STATE on a new single server.
func stateBucket(t *testing.T) jetstream.KeyValue {
	t.Helper()
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.ClientURL())
	in, err := EnsureInfra(t.Context(), js, InfraOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return in.State
}

// position returns an AccountState whose INBOX is at lastUID.
func position(lastUID uint32) *watch.AccountState {
	return &watch.AccountState{Server: "imap.example.com:993", User: "alice", Mailboxes: map[string]*watch.MailboxState{
		"INBOX": {UIDValidity: 7, LastUID: lastUID, UIDs: fmt.Sprintf("1:%d", lastUID)},
	}}
}

func mustLoad(t *testing.T, s *KVStore, account string) *watch.AccountState {
	t.Helper()
	st, err := s.Load(account)
	if err != nil {
		t.Fatalf("Load(%q): %v", account, err)
	}
	return st
}

func mustSave(t *testing.T, s *KVStore, account string, st *watch.AccountState) {
	t.Helper()
	if err := s.Save(account, st); err != nil {
		t.Fatalf("Save(%q): %v", account, err)
	}
}

// entry returns the bucket's entry for account, decoded, and its revision
// (nil and 0 when there is none).
func entry(t *testing.T, kv jetstream.KeyValue, account string) (*watch.AccountState, uint64) {
	t.Helper()
	e, err := kv.Get(t.Context(), account)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var st watch.AccountState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		t.Fatal(err)
	}
	return &st, e.Revision()
}

func TestKVStoreRoundTrip(t *testing.T) {
	kv := stateBucket(t)
	s := NewKVStore(kv)
	if st := mustLoad(t, s, "alice"); st != nil {
		t.Fatalf("Load of a new account = %+v; want nil", st)
	}
	st := position(10)
	mustSave(t, s, "alice", st)
	// Save must not keep st: changing it now changes nothing stored.
	st.Mailboxes["INBOX"].LastUID = 99
	st.Mailboxes["Sent"] = &watch.MailboxState{}
	if got, _ := entry(t, kv, "alice"); !reflect.DeepEqual(got, position(10)) {
		t.Errorf("bucket holds %+v; want %+v", got, position(10))
	}
	mustSave(t, s, "alice", position(11))
	want := position(11)

	other := NewKVStore(kv)
	if got := mustLoad(t, other, "alice"); !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v; want %+v", got, want)
	}
	if got, _ := entry(t, kv, "alice"); !reflect.DeepEqual(got, want) {
		t.Errorf("bucket holds %+v; want %+v", got, want)
	}
	if err := s.Save("alice", nil); err == nil {
		t.Error("Save of a nil state: no error")
	}
}

// TestKVStoreFencing runs two nodes, A and B, on one bucket: whichever
// loaded or wrote the entry last owns it, and the other's Save fails with
// ErrStateConflict and writes nothing.
func TestKVStoreFencing(t *testing.T) {
	kv := stateBucket(t)
	fencing(t, kv)
}

func fencing(t *testing.T, kv jetstream.KeyValue) {
	t.Run("B took over a written entry", func(t *testing.T) {
		a, b := NewKVStore(kv), NewKVStore(kv)
		mustLoad(t, a, "acc1")
		mustSave(t, a, "acc1", position(1))
		mustLoad(t, b, "acc1")
		mustSave(t, b, "acc1", position(2))
		staleWrite(t, kv, a, "acc1", position(3), position(2))
		// A's next Saves fail too: nothing but a Load takes it back.
		staleWrite(t, kv, a, "acc1", position(4), position(2))
	})
	t.Run("B took over before A's first write", func(t *testing.T) {
		a, b := NewKVStore(kv), NewKVStore(kv)
		mustLoad(t, a, "acc2")
		mustLoad(t, b, "acc2")
		mustSave(t, b, "acc2", position(2))
		staleWrite(t, kv, a, "acc2", position(3), position(2))
	})
	t.Run("B loaded only", func(t *testing.T) {
		// B's Load does not fence A: B has written nothing yet, so A's Save
		// succeeds and B's, from the revision it read, fails.
		a, b := NewKVStore(kv), NewKVStore(kv)
		mustLoad(t, a, "acc3")
		mustSave(t, a, "acc3", position(1))
		mustLoad(t, b, "acc3")
		mustSave(t, a, "acc3", position(2))
		staleWrite(t, kv, b, "acc3", position(3), position(2))
	})
	t.Run("A loads again and wins it back", func(t *testing.T) {
		a, b := NewKVStore(kv), NewKVStore(kv)
		mustLoad(t, a, "acc4")
		mustSave(t, a, "acc4", position(1))
		mustLoad(t, b, "acc4")
		mustSave(t, b, "acc4", position(2))
		staleWrite(t, kv, a, "acc4", position(3), position(2))
		if got := mustLoad(t, a, "acc4"); !reflect.DeepEqual(got, position(2)) {
			t.Errorf("A loads %+v; want B's %+v", got, position(2))
		}
		mustSave(t, a, "acc4", position(5))
		staleWrite(t, kv, b, "acc4", position(6), position(5))
	})
}

// staleWrite checks that s's Save of st fails with ErrStateConflict, naming
// the account, and leaves the bucket holding want.
func staleWrite(t *testing.T, kv jetstream.KeyValue, s *KVStore, account string, st, want *watch.AccountState) {
	t.Helper()
	_, before := entry(t, kv, account)
	err := s.Save(account, st)
	if !errors.Is(err, ErrStateConflict) {
		t.Fatalf("stale Save: %v; want ErrStateConflict", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", account)) {
		t.Errorf("error %q does not name the account", err)
	}
	got, after := entry(t, kv, account)
	if !reflect.DeepEqual(got, want) || after != before {
		t.Errorf("after a stale Save the bucket holds %+v at revision %d; want %+v at %d", got, after, want, before)
	}
}

// TestKVStoreForget checks that a Save without a Load, or after Forget,
// writes nothing.
func TestKVStoreForget(t *testing.T) {
	kv := stateBucket(t)
	tests := []struct {
		name    string
		prepare func(s *KVStore)
		want    *watch.AccountState // the bucket's entry afterwards
	}{
		{"never loaded", func(s *KVStore) {}, nil},
		{"forgotten before writing", func(s *KVStore) {
			mustLoad(t, s, "acc")
			s.Forget("acc")
		}, nil},
		{"forgotten after writing", func(s *KVStore) {
			mustLoad(t, s, "acc")
			mustSave(t, s, "acc", position(1))
			s.Forget("acc")
		}, position(1)},
		{"forgotten twice", func(s *KVStore) {
			mustLoad(t, s, "acc")
			mustSave(t, s, "acc", position(1))
			s.Forget("acc")
			s.Forget("acc")
		}, position(1)},
		{"never loaded, forgotten", func(s *KVStore) { s.Forget("acc") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := kv.Purge(t.Context(), "acc"); err != nil {
				t.Fatal(err)
			}
			s := NewKVStore(kv)
			tt.prepare(s)
			staleWrite(t, kv, s, "acc", position(9), tt.want)
			// A Load takes the account again.
			if got := mustLoad(t, s, "acc"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load = %+v; want %+v", got, tt.want)
			}
			mustSave(t, s, "acc", position(10))
		})
	}
}

// TestKVStoreLoadBadEntry checks that an entry that is not an AccountState
// is an error naming the account, and that the failed Load does not let a
// Save write.
func TestKVStoreLoadBadEntry(t *testing.T) {
	kv := stateBucket(t)
	for _, value := range []string{"{not json", "null", `{"mailboxes":{"INBOX":null}}`} {
		if _, err := kv.Put(t.Context(), "bad", []byte(value)); err != nil {
			t.Fatal(err)
		}
		s := NewKVStore(kv)
		_, err := s.Load("bad")
		if err == nil || !strings.Contains(err.Error(), `"bad"`) {
			t.Errorf("Load of %s: %v; want an error naming the account", value, err)
		}
		if err := s.Save("bad", position(1)); !errors.Is(err, ErrStateConflict) {
			t.Errorf("Save after a failed Load: %v; want ErrStateConflict", err)
		}
	}
	if _, err := kv.Put(t.Context(), "empty", []byte(`{"server":"s"}`)); err != nil {
		t.Fatal(err)
	}
	if st := mustLoad(t, NewKVStore(kv), "empty"); st.Mailboxes == nil {
		t.Error("Load of an entry without mailboxes: nil Mailboxes")
	}
}

// TestKVStoreConcurrentSaves saves one account from 20 goroutines at once:
// each Save is one write from the revision the one before left, so all
// succeed, and the bucket ends with one of the states saved.
func TestKVStoreConcurrentSaves(t *testing.T) {
	kv := stateBucket(t)
	s := NewKVStore(kv)
	mustLoad(t, s, "acc")
	mustSave(t, s, "acc", position(1))
	_, start := entry(t, kv, "acc")
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.Save("acc", position(uint32(100+i))) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Save %d: %v", i, err)
		}
	}
	got, rev := entry(t, kv, "acc")
	if rev != start+n {
		t.Errorf("revision %d after %d Saves from %d; want %d", rev, n, start, start+n)
	}
	if last := got.Mailboxes["INBOX"].LastUID; last < 100 || last >= 100+n {
		t.Errorf("bucket holds LastUID %d; want one of the states saved", last)
	}
	// The store's revision is the bucket's: the next Save works.
	mustSave(t, s, "acc", position(500))
}

// TestKVStoreCluster runs the fencing on a 3-node cluster with 3 replicas,
// where JetStream reports a wrong revision with another error code.
func TestKVStoreCluster(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	_, js := natstest.Connect(t, servers[0].ClientURL())
	in, err := EnsureInfra(t.Context(), js, InfraOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Node B talks to another server.
	_, jsB := natstest.Connect(t, servers[1].ClientURL())
	kvB, err := jsB.KeyValue(t.Context(), BucketState)
	if err != nil {
		t.Fatal(err)
	}
	a, b := NewKVStore(in.State), NewKVStore(kvB)
	mustLoad(t, a, "alice")
	mustSave(t, a, "alice", position(1))
	if got := mustLoad(t, b, "alice"); !reflect.DeepEqual(got, position(1)) {
		t.Errorf("B loads %+v; want %+v", got, position(1))
	}
	mustSave(t, b, "alice", position(2))
	staleWrite(t, in.State, a, "alice", position(3), position(2))
	fencing(t, in.State)
}
