package imap

import "context"

// FetchMessages is Fetch followed by ParseFetch: the typed form of a FETCH.
func (c *Client) FetchMessages(ctx context.Context, set, items string) ([]*Message, error) {
	res, err := c.Fetch(ctx, set, items)
	if err != nil {
		return nil, err
	}
	return Parser{MaxNesting: c.opts.MaxNesting}.ParseFetch(res.Data)
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
	if c.UTF8Enabled() {
		return ParseListUTF8(res.Data)
	}
	return ParseList(res.Data)
}

// SearchNumbers is Search followed by ParseSearch.
func (c *Client) SearchNumbers(ctx context.Context, charset string, criteria ...string) ([]uint32, error) {
	res, err := c.Search(ctx, charset, criteria...)
	if err != nil {
		return nil, err
	}
	return ParseSearch(res.Data)
}
