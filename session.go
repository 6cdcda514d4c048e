package imap

import (
	"context"
	"strings"
)

// Capability runs CAPABILITY and refreshes Capabilities. Data holds the
// CAPABILITY response.
func (c *Client) Capability(ctx context.Context) (Result, error) {
	res, err := c.exec(ctx, &command{name: "CAPABILITY", want: "CAPABILITY"})
	if err == nil && len(res.Data) > 0 {
		c.mu.Lock()
		c.setCaps(res.Data[len(res.Data)-1].Text)
		c.mu.Unlock()
	}
	return res, err
}

// Noop sends NOOP, giving the server a chance to report changes, which are
// cached for Response. Data holds the tagged text.
func (c *Client) Noop(ctx context.Context) (Result, error) {
	return c.exec(ctx, &command{name: "NOOP"})
}

// Logout sends LOGOUT and closes the connection. Like imaplib, it returns
// as soon as the server's BYE arrives, with Status "BYE" and the BYE text.
func (c *Client) Logout(ctx context.Context) (Result, error) {
	if err := c.begin("LOGOUT"); err != nil {
		if e, ok := err.(*Error); ok && e.Kind == ErrAbort {
			// Broken already (LOGOUT is allowed in every state): close
			// for good all the same.
			c.mu.Lock()
			c.closeLocked()
			c.mu.Unlock()
		}
		return Result{}, err
	}
	defer c.mu.Unlock()
	c.setState(StateLogout)
	res, err := c.run(ctx, &command{name: "LOGOUT", want: "BYE"})
	c.closeLocked()
	if err != nil {
		return res, err
	}
	if bye := c.byeText; bye != nil {
		return Result{Status: "BYE", Data: []Datum{{Text: bye}}}, nil
	}
	return res, nil
}

func (c *Client) closeLocked() {
	c.conn.Close()
	if c.closeFn != nil {
		c.closeFn()
	}
	c.setState(StateLogout)
	if c.broken == nil {
		c.broken = &Error{Kind: ErrAbort, Text: "connection closed after LOGOUT"}
	}
}

// Enable sends ENABLE capability (RFC 5161). After ENABLE UTF8=ACCEPT the
// client sends UTF-8 strings, APPEND uses the UTF8 literal form and Search
// rejects a charset.
func (c *Client) Enable(ctx context.Context, capability string) (Result, error) {
	if !c.has("ENABLE") {
		return Result{}, cmdError("ENABLE", "Server does not support ENABLE")
	}
	a, err := rawArg("ENABLE", capability)
	if err != nil {
		return Result{}, err
	}
	res, err := c.exec(ctx, &command{name: "ENABLE", args: []arg{a}})
	if err == nil && strings.Contains(strings.ToUpper(capability), "UTF8=ACCEPT") {
		c.utf8.Store(true)
	}
	return res, err
}

// ID sends ID (RFC 2971) with the given field/value pairs (nil sends ID NIL).
// Data holds the server's ID response.
func (c *Client) ID(ctx context.Context, fields ...string) (Result, error) {
	if len(fields)%2 != 0 {
		return Result{}, cmdError("ID", "fields must be name/value pairs")
	}
	var list argList
	if len(fields) == 0 {
		list.add(arg{text: "NIL"}, nil)
	} else {
		var b strings.Builder
		b.WriteByte('(')
		for i, f := range fields {
			a, err := c.strArg("ID", f, false)
			if err != nil {
				return Result{}, err
			}
			if a.lit != nil {
				return Result{}, cmdError("ID", "field too long or not ASCII: %.20q", f)
			}
			if i > 0 {
				b.WriteByte(' ')
			}
			if a.text == f { // send every field quoted, as RFC 2971 wants strings
				a.text = `"` + f + `"`
			}
			b.WriteString(a.text)
		}
		b.WriteByte(')')
		list.add(arg{text: b.String()}, nil)
	}
	return c.exec(ctx, &command{name: "ID", args: list.args, want: "ID"})
}

// Response returns and clears the cached untagged data of type code (for
// example "EXISTS", "UIDVALIDITY" or "ALERT"). Data is nil when none is
// cached. Like imaplib, Response("NO") always returns nothing. While an
// Idler's Next is waiting in another goroutine, Response waits for it to
// return (responses then go to the Idler, not the cache).
//
// The cache holds what arrived outside any command's result: responses
// the server sent on its own, and those of a type the command running did
// not return (EXPUNGE during UID MOVE, say). A command returns only the
// data that arrived while it ran, so data of its type that was cached
// before it stays here, as with imaplib's response(). The data taken are
// removed from what Unsolicited returns, and the other way round: both
// read the same cache.
func (c *Client) Response(code string) Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	if strings.EqualFold(code, "NO") {
		return Response{Type: code}
	}
	return Response{Type: code, Data: c.pop(strings.ToUpper(code))}
}

// Cached returns the cached untagged data of type code without clearing it
// (see Response for what the cache holds).
func (c *Client) Cached(code string) []Datum {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cached(strings.ToUpper(code))
}

// Unsolicited returns and clears every cached untagged response, whole
// (a response that carried literals keeps all its fragments) and in the
// order the server sent them: what Response returns type by type, with the
// order across types kept. That order is what gives FETCH and EXPUNGE
// sequence numbers their meaning, which per-type lists lose.
//
// A response code is its own Response right after the response that
// carried it, as an Idler delivers it: "* OK [ALERT] text" gives
// {OK, "[ALERT] text"} then {ALERT, ""}. Responses Response has already
// taken are not returned, and those Unsolicited returns are gone for
// Response: they share the cache. Nothing runs on the reader: the cache is
// filled while commands run, and Unsolicited only takes what is there.
// Like Response, it waits for an Idler's Next waiting in another goroutine.
func (c *Client) Unsolicited() []Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cache.takeAll()
}

// Recent returns the cached RECENT data, sending NOOP first when none is
// cached.
func (c *Client) Recent(ctx context.Context) (Result, error) {
	if c.State() == StateIdling {
		// Fail at once like every command: c.mu may be held by a blocked
		// Idler.Next on another goroutine.
		return Result{}, idlingError("NOOP")
	}
	c.mu.Lock()
	if list := c.pop("RECENT"); list != nil {
		c.mu.Unlock()
		return Result{Status: "OK", Data: list}, nil
	}
	c.mu.Unlock()
	res, err := c.Noop(ctx)
	if err != nil {
		return res, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return Result{Status: res.Status, Data: c.pop("RECENT")}, nil
}

// Xatom sends a command the library does not know, with raw arguments
// (checked for control characters, not quoted). Untagged data stays in the
// cache for Response; Data holds the tagged text. It may be used in any
// state but IDLING and LOGOUT.
func (c *Client) Xatom(ctx context.Context, name string, args ...string) (Result, error) {
	if err := checkName("XATOM", name); err != nil {
		return Result{}, err
	}
	cmd := &command{name: strings.ToUpper(name), check: "XATOM"}
	for _, a := range args {
		ra, err := rawArg(cmd.name, a)
		if err != nil {
			return Result{}, err
		}
		cmd.args = append(cmd.args, ra)
	}
	return c.exec(ctx, cmd)
}

func checkName(cmd, name string) error {
	if name == "" || !validType([]byte(name)) {
		return cmdError(cmd, "invalid command name %q", name)
	}
	return nil
}
