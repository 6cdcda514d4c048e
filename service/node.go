package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap/watch"
)

// Node is one imapkit serve process: it watches the accounts whose leases
// it holds, publishes their events, and answers for every account.
type Node struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	infra   *Infra
	sealer  *Sealer
	store   *KVStore
	leases  *Leases
	opts    NodeOptions
	log     *slog.Logger
	metrics *Metrics
	pacer   *pacer

	mu      sync.Mutex
	configs map[string]Account // every account, sealed form, by name
	runners map[string]*runner // the accounts this node watches
	// stopping holds the runners told to stop for a lost lease that have
	// not ended yet: a new runner of the account waits for its end.
	stopping map[string]*runner
	watchers sync.WaitGroup // every runner's goroutine
}

// NewNode returns a node over infra (see EnsureInfra), with the sealer
// that opens the accounts' passwords.
func NewNode(nc *nats.Conn, infra *Infra, sealer *Sealer, leaseTTL time.Duration, o NodeOptions) *Node {
	if o.StartConcurrency <= 0 {
		o.StartConcurrency = 32
	}
	if o.PerServerConcurrency <= 0 {
		o.PerServerConcurrency = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	o.Watch.Envelope = true
	return &Node{
		nc: nc, js: infra.JS, infra: infra, sealer: sealer,
		store:    NewKVStore(infra.State),
		leases:   NewLeases(infra.Leases, infra.Nodes, LeaseOptions{NodeID: o.NodeID, TTL: leaseTTL, Logger: o.Logger}),
		opts:     o,
		log:      o.Logger,
		metrics:  o.Metrics,
		pacer:    newPacer(o.StartConcurrency, o.PerServerConcurrency),
		configs:  map[string]Account{},
		runners:  map[string]*runner{},
		stopping: map[string]*runner{},
	}
}

// Run watches until ctx ends: it follows the accounts bucket, takes and
// hands back leases with the other nodes, and watches what it holds. When
// ctx ends it stops every watcher and hands its leases back, so that other
// nodes take the accounts over at once (a rolling restart); a node that is
// killed instead loses them when their TTL passes.
func (n *Node) Run(ctx context.Context) error {
	lctx, stopLeases := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLeases()
	leasesDone := make(chan error, 1)
	go func() { leasesDone <- n.leases.Run(lctx) }()
	accountsDone := make(chan struct{})
	go func() {
		defer close(accountsDone)
		n.followAccounts(ctx)
	}()
	changes := n.leases.Changes()
	for {
		select {
		case <-ctx.Done():
			return n.shutdown(stopLeases, leasesDone, accountsDone)
		case c, ok := <-changes:
			if !ok {
				err := <-leasesDone
				n.stopAll()
				<-accountsDone
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("leases stopped: %w", err)
			}
			if c.Owned {
				n.metrics.LeaseTakeovers.Inc()
				n.start(ctx, c.Account)
			} else {
				n.metrics.LeaseLosses.Inc()
				n.drop(c.Account)
			}
		}
	}
}

// shutdown stops every watcher, then hands the leases back.
func (n *Node) shutdown(stopLeases context.CancelFunc, leasesDone <-chan error, accountsDone <-chan struct{}) error {
	n.stopAll()
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := n.leases.Release(rctx)
	stopLeases()
	<-leasesDone
	<-accountsDone
	if err != nil {
		return fmt.Errorf("handing leases back: %w", err)
	}
	return nil
}

// followAccounts keeps configs and the leases' set of accounts in step
// with the bucket IMAPKIT_ACCOUNTS, watching it again if the watch dies.
func (n *Node) followAccounts(ctx context.Context) {
	accounts := NewAccountStore(n.infra.Accounts, n.sealer)
	for ctx.Err() == nil {
		current, changes, err := accounts.Watch(ctx)
		if err != nil {
			n.log.Warn("watching the accounts bucket", "error", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		fresh := map[string]Account{}
		for _, c := range current {
			if c.Err == nil && c.Account != nil {
				fresh[c.Name] = *c.Account
			}
		}
		n.replaceConfigs(ctx, fresh)
		for c := range changes {
			if c.Err != nil {
				n.log.Warn("account entry not readable", "account", c.Name, "error", c.Err)
				continue
			}
			n.applyChange(ctx, c.Name, c.Account)
		}
	}
}

// replaceConfigs installs a full view of the accounts.
func (n *Node) replaceConfigs(ctx context.Context, fresh map[string]Account) {
	n.mu.Lock()
	old := n.configs
	n.configs = fresh
	n.mu.Unlock()
	for name := range old {
		if _, ok := fresh[name]; !ok {
			n.applyChange(ctx, name, nil)
		}
	}
	for name, a := range fresh {
		if o, ok := old[name]; ok && !sameWatch(o, a) {
			n.restart(ctx, name)
		}
	}
	n.leases.SetAccounts(n.names())
}

// applyChange handles one account added, changed (a == nil: removed).
func (n *Node) applyChange(ctx context.Context, name string, a *Account) {
	n.mu.Lock()
	old, had := n.configs[name]
	if a == nil {
		delete(n.configs, name)
	} else {
		n.configs[name] = *a
	}
	n.mu.Unlock()
	switch {
	case a == nil:
		n.stop(name) // a removed account's connection closes
		n.deleteStatus(name)
	case had && !sameWatch(old, *a):
		n.restart(ctx, name)
	}
	n.leases.SetAccounts(n.names())
}

// sameWatch reports whether two configurations of an account watch the
// same way (a new password alone needs no restart: the dialer reads it
// for every connection).
func sameWatch(a, b Account) bool {
	return a.Server == b.Server && a.Mode == b.Mode && a.User == b.User && a.CAPEM == b.CAPEM && slices.Equal(a.Mailboxes, b.Mailboxes)
}

func (n *Node) names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.configs))
	for name := range n.configs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func (n *Node) config(name string) (Account, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a, ok := n.configs[name]
	return a, ok
}

// start begins watching an account whose lease this node took.
func (n *Node) start(ctx context.Context, name string) {
	a, ok := n.config(name)
	if !ok {
		return // removed meanwhile; the leases learn it with SetAccounts
	}
	n.mu.Lock()
	if n.runners[name] != nil {
		n.mu.Unlock()
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &runner{account: a, cancel: cancel, done: make(chan struct{}), metrics: n.metrics}
	r.report = func(st accountState) { n.putStatus(name, st) }
	n.runners[name] = r
	n.metrics.AccountsOwned.Set(float64(len(n.runners)))
	prev := n.stopping[name]
	n.watchers.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.watchers.Done()
		if prev != nil {
			<-prev.done // one watcher of an account at a time
		}
		// The position is read afresh: the previous owner may have moved it.
		n.store.Forget(name)
		n.watchAccount(rctx, r)
	}()
}

// stop ends the watch of an account and waits for it: nothing more is
// published for it, and its positions are no longer written.
func (n *Node) stop(name string) {
	n.mu.Lock()
	r := n.runners[name]
	delete(n.runners, name)
	n.metrics.AccountsOwned.Set(float64(len(n.runners)))
	n.mu.Unlock()
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
	n.forgetIdle(name)
}

// drop ends the watch of an account whose lease is lost, without waiting:
// the leases report losses one after the other, and when NATS is slow to
// answer (a stream leader election after a NATS server died, say) a watcher
// may take seconds to end — its last position write waits for an answer —
// while the accounts behind it must stop at once and others may start.
// The lease is no longer valid, so the ending watcher publishes and
// writes nothing more.
func (n *Node) drop(name string) {
	n.mu.Lock()
	r := n.runners[name]
	delete(n.runners, name)
	n.metrics.AccountsOwned.Set(float64(len(n.runners)))
	if r != nil {
		n.stopping[name] = r
	}
	n.mu.Unlock()
	if r == nil {
		return
	}
	r.cancel()
	go func() {
		<-r.done
		n.mu.Lock()
		if n.stopping[name] == r {
			delete(n.stopping, name)
		}
		n.mu.Unlock()
		n.forgetIdle(name)
	}()
}

// forgetIdle drops what the store keeps of an account no runner watches.
// n.mu is held across Forget so that no runner starts meanwhile; with no
// runner, no Load or Save of the account is under way, and Forget does not
// wait.
func (n *Node) forgetIdle(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.runners[name] == nil && n.stopping[name] == nil {
		n.store.Forget(name)
	}
}

// restart watches an account again with its new configuration, if this
// node watches it.
func (n *Node) restart(ctx context.Context, name string) {
	n.mu.Lock()
	running := n.runners[name] != nil
	n.mu.Unlock()
	if running && n.leases.Valid(name) {
		n.stop(name)
		n.start(ctx, name)
	}
}

func (n *Node) stopAll() {
	n.mu.Lock()
	names := make([]string, 0, len(n.runners))
	for name := range n.runners {
		names = append(names, name)
	}
	n.mu.Unlock()
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() { n.stop(name) })
	}
	wg.Wait()
	n.watchers.Wait() // those dropped for a lost lease too
}

// putStatus shares an account's state with the other nodes, while this
// node holds its lease: a node that lost it must not overwrite what the
// new owner says.
func (n *Node) putStatus(name string, st accountState) {
	if !n.leases.Valid(name) {
		return
	}
	st.Node = n.opts.NodeID
	b, err := json.Marshal(st)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.infra.Status.Put(ctx, name, b); err != nil {
		n.log.Debug("status not shared", "account", name, "error", err)
	}
}

func (n *Node) deleteStatus(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.infra.Status.Delete(ctx, name)
}

// Status answers GET /v1/accounts/{name}/status on any node: the owner
// from the leases, the state and last error from what the owner shared,
// the mailboxes' positions from IMAPKIT_STATE.
func (n *Node) Status(ctx context.Context, name string) (AccountStatus, error) {
	st := AccountStatus{Name: name, State: StateUnowned, Mailboxes: map[string]MailboxStatus{}}
	owner, err := n.leases.Owner(ctx, name)
	if err != nil {
		return st, err
	}
	st.Owner = owner
	if e, err := n.infra.Status.Get(ctx, name); err == nil {
		var as accountState
		if json.Unmarshal(e.Value(), &as) == nil && owner != "" && as.Node == owner {
			st.State, st.LastError = as.State, as.LastError
		} else if owner != "" {
			st.State = StateConnecting
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, err
	} else if owner != "" {
		st.State = StateConnecting
	}
	if e, err := n.infra.State.Get(ctx, name); err == nil {
		var as watch.AccountState
		if json.Unmarshal(e.Value(), &as) == nil {
			for mb, pos := range as.Mailboxes {
				st.Mailboxes[mb] = MailboxStatus{LastUID: pos.LastUID, UIDValidity: pos.UIDValidity}
			}
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return st, err
	}
	return st, nil
}

// Ready answers /readyz: NATS reachable and the heartbeat (which keeps the
// leases) renewed in time.
func (n *Node) Ready() error {
	if !n.nc.IsConnected() {
		return errors.New("NATS is not connected")
	}
	if !n.leases.Healthy() {
		return errors.New("the heartbeat that keeps the leases is not renewed in time")
	}
	return nil
}
