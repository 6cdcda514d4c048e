package delivery

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// maxBurst is the most events a lane gathers into one batch.
const maxBurst = 1000

// laneKey names a lane: a route's events of one mailbox.
type laneKey struct {
	route            int
	account, mailbox string
}

// lane is the queue of a route's events for one mailbox, worked through in
// order by one goroutine at a time.
type lane struct {
	key   laneKey
	route *Route
	wake  chan struct{} // signalled by Submit, for a lane gathering a burst

	// Guarded by Dispatcher.mu.
	queue   []item
	running bool // a goroutine works the lane; it retires the lane when done
}

// item is an event queued in a lane.
type item struct {
	ev Event
	t  *tracker
}

// run works through l's queue and exits when it is empty, or when Shutdown
// began.
func (d *Dispatcher) run(l *lane) {
	defer d.wg.Done()
	for {
		batch := d.next(l)
		if batch == nil {
			return
		}
		if !d.deliver(l, batch) {
			d.mu.Lock()
			d.retire(l)
			d.mu.Unlock()
			return
		}
	}
}

// next returns the lane's next batch, or nil when the lane is empty or
// Shutdown began, having retired the lane.
func (d *Dispatcher) next(l *lane) []item {
	d.mu.Lock()
	if d.closed || len(l.queue) == 0 {
		// Under the lock, with the emptiness check: a Submit after it
		// finds no lane and starts a new one.
		d.retire(l)
		d.mu.Unlock()
		return nil
	}
	n := 1
	if l.route.Burst > 0 {
		n = maxBurst
	}
	batch := l.take(n)
	d.mu.Unlock()
	if l.route.Burst <= 0 {
		return batch
	}
	batch = d.gather(l, batch)
	if batch == nil {
		d.mu.Lock()
		d.retire(l)
		d.mu.Unlock()
	}
	return batch
}

// gather adds to batch the events arriving within the route's Burst of the
// last one, up to maxBurst, and returns it; or nil if Shutdown began
// meanwhile.
func (d *Dispatcher) gather(l *lane, batch []item) []item {
	timer := time.NewTimer(l.route.Burst)
	defer timer.Stop()
	for len(batch) < maxBurst {
		select {
		case <-d.stopping:
			return nil
		case <-timer.C:
			return batch
		case <-l.wake:
			d.mu.Lock()
			more := l.take(maxBurst - len(batch))
			d.mu.Unlock()
			if len(more) > 0 {
				batch = append(batch, more...)
				timer.Reset(l.route.Burst)
			}
		}
	}
	return batch
}

// take removes up to n items from the head of l's queue and returns them.
// d.mu is held.
func (l *lane) take(n int) []item {
	n = min(n, len(l.queue))
	if n == 0 {
		return nil
	}
	batch := make([]item, n)
	copy(batch, l.queue)
	clear(l.queue[:n]) // let the events go; append reallocates past them
	l.queue = l.queue[n:]
	return batch
}

// retire marks l idle and forgets it, so that the next Submit for its
// mailbox starts a new lane. d.mu is held.
func (d *Dispatcher) retire(l *lane) {
	l.running = false
	if d.lanes[l.key] == l {
		delete(d.lanes, l.key)
	}
}

// deliver tries batch on l's route until the sink has it or the tries run
// out, then puts it in the dead letter. It returns false if it abandoned
// the batch because Shutdown began.
func (d *Dispatcher) deliver(l *lane, batch []item) bool {
	r := l.route
	events := make([]Event, len(batch))
	for i, it := range batch {
		events[i] = it.ev
	}
	for attempt := 1; ; attempt++ {
		if d.isStopping() {
			return false
		}
		ctx, cancel := context.WithTimeoutCause(d.kill, r.Retry.Timeout, timeoutError{r.Retry.Timeout})
		err := r.Sink.Deliver(ctx, events)
		cancel()
		if err == nil {
			for _, it := range batch {
				it.t.finish()
			}
			return true
		}
		if d.isStopping() {
			// Most likely cancelled by Shutdown; either way no retry
			// and no dead letter: the events come back after a
			// restart.
			d.log.Info("delivery abandoned at shutdown", append(batchAttrs(events), "sink", r.Sink.String(), "error", err.Error())...)
			return false
		}
		if attempt > r.Retry.Retries {
			d.bury(r, batch, err, attempt)
			return true
		}
		wait := r.Retry.delay(attempt, rand.Float64())
		d.log.Warn("delivery failed; will retry", append(batchAttrs(events),
			"sink", r.Sink.String(), "attempt", attempt, "error", err.Error(), "retry_in", wait)...)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-d.stopping:
			timer.Stop()
			return false
		}
	}
}

// isStopping reports whether Shutdown began.
func (d *Dispatcher) isStopping() bool {
	select {
	case <-d.stopping:
		return true
	default:
		return false
	}
}

// bury puts each event of batch in the dead letter after the last failed
// try, err, and counts it as handled by route r once the dead letter has
// it. An event the dead letter cannot take stays unacknowledged.
func (d *Dispatcher) bury(r *Route, batch []item, err error, attempts int) {
	now := time.Now()
	where := "(none configured)"
	if s, ok := d.deadLetter.(fmt.Stringer); ok {
		where = s.String()
	} else if d.deadLetter != nil {
		where = fmt.Sprintf("%T", d.deadLetter)
	}
	for _, it := range batch {
		rec := DeadRecord{Event: it.ev, Sink: r.Sink.String(), Err: err.Error(), Attempts: attempts, Time: now}
		werr := errNoDeadLetter
		if d.deadLetter != nil {
			werr = d.deadLetter.Write(rec)
		}
		attrs := append(eventAttrs(it.ev), "sink", rec.Sink, "attempts", attempts, "error", rec.Err, "dead_letter", where)
		if werr != nil {
			d.log.Error("delivery failed and the dead letter could not be written: the event stays unacknowledged and comes back after a restart",
				append(attrs, "dead_letter_error", werr.Error())...)
			continue
		}
		d.log.Error("delivery failed; event put in the dead letter", attrs...)
		it.t.finish()
	}
}

// eventAttrs returns log attributes naming ev.
func eventAttrs(ev Event) []any {
	return []any{"account", ev.Account, "mailbox", ev.Mailbox, "uid", ev.UID, "kind", ev.Kind, "id", ev.ID}
}

// batchAttrs returns log attributes naming a batch: its first event, and
// how many there are.
func batchAttrs(events []Event) []any {
	attrs := eventAttrs(events[0])
	if len(events) > 1 {
		attrs = append(attrs, "events", len(events))
	}
	return attrs
}
