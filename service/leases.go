package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// leaseParallel bounds the KV operations of one node in flight at once when
// it takes or hands back many leases.
const leaseParallel = 32

// LeaseOptions configures Leases.
type LeaseOptions struct {
	// NodeID names this node: its key in IMAPKIT_NODES and the value of
	// the leases it holds. It must be unique among the nodes and a valid KV
	// key (letters, digits, '-', '_', '=', '/', '.').
	NodeID string

	// TTL is how long the node's heartbeat, and with it every lease it
	// holds, lasts without renewal: DefaultLeaseTTL if zero, at least 1 s.
	// It must equal the TTL of the bucket IMAPKIT_NODES (Run checks), which
	// is what makes a heartbeat expire. The heartbeat is renewed every
	// TTL/10, and the accounts are balanced every TTL/3 (a period).
	TTL time.Duration

	// Margin shortens the time the leases count as held here: only until
	// lastBeat + TTL - Margin, where lastBeat is when the last successful
	// heartbeat was sent. A node that cannot renew (partitioned, paused)
	// thus stops Margin before its heartbeat can expire in KV and its
	// accounts be taken by another node, which covers clocks running at
	// slightly different rates and the time a publish takes once Valid said
	// yes. TTL/3 if zero; it must be less than 2*TTL/3, so that the leases
	// stay valid from one renewal to the next.
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
// its heartbeat fresh (a key that expires after the TTL unless renewed), and
// IMAPKIT_LEASES, one key per watched account holding the ID of the node
// that watches it. The leases have no TTL of their own: a lease lasts as
// long as the heartbeat of its node, so a node renews one key, every TTL/10,
// however many accounts it holds (renewing a key per account cost 2,000
// KV updates a second for 10,000 accounts at the default TTL, and under
// load the renewals of a thousand leases missed their deadline and accounts
// flapped between nodes).
//
// The heartbeat is written with Create when the node starts (a new
// "epoch"), then renewed with Update at the revision written last. Should
// a renewal find the key expired or written by someone else, the epoch is
// over: every lease of the node is dropped (Lost) and must be taken again,
// in a new epoch, at the revision KV holds. A lease is taken with Create
// (the account is free), or with Update at the revision read of an account
// whose node's heartbeat is gone (a takeover: that node's epoch is over, so
// it cannot act for the account any more, and it could take it back only
// by an Update at the same revision, which one of the two wins). A lease
// is handed back with Delete at its revision.
//
// Every node computes the same assignment of accounts to live nodes
// (rendezvous hashing with bounded loads: each node gets the floor or the
// ceiling of the average), takes the free and orphaned accounts assigned
// to it, and hands back the accounts assigned to another node, a tenth of
// its leases per period at most, so that a node that joins receives its
// share over a few periods rather than at once. An account that stays free
// or orphaned for a whole TTL (the nodes disagree on the assignment for a
// while, say) is taken by any node that sees it, whatever the assignment
// says. Each node follows IMAPKIT_LEASES with a KV watcher, so that an
// account handed back is taken at once, and lists IMAPKIT_NODES (a key per
// node) once a period to see which nodes live.
//
// Fencing: Valid(account) is true only while this node holds the lease in
// the current epoch and less than TTL - Margin has passed since its last
// heartbeat was sent. The heartbeat cannot expire in KV before TTL has
// passed since then, and no other node takes the account before it
// expired, so Valid turns false at least Margin before another node can
// take the account. Whatever publishes for an account must ask Valid
// first. A publish that slips through anyway (Valid said yes just before
// the end) is caught by the message ID of the event and by the revision of
// the state write.
//
// Run does the work; Changes reports it; Release hands everything back.
type Leases struct {
	leases, nodes jetstream.KeyValue
	id            string
	ttl, margin   time.Duration
	period        time.Duration // between balancing passes: TTL/3
	beatEvery     time.Duration // between heartbeats: TTL/10
	log           *slog.Logger
	now           func() time.Time
	optErr        error  // what is wrong with the options, for Run
	token         string // random: tells this process's heartbeats from another's with the same ID

	started atomic.Bool   // Run was called
	kick    chan struct{} // wakes Run for a balancing pass; capacity 1
	turn    chan struct{} // held by a pass of Run and by Release; capacity 1
	out     chan Change   // Changes

	// testHookPass and testHookBeat, if set, are called by Run before
	// each pass and before each heartbeat; tests block in them to freeze
	// the node.
	testHookPass, testHookBeat func()

	verified chan struct{} // closed once the TTLs of the buckets were checked
	beatMu   sync.Mutex    // held while the heartbeat is written, and by Release

	mu        sync.Mutex
	accounts  []string          // sorted, no duplicates
	held      map[string]*lease // leases taken in the current epoch
	beat      heartbeat         // this node's heartbeat: the epoch
	view      map[string]leaseRecord
	viewReady bool          // view holds every lease (the watcher's initial values came)
	queue     []Change      // not yet delivered on out
	queued    chan struct{} // signals queue is not empty; capacity 1
	running   bool          // Run is running
	released  bool          // Release was called
}

// lease is a lease this node holds in KV, as far as it knows.
type lease struct {
	rev   uint64 // the revision this node wrote
	epoch int    // the epoch in which it was taken
	// announced is what Changes said last: true after Acquired, false
	// after Lost (or before anything).
	announced bool
}

// leaseRecord is an entry of IMAPKIT_LEASES as the watcher last saw it.
type leaseRecord struct {
	owner string
	rev   uint64
}

// NewLeases returns the Leases of node o.NodeID over the buckets leases
// (IMAPKIT_LEASES) and nodes (IMAPKIT_NODES). Nothing happens until Run.
func NewLeases(leases, nodes jetstream.KeyValue, o LeaseOptions) *Leases {
	l := &Leases{
		leases:   leases,
		nodes:    nodes,
		id:       o.NodeID,
		ttl:      o.TTL,
		margin:   o.Margin,
		log:      o.Logger,
		now:      o.Now,
		kick:     make(chan struct{}, 1),
		turn:     make(chan struct{}, 1),
		out:      make(chan Change),
		held:     make(map[string]*lease),
		view:     make(map[string]leaseRecord),
		queued:   make(chan struct{}, 1),
		token:    fmt.Sprintf("%016x", rand.Uint64()),
		verified: make(chan struct{}),
	}
	if l.ttl == 0 {
		l.ttl = DefaultLeaseTTL
	}
	if l.margin == 0 {
		l.margin = l.ttl / 3
	}
	l.period = l.ttl / 3
	// The heartbeat is one write per node, so it can be frequent: a node
	// whose process stalls (a machine busy forking thousands of IMAP
	// server processes stalled everything for 8 s in a benchmark) keeps
	// its leases if the stall ends within TTL - Margin of the last
	// heartbeat, and that was at most TTL/10 before the stall began.
	l.beatEvery = l.ttl / 10
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
// this node started or stopped holding: Owned true once it took a lease (or
// once its leases are valid again after a heartbeat renewed late), false
// when it handed the lease back, found it taken by another node, or could
// not renew its heartbeat in time (then at the moment Valid turned false).
// The channel is not buffered, but Run never waits for the receiver:
// changes queue up until received. A Lost may follow an Acquired for the
// same account before the Acquired was received, so apply them in order.
//
// Run closes the channel when it returns; changes not yet received then are
// dropped. From then on nothing is renewed, and every lease still held turns
// invalid at most TTL - Margin later: the receiver should stop everything.
func (l *Leases) Changes() <-chan Change { return l.out }

// Valid reports whether this node holds account's lease and may act for the
// account now: it took the lease in the current epoch, its heartbeat was
// renewed less than TTL - Margin ago (by when the write was sent), and
// Release was not called. Ask it before each publish or state write for the
// account.
func (l *Leases) Valid(account string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	le := l.held[account]
	return le != nil && l.validLocked(le, l.now())
}

func (l *Leases) validLocked(le *lease, now time.Time) bool {
	return le.epoch == l.beat.epoch && l.epochValidLocked(now)
}

// epochValidLocked reports whether the leases of the current epoch may be
// used at now.
func (l *Leases) epochValidLocked(now time.Time) bool {
	return !l.released && l.beat.live && now.Before(l.beat.validUntil(l))
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
// the lease may have moved, and a node that died is named until another
// takes its accounts over.
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

// Healthy reports whether Run is running and its heartbeat was renewed less
// than TTL - Margin ago: the node reaches KV and keeps what it holds. It is
// for readiness probes.
func (l *Leases) Healthy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running && l.epochValidLocked(l.now())
}

// Release hands back every lease of this node and deletes its heartbeat, so
// that the other nodes take its accounts over at once rather than after the
// TTL: call it on SIGTERM, after stopping the watchers of the accounts. From
// the call on, Valid is false for every account and Run stops (returning
// nil) without taking anything more; a Lost for every account still held
// is queued on Changes. Release waits for a pass of Run in progress to
// end. Leases it fails to delete are taken over once the heartbeat is gone.
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
	// No heartbeat is written from now on (keepBeating checks released).
	l.beatMu.Lock()
	defer l.beatMu.Unlock()

	l.mu.Lock()
	held := l.held
	l.held = make(map[string]*lease)
	beat := l.beat
	l.mu.Unlock()

	var (
		mu   sync.Mutex
		errs []error
	)
	leaseForEach(slices.Sorted(maps.Keys(held)), func(a string) {
		err := l.leases.Delete(ctx, a, jetstream.LastRevision(held[a].rev))
		// A revision mismatch means the lease moved already: there is
		// nothing of ours to hand back.
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			mu.Lock()
			errs = append(errs, fmt.Errorf("service: hand back lease of account %s: %w", a, err))
			mu.Unlock()
		}
	})
	// The heartbeat goes last: the other nodes react to its deletion by
	// rebalancing, and should find the leases free by then. Only ours is
	// deleted: a key rewritten by another process is not this node's.
	if beat.live {
		err := l.nodes.Delete(ctx, l.id, jetstream.LastRevision(beat.rev))
		if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			errs = append(errs, fmt.Errorf("service: delete heartbeat of node %s: %w", l.id, err))
		}
	}
	return errors.Join(errs...)
}

// Run keeps this node's heartbeat fresh, every TTL/10, and takes and hands
// back leases to balance the accounts over the live nodes. A starting node
// takes nothing during its first TTL/3, so that nodes starting together see
// each other first instead of taking everything.
//
// Run returns nil when ctx ends, without handing anything back (as if the
// process had died: the heartbeat expires after the TTL, and Valid turns
// false TTL - Margin after the last renewal), or after Release. It returns
// an error at once if the options are invalid or the TTLs of the buckets
// are not what the leases need. It may be called once.
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
	wg.Go(func() { l.followLeases(ctx) })
	wg.Go(func() { l.keepBeating(ctx) })

	s := &leaseRunState{
		nodesSeen:   map[string]bool{l.id: true},
		beatSeen:    make(map[string]time.Time),
		firstSeen:   make(map[string]time.Time),
		unownedFrom: make(map[string]time.Time),
	}
	defer s.stopWatch()
	tick := time.NewTimer(0)
	defer tick.Stop()
	// While accounts assigned to this node are held by others (which hand
	// them over one by one), it looks for them four times a period as well
	// as when the watcher of IMAPKIT_LEASES reports a lease handed back.
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
	nextTick    time.Time // when the next scheduled pass is due (real clock)
	watch       jetstream.KeyWatcher
	nodesSeen   map[string]bool      // node keys known, to spot joins and leaves
	beatSeen    map[string]time.Time // when the watcher last saw each node's heartbeat (real clock)
	firstSeen   map[string]time.Time // when each live node was first listed
	unownedFrom map[string]time.Time // when each account was first seen free or orphaned
	short       bool                 // some accounts assigned here are held elsewhere
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
		s.beatSeen[e.Key()] = time.Now()
		if s.nodesSeen[e.Key()] {
			return false
		}
		s.nodesSeen[e.Key()] = true
		return true
	}
	delete(s.nodesSeen, e.Key())
	delete(s.beatSeen, e.Key())
	return true
}

func (s *leaseRunState) stopWatch() {
	if s.watch != nil {
		s.watch.Stop()
	}
}

// pass is one round of Run: balancing, on schedule or when woken. It
// reports done when Run should return.
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

	// A pass ends by the next scheduled one; what it did not do, the next
	// does.
	end := s.nextTick
	if !scheduled && time.Until(end) < l.period/10 {
		return false, nil // the scheduled pass, due now, balances too
	}
	if !l.isVerified() {
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
		close(l.verified) // the heartbeat starts
	}
	if scheduled {
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
	// Balance only on a fresh view of our own liveness (a node whose
	// heartbeat failed for a while may be written off by the others), of
	// the leases, and of the other nodes: a node that just started waits
	// one period after its first heartbeat to see them.
	l.mu.Lock()
	ready := l.viewReady && l.epochValidLocked(l.now()) && time.Since(l.beat.first) >= l.period
	l.mu.Unlock()
	if ready && time.Until(end) >= l.period/10 {
		bctx, cancel := context.WithDeadline(ctx, end)
		l.balance(bctx, s, scheduled)
		cancel()
	}
	return false, nil
}

// isVerified reports whether pass checked the TTLs of the buckets.
func (l *Leases) isVerified() bool {
	select {
	case <-l.verified:
		return true
	default:
		return false
	}
}

// leaseTTLError says a bucket's TTL is not what the leases need.
type leaseTTLError struct {
	bucket    string
	bucketTTL time.Duration
	want      time.Duration
	why       string
}

func (e *leaseTTLError) Error() string {
	return fmt.Sprintf("service: bucket %s keeps keys for %s, but the leases need %s: %s", e.bucket, ttlString(e.bucketTTL), ttlString(e.want), e.why)
}

// verify checks that the heartbeats expire after the lease TTL and the
// leases never, on which Valid's promise rests.
func (l *Leases) verify(ctx context.Context) error {
	for _, b := range []struct {
		kv   jetstream.KeyValue
		want time.Duration
		why  string
	}{
		{l.nodes, l.ttl, "the lease TTL (--lease-ttl) must be the TTL of the heartbeats, or nodes would be written off while they act, or long after they stopped"},
		{l.leases, 0, "a lease ends with the heartbeat of its node, never on its own"},
	} {
		st, err := b.kv.Status(ctx)
		if err != nil {
			return fmt.Errorf("service: status of bucket %s: %w", b.kv.Bucket(), err)
		}
		if st.TTL() != b.want {
			return &leaseTTLError{b.kv.Bucket(), st.TTL(), b.want, b.why}
		}
	}
	return nil
}

// settleAllLocked brings what Changes said about every lease held in line
// with whether it is valid at now, and returns the accounts whose leases
// lapsed just now.
func (l *Leases) settleAllLocked(now time.Time) (lapsed []string) {
	for a, le := range l.held {
		valid := l.validLocked(le, now)
		if le.announced && !valid {
			lapsed = append(lapsed, a)
		}
		l.announceLocked(a, le, valid)
	}
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

// dropLocked forgets the lease of account (it is lost or handed back) and
// queues a Lost if an Acquired was said.
func (l *Leases) dropLocked(account string) {
	if le := l.held[account]; le != nil {
		delete(l.held, account)
		l.announceLocked(account, le, false)
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

// watchLapses queues Lost for every lease the moment the leases can no
// longer be used (Valid turns false), whatever Run's loop is doing: it may
// be stuck on KV for a while.
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
		l.mu.Lock()
		now := l.now()
		lapsed := l.settleAllLocked(now)
		if l.epochValidLocked(now) {
			next = min(next, l.beat.validUntil(l).Sub(now))
		}
		l.mu.Unlock()
		if len(lapsed) > 0 {
			slices.Sort(lapsed)
			l.log.Warn("service: leases not renewed in time (the heartbeat was not); their accounts must stop", "count", len(lapsed), "accounts", leaseSample(lapsed))
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
