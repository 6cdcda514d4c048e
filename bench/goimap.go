package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	goimap "github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// goimapDial connects go-imap v2's imapclient, logs in and selects
// mailbox read-only.
// If conn is nil it dials addr.
func goimapDial(ctx context.Context, addr string, conn net.Conn, mailbox string, h *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	if conn == nil {
		var d net.Dialer
		var err error
		if conn, err = d.DialContext(ctx, "tcp", addr); err != nil {
			return nil, err
		}
	}
	c := imapclient.New(conn, &imapclient.Options{UnilateralDataHandler: h})
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Login(benchUser, benchPass).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Select(mailbox, &goimap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func goimapLogout(c *imapclient.Client) error {
	err := c.Logout().Wait()
	c.Close()
	return err
}

func allSeq() goimap.SeqSet {
	var s goimap.SeqSet
	s.AddRange(1, 0) // 1:*
	return s
}

// goimapFetchMeta fetches the metadata items with go-imap's typed API and
// collects every message.
func goimapFetchMeta(ctx context.Context, addr, mailbox string, sp *span) (int, error) {
	c, err := goimapDial(ctx, addr, nil, mailbox, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	opts := &goimap.FetchOptions{
		Flags:         true,
		InternalDate:  true,
		RFC822Size:    true,
		Envelope:      true,
		BodyStructure: &goimap.FetchItemBodyStructure{Extended: true},
	}
	sp.Start()
	msgs, err := c.Fetch(allSeq(), opts).Collect()
	sp.Stop()
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if m.Envelope == nil || m.BodyStructure == nil {
			return 0, fmt.Errorf("go-imap: message %d lacks ENVELOPE or BODYSTRUCTURE", m.SeqNum)
		}
	}
	return len(msgs), goimapLogout(c)
}

// goimapFetchBody fetches BODY.PEEK[] and collects every body in memory.
func goimapFetchBody(ctx context.Context, addr, mailbox string, sp *span) (int, error) {
	c, err := goimapDial(ctx, addr, nil, mailbox, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	section := &goimap.FetchItemBodySection{Peek: true}
	opts := &goimap.FetchOptions{BodySection: []*goimap.FetchItemBodySection{section}}
	sp.Start()
	msgs, err := c.Fetch(allSeq(), opts).Collect()
	sp.Stop()
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if m.FindBodySection(section) == nil {
			return 0, fmt.Errorf("go-imap: message %d has no body", m.SeqNum)
		}
	}
	return len(msgs), goimapLogout(c)
}

// goimapSearch runs UID SEARCH ALL and expands the UIDs.
func goimapSearch(ctx context.Context, addr, mailbox string, sp *span) (int, error) {
	c, err := goimapDial(ctx, addr, nil, mailbox, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	// go-imap asks for CAPABILITY before its first SEARCH; do it outside
	// the measured span.
	if _, err := c.Capability().Wait(); err != nil {
		return 0, err
	}
	sp.Start()
	data, err := c.UIDSearch(&goimap.SearchCriteria{}, nil).Wait()
	var uids []goimap.UID
	if err == nil {
		uids = data.AllUIDs()
	}
	sp.Stop()
	if err != nil {
		return 0, err
	}
	return len(uids), goimapLogout(c)
}

// goimapBurst idles and counts EXPUNGE responses delivered to the
// unilateral data handler.
func goimapBurst(want int) sessionFunc {
	return func(ctx context.Context, addr, mailbox string, sp *span) (int, error) {
		n := 0
		done := make(chan struct{})
		h := &imapclient.UnilateralDataHandler{Expunge: func(uint32) {
			n++ // runs on the reader goroutine
			if n == want {
				close(done)
			}
		}}
		c, err := goimapDial(ctx, addr, nil, mailbox, h)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		sp.Start()
		idle, err := c.Idle()
		if err != nil {
			return 0, err
		}
		select {
		case <-done:
		case <-c.Closed():
			return 0, errors.New("go-imap: connection closed during IDLE")
		case <-time.After(time.Minute):
			return 0, fmt.Errorf("go-imap: timed out after %d EXPUNGE", want)
		}
		sp.Stop()
		if err := idle.Close(); err != nil {
			return 0, err
		}
		if err := idle.Wait(); err != nil {
			return 0, err
		}
		return want, goimapLogout(c)
	}
}

// goimapPush idles and timestamps each EXISTS delivered to the handler.
func goimapPush(ctx context.Context, addr, mailbox string, count int, deliver []time.Time) error {
	i := 0
	done := make(chan struct{})
	h := &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
		now := time.Now()
		if d.NumMessages == nil || i >= count {
			return
		}
		deliver[i] = now
		i++
		if i == count {
			close(done)
		}
	}}
	c, err := goimapDial(ctx, addr, nil, mailbox, h)
	if err != nil {
		return err
	}
	defer c.Close()
	idle, err := c.Idle()
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-c.Closed():
		return errors.New("go-imap: connection closed during IDLE")
	}
	if err := idle.Close(); err != nil {
		return err
	}
	if err := idle.Wait(); err != nil {
		return err
	}
	return goimapLogout(c)
}

// goimapIdler is one parked go-imap v2 IDLE for the memory measurement.
// go-imap delivers pushes on its own reader goroutine, so the application
// needs no goroutine of its own.
type goimapIdler struct {
	c    *imapclient.Client
	idle *imapclient.IdleCommand
}

func goimapOpenIdler(ctx context.Context, conn net.Conn, mailbox string, pushed *atomic.Int64) (closer, error) {
	h := &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { pushed.Add(1) },
		Mailbox: func(*imapclient.UnilateralDataMailbox) { pushed.Add(1) },
	}
	c, err := goimapDial(ctx, "", conn, mailbox, h)
	if err != nil {
		return nil, err
	}
	idle, err := c.Idle()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &goimapIdler{c: c, idle: idle}, nil
}

// Close drops the connection; go-imap's goroutines exit when it closes.
func (g *goimapIdler) Close() error {
	err := g.c.Close()
	<-g.c.Closed()
	return err
}
