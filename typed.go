package imap

import (
	"context"
	"errors"
)

// The typed forms of commands are named after the raw command and what
// they return: FetchMessages and UIDFetchMessages (and their streaming
// forms FetchEachMessage, UIDFetchEachMessage), ListMailboxes,
// SelectMailbox, StatusMailbox, SearchNumbers and UIDSearchNumbers. Each
// gives what the raw command followed by its Parse function gives; a
// response that does not parse is an *Error of kind ErrCommand wrapping the
// *ParseError (errors.As finds it), returned with what did parse.

// parseFailed wraps a parse error of a typed form in the *Error every
// Client method returns: the command worked, its answer did not parse.
func parseFailed(name string, err error) error {
	var e *Error
	if err == nil || errors.As(err, &e) {
		return err
	}
	return &Error{Command: name, Kind: ErrCommand, Text: "the server's answer did not parse", Err: err}
}

// FetchMessages is the typed form of a FETCH: it gives what Fetch followed
// by ParseFetch gives, but parses each response as it is read (FetchEach),
// so the raw response is never held in memory and the messages share no
// memory with the read buffer.
//
// A malformed response does not stop the others from being parsed: the
// messages parsed are returned with an *Error wrapping a *ParseError for
// the first failure.
// If the command fails (NO, say), the messages received before the failure
// are returned with the command's error.
func (c *Client) FetchMessages(ctx context.Context, set, items string) ([]*Message, error) {
	return c.fetchMessages(ctx, "FETCH", set, items)
}

// UIDFetchMessages is FetchMessages for UID FETCH: set holds UIDs.
func (c *Client) UIDFetchMessages(ctx context.Context, set, items string) ([]*Message, error) {
	return c.fetchMessages(ctx, "UID FETCH", set, items)
}

func (c *Client) fetchMessages(ctx context.Context, name, set, items string) ([]*Message, error) {
	var msgs []*Message
	err := c.fetchEachMessage(ctx, name, set, items, func(m *Message) error {
		msgs = append(msgs, m)
		return nil
	})
	return msgs, err
}

// FetchEachMessage is the streaming form of FetchMessages: each FETCH
// response is parsed as soon as it has been read and the Message handed to
// fn, so that a FETCH over a whole mailbox holds one message at a time
// instead of all of them. The Message is fn's to keep: it does not alias
// the read buffer, nothing later overwrites it, and it shares no memory
// with the other messages, so a kept one pins nothing of its neighbours.
//
// A response that does not parse is skipped (fn is not called for it) and
// FetchEachMessage returns an *Error wrapping a *ParseError for the first
// one once the command has completed. As with FetchEach, fn runs on the caller's
// goroutine and must not use the Client; once it returns an error it is
// not called again, the rest of the response is read, and that error comes
// back wrapped in an *Error of kind ErrCommand.
func (c *Client) FetchEachMessage(ctx context.Context, set, items string, fn func(m *Message) error) error {
	return c.fetchEachMessage(ctx, "FETCH", set, items, fn)
}

// UIDFetchEachMessage is FetchEachMessage for UID FETCH: set holds UIDs.
func (c *Client) UIDFetchEachMessage(ctx context.Context, set, items string, fn func(m *Message) error) error {
	return c.fetchEachMessage(ctx, "UID FETCH", set, items, fn)
}

func (c *Client) fetchEachMessage(ctx context.Context, name, set, items string, fn func(*Message) error) error {
	if fn == nil {
		return cmdError(name, "no function to hand the messages to")
	}
	s := scanner{limit: c.opts.MaxNesting, own: true, utf8: c.UTF8Enabled()}
	var parseErr error
	_, err := c.fetchEach(ctx, name, set, items, func(r Response) error {
		resp, _, complete := nextResponse(r.Data)
		if isEmptyResponse(resp) {
			return nil
		}
		// Each message is allocated on its own, from pools of its own: fn
		// may keep any of them without pinning the others.
		m := s.fresh(resp)
		if err := s.fetch(resp, m, complete); err != nil {
			*m = Message{}
			if parseErr == nil {
				parseErr = err
			}
			return nil
		}
		return fn(m)
	})
	if err != nil {
		return err
	}
	return parseFailed(name, parseErr)
}

// SelectMailbox is Select followed by ParseMailboxData over the data the
// server sent: FLAGS, EXISTS, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, ... The
// data stays cached for Response.
func (c *Client) SelectMailbox(ctx context.Context, mailbox string, readOnly bool) (*MailboxData, error) {
	if _, err := c.Select(ctx, mailbox, readOnly); err != nil {
		return nil, err
	}
	return ParseMailboxData(c.Cached), nil
}

// ListMailboxes is List followed by ParseList (or ParseListUTF8 after ENABLE
// UTF8=ACCEPT).
func (c *Client) ListMailboxes(ctx context.Context, reference, pattern string) ([]ListEntry, error) {
	res, err := c.List(ctx, reference, pattern)
	if err != nil {
		return nil, err
	}
	var list []ListEntry
	if c.UTF8Enabled() {
		list, err = ParseListUTF8(res.Data)
	} else {
		list, err = ParseList(res.Data)
	}
	return list, parseFailed("LIST", err)
}

// SearchNumbers is Search followed by ParseSearch: message sequence
// numbers.
func (c *Client) SearchNumbers(ctx context.Context, charset string, criteria ...string) ([]uint32, error) {
	res, err := c.Search(ctx, charset, criteria...)
	if err != nil {
		return nil, err
	}
	nums, err := ParseSearch(res.Data)
	return nums, parseFailed("SEARCH", err)
}

// UIDSearchNumbers is SearchNumbers for UID SEARCH: the numbers are UIDs.
func (c *Client) UIDSearchNumbers(ctx context.Context, charset string, criteria ...string) ([]uint32, error) {
	args, err := c.searchArgs("UID SEARCH", charset, criteria)
	if err != nil {
		return nil, err
	}
	res, err := c.UID(ctx, "SEARCH", args...)
	if err != nil {
		return nil, err
	}
	nums, err := ParseSearch(res.Data)
	return nums, parseFailed("UID SEARCH", err)
}

// StatusMailbox is Status followed by ParseStatus: the items (for example
// "(MESSAGES UIDNEXT UNSEEN)") of one mailbox, without selecting it.
// StatusData.Present tells which items the server returned.
func (c *Client) StatusMailbox(ctx context.Context, mailbox, items string) (*StatusData, error) {
	res, err := c.Status(ctx, mailbox, items)
	if err != nil {
		return nil, err
	}
	list, err := ParseStatus(res.Data)
	if err != nil {
		return nil, parseFailed("STATUS", err)
	}
	for i := range list {
		if c.UTF8Enabled() {
			list[i].Mailbox = list[i].Raw // names are UTF-8 already
		}
		if list[i].Mailbox == mailbox || len(list) == 1 {
			return &list[i], nil
		}
	}
	return nil, cmdError("STATUS", "the server answered with no STATUS for %q", mailbox)
}
