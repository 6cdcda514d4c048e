//go:build !nokit

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	imap "github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/watch"
)

// The contenders of the watch section (see watchcost.go): a raw imapkit
// Idler, the floor of what watching an account can cost, and a
// watch.Watcher with default options.

// watchClientTimeout is the Options.Timeout of every client of the watch
// section (the watch package asks dialers to set one).
const watchClientTimeout = 30 * time.Second

// watchDial connects to addr and logs in as u.
func watchDial(ctx context.Context, addr string, u dovecot.User) (*imap.Client, error) {
	c, err := imap.Dial(ctx, addr, &imap.Options{InsecureAuth: true, Timeout: watchClientTimeout})
	if err != nil {
		return nil, err
	}
	if _, err := c.Login(ctx, u.Name, u.Password); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// rawIdlerAccount is one account watched with a bare Idler: INBOX
// selected read-only (as the Watcher does), IDLE started, and one goroutine
// parked in Next that reports each EXISTS.
type rawIdlerAccount struct {
	c    *imap.Client
	done chan struct{}
}

func openRawIdler(ctx context.Context, addr string, u dovecot.User, ready chan struct{}, on func(watchSignal, time.Time)) (closer, error) {
	c, err := watchDial(ctx, addr, u)
	if err != nil {
		return nil, err
	}
	if _, err := c.Select(ctx, "INBOX", true); err != nil {
		c.Shutdown()
		return nil, err
	}
	idler, err := c.Idle(ctx, 0)
	if err != nil {
		c.Shutdown()
		return nil, err
	}
	a := &rawIdlerAccount{c: c, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for {
			r, ok, err := idler.Next(time.Hour)
			at := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					on(signalFailed, at)
				}
				return
			}
			if ok && r.Type == "EXISTS" {
				on(signalPush, at)
			}
		}
	}()
	return a, nil
}

// Close drops the connection, which ends the parked Next.
func (a *rawIdlerAccount) Close() error {
	err := a.c.Shutdown()
	<-a.done
	return err
}

// watcherAccount is one account watched by a watch.Watcher with default
// options (only Account and the dialer set), its Run goroutine, and a
// consumer goroutine that takes and acknowledges every event.
type watcherAccount struct {
	done chan struct{} // closed when the consumer has seen the end of the events
}

func openWatcher(ctx context.Context, addr string, u dovecot.User, ready chan struct{}, on func(watchSignal, time.Time)) (closer, error) {
	dial := func(ctx context.Context) (*imap.Client, error) { return watchDial(ctx, addr, u) }
	w, err := watch.New(dial, &watch.Options{Account: u.Name})
	if err != nil {
		return nil, err
	}
	a := &watcherAccount{done: make(chan struct{})}
	go func() {
		if err := w.Run(ctx); err != nil {
			on(signalFailed, time.Now())
		}
	}()
	go func() {
		defer close(a.done) // Events ends once Run has returned
		for ev := range w.Events() {
			at := time.Now()
			switch ev.Kind {
			case watch.EventNew:
				on(signalPush, at)
			case watch.EventResynced:
				select {
				case ready <- struct{}{}:
				default:
				}
			case watch.EventDisconnected, watch.EventStateError:
				on(signalFailed, at)
			}
			ev.Ack()
		}
	}()
	timeout := time.NewTimer(2 * watchClientTimeout)
	defer timeout.Stop()
	select {
	case <-ready:
		return a, nil
	case <-a.done:
		return nil, errors.New("watcher stopped before its first sync")
	case <-timeout.C:
		return nil, fmt.Errorf("no baseline for %s within %v", u.Name, 2*watchClientTimeout)
	}
}

// Close waits until the watcher has stopped; stopping it is cancelling the
// context it was opened with.
func (a *watcherAccount) Close() error {
	<-a.done
	return nil
}

// watchContenders returns the contenders of the watch section.
func watchContenders() map[string]accountFunc {
	return map[string]accountFunc{nameWatchIdler: openRawIdler, nameWatcher: openWatcher}
}

// dialAppender logs in to addr as u and returns a function that appends a
// message to INBOX (and, given nil, logs out).
func dialAppender(ctx context.Context, addr string, u dovecot.User) (appendFunc, error) {
	c, err := watchDial(ctx, addr, u)
	if err != nil {
		return nil, err
	}
	return func(msg []byte) error {
		if msg == nil {
			c.Logout(ctx)
			return c.Shutdown()
		}
		_, err := c.Append(ctx, "INBOX", "", time.Time{}, msg)
		return err
	}, nil
}
