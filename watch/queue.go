package watch

import (
	"context"
	"errors"
	"iter"
	"time"
)

// ErrClosed is what Next returns once Run has returned and every event
// was taken.
var ErrClosed = errors.New("watch: watcher stopped and every event was taken")

// Next returns the next event, waiting for one until ctx is done. Events
// of a mailbox come in the order of the changes. Once Run has returned,
// Next still returns the events already made, then ErrClosed.
//
// Acknowledge each event with Ack once it is handled: see Event.Ack.
func (w *Watcher) Next(ctx context.Context) (ev Event, err error) {
	for {
		if got, stopped := w.take(&ev); got {
			return ev, nil
		} else if stopped {
			return Event{}, ErrClosed
		}
		select {
		case <-w.ready:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Events returns the events as an iterator, for use with range. It ends
// once Run has returned and every event was taken. Next and Events take
// from the same queue.
//
// It waits on one channel, not in a select: the consumer's goroutine,
// parked here, then fits in Go's first 2 KiB stack (see work).
func (w *Watcher) Events() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		var ev Event
		for {
			if got, stopped := w.take(&ev); got {
				if !yield(ev) {
					return
				}
			} else if stopped {
				return
			} else {
				<-w.ready
			}
		}
	}
}

// take moves the oldest queued event to *ev, or reports that there is
// none and whether Run has returned.
func (w *Watcher) take(ev *Event) (got, stopped bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.qhead == len(w.queue) {
		return false, w.stopped
	}
	*ev = w.queue[w.qhead]
	w.queue[w.qhead] = Event{}
	w.qhead++
	if w.qhead == len(w.queue) {
		// Empty: let the memory go. A parked account keeps no queue.
		w.queue, w.qhead = nil, 0
	} else {
		w.signal() // more, for another waiting consumer
	}
	return true, false
}

// push queues ev for the consumer. With w.mu held.
func (w *Watcher) push(ev Event) {
	w.queue = append(w.queue, ev)
	w.signal()
}

// signal wakes a consumer that waits. With w.mu held. Once Run has
// returned, ready is closed: every wait ends at once.
func (w *Watcher) signal() {
	if w.stopped {
		return
	}
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// stamp completes an event before it is handed over: account, time, ID.
func (w *Watcher) stamp(ev *Event) {
	ev.Account = w.opts.Account
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.ID == "" {
		ev.ID = eventID(ev)
	}
}

// notice hands over an event that reports on the watcher itself
// (disconnected, reconnected, resynced, an alert, a state error). It moves
// no position, so it needs no acknowledgement and no room.
func (w *Watcher) notice(ev Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stamp(&ev)
	w.push(ev)
}
