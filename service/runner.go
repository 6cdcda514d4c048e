package service

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/watch"
)

// NodeOptions configure a Node.
type NodeOptions struct {
	// NodeID names the node in leases and status replies.
	NodeID string
	// StartConcurrency bounds the connections being opened at once
	// (default 32), and PerServerConcurrency those to one server
	// (default 8), so that thousands of accounts start in minutes without
	// tripping a server's connection limits.
	StartConcurrency, PerServerConcurrency int
	// Timeout bounds every wait for an IMAP server (default 30 s).
	Timeout time.Duration
	// Watch holds the watcher options every account shares (IdleRestart,
	// Inactivity, Window, …); Account, Server, User, Mailboxes and Store
	// are set per account.
	Watch   watch.Options
	Logger  *slog.Logger
	Metrics *Metrics
}

// accountState is what the node that watches an account reports of it,
// in the bucket IMAPKIT_STATUS, for the status replies of every node.
type accountState struct {
	Node      string `json:"node"`
	State     string `json:"state"` // a State constant
	LastError string `json:"last_error,omitempty"`
}

// runner is an owned account being watched.
type runner struct {
	account Account
	cancel  context.CancelFunc
	done    chan struct{}
	// report shares the account's state with the other nodes (status).
	report  func(accountState)
	metrics *Metrics

	mu     sync.Mutex
	status accountState
}

// set records the account's state; lastError "" keeps the last error
// unless the account is idle again (it works now).
func (r *runner) set(state, lastError string) {
	r.mu.Lock()
	if r.metrics != nil {
		r.metrics.move(r.status.State, state)
	}
	r.status.State = state
	if lastError != "" || state == StateIdle {
		r.status.LastError = lastError
	}
	st := r.status
	r.mu.Unlock()
	if r.report != nil {
		r.report(st)
	}
}

func (r *runner) get() accountState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// pacer bounds the connections being opened: at most n at once, and at
// most perServer to one server.
type pacer struct {
	all       chan struct{}
	perServer int

	mu      sync.Mutex
	servers map[string]chan struct{}
}

func newPacer(n, perServer int) *pacer {
	return &pacer{all: make(chan struct{}, n), perServer: perServer, servers: map[string]chan struct{}{}}
}

// acquire waits for a slot to open a connection to server.
func (p *pacer) acquire(ctx context.Context, server string) (release func(), err error) {
	host, _, _ := net.SplitHostPort(server)
	p.mu.Lock()
	sem := p.servers[host]
	if sem == nil {
		sem = make(chan struct{}, p.perServer)
		p.servers[host] = sem
	}
	p.mu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case p.all <- struct{}{}:
	case <-ctx.Done():
		<-sem
		return nil, ctx.Err()
	}
	return func() { <-p.all; <-sem }, nil
}

// dialer returns the watch.Dialer of an account: it reads the account's
// latest configuration and opens its sealed password for every
// connection, under the pacer.
func (n *Node) dialer(name string) watch.Dialer {
	return func(ctx context.Context) (*imap.Client, error) {
		a, ok := n.config(name)
		if !ok {
			return nil, fmt.Errorf("account %s: removed", name)
		}
		pass, err := n.sealer.Open(a.Name, a.PasswordSealed)
		if err != nil {
			return nil, fmt.Errorf("account %s: the password cannot be unsealed with this node's key: %w", a.Name, err)
		}
		opts := &imap.Options{Timeout: n.opts.Timeout, InsecureAuth: a.Mode == ModePlaintext}
		if a.CAPEM != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(a.CAPEM)) {
				return nil, fmt.Errorf("account %s: ca_pem holds no PEM certificate", a.Name)
			}
			opts.TLSConfig = &tls.Config{RootCAs: pool}
		}
		release, err := n.pacer.acquire(ctx, a.Server)
		if err != nil {
			return nil, err
		}
		defer release()
		var c *imap.Client
		switch a.Mode {
		case ModePlaintext:
			c, err = imap.Dial(ctx, a.Server, opts)
		case ModeStartTLS:
			c, err = imap.DialStartTLS(ctx, a.Server, opts)
		default:
			c, err = imap.DialTLS(ctx, a.Server, opts)
		}
		if err != nil {
			return nil, err
		}
		if c.State() == imap.StateNonAuth {
			if _, err := c.Login(ctx, a.User, pass); err != nil {
				c.Shutdown()
				return nil, err
			}
		}
		return c, nil
	}
}

// watchAccount watches one owned account until ctx ends (the node dropped
// or stopped it) or the watcher stops for good. Its goroutine is the
// account's consumer: it publishes each event and acknowledges it once
// JetStream has it.
//
// The watch starts again from the position as it is now:
//   - after a position write was refused because the entry moved
//     (ErrStateConflict: a node that held the account before wrote late),
//     as long as the lease is still this node's;
//   - after the lease stopped being valid (an event not published stays
//     unacknowledged, and only a new watch reports it again), once it is
//     valid again: a late renewal can make it valid again without the
//     leases reporting a loss, and then nobody else would restart it.
func (n *Node) watchAccount(ctx context.Context, r *runner) {
	defer close(r.done)
	defer r.set(StateStopped, "")
	name := r.account.Name
	for {
		end := n.watchOnce(ctx, r)
		if ctx.Err() != nil {
			return
		}
		switch end {
		case endConflict:
			if !n.leases.Valid(name) {
				return
			}
			n.log.Warn("position changed by another node: watching again from it", "account", name)
			if !sleepCtx(ctx, time.Second) {
				return
			}
		case endLease:
			for !n.leases.Valid(name) {
				if !sleepCtx(ctx, 100*time.Millisecond) {
					return // dropped: the lease is lost
				}
			}
			n.log.Info("lease valid again: watching again from the saved position", "account", name)
		default:
			return
		}
		n.store.Forget(name)
	}
}

// watchEnd is why watchOnce returned.
type watchEnd int

const (
	endStopped  watchEnd = iota // ctx ended, or the watcher stopped for good
	endConflict                 // a position write was refused (ErrStateConflict)
	endLease                    // the lease was not valid: events may be left unpublished
)

// watchOnce runs one watcher for the account, and says why it ended.
func (n *Node) watchOnce(ctx context.Context, r *runner) (end watchEnd) {
	a := r.account
	o := n.opts.Watch
	valid := func() bool { return n.leases.Valid(a.Name) }
	o.Account, o.Server, o.User, o.Mailboxes, o.Store = a.Name, a.Server, a.User, a.Mailboxes, leaseStore{n.store, valid}
	o.Logger = n.log // the watcher names the account in every line
	var (
		w   *watch.Watcher
		err error
	)
	shallow(func() {
		r.set(StateConnecting, "")
		w, err = watch.New(n.dialer(a.Name), &o)
	})
	if err != nil {
		r.set(StateStopped, err.Error())
		n.log.Error("account cannot start", "account", a.Name, "error", err)
		return endStopped
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(wctx) }()
	for ev := range w.Events() {
		if !valid() {
			end = endLease // publish nothing more; the position stays
			break
		}
		if ev.Kind == watch.EventStateError && errors.Is(ev.Err, ErrStateConflict) {
			end = endConflict
			break
		}
		var acked bool
		shallow(func() { acked = n.publish(wctx, r, ev, valid) })
		if !acked {
			end = endLease // or ctx ended: the event stays unacknowledged
			break
		}
	}
	cancel()
	if err := <-runErr; err != nil && end == endStopped && ctx.Err() == nil {
		r.set(StateStopped, err.Error())
		var refused *imap.Error
		if errors.As(err, &refused) && (refused.Command == "LOGIN" || refused.Command == "AUTHENTICATE") {
			n.metrics.AuthFailures.Inc()
		}
		n.log.Error("account stopped", "account", a.Name, "error", err)
	}
	return end
}

// publish publishes one event of the account, and acknowledges it to the
// watcher once JetStream has it, while the lease is valid. It reports
// whether it did; if not (the lease is no longer valid, or ctx ended), the
// event stays unacknowledged.
func (n *Node) publish(ctx context.Context, r *runner, ev watch.Event, valid func() bool) bool {
	n.note(r, ev)
	made := ev.Time
	if !publishRetry(ctx, n.js, ev, valid, func(err error) {
		n.metrics.PublishFailures.Inc()
		n.log.Warn("publish failed; retrying", "account", r.account.Name, "id", ev.ID, "error", err)
	}) {
		return false
	}
	ev.Ack()
	n.metrics.EventsPublished.WithLabelValues(ev.Kind.String()).Inc()
	n.metrics.PublishLatency.Observe(time.Since(made).Seconds())
	return true
}

// shallow runs f on a goroutine of its own and waits for it. An account's
// goroutine waits for the watcher's next event for hours at a time; what it
// does with an event (JSON, nats.go's publish, KV writes) grows a stack to
// several KiB, and Go does not shrink a waiting goroutine's stack while its
// frames use more than a quarter of it, nor by more than half at a GC. On
// its own goroutine that stack goes when f returns. Measured by the serve
// benchmark (go run ./bench -only serve; 1,000 idle accounts, the node
// started as imapkit serve starts it): stack 12.9 KiB per account without
// this, 8.7 KiB with it.
func shallow(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// note follows an account's state from its events.
func (n *Node) note(r *runner, ev watch.Event) {
	switch ev.Kind {
	case watch.EventDisconnected:
		r.set(StateWaiting, errText(ev.Err))
	case watch.EventReconnected:
		n.metrics.Reconnects.Inc()
		r.set(StateSyncing, "")
	case watch.EventResynced:
		r.set(StateIdle, "")
	case watch.EventStateError:
		r.set(StateIdle, errText(ev.Err))
	case watch.EventAuthFailed:
		r.set(StateWaiting, errText(ev.Err))
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
