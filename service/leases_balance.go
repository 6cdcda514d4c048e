package service

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// followLeases keeps l.view in step with IMAPKIT_LEASES through a KV
// watcher, until ctx ends. A lease handed back wakes Run, so that the node
// it is assigned to takes it at once; a lease of this node written by
// another (which happens only if this node's epoch ended without it
// knowing yet) is dropped at once.
func (l *Leases) followLeases(ctx context.Context) {
	for ctx.Err() == nil {
		w, err := l.leases.WatchAll(ctx)
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("service: watch leases", "err", err)
			}
		} else {
			l.applyLeaseUpdates(ctx, w)
			w.Stop()
		}
		// The next watcher starts from the beginning.
		l.mu.Lock()
		l.view = make(map[string]leaseRecord)
		l.viewReady = false
		l.mu.Unlock()
		if !sleepCtx(ctx, l.period/2) {
			return
		}
	}
}

// applyLeaseUpdates applies what w reports until it stops or ctx ends.
func (l *Leases) applyLeaseUpdates(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil { // every lease so far was delivered
				l.mu.Lock()
				l.viewReady = true
				l.mu.Unlock()
				l.wake()
				continue
			}
			l.applyLease(e)
		}
	}
}

func (l *Leases) applyLease(e jetstream.KeyValueEntry) {
	a := e.Key()
	l.mu.Lock()
	freed := e.Operation() != jetstream.KeyValuePut
	switch {
	case freed:
		delete(l.view, a)
	case e.Revision() > l.view[a].rev: // not older than what refreshView read
		l.view[a] = leaseRecord{owner: string(e.Value()), rev: e.Revision()}
	}
	le := l.held[a]
	taken := le != nil && e.Revision() > le.rev
	if taken {
		l.dropLocked(a)
	}
	ready := l.viewReady
	l.mu.Unlock()
	if taken {
		l.log.Warn("service: leases lost: expired or taken by another node", "count", 1, "accounts", a)
	}
	if freed && ready {
		l.wake()
	}
}

// balance takes the free and orphaned accounts assigned to this node (and
// any that stayed so for a TTL), takes back the leases that name this node
// from an earlier epoch, and hands back, if scheduled, some of those
// assigned to others.
func (l *Leases) balance(ctx context.Context, s *leaseRunState, scheduled bool) {
	nodes, err := leaseListKeys(ctx, l.nodes)
	if err != nil {
		if !errors.Is(ctx.Err(), context.Canceled) {
			l.log.Warn("service: list live nodes", "err", err)
		}
		return
	}
	// A listing can miss a key written while it runs: the nodes whose
	// heartbeat the watcher saw within a TTL live too, and so does this
	// one (pass checked its heartbeat is fresh).
	for n, at := range s.beatSeen {
		if time.Since(at) < l.ttl {
			nodes = append(nodes, n)
		}
	}
	nodes = append(nodes, l.id)
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)
	now := l.now()
	live := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		live[n] = true
		if _, ok := s.firstSeen[n]; !ok {
			s.firstSeen[n] = now
		}
	}
	maps.DeleteFunc(s.firstSeen, func(n string, _ time.Time) bool { return !live[n] })
	s.nodesSeen = live

	l.mu.Lock()
	accounts := l.accounts
	held := maps.Clone(l.held)
	// The view was read before the listing: a node whose heartbeat the
	// listing misses cannot have written a lease the view shows since
	// (it writes its heartbeat first), so an orphan seen here is one.
	view := maps.Clone(l.view)
	reclaimFrom := l.beat.reclaimFrom
	l.mu.Unlock()
	exists := make(map[string]bool, len(accounts))
	for _, a := range accounts {
		exists[a] = true
	}
	owner := leaseAssign(accounts, nodes)

	// Leases of accounts that no longer exist go at once, and so do
	// those left by dead nodes (or an earlier epoch of this one).
	var gone, stale []string
	for a := range held {
		if !exists[a] {
			gone = append(gone, a)
		}
	}
	for a, rec := range view {
		if !exists[a] && held[a] == nil && (!live[rec.owner] || rec.owner == l.id && !now.Before(reclaimFrom)) {
			stale = append(stale, a)
		}
	}
	slices.Sort(gone)
	l.handBack(ctx, gone, held)
	slices.Sort(stale)
	l.deleteStale(ctx, stale, view)

	var take []string
	s.short = false
	for _, a := range accounts {
		rec, has := view[a]
		switch {
		case held[a] != nil:
			delete(s.unownedFrom, a)
		case has && rec.owner == l.id:
			// Taken in an earlier epoch, or by an earlier process
			// with this ID: ours to take back.
			delete(s.unownedFrom, a)
			if !now.Before(reclaimFrom) {
				take = append(take, a)
			}
		case has && live[rec.owner]:
			delete(s.unownedFrom, a)
			if owner[a] == l.id {
				s.short = true // its node will hand it over
			}
		default:
			// Free, or orphaned (its node's heartbeat is gone).
			since, ok := s.unownedFrom[a]
			if !ok {
				since = now
				s.unownedFrom[a] = now
			}
			// Unowned for a whole TTL: whoever it is assigned to
			// does not take it (the nodes disagree for now);
			// liveness first.
			if owner[a] == l.id || now.Sub(since) >= l.ttl {
				take = append(take, a)
			}
		}
	}
	maps.DeleteFunc(s.unownedFrom, func(a string, _ time.Time) bool { return !exists[a] })
	l.acquire(ctx, l.confirmOrphans(ctx, take, view), view)

	if !scheduled {
		return
	}
	// Hand back leases assigned to others, a few per period, and only to
	// nodes listed for a period already: a joining node takes nothing in
	// its first period, and an account handed to it then would wait.
	var give []string
	for _, a := range slices.Sorted(maps.Keys(held)) {
		o := owner[a]
		if exists[a] && o != l.id && now.Sub(s.firstSeen[o]) >= l.period {
			give = append(give, a)
		}
	}
	give = give[:min(len(give), max(1, len(held)/10))]
	l.handBack(ctx, give, held)
}

// confirmOrphans returns the accounts of take that are free, or whose
// lease names this node or a node whose heartbeat a read at the leader of
// IMAPKIT_NODES does not find: neither the listing nor the watcher can
// prove a node gone, and taking the account of a live node would have two
// nodes watch it.
func (l *Leases) confirmOrphans(ctx context.Context, take []string, view map[string]leaseRecord) []string {
	gone := make(map[string]bool)
	for _, a := range take {
		o := view[a].owner
		if _, seen := gone[o]; seen || o == "" || o == l.id {
			continue
		}
		_, err := l.nodes.Get(ctx, o)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			gone[o] = true
		case err != nil:
			gone[o] = false
			if !errors.Is(ctx.Err(), context.Canceled) {
				l.log.Warn("service: read heartbeat before a takeover", "node", o, "err", err)
			}
		default:
			gone[o] = false
		}
	}
	return slices.DeleteFunc(take, func(a string) bool {
		o := view[a].owner
		return o != "" && o != l.id && !gone[o]
	})
}

// acquire tries to take the leases of accounts: with Create if the view
// has none, else with Update at the revision it shows (a takeover from a
// dead node, or from an earlier epoch of this one).
func (l *Leases) acquire(ctx context.Context, accounts []string, view map[string]leaseRecord) {
	var (
		mu     sync.Mutex
		failed []string
		errOne error
	)
	leaseForEach(accounts, func(a string) {
		if ctx.Err() != nil {
			return
		}
		rec, has := view[a]
		// A lease written while the epoch changed was written in the
		// old one: the next pass takes it back in the new.
		l.mu.Lock()
		epoch := l.beat.epoch
		l.mu.Unlock()
		var (
			rev uint64
			err error
		)
		if has {
			rev, err = l.leases.Update(ctx, a, []byte(l.id), rec.rev)
		} else {
			rev, err = l.leases.Create(ctx, a, []byte(l.id))
		}
		if leaseConflict(err) {
			// Another node was faster, or the view is behind: read
			// the lease, so that the next pass works from it even
			// if the watcher stalled.
			l.refreshView(ctx, a)
			return
		}
		if err != nil {
			mu.Lock()
			failed = append(failed, a)
			errOne = err
			mu.Unlock()
			return
		}
		l.mu.Lock()
		if l.beat.epoch != epoch {
			l.mu.Unlock()
			return
		}
		le := &lease{rev: rev, epoch: epoch}
		l.held[a] = le
		l.announceLocked(a, le, l.validLocked(le, l.now()))
		l.mu.Unlock()
		if has && rec.owner != l.id {
			l.log.Debug("service: lease taken over", "account", a, "from", rec.owner)
		} else {
			l.log.Debug("service: lease taken", "account", a)
		}
	})
	if len(failed) > 0 && !errors.Is(ctx.Err(), context.Canceled) {
		slices.Sort(failed)
		l.log.Warn("service: take leases", "failed", len(failed), "accounts", leaseSample(failed), "err", errOne)
	}
}

// refreshView reads account's lease into the view.
func (l *Leases) refreshView(ctx context.Context, account string) {
	e, err := l.leases.Get(ctx, account)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		delete(l.view, account)
	case err == nil && e.Revision() > l.view[account].rev:
		l.view[account] = leaseRecord{owner: string(e.Value()), rev: e.Revision()}
	}
}

// handBack gives up the leases of accounts (as found in held): Valid turns
// false and Lost is queued before each lease is deleted, so that this node
// has stopped by the time another can take the account.
func (l *Leases) handBack(ctx context.Context, accounts []string, held map[string]*lease) {
	if len(accounts) == 0 {
		return
	}
	l.mu.Lock()
	for _, a := range accounts {
		if le := held[a]; l.held[a] == le {
			l.dropLocked(a)
		}
	}
	l.mu.Unlock()
	leaseForEach(accounts, func(a string) {
		err := l.leases.Delete(ctx, a, jetstream.LastRevision(held[a].rev))
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			// It is taken over once this node is gone, or handed
			// back at a later pass if this node takes it again.
			if !errors.Is(ctx.Err(), context.Canceled) {
				l.log.Warn("service: hand back lease", "account", a, "err", err)
			}
			return
		}
		l.log.Debug("service: lease handed back", "account", a)
	})
}

// deleteStale deletes the leases of accounts that no longer exist, left by
// nodes that are gone, at the revisions of view.
func (l *Leases) deleteStale(ctx context.Context, accounts []string, view map[string]leaseRecord) {
	leaseForEach(accounts, func(a string) {
		err := l.leases.Delete(ctx, a, jetstream.LastRevision(view[a].rev))
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(ctx.Err(), context.Canceled) {
			l.log.Debug("service: delete lease of a removed account", "account", a, "err", err)
		}
	})
}
