package service

import (
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
)

// TestLeaseStore: a node whose lease lapsed writes no position, even when
// the new owner has only loaded the entry (which the revision alone does
// not fence), so that the new owner's Saves keep working; with the lease
// valid, a leaseStore saves as its KVStore does.
func TestLeaseStore(t *testing.T) {
	kv := stateBucket(t)
	var held atomic.Bool
	held.Store(true)
	a := leaseStore{NewKVStore(kv), held.Load}
	b := NewKVStore(kv)
	if _, err := a.Load("acc"); err != nil {
		t.Fatal(err)
	}
	if err := a.Save("acc", position(1)); err != nil {
		t.Fatalf("Save with the lease: %v", err)
	}
	mustLoad(t, b, "acc") // B took the account over: A's lease lapsed
	held.Store(false)
	_, before := entry(t, kv, "acc")
	if err := a.Save("acc", position(2)); !errors.Is(err, ErrStateConflict) {
		t.Fatalf("Save without the lease: %v; want ErrStateConflict", err)
	}
	if got, after := entry(t, kv, "acc"); after != before || !reflect.DeepEqual(got, position(1)) {
		t.Errorf("after a Save without the lease the bucket holds %+v at revision %d; want %+v at %d", got, after, position(1), before)
	}
	mustSave(t, b, "acc", position(3))
}
