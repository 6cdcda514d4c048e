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
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	for {
		w.mu.Lock()
		if w.qhead < len(w.queue) {
			ev := w.queue[w.qhead]
			w.queue[w.qhead] = Event{}
			w.qhead++
			if w.qhead == len(w.queue) {
				// Empty: start again at the front, and let a queue that a
				// burst made large go.
				w.qhead = 0
				if cap(w.queue) > 64 {
					w.queue = nil
				} else {
					w.queue = w.queue[:0]
				}
			}
			if w.qhead > 0 {
				w.signal() // more for another waiting Next
			}
			w.mu.Unlock()
			return ev, nil
		}
		stopped := w.stopped
		w.mu.Unlock()
		if stopped {
			return Event{}, ErrClosed
		}
		select {
		case <-w.ready:
		case <-w.stop:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Events returns the events as an iterator, for use with range. It ends
// once Run has returned and every event was taken. It calls Next, so Next
// and Events take from the same queue.
func (w *Watcher) Events() iter.Seq[Event] {
	return func(yield func(Event) bool) {
		for {
			ev, err := w.Next(context.Background())
			if err != nil || !yield(ev) {
				return
			}
		}
	}
}

// push queues ev for the consumer. With w.mu held.
func (w *Watcher) push(ev Event) {
	w.queue = append(w.queue, ev)
	w.signal()
}

// signal wakes a Next that waits. With w.mu held.
func (w *Watcher) signal() {
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
