package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Route sends events to a sink.
type Route struct {
	// Sink receives the route's events.
	Sink Sink

	// Kinds are the kinds of events the sink gets ("new", "flags", ...);
	// nil means every kind. An event of another kind counts as handled
	// by this route at once.
	Kinds map[string]bool

	// Retry says how failed batches are tried again.
	Retry Retry

	// Burst, when positive, gathers the events of a lane that arrive
	// within Burst of each other (up to 1000) into one batch: a hook
	// that runs once for a burst of new mail rather than once per
	// message. It is meant for an ExecSink; other sinks take a batch
	// one event at a time anyway, and a failure retries all of it.
	Burst time.Duration
}

// Config configures a Dispatcher.
type Config struct {
	// Routes are where events go. Each event is done once every route
	// has it.
	Routes []Route

	// DeadLetter keeps the events a route gave up on. Nil keeps none:
	// such events stay unacknowledged, to come back after a restart.
	DeadLetter DeadLetter

	// Log receives a line per failed try, per dead record, and per
	// delivery abandoned at shutdown; nil discards them.
	Log *slog.Logger
}

// errShutdown is the cause of the ctx of deliveries cancelled by Shutdown.
var errShutdown = errors.New("delivery: shut down")

// A Dispatcher delivers events to the sinks of its routes, at least once:
// each route retries a failing batch with backoff and at last puts it in
// the dead letter, and an event is done only when every route has it.
//
// Events go through lanes, one per route, account and mailbox. A lane
// delivers its events in order, one try at a time, so that a failing
// event holds back the later events of its mailbox for that route, and
// nothing else: lanes are independent of each other. A lane has a
// goroutine only while it has work.
type Dispatcher struct {
	routes     []Route // with defaults
	deadLetter DeadLetter
	log        *slog.Logger

	stopping chan struct{}           // closed when Shutdown begins: start nothing new
	kill     context.Context         // cancelled when Shutdown gives up waiting
	cancel   context.CancelCauseFunc // cancels kill
	wg       sync.WaitGroup          // lane goroutines, and done calls of events no route takes

	mu     sync.Mutex
	closed bool
	lanes  map[laneKey]*lane
}

// NewDispatcher returns a Dispatcher for cfg. It panics if a route has no
// sink.
func NewDispatcher(cfg Config) *Dispatcher {
	d := &Dispatcher{
		deadLetter: cfg.DeadLetter,
		log:        cfg.Log,
		stopping:   make(chan struct{}),
		lanes:      make(map[laneKey]*lane),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	d.kill, d.cancel = context.WithCancelCause(context.Background())
	for i, r := range cfg.Routes {
		if r.Sink == nil {
			panic(fmt.Sprintf("delivery: route %d has no sink", i))
		}
		r.Retry = r.Retry.withDefaults()
		if r.Kinds != nil {
			r.Kinds = maps.Clone(r.Kinds) // the caller may reuse its map
		}
		d.routes = append(d.routes, r)
	}
	return d
}

// Submit queues ev for every route. done is called exactly once, when
// every route has the event — delivered, not of a kind it takes, or put
// in the dead letter — from a goroutine of the Dispatcher; if some route
// could neither deliver nor dead-letter it, done is never called. Submit
// never blocks. Once Shutdown began, Submit drops ev and done is never
// called.
func (d *Dispatcher) Submit(ev Event, done func()) {
	if done == nil {
		done = func() {}
	}
	t := &tracker{done: done}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	var routes []int
	for i, r := range d.routes {
		if r.Kinds == nil || r.Kinds[ev.Kind] {
			routes = append(routes, i)
		}
	}
	if len(routes) == 0 {
		// done is user code: not called here, under our lock, nor on
		// the caller's goroutine, which may hold locks of its own.
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			done()
		}()
		return
	}
	t.left.Store(int32(len(routes)))
	for _, i := range routes {
		k := laneKey{route: i, account: ev.Account, mailbox: ev.Mailbox}
		l := d.lanes[k]
		if l == nil {
			l = &lane{key: k, route: &d.routes[i], wake: make(chan struct{}, 1)}
			d.lanes[k] = l
		}
		l.queue = append(l.queue, item{ev: ev, t: t})
		if !l.running {
			l.running = true
			d.wg.Add(1)
			go d.run(l)
		}
		select {
		case l.wake <- struct{}{}: // a lane gathering a burst takes it
		default:
		}
	}
}

// Shutdown stops taking events and waits for the deliveries under way (a
// hook running, a webhook call) to end; when ctx ends first, it cancels
// them (killing hooks) and waits for them to return. Events not started,
// and batches waiting to be retried, are abandoned: their done is never
// called, so that the watcher reports them again after a restart.
// Shutdown returns ctx.Err() if it had to cancel, else nil; either way,
// every goroutine of the Dispatcher has exited.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.stopping)
	}
	d.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		d.cancel(errShutdown) // frees the context; nothing uses it any more
		return nil
	case <-ctx.Done():
		d.cancel(errShutdown)
		<-idle
		return ctx.Err()
	}
}

// tracker counts the routes that still have to finish an event.
type tracker struct {
	left atomic.Int32
	done func()
}

// finish records that one more route has the event, and calls done after
// the last.
func (t *tracker) finish() {
	if t.left.Add(-1) == 0 {
		t.done()
	}
}
