package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// heartbeat is this node's key in IMAPKIT_NODES, as far as it knows. An
// epoch begins when the node writes the key anew and lasts while every
// renewal finds the key at the revision it wrote last. The leases taken in
// an epoch are valid only in that epoch: once the key expired (the node
// was paused or cut off for a TTL) other nodes may have taken its
// accounts, so it takes them again, at the revisions KV holds, in the
// next.
type heartbeat struct {
	live  bool      // an epoch is current
	first time.Time // when the first epoch of this process began (real clock, a schedule)
	epoch int       // counts the epochs of this process
	rev   uint64    // the revision written last
	sent  time.Time // when that write was sent (l.now): the leases are valid until sent + TTL - Margin
	// reclaimFrom is when leases that name this node but were not taken
	// in this epoch may be taken back: at once if the key was free when
	// the epoch began, a TTL later if another process had written it
	// (an earlier process with this ID, which might still be acting).
	reclaimFrom time.Time
	// unsure holds the writes since the last success whose outcome is
	// unknown (KV did not answer in time): one may have landed.
	unsure []beatWrite
}

// beatWrite is a value written to the heartbeat key and when it was sent.
type beatWrite struct {
	value string
	sent  time.Time
}

func (b *heartbeat) validUntil(l *Leases) time.Time {
	return b.sent.Add(l.ttl - l.margin)
}

// keepBeating writes the heartbeat every TTL/10 until ctx ends or Release,
// once Run checked the buckets. A write may take up to a period: one
// answered late still counts from when it was sent, and one abandoned costs
// a read to learn whether it landed.
func (l *Leases) keepBeating(ctx context.Context) {
	select {
	case <-l.verified:
	case <-ctx.Done():
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		if l.testHookBeat != nil {
			l.testHookBeat()
		}
		next := l.beatEvery
		if !l.beatOnce(ctx) {
			next /= 2
		}
		t.Reset(next)
	}
}

// beatOnce writes the heartbeat unless Release was called.
func (l *Leases) beatOnce(ctx context.Context) bool {
	l.beatMu.Lock()
	defer l.beatMu.Unlock()
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return true
	}
	bctx, cancel := context.WithTimeout(ctx, l.period)
	defer cancel()
	return l.renewBeat(bctx)
}

// beatValue is what the heartbeat key holds: this process's token, which
// tells its writes from those of another process with the same node ID,
// and the time the write was sent, which makes each write unique.
func (l *Leases) beatValue(sent time.Time) string {
	return l.token + " " + sent.UTC().Format(time.RFC3339Nano)
}

// renewBeat writes the heartbeat: an Update at the revision written last,
// or, when there is no epoch or it just ended, a new epoch. It reports
// whether the heartbeat is now fresh.
func (l *Leases) renewBeat(ctx context.Context) bool {
	l.mu.Lock()
	live, rev := l.beat.live, l.beat.rev
	l.mu.Unlock()
	sent := l.now()
	value := l.beatValue(sent)
	if live {
		newRev, err := l.nodes.Update(ctx, l.id, []byte(value), rev)
		if err == nil {
			l.beatWritten(newRev, sent)
			return true
		}
		if !leaseConflict(err) && !errors.Is(err, jetstream.ErrKeyNotFound) {
			l.beatUnsure(value, sent, err)
			return false
		}
		// The key is not at our revision: a write of ours whose reply
		// was lost, or the key expired (and was perhaps written since).
		w, wRev, err := l.findOwnBeat(ctx)
		if err != nil {
			l.beatUnsure(value, sent, err)
			return false
		}
		if wRev != 0 {
			l.beatWritten(wRev, w.sent)
			return true
		}
		l.endEpoch()
	}
	return l.startEpoch(ctx, value, sent)
}

// startEpoch writes the heartbeat key anew.
func (l *Leases) startEpoch(ctx context.Context, value string, sent time.Time) bool {
	rev, err := l.nodes.Create(ctx, l.id, []byte(value))
	reclaimFrom := sent
	if leaseConflict(err) {
		// The key exists: a Create of ours whose reply was lost, an
		// earlier process with this ID that has not expired yet, or
		// (wrongly) another live node with the same ID.
		w, wRev, ferr := l.findOwnBeat(ctx)
		switch {
		case ferr != nil:
			err = ferr
		case wRev != 0:
			rev, sent, reclaimFrom, err = wRev, w.sent, w.sent, nil
		default:
			l.log.Warn("service: the heartbeat key of this node ID was written by another process (this node restarted within the TTL, or two nodes share the ID); taking it over, and taking back the leases that name this ID once a TTL has passed", "node", l.id)
			rev, err = l.nodes.Put(ctx, l.id, []byte(value))
			reclaimFrom = sent.Add(l.ttl)
		}
	}
	if err != nil {
		l.beatUnsure(value, sent, err)
		return false
	}
	l.mu.Lock()
	first := l.beat.first
	if first.IsZero() {
		first = time.Now()
	}
	l.beat = heartbeat{
		live:        true,
		first:       first,
		epoch:       l.beat.epoch + 1,
		rev:         rev,
		sent:        sent,
		reclaimFrom: reclaimFrom,
	}
	l.mu.Unlock()
	return true
}

// beatWritten records a heartbeat write that landed: the leases of the
// epoch are valid again until sent + TTL - Margin (Acquired is said again
// for those that lapsed).
func (l *Leases) beatWritten(rev uint64, sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.beat.rev = rev
	if sent.After(l.beat.sent) {
		l.beat.sent = sent
	}
	l.beat.unsure = nil
	l.settleAllLocked(l.now())
}

// beatUnsure records a heartbeat write whose outcome is unknown.
func (l *Leases) beatUnsure(value string, sent time.Time, err error) {
	const keep = 8 // an epoch with more unanswered writes has lapsed long ago
	l.mu.Lock()
	l.beat.unsure = append(l.beat.unsure, beatWrite{value, sent})
	if n := len(l.beat.unsure); n > keep {
		l.beat.unsure = l.beat.unsure[n-keep:]
	}
	l.mu.Unlock()
	if !errors.Is(err, context.Canceled) {
		l.log.Warn("service: lease renewals failed: the heartbeat was not written; retrying", "failed", 1, "err", err)
	}
}

// findOwnBeat reads the heartbeat key and reports the write of this process
// whose outcome was unknown that it holds, with its revision (0 if none).
func (l *Leases) findOwnBeat(ctx context.Context) (beatWrite, uint64, error) {
	e, err := l.nodes.Get(ctx, l.id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return beatWrite{}, 0, nil
	}
	if err != nil {
		return beatWrite{}, 0, fmt.Errorf("service: read heartbeat of node %s: %w", l.id, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.beat.unsure {
		if w.value == string(e.Value()) {
			return w, e.Revision(), nil
		}
	}
	return beatWrite{}, 0, nil
}

// endEpoch drops every lease: the heartbeat key expired or was written by
// someone else, so the other nodes may have taken the accounts.
func (l *Leases) endEpoch() {
	l.mu.Lock()
	n := len(l.held)
	var accounts []string
	for a := range l.held {
		accounts = append(accounts, a)
		l.dropLocked(a)
	}
	l.beat.live = false
	l.beat.unsure = nil
	l.mu.Unlock()
	slices.Sort(accounts)
	if n > 0 {
		l.log.Warn("service: leases lost: expired or taken by another node (the heartbeat had expired)", "count", n, "accounts", leaseSample(accounts))
	} else {
		l.log.Warn("service: the heartbeat had expired; writing it anew")
	}
}
