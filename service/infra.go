package service

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// InfraOptions configures EnsureInfra. The zero value asks for the
// defaults.
type InfraOptions struct {
	// Replicas of every stream and bucket: 1 by default; 3 on a cluster of
	// three nodes or more, so that losing one node loses nothing. An
	// existing stream or bucket with fewer replicas is scaled up; one with
	// more keeps them.
	Replicas int
	// DuplicateWindow of IMAPKIT_EVENTS, within which a second publish of
	// an event ID is dropped: 10 minutes by default.
	DuplicateWindow time.Duration
	// LeaseTTL is the TTL of the heartbeats in IMAPKIT_NODES, and with
	// them of the leases of each node: 15 seconds by default. Every node
	// must use the same.
	LeaseTTL time.Duration
	// MaxEventsAge is how long IMAPKIT_EVENTS keeps an event: 7 days by
	// default.
	MaxEventsAge time.Duration
}

// Defaults of InfraOptions.
const (
	DefaultReplicas        = 1
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultLeaseTTL        = 15 * time.Second
	DefaultMaxEventsAge    = 7 * 24 * time.Hour
)

// Histories of the buckets: only the latest value matters. (Earlier
// revisions of an account would keep its earlier sealed passwords.)
const (
	historyAccounts = 1
	historyOthers   = 1
)

// Infra is what EnsureInfra made sure of: the buckets, and the JetStream
// context that reaches them and the streams.
type Infra struct {
	// Accounts is IMAPKIT_ACCOUNTS: one JSON Account per key.
	Accounts jetstream.KeyValue
	// State is IMAPKIT_STATE: one watch.AccountState per account (KVStore).
	State jetstream.KeyValue
	// Leases is IMAPKIT_LEASES: one lease per account, naming the node
	// that holds it; it lasts as long as that node's heartbeat.
	Leases jetstream.KeyValue
	// Nodes is IMAPKIT_NODES: one heartbeat per live node, for LeaseTTL.
	Nodes jetstream.KeyValue
	// Status is IMAPKIT_STATUS: what the node that watches an account
	// last said of it (its state, its last error), for the status replies
	// of every node.
	Status jetstream.KeyValue
	// JS is the JetStream context EnsureInfra was given, for publishing to
	// IMAPKIT_EVENTS and IMAPKIT_DEAD and consuming them.
	JS jetstream.JetStream
}

// Timing of EnsureInfra's requests. attemptTimeout bounds each request: on
// a fresh cluster, several clients creating the same stream at once can get
// no answer at all, and only a new request gets one.
const (
	attemptTimeout = 5 * time.Second
	backoffMin     = 100 * time.Millisecond
	backoffMax     = 2 * time.Second
)

// EnsureInfra creates the streams and buckets of imapkit serve that do not
// exist yet, and checks those that do: it updates what can change in place
// (subjects, retention, the duplicate window, a bucket's history, more
// replicas) and reports what cannot (the storage type, a bucket's TTL), as
// an error naming the stream or bucket and both values.
//
// It is meant to be called by every node as it starts, possibly at the same
// moment: each request is bounded to a few seconds and retried, after a
// jittered pause, until it succeeds, fails in a way a retry cannot fix, or
// ctx ends.
func EnsureInfra(ctx context.Context, js jetstream.JetStream, o InfraOptions) (*Infra, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, sc := range []jetstream.StreamConfig{
		{
			Name:        StreamEvents,
			Description: "imapkit: the events of every watched account",
			Subjects:    []string{SubjectEvents + ".>"},
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			MaxAge:      o.MaxEventsAge,
			Duplicates:  o.DuplicateWindow,
		},
		{
			Name:        StreamDead,
			Description: "imapkit: the events a sink gave up on",
			Subjects:    []string{SubjectDead + ".>"},
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
		},
	} {
		if err := ensureStream(ctx, js, sc); err != nil {
			return nil, err
		}
	}
	in := &Infra{JS: js}
	for _, b := range []struct {
		kv  *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
		// leaderReads: reads go to the stream's leader (no direct gets,
		// which any replica answers, perhaps not yet holding the latest
		// write): a node takes over another's accounts only once its
		// heartbeat is gone, and must not be told so by a lagging replica.
		leaderReads bool
	}{
		{&in.Accounts, jetstream.KeyValueConfig{Bucket: BucketAccounts, Description: "imapkit: the accounts to watch", History: historyAccounts}, false},
		{&in.State, jetstream.KeyValueConfig{Bucket: BucketState, Description: "imapkit: the position of each account", History: historyOthers}, false},
		{&in.Leases, jetstream.KeyValueConfig{Bucket: BucketLeases, Description: "imapkit: which node watches each account", History: historyOthers}, false},
		{&in.Nodes, jetstream.KeyValueConfig{Bucket: BucketNodes, Description: "imapkit: a heartbeat of each live node", History: historyOthers, TTL: o.LeaseTTL}, true},
		{&in.Status, jetstream.KeyValueConfig{Bucket: BucketStatus, Description: "imapkit: how each account is being watched", History: historyOthers}, false},
	} {
		b.cfg.Storage = jetstream.FileStorage
		b.cfg.Replicas = o.Replicas
		kv, err := ensureBucket(ctx, js, b.cfg, b.leaderReads)
		if err != nil {
			return nil, err
		}
		*b.kv = kv
	}
	return in, nil
}

// withDefaults fills in the defaults of o and checks what is left.
func (o InfraOptions) withDefaults() (InfraOptions, error) {
	if o.Replicas == 0 {
		o.Replicas = DefaultReplicas
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = DefaultDuplicateWindow
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.MaxEventsAge == 0 {
		o.MaxEventsAge = DefaultMaxEventsAge
	}
	var errs []error
	if o.Replicas < 1 || o.Replicas > 5 {
		// JetStream allows at most 5 replicas.
		errs = append(errs, fmt.Errorf("replicas %d: want 1 to 5", o.Replicas))
	}
	if o.DuplicateWindow < 0 {
		errs = append(errs, fmt.Errorf("duplicate window %v: want a positive duration", o.DuplicateWindow))
	}
	if o.LeaseTTL < 100*time.Millisecond {
		// JetStream's least MaxAge.
		errs = append(errs, fmt.Errorf("lease TTL %v: want 100ms or more", o.LeaseTTL))
	}
	if o.MaxEventsAge < 0 {
		errs = append(errs, fmt.Errorf("max events age %v: want a positive duration", o.MaxEventsAge))
	}
	if o.DuplicateWindow > 0 && o.MaxEventsAge > 0 && o.DuplicateWindow > o.MaxEventsAge {
		// JetStream refuses a duplicate window longer than the retention.
		errs = append(errs, fmt.Errorf("duplicate window %v is longer than the max events age %v", o.DuplicateWindow, o.MaxEventsAge))
	}
	if err := errors.Join(errs...); err != nil {
		return o, fmt.Errorf("service: infra options: %w", err)
	}
	return o, nil
}

// ensureStream creates the stream of want, or brings an existing one in
// line with it.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	what := "stream " + want.Name
	return retry(ctx, what, func(ctx context.Context) error {
		_, err := within(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.CreateStream(ctx, want) })
		if err == nil || !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Creating an existing stream with the same configuration
			// succeeds, so nil covers another node having created it.
			return err
		}
		return reconcile(ctx, js, what, want.Name, func(have jetstream.StreamConfig) (jetstream.StreamConfig, []string) {
			return checkStream(have, want)
		})
	})
}

// ensureBucket creates the bucket of want, or brings an existing one in
// line with it, and returns it. With leaderReads, its reads go to the
// leader of its stream (nats.go creates buckets with direct gets).
func ensureBucket(ctx context.Context, js jetstream.JetStream, want jetstream.KeyValueConfig, leaderReads bool) (jetstream.KeyValue, error) {
	what := "bucket " + want.Bucket
	var kv jetstream.KeyValue
	err := retry(ctx, what, func(ctx context.Context) error {
		var err error
		kv, err = within(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.CreateKeyValue(ctx, want) })
		if err != nil && !errors.Is(err, jetstream.ErrBucketExists) || err == nil && !leaderReads {
			return err
		}
		if err := reconcile(ctx, js, what, "KV_"+want.Bucket, func(have jetstream.StreamConfig) (jetstream.StreamConfig, []string) {
			return checkBucket(have, want, leaderReads)
		}); err != nil {
			return err
		}
		kv, err = within(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, want.Bucket) })
		return err
	})
	return kv, err
}

// reconcile reads the configuration of the existing stream, asks check what
// it should be and what cannot be fixed, and updates the stream if needed.
func reconcile(ctx context.Context, js jetstream.JetStream, what, stream string, check func(jetstream.StreamConfig) (jetstream.StreamConfig, []string)) error {
	s, err := within(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, stream) })
	if err != nil {
		// Not found: it was deleted since, and the next attempt creates it.
		return err
	}
	have := s.CachedInfo().Config
	next, problems := check(have)
	if len(problems) > 0 {
		var errs []error
		for _, p := range problems {
			errs = append(errs, errors.New(p))
		}
		return permanent{fmt.Errorf("service: %s exists and is not compatible (change it, or delete it to have it created again): %w", what, errors.Join(errs...))}
	}
	if configEqual(have, next) {
		return nil
	}
	_, err = within(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.UpdateStream(ctx, next) })
	return err
}

// configEqual compares the fields checkStream and checkBucket may change.
func configEqual(a, b jetstream.StreamConfig) bool {
	return slices.Equal(a.Subjects, b.Subjects) && a.MaxAge == b.MaxAge && a.Duplicates == b.Duplicates &&
		a.MaxMsgsPerSubject == b.MaxMsgsPerSubject && a.Replicas == b.Replicas && a.AllowDirect == b.AllowDirect
}

// checkStream returns have updated with what want changes, and what cannot
// be changed in place.
func checkStream(have, want jetstream.StreamConfig) (jetstream.StreamConfig, []string) {
	var problems []string
	if have.Storage != want.Storage {
		problems = append(problems, fmt.Sprintf("it has %s storage, imapkit needs %s storage", have.Storage, want.Storage))
	}
	next := have
	next.Subjects = want.Subjects
	next.MaxAge = want.MaxAge
	if want.Duplicates != 0 {
		next.Duplicates = want.Duplicates
	}
	next.Replicas = max(have.Replicas, want.Replicas)
	return next, problems
}

// checkBucket is checkStream for the stream of a bucket.
func checkBucket(have jetstream.StreamConfig, want jetstream.KeyValueConfig, leaderReads bool) (jetstream.StreamConfig, []string) {
	var problems []string
	if have.Storage != want.Storage {
		problems = append(problems, fmt.Sprintf("it has %s storage, imapkit needs %s storage", have.Storage, want.Storage))
	}
	if have.MaxAge != want.TTL {
		// The TTL of leases and heartbeats is what every node assumes when
		// it decides that another node is gone: nodes must agree on it, so
		// it is never changed behind the back of the nodes already running.
		problems = append(problems, fmt.Sprintf("its TTL is %s, this node wants %s", ttlString(have.MaxAge), ttlString(want.TTL)))
	}
	next := have
	if leaderReads {
		next.AllowDirect = false
	}
	next.MaxMsgsPerSubject = int64(want.History)
	next.Replicas = max(have.Replicas, want.Replicas)
	return next, problems
}

func ttlString(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}

// permanent marks an error that a retry cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// retry calls attempt until it succeeds, fails permanently, or ctx ends.
func retry(ctx context.Context, what string, attempt func(context.Context) error) error {
	pause := backoffMin
	for n := 1; ; n++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.err
		}
		if !transient(err) {
			return fmt.Errorf("service: creating or checking %s: %w", what, err)
		}
		// Jitter over the upper half of the pause, so that nodes that collided
		// once do not collide again in step.
		wait := pause/2 + rand.N(pause/2+1)
		pause = min(2*pause, backoffMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("service: creating or checking %s: gave up after %d attempts: %w (last error: %w)", what, n, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// within calls f with a context bounded by attemptTimeout.
func within[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	return f(ctx)
}

// transient reports whether err may go away by itself: no answer in time,
// nobody to answer yet, or a JetStream API error of transientCode.
func transient(err error) bool {
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed) {
		return false
	}
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return transientCode(api.ErrorCode)
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrBucketNotFound)
}

// transientCode reports whether a later request may not get the JetStream
// API error code: the cluster is still forming, electing a leader, or
// placing a stream.
func transientCode(code jetstream.ErrorCode) bool {
	switch code {
	case 10005, // no suitable peers for placement
		10007, // JetStream cluster not assigned to this server
		10008, // JetStream system temporarily unavailable
		10009, // JetStream cluster can not handle request
		10023, // insufficient resources
		10075, // peer remap failed
		10163, // expected last sequence per subject temporarily unavailable
		10202, // cluster member change is in progress
		// Deleted between an "already in use" and the look-up: the next
		// attempt creates it.
		jetstream.JSErrCodeStreamNotFound:
		return true
	}
	return false
}
