//go:build !nokit

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	imap "github.com/imapkit/imap"
)

// The imapkit contenders: our own client, through its raw API (imaplib's
// (typ, [data]) results) and its typed API (ParseFetch). Building with
// -tags nokit leaves them out (see kit_stub.go), for running the rest of
// the suite while the client does not compile.

// kitContenders returns our client's contenders.
func kitContenders() *kitSuite {
	return &kitSuite{
		fetch:      kitFetch,
		fetchEach:  kitFetchEach,
		fetchTyped: kitFetchTyped,
		typedEach:  kitFetchEachMessage,
		fetchParse: kitFetchParse,
		stream:     kitFetchStream,
		search:     kitSearch,
		burst:      kitBurst,
		push:       kitPush,
		openIdler:  kitOpenIdler,
	}
}

func kitOptions() *imap.Options {
	// The replay server is plaintext on loopback.
	return &imap.Options{InsecureAuth: true}
}

// kitDial connects (or wraps conn when not nil), logs in and selects
// mailbox read-only.
func kitDial(ctx context.Context, addr string, conn net.Conn, mailbox string) (*imap.Client, error) {
	var c *imap.Client
	var err error
	if conn != nil {
		c, err = imap.NewClient(conn, kitOptions())
	} else {
		c, err = imap.Dial(ctx, addr, kitOptions())
	}
	if err != nil {
		return nil, err
	}
	if _, err := c.Login(ctx, benchUser, benchPass); err != nil {
		c.Shutdown()
		return nil, err
	}
	if _, err := c.Select(ctx, mailbox, true); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

func kitLogout(ctx context.Context, c *imap.Client) error {
	_, err := c.Logout(ctx)
	return err
}

// countFetchStarts counts the messages in raw FETCH data: every message
// starts with a datum whose text begins with its sequence number, while the
// text that follows a literal begins with a space or ')'.
func countFetchStarts(data []imap.Datum) int {
	n := 0
	for _, d := range data {
		if len(d.Text) > 0 && d.Text[0] >= '0' && d.Text[0] <= '9' {
			n++
		}
	}
	return n
}

// kitFetch runs FETCH 1:* items through the raw API.
func kitFetch(items string) sessionFunc {
	return kitFetchWith(func(ctx context.Context, c *imap.Client) (imap.Result, error) {
		return c.Fetch(ctx, "1:*", items)
	})
}

// kitTimed runs work on a fresh session, timing only work, and returns
// what it counted. check, if work returns one, verifies the result after
// the span.
func kitTimed(work func(context.Context, *imap.Client) (count int, check func() error, err error)) sessionFunc {
	return func(ctx context.Context, addr, mailbox string, sp *span) (int, error) {
		c, err := kitDial(ctx, addr, nil, mailbox)
		if err != nil {
			return 0, err
		}
		defer c.Shutdown()
		sp.Start()
		n, check, err := work(ctx, c)
		sp.Stop()
		if err == nil && check != nil {
			err = check()
		}
		if err != nil {
			return 0, err
		}
		return n, kitLogout(ctx, c)
	}
}

// kitFetchEach runs FETCH 1:* items with FetchEach, counting the
// responses as they are handed over.
func kitFetchEach(items string) sessionFunc {
	return kitTimed(func(ctx context.Context, c *imap.Client) (int, func() error, error) {
		n := 0
		_, err := c.FetchEach(ctx, "1:*", items, func(r imap.Response) error {
			n += countFetchStarts(r.Data)
			return nil
		})
		return n, nil, err
	})
}

// kitFetchStream runs FETCH 1:* items with FetchTo, streaming every literal
// to io.Discard.
func kitFetchStream(items string) sessionFunc {
	return kitFetchWith(func(ctx context.Context, c *imap.Client) (imap.Result, error) {
		return c.FetchTo(ctx, "1:*", items, func([]byte) io.Writer { return io.Discard })
	})
}

// kitFetchWith times fetch and counts the FETCH responses it returned.
func kitFetchWith(fetch func(context.Context, *imap.Client) (imap.Result, error)) sessionFunc {
	return kitTimed(func(ctx context.Context, c *imap.Client) (int, func() error, error) {
		res, err := fetch(ctx, c)
		return countFetchStarts(res.Data), nil, err
	})
}

// kitFetchTyped runs FETCH 1:* items through the typed API,
// FetchMessages, which parses each response as it is read.
func kitFetchTyped(items string) sessionFunc {
	return kitTyped(func(ctx context.Context, c *imap.Client) ([]*imap.Message, error) {
		return c.FetchMessages(ctx, "1:*", items)
	})
}

// kitFetchEachMessage runs FETCH 1:* items with FetchEachMessage, checking
// each message as it is handed over (the check FetchMessages' contender
// makes after its span).
func kitFetchEachMessage(items string) sessionFunc {
	return kitTimed(func(ctx context.Context, c *imap.Client) (int, func() error, error) {
		n, incomplete := 0, 0
		err := c.FetchEachMessage(ctx, "1:*", items, func(m *imap.Message) error {
			n++
			if m.Envelope == nil || m.BodyStructure == nil {
				incomplete++
			}
			return nil
		})
		return n, func() error {
			if incomplete > 0 {
				return fmt.Errorf("%d messages without ENVELOPE or BODYSTRUCTURE", incomplete)
			}
			return nil
		}, err
	})
}

// kitFetchParse runs FETCH 1:* items through the raw API and then parses
// the whole result: Fetch followed by ParseFetch.
func kitFetchParse(items string) sessionFunc {
	return kitTyped(func(ctx context.Context, c *imap.Client) ([]*imap.Message, error) {
		res, err := c.Fetch(ctx, "1:*", items)
		if err != nil {
			return nil, err
		}
		return imap.ParseFetch(res.Data)
	})
}

// kitTyped times fetch and checks, after the span, that every message has
// its ENVELOPE and BODYSTRUCTURE.
func kitTyped(fetch func(context.Context, *imap.Client) ([]*imap.Message, error)) sessionFunc {
	return kitTimed(func(ctx context.Context, c *imap.Client) (int, func() error, error) {
		msgs, err := fetch(ctx, c)
		return len(msgs), func() error {
			for _, m := range msgs {
				if m.Envelope == nil || m.BodyStructure == nil {
					return fmt.Errorf("imapkit: message %d lacks ENVELOPE or BODYSTRUCTURE", m.Seq)
				}
			}
			return nil
		}, err
	})
}

// kitSearch runs UID SEARCH ALL and turns the data into numbers.
func kitSearch(ctx context.Context, addr, mailbox string, sp *span) (int, error) {
	return kitTimed(func(ctx context.Context, c *imap.Client) (int, func() error, error) {
		res, err := c.UID(ctx, "SEARCH", "ALL")
		var uids []uint32
		if err == nil {
			uids, err = imap.ParseSearch(res.Data)
		}
		return len(uids), nil, err
	})(ctx, addr, mailbox, sp)
}

// kitBurst idles and counts the responses delivered by Burst(interval).
func kitBurst(want int, interval time.Duration) sessionFunc {
	return func(ctx context.Context, addr, mailbox string, sp *span) (int, error) {
		c, err := kitDial(ctx, addr, nil, mailbox)
		if err != nil {
			return 0, err
		}
		defer c.Shutdown()
		sp.Start()
		idler, err := c.Idle(ctx, time.Minute)
		if err != nil {
			return 0, err
		}
		n := 0
		for batch, err := range idler.Burst(interval) {
			if err != nil {
				return 0, err
			}
			for _, r := range batch {
				if r.Type == "EXPUNGE" {
					n++
				}
			}
			if n >= want {
				break
			}
		}
		sp.Stop()
		if n < want {
			return 0, fmt.Errorf("imapkit: Burst ended after %d of %d EXPUNGE", n, want)
		}
		if err := idler.Close(); err != nil {
			return 0, err
		}
		return n, kitLogout(ctx, c)
	}
}

// kitPush idles and timestamps each EXISTS as Next returns it.
func kitPush(ctx context.Context, addr, mailbox string, count int, deliver []time.Time) error {
	c, err := kitDial(ctx, addr, nil, mailbox)
	if err != nil {
		return err
	}
	defer c.Shutdown()
	idler, err := c.Idle(ctx, 0)
	if err != nil {
		return err
	}
	for i := 0; i < count; {
		r, ok, err := idler.Next(time.Minute)
		now := time.Now()
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("imapkit: no push within a minute")
		}
		if r.Type == "EXISTS" {
			deliver[i] = now
			i++
		}
	}
	if err := idler.Close(); err != nil {
		return err
	}
	return kitLogout(ctx, c)
}

// kitIdler is one parked imapkit Idler for the memory measurement, with
// the goroutine that waits in Next as an application would.
type kitIdler struct {
	c    *imap.Client
	done chan struct{}
}

// kitOpenIdler opens an Idler on conn and parks a goroutine in Next.
func kitOpenIdler(ctx context.Context, conn net.Conn, mailbox string, pushed *atomic.Int64) (closer, error) {
	c, err := kitDial(ctx, "", conn, mailbox)
	if err != nil {
		return nil, err
	}
	idler, err := c.Idle(ctx, 0)
	if err != nil {
		c.Shutdown()
		return nil, err
	}
	k := &kitIdler{c: c, done: make(chan struct{})}
	go func() {
		defer close(k.done)
		for {
			_, ok, err := idler.Next(time.Hour)
			if err != nil {
				return
			}
			if ok {
				pushed.Add(1)
			}
		}
	}()
	return k, nil
}

// Close drops the connection, which ends the parked Next.
func (k *kitIdler) Close() error {
	err := k.c.Shutdown()
	<-k.done
	return err
}
