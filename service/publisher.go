package service

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap/delivery"
	"github.com/imapkit/imap/watch"
)

// publish puts one event on IMAPKIT_EVENTS and returns once JetStream has
// acknowledged it — stored, and with its ID in the duplicate window, so
// that a second publish of the same event (after a takeover, say) is
// dropped. Only then may the watcher's position move past it.
func publish(ctx context.Context, js jetstream.JetStream, ev watch.Event) error {
	body, err := json.Marshal(delivery.FromWatch(ev))
	if err != nil {
		return err
	}
	msg := &nats.Msg{
		Subject: EventSubject(ev.Account, ev.Kind.String()),
		Header:  nats.Header{},
		Data:    body,
	}
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	_, err = js.PublishMsg(ctx, msg)
	return err
}

// publishRetry publishes ev until JetStream acknowledges it, waiting
// longer after each failure (NATS unreachable, a stream leader election),
// or until ctx ends or valid reports that this node may no longer publish
// for the account. It reports whether the event was published.
func publishRetry(ctx context.Context, js jetstream.JetStream, ev watch.Event, valid func() bool, onError func(error)) bool {
	delay := 100 * time.Millisecond
	for {
		if !valid() {
			return false
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := publish(pctx, js, ev)
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		onError(err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}
