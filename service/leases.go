package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseParallel bounds the KV operations of one node in flight at once when
// it renews, takes or hands back many leases.
const leaseParallel = 32

// LeaseOptions configures Leases.
type LeaseOptions struct {
	// NodeID names this node: its key in IMAPKIT_NODES and the value of
	// the leases it holds. It must be unique among the nodes and a valid KV
	// key (letters, digits, '-', '_', '=', '/', '.').
	NodeID string

	// TTL is how long a lease lasts without renewal: DefaultLeaseTTL if
	// zero, at least 1 s. It must equal the TTL of the bucket IMAPKIT_LEASES (Run
	// checks), which is what makes a lease expire. Leases and the node's
	// heartbeat are renewed every TTL/3.
	TTL time.Duration

	// Margin shortens the time a lease counts as held here: only until
	// lastRenew + TTL - Margin, where lastRenew is when the last successful
	// renewal was sent. A node that cannot renew (partitioned, paused)
	// thus stops Margin before its lease can expire in KV and be taken by
	// another node, which covers clocks running at slightly different
	// rates and the time a publish takes once Valid said yes. TTL/3 if
	// zero; it must be less than 2*TTL/3, so that a lease stays valid
	// from one renewal to the next.
	Margin time.Duration

	// Logger receives what goes wrong (and, at debug level, every lease
	// taken or given up); slog.Default() if nil. Its lines do not name the
	// node: give it a logger that does when several nodes share a log.
	Logger *slog.Logger

	// Now tells the time for the validity of leases and Healthy; time.Now
	// if nil. Tests set it to move a node's time without waiting; the
	// schedule of renewals stays on the real clock.
	Now func() time.Time
}

// Change is a change of the ownership of one account by this node.
type Change struct {
	Account string
	// Owned is true when this node took the account's lease (start
	// watching it), false when it no longer holds it (stop at once).
	Owned bool
}

// Leases decides which accounts this node watches, together with the other
// nodes, through two KV buckets: IMAPKIT_NODES, where each live node keeps
// a key fresh (its heartbeat), and IMAPKIT_LEASES, one key per watched
// account holding the ID of the node that watches it.
//
// A lease is taken with Create (which fails if another node holds it),
// renewed with Update at the revision this node wrote last (which fails if
// the key expired or another node took it since), and handed back with
// Delete at that revision. The bucket's TTL removes the leases of a node
// that stopped renewing, so that another can take them.
//
// Every node computes the same assignment of accounts to live nodes
// (rendezvous hashing with bounded loads: each node gets the floor or the
// ceiling of the average), takes the free accounts assigned to it, and hands
// back the accounts assigned to another node, a tenth of its leases per
// renewal at most, so that a node that joins receives its share over a few
// renewal periods rather than at once. An account that stays free for a
// whole TTL (the nodes disagree on the assignment for a while, say) is taken
// by any node that sees it, whatever the assignment says.
//
// Fencing: Valid(account) is true only while this node holds the lease and
// less than TTL - Margin has passed since its last renewal was sent. The
// lease cannot expire in KV before TTL has passed since then, so Valid turns
// false at least Margin before another node can take the account. Whatever
// publishes for an account must ask Valid first. A publish that slips
// through anyway (Valid said yes just before the end) is caught by the
// message ID of the event and by the revision of the state write.
//
// Run does the work; Changes reports it; Release hands everything back.
type Leases struct {
	leases, nodes jetstream.KeyValue
	id            string
	ttl, margin   time.Duration
	period        time.Duration // between renewals: TTL/3
	log           *slog.Logger
	now           func() time.Time
	optErr        error // what is wrong with the options, for Run

	started atomic.Bool   // Run was called
	kick    chan struct{} // wakes Run for a balancing pass; capacity 1
	turn    chan struct{} // held by a pass of Run and by Release; capacity 1
	out     chan Change   // Changes

	// testHookPass, if set, is called by Run before each pass; tests block
	// in it to freeze the node's loop.
	testHookPass func()

	mu       sync.Mutex
	accounts []string          // sorted, no duplicates
	held     map[string]*lease // leases this node wrote last, valid or not
	queue    []Change          // not yet delivered on out
	queued   chan struct{}     // signals queue is not empty; capacity 1
	running  bool              // Run is running
	released bool              // Release was called
	healthy  time.Time         // Healthy until then
}

// lease is a lease this node holds in KV, as far as it knows.
type lease struct {
	rev     uint64    // the revision this node wrote last
	renewed time.Time // when that write was sent
	// announced is what Changes said last: true after Acquired, false
	// after Lost (or before anything).
	announced bool
}

// NewLeases returns the Leases of node o.NodeID over the buckets leases
// (IMAPKIT_LEASES) and nodes (IMAPKIT_NODES). Nothing happens until Run.
func NewLeases(leases, nodes jetstream.KeyValue, o LeaseOptions) *Leases {
	l := &Leases{
		leases: leases,
		nodes:  nodes,
		id:     o.NodeID,
		ttl:    o.TTL,
		margin: o.Margin,
		log:    o.Logger,
		now:    o.Now,
		kick:   make(chan struct{}, 1),
		turn:   make(chan struct{}, 1),
		out:    make(chan Change),
		held:   make(map[string]*lease),
		queued: make(chan struct{}, 1),
	}
	if l.ttl == 0 {
		l.ttl = DefaultLeaseTTL
	}
	if l.margin == 0 {
		l.margin = l.ttl / 3
	}
	l.period = l.ttl / 3
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.now == nil {
		l.now = time.Now
	}
	switch {
	case !leaseNodeIDPattern.MatchString(l.id):
		l.optErr = fmt.Errorf("service: lease node ID %q: use letters, digits, '-', '_', '=', '/' or '.' (not first or last); it is a KV key", l.id)
	case l.ttl < time.Second:
		// NATS checks for expired keys every 250 ms at most; a
		// shorter TTL would be mostly that.
		l.optErr = fmt.Errorf("service: lease TTL %v: it must be 1s or more", l.ttl)
	case l.margin < 0 || l.margin >= l.ttl-l.period:
		l.optErr = fmt.Errorf("service: lease margin %v: it must be positive and less than 2/3 of the TTL %v, or leases would lapse between renewals", l.margin, l.ttl)
	}
	return l
}

// leaseNodeIDPattern is what a KV key may be (as nats.go checks it).
var leaseNodeIDPattern = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// SetAccounts gives the accounts that exist, replacing what the last call
// gave. Accounts not in it are neither taken nor kept: a lease of an account
// that disappeared is handed back at Run's next pass. The node runner calls
// it whenever the accounts bucket changes; until the first call there are
// none.
func (l *Leases) SetAccounts(names []string) {
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	l.mu.Lock()
	l.accounts = names
	l.mu.Unlock()
	l.wake()
}

// Changes returns the channel on which Run reports, in order, every account
// this node started or stopped holding: Owned true once it took a lease,
// false when it handed the lease back, found it taken by another node, or
// could not renew it in time (then at the moment Valid turned false). The
// channel is not buffered, but Run never waits for the receiver: changes
// queue up until received. A Lost may follow an Acquired for the same
// account before the Acquired was received, so apply them in order.
//
// Run closes the channel when it returns; changes not yet received then are
// dropped. From then on nothing is renewed, and every lease still held turns
// invalid at most TTL - Margin later: the receiver should stop everything.
func (l *Leases) Changes() <-chan Change { return l.out }

// Valid reports whether this node holds account's lease and may act for the
// account now: it took or renewed the lease less than TTL - Margin ago (by
// when the write was sent), and Release was not called. Ask it before each
// publish or state write for the account.
func (l *Leases) Valid(account string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	le := l.held[account]
	return le != nil && l.validLocked(le, l.now())
}

func (l *Leases) validLocked(le *lease, now time.Time) bool {
	return !l.released && now.Before(l.validUntil(le))
}

func (l *Leases) validUntil(le *lease) time.Time {
	return le.renewed.Add(l.ttl - l.margin)
}

// Owned returns the accounts for which Valid is true now, sorted.
func (l *Leases) Owned() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var out []string
	for a, le := range l.held {
		if l.validLocked(le, now) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// Owner returns the ID of the node that holds account's lease according to
// KV, or "" if none does. It is for status replies: by the time it returns,
// the lease may have moved.
func (l *Leases) Owner(ctx context.Context, account string) (string, error) {
	e, err := l.leases.Get(ctx, account)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("service: read lease of account %s: %w", account, err)
	}
	return string(e.Value()), nil
}

// Healthy reports whether Run is running and its last round of renewals
// (the heartbeat and every lease) succeeded less than TTL - Margin ago: the
// node reaches KV and keeps what it holds. It is for readiness probes.
func (l *Leases) Healthy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running && !l.released && l.now().Before(l.healthy)
}

// Release hands back every lease of this node and deletes its heartbeat, so
// that the other nodes take its accounts over at once rather than after the
// TTL: call it on SIGTERM, after stopping the watchers of the accounts. From
// the call on, Valid is false for every account and Run stops (returning
// nil) without taking anything more; a Lost for every account still held
// is queued on Changes. Release waits for a pass of Run in progress to
// end. Leases it fails to delete expire after the TTL.
func (l *Leases) Release(ctx context.Context) error {
	l.mu.Lock()
	l.released = true
	for a, le := range l.held {
		l.announceLocked(a, le, false)
	}
	l.mu.Unlock()
	l.wake() // so that Run notices and returns

	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("service: release leases of node %s: %w", l.id, ctx.Err())
	}
	defer func() { <-l.turn }()

	l.mu.Lock()
	held := l.held
	l.held = make(map[string]*lease)
	l.mu.Unlock()

	var (
		mu   sync.Mutex
		errs []error
	)
	leaseForEach(slices.Sorted(maps.Keys(held)), func(a string) {
		err := l.leases.Delete(ctx, a, jetstream.LastRevision(held[a].rev))
		// A revision mismatch means the lease expired or moved already:
		// there is nothing of ours to hand back.
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			mu.Lock()
			errs = append(errs, fmt.Errorf("service: hand back lease of account %s: %w", a, err))
			mu.Unlock()
		}
	})
	// The heartbeat goes last: the other nodes react to its deletion by
	// rebalancing, and should find the leases free by then.
	if err := l.nodes.Delete(ctx, l.id); err != nil {
		errs = append(errs, fmt.Errorf("service: delete heartbeat of node %s: %w", l.id, err))
	}
	return errors.Join(errs...)
}

// Run keeps this node's heartbeat and leases fresh, every TTL/3, and takes
// and hands back leases to balance the accounts over the live nodes. A
// starting node takes nothing during its first TTL/3, so that nodes starting
// together see each other first instead of taking everything.
//
// Run returns nil when ctx ends, without handing anything back (as if the
// process had died: the leases expire after the TTL, and Valid turns false
// TTL - Margin after the last renewal), or after Release. It returns an
// error at once if the options are invalid or the TTL of IMAPKIT_LEASES is
// not LeaseOptions.TTL. It may be called once.
func (l *Leases) Run(ctx context.Context) error {
	if l.optErr != nil {
		return l.optErr
	}
	if !l.started.CompareAndSwap(false, true) {
		return errors.New("service: Leases.Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		l.mu.Lock()
		l.running = false
		l.mu.Unlock()
		close(l.out)
	}()
	l.mu.Lock()
	l.running = true
	l.mu.Unlock()
	wg.Go(func() { l.deliver(ctx) })
	wg.Go(func() { l.watchLapses(ctx) })

	s := &leaseRunState{
		nodesSeen: map[string]bool{l.id: true},
		firstSeen: make(map[string]time.Time),
		freeSince: make(map[string]time.Time),
	}
	defer s.stopWatch()
	tick := time.NewTimer(0)
	defer tick.Stop()
	// While accounts assigned to this node are held by others (which hand
	// them over one by one), it looks for them four times a period, so
	// that an account handed over waits a quarter period for its new
	// owner rather than a whole one.
	catchUp := time.NewTimer(0)
	catchUp.Stop()
	defer catchUp.Stop()
	for {
		scheduled := false
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			scheduled = true
		case <-catchUp.C:
		case <-l.kick:
		case e, ok := <-s.nodeUpdates():
			if !ok {
				s.watch = nil // the next scheduled pass watches again
				continue
			}
			if !s.nodeChanged(e) {
				continue
			}
		}
		if l.testHookPass != nil {
			l.testHookPass()
		}
		start := time.Now()
		if scheduled {
			s.nextTick = start.Add(l.period)
		}
		done, err := l.pass(ctx, s, scheduled)
		if done || err != nil {
			return err
		}
		if scheduled {
			tick.Reset(time.Until(s.nextTick))
		}
		if s.short {
			catchUp.Reset(l.period / 4)
		} else {
			catchUp.Stop()
		}
	}
}

// leaseRunState is what Run's loop keeps between passes (its goroutine only).
type leaseRunState struct {
	verified  bool      // the TTL of IMAPKIT_LEASES was checked
	beats     int       // heartbeats written
	lastBeat  time.Time // when the last one was sent (by l.now)
	nextTick  time.Time // when the next scheduled pass is due (real clock)
	watch     jetstream.KeyWatcher
	nodesSeen map[string]bool      // node keys known, to spot joins and leaves
	firstSeen map[string]time.Time // when each live node was first listed
	freeSince map[string]time.Time // when each account was first seen free
	short     bool                 // some accounts assigned here are held elsewhere
}

func (s *leaseRunState) nodeUpdates() <-chan jetstream.KeyValueEntry {
	if s.watch == nil {
		return nil
	}
	return s.watch.Updates()
}

// nodeChanged reports whether e, an update of IMAPKIT_NODES, is a node that
// joined or left (rather than a heartbeat of a known node), which calls for
// balancing at once.
func (s *leaseRunState) nodeChanged(e jetstream.KeyValueEntry) bool {
	if e == nil {
		return false
	}
	if e.Operation() == jetstream.KeyValuePut {
		if s.nodesSeen[e.Key()] {
			return false
		}
		s.nodesSeen[e.Key()] = true
		return true
	}
	delete(s.nodesSeen, e.Key())
	return true
}

func (s *leaseRunState) stopWatch() {
	if s.watch != nil {
		s.watch.Stop()
	}
}

// pass is one round of Run: on schedule, the heartbeat and the renewals,
// then (on schedule or when woken) balancing. It reports done when Run
// should return.
func (l *Leases) pass(ctx context.Context, s *leaseRunState, scheduled bool) (done bool, err error) {
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return true, nil
	}
	defer func() { <-l.turn }()
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return true, nil
	}

	// A pass must end by the next scheduled one, or renewals would fall
	// behind: the renewals get half the period, balancing the rest.
	end := s.nextTick
	if !scheduled && time.Until(end) < l.period/10 {
		return false, nil // the scheduled pass, due now, balances too
	}
	if !s.verified {
		vctx, cancel := context.WithDeadline(ctx, end)
		err := l.verify(vctx)
		cancel()
		if err != nil {
			var mismatch *leaseTTLError
			if errors.As(err, &mismatch) {
				return true, err
			}
			l.log.Warn("service: leases wait for KV", "err", err)
			return false, nil
		}
		s.verified = true
	}
	if scheduled {
		rctx, cancel := context.WithDeadline(ctx, time.Now().Add(l.period/2))
		l.renewAll(rctx, s)
		cancel()
		if s.watch == nil {
			// Joins and leaves of nodes wake Run, so that a node
			// that hands back its leases on shutdown is replaced at
			// once, not at the next pass.
			w, err := l.nodes.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
			if err != nil {
				l.log.Warn("service: watch node heartbeats", "err", err)
			} else {
				s.watch = w
			}
		}
	}
	// Balance only on a fresh view of our own liveness: a node whose
	// heartbeat failed for a while may be written off by the others, and
	// a node that just started waits one period to see the others.
	if s.beats >= 2 && l.now().Before(s.lastBeat.Add(l.ttl-l.margin)) {
		bctx, cancel := context.WithDeadline(ctx, end)
		l.balance(bctx, s, scheduled)
		cancel()
	}
	return false, nil
}

// leaseTTLError says the bucket's TTL is not the lease TTL.
type leaseTTLError struct {
	bucket     string
	bucketTTL  time.Duration
	configured time.Duration
}

func (e *leaseTTLError) Error() string {
	return fmt.Sprintf("service: bucket %s keeps keys for %v, but the lease TTL is %v: they must be equal, or leases would expire before (or long after) their holders stop using them", e.bucket, e.bucketTTL, e.configured)
}

// verify checks that the leases bucket expires keys after the lease TTL, on
// which Valid's promise rests.
func (l *Leases) verify(ctx context.Context) error {
	st, err := l.leases.Status(ctx)
	if err != nil {
		return fmt.Errorf("service: status of bucket %s: %w", l.leases.Bucket(), err)
	}
	if st.TTL() != l.ttl {
		return &leaseTTLError{l.leases.Bucket(), st.TTL(), l.ttl}
	}
	return nil
}

// renewAll writes the heartbeat and renews every lease held, and records
// whether all of it succeeded (Healthy).
func (l *Leases) renewAll(ctx context.Context, s *leaseRunState) {
	sent := l.now()
	_, err := l.nodes.Put(ctx, l.id, []byte(sent.UTC().Format(time.RFC3339Nano)))
	if err != nil {
		if !errors.Is(ctx.Err(), context.Canceled) {
			l.log.Warn("service: heartbeat failed", "err", err)
		}
	} else {
		s.lastBeat = sent
		s.beats++
	}

	l.mu.Lock()
	held := maps.Clone(l.held)
	l.mu.Unlock()
	var (
		mu       sync.Mutex
		lost     []string
		failed   int
		firstErr error
	)
	leaseForEach(slices.Sorted(maps.Keys(held)), func(a string) {
		gone, err := l.renew(ctx, a, held[a])
		mu.Lock()
		defer mu.Unlock()
		if gone {
			lost = append(lost, a)
		}
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	})
	if len(lost) > 0 {
		slices.Sort(lost)
		l.log.Warn("service: leases lost: expired or taken by another node", "count", len(lost), "accounts", leaseSample(lost))
	}
	if failed > 0 && !errors.Is(ctx.Err(), context.Canceled) {
		l.log.Warn("service: lease renewals failed; retrying next period", "failed", failed, "held", len(held), "err", firstErr)
	}
	if err == nil && failed == 0 {
		l.mu.Lock()
		l.healthy = sent.Add(l.ttl - l.margin)
		l.mu.Unlock()
	}
}

// renew renews one lease. A lease found taken or expired is dropped (lost).
// It returns an error if the outcome is unknown (KV did not answer).
func (l *Leases) renew(ctx context.Context, account string, le *lease) (lost bool, err error) {
	l.mu.Lock()
	rev := le.rev
	l.mu.Unlock()
	sent := l.now()
	newRev, err := l.leases.Update(ctx, account, []byte(l.id), rev)
	switch {
	case err == nil:
		l.mu.Lock()
		if l.held[account] == le {
			le.rev, le.renewed = newRev, sent
			l.settleLocked(account, le, l.now())
		}
		l.mu.Unlock()
		return false, nil
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound):
		l.mu.Lock()
		if l.held[account] == le {
			delete(l.held, account)
			l.announceLocked(account, le, false)
		}
		l.mu.Unlock()
		l.dropOwnWrite(ctx, account)
		return true, nil
	default:
		return false, fmt.Errorf("service: renew lease of account %s: %w", account, err)
	}
}

// dropOwnWrite deletes account's lease if it names this node although this
// node no longer holds it: a renewal whose reply was lost (a leader change
// in a cluster) left it there, and nobody would use it until it expired.
// Deleting it at its revision frees the account now.
func (l *Leases) dropOwnWrite(ctx context.Context, account string) {
	e, err := l.leases.Get(ctx, account)
	if err != nil || string(e.Value()) != l.id {
		return
	}
	if err := l.leases.Delete(ctx, account, jetstream.LastRevision(e.Revision())); err != nil {
		l.log.Debug("service: delete stale lease", "account", account, "err", err)
	}
}

// balance takes the free accounts assigned to this node and hands back, if
// scheduled, some of those assigned to others.
func (l *Leases) balance(ctx context.Context, s *leaseRunState, scheduled bool) {
	nodes, err := leaseListKeys(ctx, l.nodes)
	if err != nil {
		if !errors.Is(ctx.Err(), context.Canceled) {
			l.log.Warn("service: list live nodes", "err", err)
		}
		return
	}
	if !slices.Contains(nodes, l.id) {
		// Our heartbeat is fresh (pass checked), the listing older.
		nodes = append(nodes, l.id)
		slices.Sort(nodes)
	}
	taken, err := leaseListKeys(ctx, l.leases)
	if err != nil {
		if !errors.Is(ctx.Err(), context.Canceled) {
			l.log.Warn("service: list leases", "err", err)
		}
		return
	}
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
	l.mu.Unlock()
	exists := make(map[string]bool, len(accounts))
	for _, a := range accounts {
		exists[a] = true
	}
	isTaken := make(map[string]bool, len(taken))
	for _, a := range taken {
		isTaken[a] = true
	}
	owner := leaseAssign(accounts, nodes)

	// Leases of accounts that no longer exist go at once.
	var gone []string
	for a := range held {
		if !exists[a] {
			gone = append(gone, a)
		}
	}
	slices.Sort(gone)
	l.handBack(ctx, gone, held)

	var want []string
	s.short = false
	for _, a := range accounts {
		if held[a] == nil && isTaken[a] && owner[a] == l.id {
			s.short = true // another node will hand it over
		}
		if held[a] != nil || isTaken[a] {
			delete(s.freeSince, a)
			continue
		}
		since, ok := s.freeSince[a]
		if !ok {
			since = now
			s.freeSince[a] = now
		}
		// Free for a whole TTL: whoever it is assigned to does not
		// take it (the nodes disagree for now); liveness first.
		if owner[a] == l.id || now.Sub(since) >= l.ttl {
			want = append(want, a)
		}
	}
	maps.DeleteFunc(s.freeSince, func(a string, _ time.Time) bool { return !exists[a] })
	l.acquire(ctx, want)

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

// acquire tries to take the leases of accounts.
func (l *Leases) acquire(ctx context.Context, accounts []string) {
	var (
		mu     sync.Mutex
		failed []string
		errOne error
	)
	leaseForEach(accounts, func(a string) {
		if ctx.Err() != nil {
			return
		}
		sent := l.now()
		rev, err := l.leases.Create(ctx, a, []byte(l.id))
		if leaseConflict(err) {
			return // another node was faster
		}
		if err != nil {
			mu.Lock()
			failed = append(failed, a)
			errOne = err
			mu.Unlock()
			return
		}
		le := &lease{rev: rev, renewed: sent}
		l.mu.Lock()
		l.held[a] = le
		l.settleLocked(a, le, l.now())
		l.mu.Unlock()
		l.log.Debug("service: lease taken", "account", a)
	})
	if len(failed) > 0 && !errors.Is(ctx.Err(), context.Canceled) {
		l.log.Warn("service: take leases", "failed", len(failed), "accounts", leaseSample(failed), "err", errOne)
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
			delete(l.held, a)
			l.announceLocked(a, le, false)
		}
	}
	l.mu.Unlock()
	leaseForEach(accounts, func(a string) {
		err := l.leases.Delete(ctx, a, jetstream.LastRevision(held[a].rev))
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			// It expires after the TTL instead.
			if !errors.Is(ctx.Err(), context.Canceled) {
				l.log.Warn("service: hand back lease", "account", a, "err", err)
			}
			return
		}
		l.log.Debug("service: lease handed back", "account", a)
	})
}

// settleLocked brings what Changes said about account in line with whether
// le is valid at now. It reports whether the lease lapsed just now (Lost
// was queued because it was not renewed in time).
func (l *Leases) settleLocked(account string, le *lease, now time.Time) (lapsed bool) {
	valid := l.validLocked(le, now)
	lapsed = le.announced && !valid
	l.announceLocked(account, le, valid)
	return lapsed
}

// announceLocked queues a Change if owned differs from what was said last.
func (l *Leases) announceLocked(account string, le *lease, owned bool) {
	if le.announced == owned {
		return
	}
	le.announced = owned
	l.queue = append(l.queue, Change{Account: account, Owned: owned})
	select {
	case l.queued <- struct{}{}:
	default:
	}
}

// deliver moves queued changes to the Changes channel, so that Run and the
// renewals never wait for the receiver.
func (l *Leases) deliver(ctx context.Context) {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.mu.Unlock()
			select {
			case <-l.queued:
				continue
			case <-ctx.Done():
				return
			}
		}
		c := l.queue[0]
		l.queue[0] = Change{}
		l.queue = l.queue[1:]
		l.mu.Unlock()
		select {
		case l.out <- c:
		case <-ctx.Done():
			return
		}
	}
}

// watchLapses queues Lost for each lease the moment it can no longer be
// used (Valid turns false), whatever Run's loop is doing: it may be stuck
// on KV for a while.
func (l *Leases) watchLapses(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		next := l.period
		var lapsed []string
		l.mu.Lock()
		now := l.now()
		for a, le := range l.held {
			if l.settleLocked(a, le, now) {
				lapsed = append(lapsed, a)
			}
			if le.announced {
				next = min(next, l.validUntil(le).Sub(now))
			}
		}
		l.mu.Unlock()
		if len(lapsed) > 0 {
			slices.Sort(lapsed)
			l.log.Warn("service: leases not renewed in time; their accounts must stop", "count", len(lapsed), "accounts", leaseSample(lapsed))
		}
		t.Reset(next)
	}
}

// wake makes Run balance soon.
func (l *Leases) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// leaseSample is a few of accounts, for a log line about many.
func leaseSample(accounts []string) string {
	const most = 5
	if len(accounts) <= most {
		return strings.Join(accounts, ",")
	}
	return strings.Join(accounts[:most], ",") + fmt.Sprintf(",… (%d more)", len(accounts)-most)
}

// leaseConflict reports whether err says the key was written by someone
// else first. Create reports it as ErrKeyExists, except when the key had a
// delete marker (a lease handed back): then it is a bare wrong-last-sequence
// error, whose code depends on the bucket's replicas.
func leaseConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// leaseListKeys lists the keys of kv, none being no error.
func leaseListKeys(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	kl, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("service: list keys of bucket %s: %w", kv.Bucket(), err)
	}
	defer kl.Stop()
	var keys []string
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	// The listing ends early, without an error, when ctx ends.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("service: list keys of bucket %s: %w", kv.Bucket(), err)
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// leaseForEach calls f for each item, leaseParallel at a time, and
// returns when all calls have.
func leaseForEach(items []string, f func(string)) {
	sem := make(chan struct{}, leaseParallel)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(it)
		})
	}
	wg.Wait()
}
