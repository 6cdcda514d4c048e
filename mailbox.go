package imap

import (
	"context"
	"strings"
)

// Select selects mailbox ("" means INBOX), read-only with EXAMINE when
// readOnly is set. It empties the untagged cache first; on success Data
// holds the EXISTS data, which stays cached (as in imaplib), along with
// FLAGS, UIDVALIDITY and the rest, for Response or MailboxStatus.
//
// If the server opens the mailbox read-only although read-write was asked
// for, the error is ErrReadOnly.
func (c *Client) Select(ctx context.Context, mailbox string, readOnly bool) (Result, error) {
	if mailbox == "" {
		mailbox = "INBOX"
	}
	name := "SELECT"
	if readOnly {
		name = "EXAMINE"
	}
	mb, err := c.mailboxArg(name, mailbox)
	if err != nil {
		return Result{}, err
	}
	if err := c.begin(name); err != nil {
		return Result{}, err
	}
	defer c.mu.Unlock()
	c.clearCache()
	c.readOnly = readOnly
	res, err := c.run(ctx, &command{name: name, args: []arg{mb}})
	if err != nil {
		if c.broken == nil && c.State() == StateSelected {
			c.setState(StateAuth) // a failed SELECT leaves no mailbox selected
		}
		return res, err
	}
	c.setState(StateSelected)
	if c.cache.has("READ-ONLY") && !readOnly {
		return res, &Error{Command: name, Kind: ErrReadOnly, Text: mailbox + " is not writable"}
	}
	return Result{Status: res.Status, Data: c.cached("EXISTS")}, nil
}

// Unselect closes the selected mailbox without expunging (RFC 3691). The
// state becomes AUTH when the server agrees; after a NO (Courier refuses
// UNSELECT) the mailbox is still selected, on both sides.
func (c *Client) Unselect(ctx context.Context) (Result, error) {
	return c.exec(ctx, &command{name: "UNSELECT", onDone: c.deselectOnOK})
}

// CloseMailbox runs IMAP's CLOSE: it closes the selected mailbox,
// expunging deleted messages (imaplib's close). The state becomes AUTH
// when the server agrees (imaplib moves even on a refusal, which leaves
// client and server disagreeing). To end the session use Logout; to drop
// the connection, Close.
func (c *Client) CloseMailbox(ctx context.Context) (Result, error) {
	return c.exec(ctx, &command{name: "CLOSE", onDone: c.deselectOnOK})
}

// deselectOnOK leaves the selected state when the server completed the
// command with OK: a NO or BAD (Courier refuses UNSELECT) means the server
// still has the mailbox selected.
func (c *Client) deselectOnOK(status string) {
	if status == "OK" {
		c.setState(StateAuth)
	}
}

// mailboxCmd runs a command whose arguments are mailbox names followed by
// raw arguments.
func (c *Client) mailboxCmd(ctx context.Context, name, want string, mailboxes []string, raw ...string) (Result, error) {
	var l argList
	for _, m := range mailboxes {
		l.add(c.mailboxArg(name, m))
	}
	for _, r := range raw {
		l.add(c.strArg(name, r, false))
	}
	if l.err != nil {
		return Result{}, l.err
	}
	return c.exec(ctx, &command{name: name, args: l.args, want: want})
}

// Create creates mailbox.
func (c *Client) Create(ctx context.Context, mailbox string) (Result, error) {
	return c.mailboxCmd(ctx, "CREATE", "", []string{mailbox})
}

// Delete deletes mailbox.
func (c *Client) Delete(ctx context.Context, mailbox string) (Result, error) {
	return c.mailboxCmd(ctx, "DELETE", "", []string{mailbox})
}

// Rename renames mailbox oldName to newName.
func (c *Client) Rename(ctx context.Context, oldName, newName string) (Result, error) {
	return c.mailboxCmd(ctx, "RENAME", "", []string{oldName, newName})
}

// Subscribe adds mailbox to the subscribed set.
func (c *Client) Subscribe(ctx context.Context, mailbox string) (Result, error) {
	return c.mailboxCmd(ctx, "SUBSCRIBE", "", []string{mailbox})
}

// Unsubscribe removes mailbox from the subscribed set.
func (c *Client) Unsubscribe(ctx context.Context, mailbox string) (Result, error) {
	return c.mailboxCmd(ctx, "UNSUBSCRIBE", "", []string{mailbox})
}

// List lists the mailboxes matching pattern ("*" when empty) under
// reference. Data holds the LIST data, e.g. `(\HasNoChildren) "." INBOX`;
// ParseList turns it into ListEntry values.
func (c *Client) List(ctx context.Context, reference, pattern string) (Result, error) {
	return c.listCmd(ctx, "LIST", reference, pattern)
}

// Lsub is List for subscribed mailboxes only.
func (c *Client) Lsub(ctx context.Context, reference, pattern string) (Result, error) {
	return c.listCmd(ctx, "LSUB", reference, pattern)
}

func (c *Client) listCmd(ctx context.Context, name, reference, pattern string) (Result, error) {
	if pattern == "" {
		pattern = "*"
	}
	var l argList
	l.add(c.mailboxArg(name, reference))
	l.add(c.patternArg(name, pattern))
	if l.err != nil {
		return Result{}, l.err
	}
	return c.exec(ctx, &command{name: name, args: l.args, want: name})
}

// Status asks for the status items of mailbox, e.g. "(MESSAGES UIDNEXT)"
// (parentheses are added when missing). Data holds the STATUS data;
// ParseStatus turns it into StatusData.
func (c *Client) Status(ctx context.Context, mailbox, items string) (Result, error) {
	mb, err := c.mailboxArg("STATUS", mailbox)
	if err != nil {
		return Result{}, err
	}
	it, err := rawArg("STATUS", parenthesize(items))
	if err != nil {
		return Result{}, err
	}
	return c.exec(ctx, &command{name: "STATUS", args: []arg{mb, it}, want: "STATUS"})
}

// Namespace asks for the personal, other users' and shared namespaces.
func (c *Client) Namespace(ctx context.Context) (Result, error) {
	return c.exec(ctx, &command{name: "NAMESPACE", want: "NAMESPACE"})
}

// GetACL returns the access control list of mailbox (RFC 4314).
func (c *Client) GetACL(ctx context.Context, mailbox string) (Result, error) {
	return c.mailboxCmd(ctx, "GETACL", "ACL", []string{mailbox})
}

// SetACL grants rights to identifier on mailbox.
func (c *Client) SetACL(ctx context.Context, mailbox, identifier, rights string) (Result, error) {
	return c.mailboxCmd(ctx, "SETACL", "", []string{mailbox}, identifier, rights)
}

// DeleteACL removes the rights of identifier on mailbox.
func (c *Client) DeleteACL(ctx context.Context, mailbox, identifier string) (Result, error) {
	return c.mailboxCmd(ctx, "DELETEACL", "", []string{mailbox}, identifier)
}

// MyRights returns the rights of the logged-in user on mailbox.
func (c *Client) MyRights(ctx context.Context, mailbox string) (Result, error) {
	return c.mailboxCmd(ctx, "MYRIGHTS", "MYRIGHTS", []string{mailbox})
}

// GetAnnotation returns annotations of mailbox (the ANNOTATEMORE draft, as
// in imaplib). entry and attribute are sent raw.
func (c *Client) GetAnnotation(ctx context.Context, mailbox, entry, attribute string) (Result, error) {
	mb, err := c.mailboxArg("GETANNOTATION", mailbox)
	if err != nil {
		return Result{}, err
	}
	var l argList
	l.add(mb, nil)
	l.add(rawArg("GETANNOTATION", entry))
	l.add(rawArg("GETANNOTATION", attribute))
	if l.err != nil {
		return Result{}, l.err
	}
	return c.exec(ctx, &command{name: "GETANNOTATION", args: l.args, want: "ANNOTATION"})
}

// SetAnnotation sets annotations; args are sent raw, as in imaplib.
func (c *Client) SetAnnotation(ctx context.Context, args ...string) (Result, error) {
	var l argList
	for _, a := range args {
		l.add(rawArg("SETANNOTATION", a))
	}
	if l.err != nil {
		return Result{}, l.err
	}
	return c.exec(ctx, &command{name: "SETANNOTATION", args: l.args, want: "ANNOTATION"})
}

// GetQuota returns the usage and limits of quota root (RFC 2087).
func (c *Client) GetQuota(ctx context.Context, root string) (Result, error) {
	a, err := c.strArg("GETQUOTA", root, false)
	if err != nil {
		return Result{}, err
	}
	return c.exec(ctx, &command{name: "GETQUOTA", args: []arg{a}, want: "QUOTA"})
}

// GetQuotaRoot returns the quota roots of mailbox and their quotas: the
// QUOTAROOT data in roots and the QUOTA data in quotas.
func (c *Client) GetQuotaRoot(ctx context.Context, mailbox string) (roots, quotas Result, err error) {
	mb, err := c.mailboxArg("GETQUOTAROOT", mailbox)
	if err != nil {
		return Result{}, Result{}, err
	}
	if err := c.begin("GETQUOTAROOT"); err != nil {
		return Result{}, Result{}, err
	}
	defer c.mu.Unlock()
	res, err := c.run(ctx, &command{name: "GETQUOTAROOT", args: []arg{mb}, want: "QUOTAROOT"})
	if err != nil {
		return res, Result{}, err
	}
	return res, Result{Status: res.Status, Data: c.pop("QUOTA")}, nil
}

// SetQuota sets the limits of quota root, e.g. "(STORAGE 512)".
func (c *Client) SetQuota(ctx context.Context, root, limits string) (Result, error) {
	var l argList
	l.add(c.strArg("SETQUOTA", root, false))
	l.add(rawArg("SETQUOTA", parenthesize(limits)))
	if l.err != nil {
		return Result{}, l.err
	}
	return c.exec(ctx, &command{name: "SETQUOTA", args: l.args, want: "QUOTA"})
}

// parenthesize wraps s in parentheses unless it already is, as imaplib
// does for flags and sort criteria.
func parenthesize(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") {
		return s
	}
	return "(" + s + ")"
}
