package service

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// testLeaseTTL keeps the tests short: heartbeats every 500 ms, leases valid
// for 1 s after a heartbeat, which expires in KV 500 ms later.
const testLeaseTTL = 1500 * time.Millisecond

// expirySlack is how late NATS may remove an expired key: it looks for
// expired messages at most every 250 ms, by a clock it reads every 100 ms or
// so. Deadlines that wait for an expiry add it.
const expirySlack = 600 * time.Millisecond

// leaseEnv is a NATS server (or cluster) with the two buckets.
type leaseEnv struct {
	urls []string
	ttl  time.Duration
}

func newLeaseEnv(t *testing.T, ttl time.Duration, urls []string, replicas int) *leaseEnv {
	t.Helper()
	_, js := natstest.Connect(t, strings.Join(urls, ","))
	for _, b := range []jetstream.KeyValueConfig{
		{Bucket: BucketLeases, History: 1, Replicas: replicas},
		{Bucket: BucketNodes, TTL: ttl, History: 1, Replicas: replicas},
	} {
		if _, err := ensureBucket(t.Context(), js, b, b.Bucket == BucketNodes); err != nil {
			t.Fatalf("create bucket %s: %v", b.Bucket, err)
		}
	}
	return &leaseEnv{urls: urls, ttl: ttl}
}

func singleServer(t *testing.T, ttl time.Duration) *leaseEnv {
	return newLeaseEnv(t, ttl, []string{natstest.Start(t).ClientURL()}, 1)
}

// buckets opens the two buckets on a connection of their own.
func (e *leaseEnv) buckets(t *testing.T, url string) (leases, nodes jetstream.KeyValue) {
	t.Helper()
	_, js := natstest.Connect(t, url)
	var err error
	if leases, err = js.KeyValue(t.Context(), BucketLeases); err != nil {
		t.Fatal(err)
	}
	if nodes, err = js.KeyValue(t.Context(), BucketNodes); err != nil {
		t.Fatal(err)
	}
	return leases, nodes
}

// testNode is one Leases, running, with what it reported on Changes.
type testNode struct {
	id     string
	l      *Leases
	cancel context.CancelFunc
	done   chan error // Run's result

	mu         sync.Mutex
	changes    []timedChange
	frozen     chan struct{} // non-nil while the node is to be held
	parked     chan struct{} // signalled when Run's loop stops at frozen
	beatParked chan struct{} // signalled when the heartbeat stops at frozen
}

type timedChange struct {
	Change
	at time.Time
}

// startNode starts a node connected to the i-th URL of the environment.
func (e *leaseEnv) startNode(t *testing.T, i int, id string, accounts []string, o LeaseOptions) *testNode {
	t.Helper()
	leases, nodes := e.buckets(t, e.urls[i%len(e.urls)])
	o.NodeID = id
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
		if os.Getenv("LEASE_DEBUG") != "" {
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", id, "test", t.Name())
		}
	}
	if o.TTL == 0 {
		o.TTL = e.ttl
	}
	n := &testNode{id: id, done: make(chan error, 1), parked: make(chan struct{}, 1), beatParked: make(chan struct{}, 1)}
	n.l = NewLeases(leases, nodes, o)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	hold := func(parked chan struct{}) func() {
		return func() {
			n.mu.Lock()
			ch := n.frozen
			n.mu.Unlock()
			if ch != nil {
				select {
				case parked <- struct{}{}:
				default:
				}
				select {
				case <-ch:
				case <-ctx.Done():
				}
			}
		}
	}
	n.l.testHookPass = hold(n.parked)
	n.l.testHookBeat = hold(n.beatParked)
	n.l.SetAccounts(accounts)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for c := range n.l.Changes() {
			n.mu.Lock()
			n.changes = append(n.changes, timedChange{c, time.Now()})
			n.mu.Unlock()
		}
	}()
	go func() { n.done <- n.l.Run(ctx) }()
	t.Cleanup(func() {
		n.stop(t)
		<-collected
	})
	return n
}

// stop ends the node's Run like a crash (nothing handed back) and waits for
// it.
func (n *testNode) stop(t *testing.T) {
	t.Helper()
	n.cancel()
	select {
	case err, ok := <-n.done:
		if ok && err != nil {
			t.Errorf("%s: Run: %v", n.id, err)
		}
		if ok {
			close(n.done)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s: Run did not return within 10 s of its context ending", n.id)
	}
}

// freeze holds the node's loop before its next pass and its heartbeat
// before the next write, as if the process were stopped, and waits until
// both are held; thaw lets them go on.
func (n *testNode) freeze(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	n.frozen = make(chan struct{})
	n.mu.Unlock()
	for _, parked := range []chan struct{}{n.parked, n.beatParked} {
		select {
		case <-parked:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not held within 5 s", n.id)
		}
	}
}

func (n *testNode) thaw() {
	n.mu.Lock()
	close(n.frozen)
	n.frozen = nil
	n.mu.Unlock()
}

func (n *testNode) changesOf(account string) []timedChange {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []timedChange
	for _, c := range n.changes {
		if c.Account == account {
			out = append(out, c)
		}
	}
	return out
}

func accountNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("acct-%02d", i))
	}
	return out
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// balanced reports whether every account is Valid on exactly one of nodes
// and the counts per node differ by one at most.
func balanced(nodes []*testNode, accounts []string) bool {
	counts := make([]int, len(nodes))
	for _, a := range accounts {
		owners := 0
		for i, n := range nodes {
			if n.l.Valid(a) {
				owners++
				counts[i]++
			}
		}
		if owners != 1 {
			return false
		}
	}
	return slices.Max(counts)-slices.Min(counts) <= 1
}

func spread(nodes []*testNode) string {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "%s:%d ", n.id, len(n.l.Owned()))
	}
	return b.String()
}

// monitor samples Valid on every node for every account every few
// milliseconds: it records moments when two nodes held an account, every
// change of owner, and the longest time an account had none.
type monitor struct {
	nodes    []*testNode
	accounts []string
	stop     chan struct{}
	stopped  chan struct{}

	mu      sync.Mutex
	doubles []string
	owner   map[string]string    // "" for none
	since   map[string]time.Time // when owner took its current value
	moves   map[string][]move
	maxGap  time.Duration // longest time without owner, since reset
	gapAcct string
	maxHeld map[string]int // most accounts each node held at once
}

type move struct {
	from, to string
	at       time.Time
}

func watchOwnership(t *testing.T, nodes []*testNode, accounts []string) *monitor {
	m := &monitor{nodes: nodes, accounts: accounts, stop: make(chan struct{}), stopped: make(chan struct{}), maxHeld: map[string]int{}}
	m.reset()
	go m.run()
	t.Cleanup(m.end)
	return m
}

func (m *monitor) end() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.stopped
}

// reset forgets the gaps and moves so far (the start-up of the nodes).
func (m *monitor) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.owner, m.since, m.moves = map[string]string{}, map[string]time.Time{}, map[string][]move{}
	now := time.Now()
	for _, a := range m.accounts {
		m.owner[a], m.since[a] = m.sampleLocked(a), now
	}
	m.maxGap, m.gapAcct = 0, ""
}

// sampleLocked returns the node holding a ("" if none), recording a double.
func (m *monitor) sampleLocked(a string) string {
	var owners []string
	for _, n := range m.nodes {
		if n.l.Valid(a) {
			owners = append(owners, n.id)
		}
	}
	if len(owners) > 1 {
		m.doubles = append(m.doubles, fmt.Sprintf("%s held by %v at %s", a, owners, time.Now().Format("15:04:05.000")))
	}
	if len(owners) == 0 {
		return ""
	}
	return owners[0]
}

func (m *monitor) run() {
	defer close(m.stopped)
	for {
		select {
		case <-m.stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		m.mu.Lock()
		now := time.Now()
		held := map[string]int{}
		for _, a := range m.accounts {
			o := m.sampleLocked(a)
			held[o]++
			if o == m.owner[a] {
				continue
			}
			if m.owner[a] == "" {
				if gap := now.Sub(m.since[a]); gap > m.maxGap {
					m.maxGap, m.gapAcct = gap, a
				}
			}
			m.moves[a] = append(m.moves[a], move{m.owner[a], o, now})
			m.owner[a], m.since[a] = o, now
		}
		for n, c := range held {
			m.maxHeld[n] = max(m.maxHeld[n], c)
		}
		m.mu.Unlock()
	}
}

func (m *monitor) checkNoDoubles(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.doubles) > 0 {
		t.Errorf("accounts held by two nodes at once (%d samples), first: %v", len(m.doubles), m.doubles[:min(5, len(m.doubles))])
	}
}

// ownerOf returns the holder of account at the last sample, "" if none.
func (m *monitor) ownerOf(account string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owner[account]
}

func (m *monitor) addNode(n *testNode) {
	m.mu.Lock()
	m.nodes = append(m.nodes, n)
	m.mu.Unlock()
}

func TestLeasesSpreadAccounts(t *testing.T) {
	t.Parallel()
	env := singleServer(t, testLeaseTTL)
	accounts := accountNames(30)
	// The nodes start together, but one a little before the others: it
	// has written its heartbeat, and not yet seen theirs.
	nodes := []*testNode{env.startNode(t, 0, "node-0", accounts, LeaseOptions{})}
	m := watchOwnership(t, nodes, accounts)
	waitFor(t, 5*time.Second, "node-0 healthy", nodes[0].l.Healthy)
	for i := 1; i < 3; i++ {
		nodes = append(nodes, env.startNode(t, 0, fmt.Sprintf("node-%d", i), accounts, LeaseOptions{}))
		m.addNode(nodes[i])
	}
	took := waitFor(t, 10*time.Second, "30 accounts spread over 3 nodes", func() bool { return balanced(nodes, accounts) })
	t.Logf("balanced after %v: %s", took, spread(nodes))

	for _, n := range nodes {
		if got := len(n.l.Owned()); got != 10 {
			t.Errorf("%s owns %d accounts, want 10", n.id, got)
		}
		// Starting together, the nodes saw each other before taking
		// anything: none took more than its share on the way.
		m.mu.Lock()
		most := m.maxHeld[n.id]
		m.mu.Unlock()
		if most > 10 {
			t.Errorf("%s held %d accounts at one point while starting; want at most its share, 10", n.id, most)
		}
		if !n.l.Healthy() {
			t.Errorf("%s not healthy", n.id)
		}
	}
	// KV agrees with Valid.
	for _, a := range accounts {
		owner, err := nodes[0].l.Owner(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if n.l.Valid(a) && owner != n.id {
				t.Errorf("%s: Valid on %s, but KV names %q", a, n.id, owner)
			}
		}
	}
	if owner, err := nodes[0].l.Owner(t.Context(), "nobody-watches-this"); owner != "" || err != nil {
		t.Errorf("Owner of an account without lease = %q, %v; want \"\", nil", owner, err)
	}

	// Every Acquired was reported on Changes, nothing else.
	for _, n := range nodes {
		for _, a := range n.l.Owned() {
			waitFor(t, time.Second, n.id+" reports Acquired "+a, func() bool {
				cs := n.changesOf(a)
				return len(cs) > 0 && cs[len(cs)-1].Owned
			})
		}
	}

	// An account that disappears is handed back at once.
	gone := accounts[0]
	var holder *testNode
	for _, n := range nodes {
		if n.l.Valid(gone) {
			holder = n
		}
	}
	for _, n := range nodes {
		n.l.SetAccounts(accounts[1:])
	}
	waitFor(t, testLeaseTTL/3, "lease of a removed account deleted", func() bool {
		owner, err := holder.l.Owner(t.Context(), gone)
		return err == nil && owner == "" && !holder.l.Valid(gone)
	})
	waitFor(t, time.Second, "Lost reported for the removed account", func() bool {
		cs := holder.changesOf(gone)
		return len(cs) > 0 && !cs[len(cs)-1].Owned
	})
	m.checkNoDoubles(t)
}

func TestLeasesCrashedNodeTakenOver(t *testing.T) {
	t.Parallel()
	env := singleServer(t, testLeaseTTL)
	accounts := accountNames(30)
	var nodes []*testNode
	for i := range 3 {
		nodes = append(nodes, env.startNode(t, 0, fmt.Sprintf("node-%d", i), accounts, LeaseOptions{}))
	}
	m := watchOwnership(t, nodes, accounts)
	waitFor(t, 10*time.Second, "balanced", func() bool { return balanced(nodes, accounts) })

	dead := nodes[2]
	orphans := dead.l.Owned()
	dead.stop(t) // no Release: its leases stay until they expire
	survivors := nodes[:2]
	period := testLeaseTTL / 3
	took := waitFor(t, testLeaseTTL+period+expirySlack, "the crashed node's accounts taken over", func() bool {
		for _, a := range orphans {
			if !survivors[0].l.Valid(a) && !survivors[1].l.Valid(a) {
				return false
			}
		}
		return true
	})
	t.Logf("%d accounts taken over %v after the crash (TTL %v, period %v)", len(orphans), took, testLeaseTTL, period)
	// The leases were renewed at most a period before the crash and last
	// a TTL: a takeover sooner than that did not wait for them to expire.
	if took < testLeaseTTL-period-50*time.Millisecond {
		t.Errorf("taken over %v after the crash, before the leases could expire", took)
	}
	waitFor(t, 10*time.Second, "balanced over the survivors", func() bool { return balanced(survivors, accounts) })
	m.checkNoDoubles(t)
}

func TestLeasesFrozenNodeStopsFirst(t *testing.T) {
	t.Parallel()
	env := singleServer(t, testLeaseTTL)
	accounts := accountNames(10)
	a := env.startNode(t, 0, "node-a", accounts, LeaseOptions{})
	b := env.startNode(t, 0, "node-b", accounts, LeaseOptions{})
	nodes := []*testNode{a, b}
	m := watchOwnership(t, nodes, accounts)
	waitFor(t, 10*time.Second, "balanced", func() bool { return balanced(nodes, accounts) })
	m.reset()

	a.freeze(t)
	// What a holds now is renewed no more.
	a.l.mu.Lock()
	frozenRevs := make(map[string]uint64)
	for acct, le := range a.l.held {
		frozenRevs[acct] = le.rev
	}
	a.l.mu.Unlock()
	if len(frozenRevs) == 0 {
		t.Fatal("node-a holds nothing")
	}
	waitFor(t, 2*testLeaseTTL+expirySlack, "node-b holds node-a's accounts (as sampled)", func() bool {
		for acct := range frozenRevs {
			if m.ownerOf(acct) != "node-b" {
				return false
			}
		}
		return true
	})
	margin := testLeaseTTL / 3
	m.mu.Lock()
	for acct := range frozenRevs {
		// The moves of acct: a → none, then none → b, far enough apart.
		var lost, taken time.Time
		for _, mv := range m.moves[acct] {
			switch {
			case mv.from == "node-a" && mv.to == "":
				lost = mv.at
			case mv.from == "" && mv.to == "node-b":
				taken = mv.at
			case mv.from == "node-a" && mv.to == "node-b":
				t.Errorf("%s: moved from a to b between two samples", acct)
			}
		}
		if lost.IsZero() || taken.IsZero() {
			t.Errorf("%s: moves %v: want a → none → b", acct, m.moves[acct])
			continue
		}
		if gap := taken.Sub(lost); gap < margin/2 {
			t.Errorf("%s: Valid false on a only %v before true on b; want about the margin %v", acct, gap, margin)
		}
		// Lost was reported (by the lapse, while the loop was frozen)
		// before b took the account.
		var lostAt time.Time
		for _, c := range a.changesOf(acct) {
			if !c.Owned {
				lostAt = c.at
			}
		}
		if lostAt.IsZero() || !lostAt.Before(taken) {
			t.Errorf("%s: Lost reported at %v, b took it at %v", acct, lostAt, taken)
		}
	}
	m.mu.Unlock()

	a.thaw()
	// Its heartbeat expired: it keeps none of the leases of that epoch.
	waitFor(t, testLeaseTTL, "node-a drops its stale leases", func() bool {
		a.l.mu.Lock()
		defer a.l.mu.Unlock()
		for acct, rev := range frozenRevs {
			if le := a.l.held[acct]; le != nil && le.rev == rev {
				return false
			}
		}
		return true
	})
	for acct := range frozenRevs {
		if a.l.Valid(acct) {
			// Possible only through a fresh Create after b handed it
			// back; make sure that is what happened.
			a.l.mu.Lock()
			rev := a.l.held[acct].rev
			a.l.mu.Unlock()
			if rev == frozenRevs[acct] {
				t.Errorf("%s: node-a still holds its old lease", acct)
			}
		}
	}
	waitFor(t, 10*time.Second, "balanced again", func() bool { return balanced(nodes, accounts) })
	m.checkNoDoubles(t)
}

func TestLeasesJoinGradually(t *testing.T) {
	t.Parallel()
	env := singleServer(t, testLeaseTTL)
	accounts := accountNames(30)
	var nodes []*testNode
	for i := range 3 {
		nodes = append(nodes, env.startNode(t, 0, fmt.Sprintf("node-%d", i), accounts, LeaseOptions{}))
	}
	m := watchOwnership(t, nodes, accounts)
	waitFor(t, 10*time.Second, "balanced over 3", func() bool { return balanced(nodes, accounts) })
	m.reset()

	joined := time.Now()
	d := env.startNode(t, 0, "node-3", accounts, LeaseOptions{})
	m.addNode(d)
	nodes = append(nodes, d)
	took := waitFor(t, 15*time.Second, "balanced over 4", func() bool { return balanced(nodes, accounts) })
	t.Logf("balanced over 4 nodes %v after the join: %s", took, spread(nodes))

	// Valid changes before the change is read from Changes(): wait until
	// the collector has seen every account the node now owns.
	waitFor(t, 5*time.Second, "the new node's changes reported", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		held := 0
		for _, c := range d.changes {
			if c.Owned {
				held++
			} else {
				held--
			}
		}
		return held == len(d.l.Owned())
	})
	period := testLeaseTTL / 3
	var acquired []time.Time
	d.mu.Lock()
	for _, c := range d.changes {
		if c.Owned {
			acquired = append(acquired, c.at)
		}
	}
	d.mu.Unlock()
	if len(acquired) < 7 {
		t.Fatalf("the new node acquired %d accounts, want 7 or 8", len(acquired))
	}
	if first := acquired[0].Sub(joined); first < period {
		t.Errorf("the new node took its first account %v after starting; want it to wait a renew period (%v) to see the others", first, period)
	}
	// Gradually: each old node hands back one account per renew period
	// (a tenth of its 10), not its 2 or 3 extra at once.
	for _, n := range nodes[:3] {
		var handed []time.Time
		n.mu.Lock()
		for _, c := range n.changes {
			if !c.Owned && c.at.After(joined) {
				handed = append(handed, c.at)
			}
		}
		n.mu.Unlock()
		for i := 1; i < len(handed); i++ {
			if d := handed[i].Sub(handed[i-1]); d < period/2 {
				t.Errorf("%s handed back two accounts %v apart; want one per renew period (%v)", n.id, d, period)
			}
		}
	}
	m.mu.Lock()
	gap, acct := m.maxGap, m.gapAcct
	m.mu.Unlock()
	t.Logf("longest time an account had no owner during the move: %v (%s)", gap, acct)
	if gap > period {
		t.Errorf("%s had no owner for %v during the move; want at most a renew period (%v)", acct, gap, period)
	}
	m.checkNoDoubles(t)
}

func TestLeasesReleaseHandsOverAtOnce(t *testing.T) {
	t.Parallel()
	env := singleServer(t, testLeaseTTL)
	accounts := accountNames(30)
	var nodes []*testNode
	for i := range 3 {
		nodes = append(nodes, env.startNode(t, 0, fmt.Sprintf("node-%d", i), accounts, LeaseOptions{}))
	}
	m := watchOwnership(t, nodes, accounts)
	waitFor(t, 10*time.Second, "balanced", func() bool { return balanced(nodes, accounts) })
	m.reset()

	leaving := nodes[2]
	handed := leaving.l.Owned()
	start := time.Now()
	if err := leaving.l.Release(t.Context()); err != nil {
		t.Fatalf("Release: %v", err)
	}
	for _, a := range handed {
		if leaving.l.Valid(a) {
			t.Errorf("%s still Valid on the node that released it", a)
		}
	}
	select {
	case err := <-leaving.done:
		if err != nil {
			t.Errorf("Run after Release: %v", err)
		}
		close(leaving.done)
	case <-time.After(testLeaseTTL):
		t.Errorf("Run did not return after Release")
	}
	period := testLeaseTTL / 3
	rest := nodes[:2]
	waitFor(t, period, "the released accounts taken over within a renew period", func() bool {
		for _, a := range handed {
			if !rest[0].l.Valid(a) && !rest[1].l.Valid(a) {
				return false
			}
		}
		return true
	})
	t.Logf("%d released accounts taken over in %v", len(handed), time.Since(start))
	for _, a := range handed {
		cs := leaving.changesOf(a)
		if len(cs) == 0 || cs[len(cs)-1].Owned {
			// Run may end before delivering the Lost; the channel is
			// closed then, which says the same.
			t.Logf("%s: no Lost received before Changes closed", a)
		}
	}
	_, nodesKV := env.buckets(t, env.urls[0])
	if _, err := nodesKV.Get(t.Context(), leaving.id); err == nil {
		t.Errorf("the heartbeat of the released node is still there")
	}
	waitFor(t, 10*time.Second, "balanced over the rest", func() bool { return balanced(rest, accounts) })
	m.checkNoDoubles(t)
}

// TestLeasesRenewOneKey: a node renews its heartbeat, one key, however many
// leases it holds; IMAPKIT_LEASES is written only when a lease changes hands.
func TestLeasesRenewOneKey(t *testing.T) {
	t.Parallel()
	env := singleServer(t, testLeaseTTL)
	accounts := accountNames(300)
	n := env.startNode(t, 0, "node-a", accounts, LeaseOptions{})
	waitFor(t, 10*time.Second, "300 accounts held", func() bool { return len(n.l.Owned()) == len(accounts) })

	_, js := natstest.Connect(t, env.urls[0])
	lastSeq := func(stream string) uint64 {
		s, err := js.Stream(t.Context(), stream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	leases0, beats0 := lastSeq("KV_"+BucketLeases), lastSeq("KV_"+BucketNodes)
	periods := 4
	time.Sleep(time.Duration(periods) * testLeaseTTL / 3)
	leases1, beats1 := lastSeq("KV_"+BucketLeases), lastSeq("KV_"+BucketNodes)
	if leases1 != leases0 {
		t.Errorf("IMAPKIT_LEASES written %d times over %d periods with nothing changing hands; want 0", leases1-leases0, periods)
	}
	// A heartbeat every TTL/10: 10/3 a period.
	if d, want := beats1-beats0, uint64(periods*10/3); d+2 < want || d > want+2 {
		t.Errorf("IMAPKIT_NODES written %d times over %d periods; want about %d, one heartbeat every TTL/10", d, periods, want)
	}
	if got := len(n.l.Owned()); got != len(accounts) || !n.l.Healthy() {
		t.Errorf("after %d periods: %d accounts valid, healthy %v; want %d, true", periods, got, n.l.Healthy(), len(accounts))
	}
}

// TestLeasesRestartSameID: a node that crashed and started again with the
// same ID, before its heartbeat expired, waits until the crashed process
// can no longer act (its leases lapse TTL - Margin after its last
// heartbeat) before it takes back the leases that name it.
func TestLeasesRestartSameID(t *testing.T) {
	t.Parallel()
	env := singleServer(t, testLeaseTTL)
	accounts := accountNames(20)
	old := env.startNode(t, 0, "node-a", accounts, LeaseOptions{})
	b := env.startNode(t, 0, "node-b", accounts, LeaseOptions{})
	m := watchOwnership(t, []*testNode{old, b}, accounts)
	waitFor(t, 10*time.Second, "balanced", func() bool { return balanced([]*testNode{old, b}, accounts) })
	held := old.l.Owned()

	old.stop(t) // a crash: nothing handed back, the heartbeat stays
	restarted := time.Now()
	again := env.startNode(t, 0, "node-a", accounts, LeaseOptions{})
	m.addNode(again)
	nodes := []*testNode{again, b}
	took := waitFor(t, 5*testLeaseTTL, "the restarted node holds its share again", func() bool { return balanced(nodes, accounts) })
	t.Logf("balanced %v after the restart", took)
	for _, a := range held {
		for _, c := range again.changesOf(a) {
			if c.Owned && c.at.Sub(restarted) < testLeaseTTL-testLeaseTTL/3 {
				t.Errorf("%s: taken back %v after the restart, while the crashed process could still act (until TTL - Margin after its last heartbeat)", a, c.at.Sub(restarted))
			}
		}
	}
	// Nobody took the crashed process's accounts meanwhile: its ID kept a
	// live heartbeat.
	for _, a := range held {
		for _, c := range b.changesOf(a) {
			if c.Owned && c.at.After(restarted) {
				t.Errorf("%s: taken by node-b after the restart; want it to wait for node-a", a)
			}
		}
	}
	m.checkNoDoubles(t)
}

func TestLeasesCluster(t *testing.T) {
	t.Parallel()
	servers := natstest.Cluster(t, 3)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	ttl := 2 * time.Second
	env := newLeaseEnv(t, ttl, urls, 3)
	accounts := accountNames(30)
	var nodes []*testNode
	for i := range 3 {
		nodes = append(nodes, env.startNode(t, i, fmt.Sprintf("node-%d", i), accounts, LeaseOptions{}))
	}
	m := watchOwnership(t, nodes, accounts)
	took := waitFor(t, 15*time.Second, "30 accounts spread over 3 nodes on a 3-server cluster", func() bool { return balanced(nodes, accounts) })
	t.Logf("balanced after %v: %s", took, spread(nodes))
	for _, a := range accounts {
		owner, err := nodes[1].l.Owner(t.Context(), a)
		if err != nil {
			t.Fatal(err)
		}
		if n := slices.IndexFunc(nodes, func(n *testNode) bool { return n.id == owner }); n < 0 || !nodes[n].l.Valid(a) {
			t.Errorf("%s: KV names %q, which does not hold it", a, owner)
		}
	}
	// And a crash is taken over there too.
	dead := nodes[0]
	orphans := dead.l.Owned()
	dead.stop(t)
	waitFor(t, ttl+ttl/3+expirySlack, "the crashed node's accounts taken over", func() bool {
		for _, a := range orphans {
			if !nodes[1].l.Valid(a) && !nodes[2].l.Valid(a) {
				return false
			}
		}
		return true
	})
	m.checkNoDoubles(t)
}

// fakeClock is a clock that moves when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }

func TestLeasesValidEndsAtMargin(t *testing.T) {
	t.Parallel()
	env := singleServer(t, testLeaseTTL)
	clock := newFakeClock(time.Now())
	margin := 400 * time.Millisecond
	n := env.startNode(t, 0, "node-a", []string{"only"}, LeaseOptions{Now: clock.Now, Margin: margin})
	// The clock stands still: the node takes the lease after its first
	// period (on the real clock) and renews its heartbeat at the same
	// instant.
	waitFor(t, 5*time.Second, "lease taken", func() bool { return n.l.Valid("only") })
	n.freeze(t)
	n.l.mu.Lock()
	renewed := n.l.beat.sent
	n.l.mu.Unlock()

	clock.set(renewed.Add(testLeaseTTL - margin - time.Nanosecond))
	if !n.l.Valid("only") || !n.l.Healthy() {
		t.Errorf("Valid %v, Healthy %v just before lastRenew + TTL - Margin; want true", n.l.Valid("only"), n.l.Healthy())
	}
	clock.Add(time.Nanosecond)
	if n.l.Valid("only") || n.l.Healthy() || len(n.l.Owned()) != 0 {
		t.Errorf("Valid %v, Healthy %v, Owned %v at lastRenew + TTL - Margin; want false, false, none", n.l.Valid("only"), n.l.Healthy(), n.l.Owned())
	}
	waitFor(t, 2*testLeaseTTL, "Lost reported when the lease lapsed", func() bool {
		cs := n.changesOf("only")
		return len(cs) > 0 && !cs[len(cs)-1].Owned
	})
	n.thaw()
}

func TestLeasesRefuseWrongTTL(t *testing.T) {
	t.Parallel()
	env := singleServer(t, 2*time.Second)
	leases, nodes := env.buckets(t, env.urls[0])
	l := NewLeases(leases, nodes, LeaseOptions{NodeID: "n", TTL: testLeaseTTL})
	err := l.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "lease TTL") || !strings.Contains(err.Error(), BucketNodes) {
		t.Fatalf("Run with a TTL other than the heartbeats': %v; want an error naming %s", err, BucketNodes)
	}
	// Leases that expire on their own would end while their node acts.
	_, js := natstest.Connect(t, env.urls[0])
	if _, err := js.UpdateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: BucketLeases, History: 1, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	l = NewLeases(leases, nodes, LeaseOptions{NodeID: "n", TTL: 2 * time.Second})
	if err := l.Run(t.Context()); err == nil || !strings.Contains(err.Error(), BucketLeases) {
		t.Fatalf("Run with leases that expire: %v; want an error naming %s", err, BucketLeases)
	}
	for _, o := range []LeaseOptions{
		{NodeID: ""},
		{NodeID: "a b"},
		{NodeID: "n", TTL: 100 * time.Millisecond},
		{NodeID: "n", TTL: 3 * time.Second, Margin: 2 * time.Second},
	} {
		if err := NewLeases(leases, nodes, o).Run(t.Context()); err == nil {
			t.Errorf("Run with options %+v: no error", o)
		}
	}
}

func TestLeaseAssign(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, N := range []int{0, 1, 7, 30, 1000} {
		for _, n := range []int{1, 2, 3, 4, 7} {
			accounts := accountNames(N)
			var nodes []string
			for i := range n {
				nodes = append(nodes, fmt.Sprintf("node-%d", i))
			}
			got := leaseAssign(accounts, nodes)
			counts := map[string]int{}
			for _, a := range accounts {
				counts[got[a]]++
			}
			for _, nd := range nodes {
				if c := counts[nd]; c != N/n && c != (N+n-1)/n {
					t.Errorf("%d accounts over %d nodes: %s gets %d", N, n, nd, c)
				}
			}
			// Every node computes the same, whatever order it lists in.
			shuffled := slices.Clone(accounts)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again := leaseAssign(shuffled, nodes)
			for _, a := range accounts {
				if again[a] != got[a] {
					t.Fatalf("%d over %d: the order of the accounts changes the assignment", N, n)
				}
			}
			// A joining node takes little more than its share.
			if N < 1000 {
				continue
			}
			joined := leaseAssign(accounts, append(slices.Clone(nodes), "node-new"))
			moved := 0
			for _, a := range accounts {
				if joined[a] != got[a] {
					moved++
				}
			}
			if share := N / (n + 1); moved > share+share/5 {
				t.Errorf("%d over %d: a join moves %d accounts, its share is %d", N, n, moved, share)
			}
		}
	}
}
