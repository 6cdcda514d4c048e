package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/imapkit/imap/delivery"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of SinkConsumerOptions.
const (
	DefaultSinkConcurrency = 16
	DefaultSinkAckWait     = 30 * time.Second
)

// sinkMaxAckPending is the MaxAckPending of every sink's consumer: how many
// of its events may be out at once across all nodes, being delivered or
// waiting out a backoff. Each node holds at most its Concurrency, so this
// is far more than the nodes together take; it is high so that events
// waiting for a retry (they count as pending until acknowledged) do not
// hold back the other accounts' events, and finite so that a sink that is
// down for long keeps its backlog in the stream rather than in the
// consumer's state.
const sinkMaxAckPending = 10_000

// sinkPullWait bounds each pull request. A node that stopped without a word
// leaves its requests on the server until they expire, and a message sent
// to one comes back only after AckWait.
const sinkPullWait = 10 * time.Second

// sinkSettleTimeout bounds the acknowledgement of a message and the publish of
// a dead letter. They run on past the end of Run's ctx: a delivery that
// finished must be recorded, or the event comes back for nothing.
const sinkSettleTimeout = 10 * time.Second

// kindToken is what an event kind in SinkConsumerOptions.Kinds may be: a
// token of a NATS subject.
var kindToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// SinkConsumerOptions configure a SinkConsumer. All nodes running a sink
// must give it the same options: they share one durable consumer, and the
// node that starts last sets its configuration.
type SinkConsumerOptions struct {
	// Name is the name of the durable consumer on IMAPKIT_EVENTS, e.g.
	// "webhook-1": the same on every node and across restarts, since the
	// consumer remembers which events the sink has. 1 to 64 letters,
	// digits, '-' or '_'.
	Name string

	// Sink receives the events, one per try.
	Sink delivery.Sink

	// Kinds are the kinds of events the sink gets ("new", "flags", ...);
	// nil means every kind. The consumer filters on the subject
	// (imapkit.events.*.KIND), so the other kinds never reach the node.
	Kinds map[string]bool

	// Retry says how often an event is tried (Retries+1 tries in all),
	// how long the delay before each retry is (Backoff doubling up to
	// MaxBackoff, ±25%), and how long a try may last (Timeout). Zero
	// fields take the defaults of delivery.Retry.
	Retry delivery.Retry

	// Concurrency is how many events this node delivers at once; 0 means
	// DefaultSinkConcurrency.
	Concurrency int

	// AckWait is how long JetStream waits for news of an event a node
	// took before it gives the event to another node; 0 means
	// DefaultSinkAckWait. A node tells JetStream that it is still at work
	// every third of AckWait, so a try may last longer than AckWait:
	// AckWait is how soon the events of a node that died are tried
	// again.
	AckWait time.Duration

	// Logger receives a line per failed try and per dead letter; nil
	// discards them.
	Logger *slog.Logger

	// Metrics, if set, counts the sink's deliveries, failed tries and
	// dead letters (by Name).
	Metrics *Metrics
}

// A SinkConsumer delivers the events of IMAPKIT_EVENTS to a sink (a
// delivery.WebhookSink, a delivery.ExecSink), as a durable pull consumer of
// the stream shared by every node that runs the sink: each event goes to
// one node, and when a node stops, the others carry on where it was.
//
// An event is tried under Retry.Timeout. It is acknowledged when the sink
// took it; after a failure it is handed back to JetStream with a delay
// (Retry's backoff), to be tried again by whichever node asks first; after
// the last try it is published to IMAPKIT_DEAD (see DeadLetterStore) and then
// acknowledged. A body that is not an event is put there at once. So
// delivery is at least once: a node that dies between the sink's reply and
// the acknowledgement, or is stopped during a try, leaves the event to be
// delivered again. The tries are counted by JetStream (each message's
// delivery count), so an event handed back by a node that stopped has one
// try fewer left.
//
// A new durable starts at the oldest event the stream holds: a sink added
// to a running service gets the events still in IMAPKIT_EVENTS, and so does
// a sink whose durable was deleted, when Run creates it again.
//
// Order is not kept. Within a node, the events of one account and mailbox
// are delivered one at a time, in the order the node received them, but a
// failed event is retried after the ones behind it, and when several
// nodes run the sink they deliver the events of one mailbox independently
// of each other.
type SinkConsumer struct {
	js          jetstream.JetStream
	name        string
	sink        delivery.Sink
	kinds       map[string]bool
	retry       delivery.Retry // with defaults
	concurrency int
	ackWait     time.Duration
	log         *slog.Logger
	metrics     *Metrics
	lanes       laneLocks

	readyOnce sync.Once
	ready     chan struct{} // closed once the durable consumer exists
}

// NewSinkConsumer returns a SinkConsumer for o, consuming through js. The
// options are checked by Run.
func NewSinkConsumer(js jetstream.JetStream, o SinkConsumerOptions) *SinkConsumer {
	c := &SinkConsumer{
		js:          js,
		name:        o.Name,
		sink:        o.Sink,
		retry:       retryDefaults(o.Retry),
		concurrency: o.Concurrency,
		ackWait:     o.AckWait,
		log:         o.Logger,
		metrics:     o.Metrics,
		ready:       make(chan struct{}),
	}
	if o.Kinds != nil {
		c.kinds = maps.Clone(o.Kinds) // the caller may reuse its map
	}
	if c.concurrency <= 0 {
		c.concurrency = DefaultSinkConcurrency
	}
	if c.ackWait <= 0 {
		c.ackWait = DefaultSinkAckWait
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// retryDefaults returns r with its zero fields set to the defaults of
// delivery.Retry, which the delivery package applies the same way, in an
// unexported method.
func retryDefaults(r delivery.Retry) delivery.Retry {
	switch {
	case r.Retries == 0:
		r.Retries = delivery.DefaultRetries
	case r.Retries < 0:
		r.Retries = 0
	}
	if r.Backoff <= 0 {
		r.Backoff = delivery.DefaultBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = delivery.DefaultMaxBackoff
	}
	if r.Timeout <= 0 {
		r.Timeout = delivery.DefaultTimeout
	}
	return r
}

// tries is how many times an event is tried before it is dead-lettered.
func (c *SinkConsumer) tries() uint64 { return uint64(c.retry.Retries) + 1 }

// backoff returns the delay before retry n (1 for the first retry), given
// rnd in [0, 1): Backoff·2ⁿ⁻¹ capped at MaxBackoff, varied by ±25% so
// that events failing together are not retried in step, never more than
// MaxBackoff — the delays of the delivery package's Dispatcher.
func (c *SinkConsumer) backoff(n uint64, rnd float64) time.Duration {
	d := c.retry.Backoff
	for i := uint64(1); i < n && d < c.retry.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.retry.MaxBackoff)
	d = time.Duration(float64(d) * (0.75 + 0.5*rnd))
	return min(d, c.retry.MaxBackoff)
}

// check reports what is wrong with the options, or nil.
func (c *SinkConsumer) check() error {
	var errs []error
	if !accountName.MatchString(c.name) {
		// The same alphabet as account names: a consumer name may not
		// hold '.', '*', '>', spaces or slashes, and it goes in headers.
		errs = append(errs, fmt.Errorf("name %q: use 1 to 64 letters, digits, '-' or '_' (it names a durable JetStream consumer)", c.name))
	}
	if c.sink == nil {
		errs = append(errs, errors.New("no sink"))
	}
	if c.kinds != nil {
		n := 0
		for k, on := range c.kinds {
			if !on {
				continue
			}
			n++
			if !kindToken.MatchString(k) {
				errs = append(errs, fmt.Errorf("kind %q: use letters, digits, '-' or '_' (it is a NATS subject token)", k))
			}
		}
		if n == 0 {
			errs = append(errs, errors.New("kinds selects no kind (use nil for every kind)"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sink consumer %q: %w", c.name, err)
	}
	return nil
}

// consumerConfig returns the configuration of the sink's durable consumer.
func (c *SinkConsumer) consumerConfig() jetstream.ConsumerConfig {
	var filters []string
	for k, on := range c.kinds {
		if on {
			filters = append(filters, EventSubject("*", k))
		}
	}
	slices.Sort(filters) // the same config from every node, not a map's order
	desc := "imapkit sink"
	if c.sink != nil {
		desc += ": " + c.sink.String() // never holds a secret
	}
	return jetstream.ConsumerConfig{
		Durable:     c.name,
		Description: desc,
		// Every event the stream holds: the watchers may publish before
		// the first node created the consumer, and those events are
		// the sink's too.
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.ackWait,
		// Unlimited: the tries are counted here, from each message's
		// delivery count. With a MaxDeliver, JetStream would drop for
		// good an event whose last try was cut short by a node stopping
		// or dying, or whose dead letter could not be published; this
		// way the event comes back, is tried once more and is then
		// dead-lettered.
		MaxDeliver: -1,
		// No BackOff: it applies only to messages not acknowledged
		// within AckWait, and replaces AckWait (the wait before the
		// first redelivery becomes BackOff[0]). A failed try is handed
		// back with NakWithDelay instead, whose delay is Retry's.
		FilterSubjects: filters,
		MaxAckPending:  sinkMaxAckPending,
	}
}

// Run creates the sink's durable consumer, or updates it to the options,
// then delivers events until ctx ends. A delivery under way when ctx ends
// is cancelled (a hook is killed) and its event handed back to JetStream
// for another node. Run returns nil once ctx ended and its deliveries have
// returned; an error if the options are wrong or the NATS connection was
// closed. Several nodes may create the same consumer at once: failures are
// retried, with random delays, until ctx ends.
func (c *SinkConsumer) Run(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	for {
		cons, err := c.ensure(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c.readyOnce.Do(func() { close(c.ready) })
		err = c.work(ctx, cons)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errConsumerGone) {
			return err
		}
		c.log.Warn("sink consumer: the durable consumer is gone; creating it again", "sink", c.name, "error", err.Error())
	}
}

// errConsumerGone is why work returns when the consumer was deleted.
var errConsumerGone = errors.New("durable consumer deleted")

// ensure creates or updates the durable consumer, trying again after
// failures (another node creating it at the same moment, no stream yet, no
// JetStream leader) until ctx ends. A closed connection is final.
func (c *SinkConsumer) ensure(ctx context.Context) (jetstream.Consumer, error) {
	cfg := c.consumerConfig()
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cons, err := c.js.CreateOrUpdateConsumer(ctx, StreamEvents, cfg)
		if err == nil {
			return cons, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if connClosed(err) {
			return nil, fmt.Errorf("sink consumer %q: create consumer on %s: %w", c.name, StreamEvents, err)
		}
		// ±50%, so that the nodes that collided do not collide again.
		d := time.Duration(float64(wait) * (0.5 + rand.Float64()))
		level := slog.LevelDebug // a race with another node is expected
		if attempt >= 3 {
			level = slog.LevelWarn
		}
		c.log.Log(ctx, level, "sink consumer: cannot create the durable consumer; will retry",
			"sink", c.name, "stream", StreamEvents, "attempt", attempt, "error", err.Error(), "retry_in", d)
		if !sleepCtx(ctx, d) {
			return nil, ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// connClosed reports whether err says that the NATS connection is closed
// for good, which no retry mends.
func connClosed(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed)
}

// sleepCtx waits d, or until ctx ends; it reports whether it waited d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// work runs the node's workers on cons until ctx ends (nil), the consumer
// is deleted (errConsumerGone) or the connection is closed. Each worker
// asks for one message when it is free, so that no message waits in this
// node while its AckWait runs, and the other nodes get what this one cannot
// take.
func (c *SinkConsumer) work(ctx context.Context, cons jetstream.Consumer) error {
	pullCtx, stopPulling := context.WithCancel(ctx)
	defer stopPulling()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		stopPulling()
	}
	for range c.concurrency {
		wg.Go(func() {
			wait, failures := 100*time.Millisecond, 0
			for pullCtx.Err() == nil {
				msg, err := c.next(pullCtx, cons)
				if err == nil {
					wait, failures = 100*time.Millisecond, 0
				}
				switch {
				case msg != nil:
					// ctx, not pullCtx: a try is cut short when Run
					// ends, not when the pulls stop.
					c.handle(ctx, msg)
				case pullCtx.Err() != nil, err == nil:
				case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
					fail(fmt.Errorf("%w: %w", errConsumerGone, err))
				case connClosed(err):
					fail(fmt.Errorf("sink consumer %q: pull: %w", c.name, err))
				default:
					// A consumer just created on a cluster has no
					// leader for a moment: no responders. Worth a
					// warning only if it lasts.
					failures++
					level := slog.LevelDebug
					if failures >= 4 {
						level = slog.LevelWarn
					}
					c.log.Log(pullCtx, level, "sink consumer: pull failed; will retry", "sink", c.name, "error", err.Error(), "retry_in", wait)
					sleepCtx(pullCtx, wait)
					wait = min(2*wait, 5*time.Second)
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// next returns the next message of cons, or nil and nil when none came
// within sinkPullWait.
func (c *SinkConsumer) next(ctx context.Context, cons jetstream.Consumer) (jetstream.Msg, error) {
	pctx, cancel := context.WithTimeout(ctx, sinkPullWait)
	defer cancel()
	msg, err := cons.Next(jetstream.FetchContext(pctx))
	if err != nil {
		if errors.Is(err, nats.ErrTimeout) || (errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil) {
			return nil, nil
		}
		return nil, err
	}
	return msg, nil
}

// verdict is what becomes of a message once handled: acknowledged, or
// handed back to be delivered again after delay.
type verdict struct {
	ack   bool
	delay time.Duration
}

// handle delivers msg and settles it.
func (c *SinkConsumer) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		// Not from a consumer: cannot happen. Handing it back is all
		// there is to do.
		c.log.Error("sink consumer: message without metadata", "sink", c.name, "subject", msg.Subject(), "error", err.Error())
		msg.Nak()
		return
	}
	stop := c.keepAlive(msg)
	v := c.process(ctx, msg, meta)
	stop() // before the ack: InProgress after it would fail
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sinkSettleTimeout)
	defer cancel()
	switch {
	case v.ack:
		// A confirmed ack: if it is lost the event is delivered again,
		// and the log says why.
		err = msg.DoubleAck(sctx)
	case v.delay > 0:
		err = msg.NakWithDelay(v.delay)
	default:
		err = msg.Nak()
	}
	if err != nil {
		c.log.Warn("sink consumer: cannot settle the event with JetStream; it will be delivered again after AckWait",
			"sink", c.name, "stream_seq", meta.Sequence.Stream, "ack", v.ack, "error", err.Error())
	}
}

// keepAlive tells JetStream every third of AckWait that msg is still being
// worked on — waiting for its lane, being tried, being dead-lettered — so
// that it is not given to another node meanwhile; stop ends it.
func (c *SinkConsumer) keepAlive(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.ackWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					c.log.Debug("sink consumer: in-progress notice failed", "sink", c.name, "error", err.Error())
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// process delivers msg's event, or dead-letters it, and says what becomes
// of msg.
func (c *SinkConsumer) process(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) verdict {
	if ctx.Err() != nil {
		return verdict{} // pulled as Run ended: another node takes it now
	}
	if to := msg.Headers().Get(HeaderReplayFor); to != "" && to != c.name {
		return verdict{ack: true} // a replay of another sink's dead letter
	}
	seq := meta.Sequence.Stream
	ev, err := parseEvent(msg.Data())
	if err != nil {
		// Never valid on a later try: dead-lettered at once, so that it
		// does not stay in the way.
		rec := delivery.DeadRecord{
			Event:    eventFromSubject(msg),
			Sink:     c.sink.String(),
			Err:      err.Error(),
			Attempts: int(meta.NumDelivered),
			Time:     time.Now(),
		}
		return c.bury(ctx, msg, meta, rec, true)
	}
	if c.kinds != nil && !c.kinds[ev.Kind] {
		return verdict{ack: true} // the subject said another kind than the body
	}

	release, ok := c.lanes.acquire(ctx, laneID{ev.Account, ev.Mailbox})
	if !ok {
		return verdict{} // stopping: another node takes it now
	}
	err = c.try(ctx, ev)
	release()
	if err == nil {
		return verdict{ack: true}
	}
	attrs := []any{"sink", c.name, "account", ev.Account, "mailbox", ev.Mailbox, "uid", ev.UID, "kind", ev.Kind, "id", ev.ID,
		"stream_seq", seq, "attempt", meta.NumDelivered, "error", err.Error()}
	if ctx.Err() != nil {
		// Most likely cut short by the end of Run; either way not the
		// sink's failure: another node tries at once.
		c.log.Info("sink consumer: delivery abandoned at shutdown; handed back", attrs...)
		return verdict{}
	}
	if meta.NumDelivered < c.tries() {
		wait := c.backoff(meta.NumDelivered, rand.Float64())
		c.log.Warn("sink consumer: delivery failed; will retry", append(attrs, "retry_in", wait)...)
		return verdict{delay: wait}
	}
	rec := delivery.DeadRecord{Event: ev, Sink: c.sink.String(), Err: err.Error(), Attempts: int(meta.NumDelivered), Time: time.Now()}
	return c.bury(ctx, msg, meta, rec, false)
}

// try delivers ev once, under Retry.Timeout.
func (c *SinkConsumer) try(ctx context.Context, ev delivery.Event) error {
	tctx, cancel := context.WithTimeoutCause(ctx, c.retry.Timeout, tryTimeoutError{c.retry.Timeout})
	defer cancel()
	err := c.sink.Deliver(tctx, []delivery.Event{ev})
	if m := c.metrics; m != nil {
		if err == nil {
			m.SinkDeliveries.WithLabelValues(c.name).Inc()
		} else {
			m.SinkFailures.WithLabelValues(c.name).Inc()
		}
	}
	return err
}

// tryTimeoutError is the cause of a try's ctx ending on Retry.Timeout, so
// that a sink's error says "try timed out after 1m0s" rather than "context
// deadline exceeded".
type tryTimeoutError struct{ d time.Duration }

func (e tryTimeoutError) Error() string { return fmt.Sprintf("try timed out after %v", e.d) }

// bury publishes rec to IMAPKIT_DEAD. The message is acknowledged once the
// dead letter is stored; if it cannot be, the message comes back after a
// backoff, and is tried again.
func (c *SinkConsumer) bury(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, rec delivery.DeadRecord, malformed bool) verdict {
	attrs := []any{"sink", c.name, "account", rec.Event.Account, "mailbox", rec.Event.Mailbox, "uid", rec.Event.UID,
		"kind", rec.Event.Kind, "id", rec.Event.ID, "stream_seq", meta.Sequence.Stream, "attempts", rec.Attempts, "error", rec.Err}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sinkSettleTimeout)
	defer cancel()
	if err := publishDeadLetter(pctx, c.js, msg.Subject(), rec, c.name, meta.Sequence.Stream, malformed); err != nil {
		wait := c.backoff(meta.NumDelivered, rand.Float64())
		c.log.Error("sink consumer: delivery failed and the dead letter could not be written; will retry",
			append(attrs, "dead_letter_error", err.Error(), "retry_in", wait)...)
		return verdict{delay: wait}
	}
	c.log.Error("sink consumer: delivery failed; event put in the dead letters", append(attrs, "dead_letter", StreamDead)...)
	if c.metrics != nil {
		c.metrics.SinkDeadLetters.WithLabelValues(c.name).Inc()
	}
	return verdict{ack: true}
}

// parseEvent decodes the body of a message of IMAPKIT_EVENTS.
func parseEvent(body []byte) (delivery.Event, error) {
	var ev delivery.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return delivery.Event{}, fmt.Errorf("event body is not an event: %w", err)
	}
	if ev.ID == "" {
		return delivery.Event{}, errors.New("event body is not an event: no id")
	}
	return ev, nil
}

// eventFromSubject returns what is known of the event of a message whose
// body is not one: its ID from Nats-Msg-Id, its account and kind from the
// subject imapkit.events.ACCOUNT.KIND.
func eventFromSubject(msg jetstream.Msg) delivery.Event {
	ev := delivery.Event{ID: msg.Headers().Get(nats.MsgIdHdr)}
	if rest, ok := strings.CutPrefix(msg.Subject(), SubjectEvents+"."); ok {
		ev.Account, ev.Kind, _ = strings.Cut(rest, ".")
	}
	return ev
}

// laneLocks lets a node deliver one event of an account and mailbox at a
// time, the others waiting their turn in the order they came.
type laneLocks struct {
	mu    sync.Mutex
	tails map[laneID]chan struct{} // closed when the lane's last comer is done
}

// laneID names a lane: an account's mailbox.
type laneID struct{ account, mailbox string }

// acquire waits for the lane's earlier comers to be done, and returns the
// function that lets the next one go. If ctx ends first it returns false,
// and its place in the lane passes on when the earlier comers are done.
func (l *laneLocks) acquire(ctx context.Context, id laneID) (release func(), ok bool) {
	mine := make(chan struct{})
	l.mu.Lock()
	if l.tails == nil {
		l.tails = make(map[laneID]chan struct{})
	}
	prev := l.tails[id]
	l.tails[id] = mine
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		if l.tails[id] == mine {
			delete(l.tails, id) // nobody behind: forget the lane
		}
		l.mu.Unlock()
		close(mine)
	}
	if prev == nil {
		return done, true
	}
	select {
	case <-prev:
		return done, true
	case <-ctx.Done():
		// Whoever comes after must still wait for prev.
		go func() {
			<-prev
			done()
		}()
		return nil, false
	}
}
