package watch

import (
	"context"
	"strings"

	"github.com/imapkit/imap"
)

// serveNotify watches several mailboxes on one connection with NOTIFY
// (RFC 5465): the server reports changes in any of them as STATUS while the
// client idles with no mailbox selected; each changed mailbox is then
// resynced.
func (s *session) serveNotify(ctx context.Context, c *imap.Client) error {
	for _, b := range s.extras {
		if err := s.sync(ctx, c, b); err != nil {
			return err
		}
	}
	if err := s.unselect(ctx, c); err != nil {
		return err
	}
	if s.w.opts.Once {
		return errOnceDone
	}
	var names []string
	for _, b := range s.extras {
		q, err := imap.Quote(mailboxWire(c, b.name))
		if err != nil {
			return err
		}
		names = append(names, q)
	}
	events := "(MessageNew MessageExpunge FlagChange)"
	if _, err := c.Xatom(ctx, "NOTIFY", "SET", "(MAILBOXES ("+strings.Join(names, " ")+") "+events+")"); err != nil {
		return err
	}
	for {
		s.handleCached(c)
		synced := false
		for _, b := range s.extras {
			if b.dirty && s.w.hasRoom() {
				if err := s.sync(ctx, c, b); err != nil {
					return err
				}
				synced = true
			}
		}
		if synced {
			if err := s.unselect(ctx, c); err != nil {
				return err
			}
			continue
		}
		if err := s.idleOnce(ctx, c); err != nil {
			return err
		}
	}
}

func (s *session) unselect(ctx context.Context, c *imap.Client) error {
	s.selected = nil
	if c.State() != imap.StateSelected {
		return nil
	}
	var err error
	if c.Has("UNSELECT") {
		_, err = c.Unselect(ctx)
	} else {
		_, err = c.Close(ctx) // read-only: expunges nothing
	}
	return err
}

// mailboxWire is the name as the server lists it: modified UTF-7 unless
// UTF8=ACCEPT is on.
func mailboxWire(c *imap.Client, name string) string {
	if c.UTF8Enabled() {
		return name
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return imap.EncodeMailbox(name)
		}
	}
	return name
}
