package imap

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/imapkit/imap/internal/wire"
)

// arg is one command argument as it goes on the wire.
type arg struct {
	text    string // sent as is (already validated and encoded)
	lit     []byte // non-nil: sent as a literal after text
	litMark string // prefix of the literal marker: "" or "~"
	after   string // sent right after the literal (e.g. ")" of UTF8 APPEND)
	secret  bool   // never traced
}

// command is one command to run.
type command struct {
	name   string // command name as sent, e.g. "UID FETCH"
	check  string // name in the state table; defaults to name
	args   []arg
	want   string // untagged type returned as data; "" returns the tagged text
	auth   func(ctx context.Context, challenge []byte) ([]byte, error)
	onDone func(status string)
	// reuse keeps the read buffer reusable (headers are copied) instead of
	// handing out stable buffers: right when literals are streamed away.
	reuse bool
}

// rawArg is an argument sent as given, after checking that no control
// character can reach the wire.
func rawArg(cmd, s string) (arg, error) {
	if err := wire.CheckArg(s); err != nil {
		return arg{}, &Error{Command: cmd, Kind: ErrCommand, Text: "invalid argument", Err: err}
	}
	return arg{text: s}, nil
}

// strArg encodes s as an astring: atom, quoted string or literal.
func (c *Client) strArg(cmd, s string, secret bool) (arg, error) {
	if err := wire.CheckArg(s); err != nil {
		return arg{}, &Error{Command: cmd, Kind: ErrCommand, Text: "invalid argument", Err: err}
	}
	return encodeForm(s, wire.AstringForm(s, c.utf8.Load()), secret), nil
}

func encodeForm(s string, f wire.Form, secret bool) arg {
	switch f {
	case wire.FormAtom:
		return arg{text: s, secret: secret}
	case wire.FormQuoted:
		return arg{text: string(wire.AppendQuoted(nil, s)), secret: secret}
	}
	return arg{lit: []byte(s), secret: secret}
}

// mailboxArg encodes a mailbox name: non-ASCII names are converted to
// modified UTF-7 unless UTF8=ACCEPT is enabled; ASCII names (including ones
// already encoded) pass unchanged.
func (c *Client) mailboxArg(cmd, name string) (arg, error) {
	if !c.utf8.Load() && !isASCII(name) {
		name = EncodeMailbox(name)
	}
	if strings.EqualFold(name, "INBOX") {
		return arg{text: "INBOX"}, nil
	}
	return c.strArg(cmd, name, false)
}

// patternArg encodes a LIST pattern, where % and * stay unquoted.
func (c *Client) patternArg(cmd, pattern string) (arg, error) {
	if !c.utf8.Load() && !isASCII(pattern) {
		pattern = EncodeMailbox(pattern)
	}
	if err := wire.CheckArg(pattern); err != nil {
		return arg{}, &Error{Command: cmd, Kind: ErrCommand, Text: "invalid argument", Err: err}
	}
	return encodeForm(pattern, wire.ListMailboxForm(pattern, c.utf8.Load()), false), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// args builds a command's argument list, stopping at the first error.
type argList struct {
	args []arg
	err  error
}

func (l *argList) add(a arg, err error) {
	if l.err == nil {
		l.err = err
	}
	l.args = append(l.args, a)
}

// checkState fails unless cmd may run now. c.mu must be held.
func (c *Client) checkState(name string) error {
	if c.broken != nil {
		return &Error{Command: name, Kind: ErrAbort, Text: c.broken.Text}
	}
	allowed, ok := commandStates[name]
	if !ok {
		return nil
	}
	if st := c.State(); !allowed.has(st) {
		return cmdError(name, "command %s illegal in state %s, only allowed in states %s", name, st, allowed)
	}
	return nil
}

// begin takes the connection for command name (whose name in the state
// table it is): on success c.mu is held and the command may run.
func (c *Client) begin(name string) error {
	if c.State() == StateIdling {
		// Fail fast instead of waiting for the Idler to release the lock.
		return idlingError(name)
	}
	c.mu.Lock()
	if err := c.checkState(name); err != nil {
		c.mu.Unlock()
		return err
	}
	return nil
}

// idlingError is the fail-fast error of a command issued while an Idler is
// open. It is made without c.mu: a blocked Idler.Next holds it, and the
// command has to fail at once, not when Next returns. IDLING is in no
// command's allowed states.
func idlingError(name string) error {
	allowed := commandStates[name]
	return cmdError(name, "command %s illegal in state %s, only allowed in states %s", name, StateIdling, allowed)
}

// exec runs cmd as a plain command: its data of type cmd.want are its
// result, everything else is cached.
func (c *Client) exec(ctx context.Context, cmd *command) (Result, error) {
	return c.do(ctx, cmd, &collector{want: cmd.want})
}

// do takes the connection and runs cmd, s taking its untagged responses.
func (c *Client) do(ctx context.Context, cmd *command, s cmdSink) (Result, error) {
	check := cmd.check
	if check == "" {
		check = cmd.name
	}
	if err := c.begin(check); err != nil {
		return Result{}, err
	}
	defer c.mu.Unlock()
	return c.runSink(ctx, cmd, s)
}

// run runs cmd as a plain command (see exec). c.mu must be held.
func (c *Client) run(ctx context.Context, cmd *command) (Result, error) {
	return c.runSink(ctx, cmd, &collector{want: cmd.want})
}

// runSink sends cmd and waits for its completion, s taking its untagged
// responses. c.mu must be held.
func (c *Client) runSink(ctx context.Context, cmd *command, s cmdSink) (Result, error) {
	stop := c.watch(ctx)
	defer stop()
	// Results reference the read buffers while the command runs; after it,
	// the reader goes back to a small reusable buffer.
	c.rd.SetStable(!cmd.reuse)
	// Data of the type the command returns go to its result from now on:
	// older data of that type stay in the cache, so that the result holds
	// only what arrived while the command ran.
	col := s.collected()
	c.cur = s
	defer func() {
		c.cur = nil
		if col.result != nil {
			col.spill(c) // not taken: the command failed
		}
		// A small cache is frozen into one allocation (see cache).
		c.cache.freeze()
		c.rd.SetStable(false)
		c.rd.Shrink()
	}()
	if c.broken != nil {
		return Result{}, &Error{Command: cmd.name, Kind: ErrAbort, Text: c.broken.Text}
	}
	// imaplib: a stale READ-ONLY code means the mailbox changed under us.
	for _, typ := range []string{"OK", "NO", "BAD"} {
		c.cache.drop(typ)
	}
	if c.cache.has("READ-ONLY") && !c.readOnly && c.State() == StateSelected {
		c.cache.drop("READ-ONLY")
		return Result{}, &Error{Command: cmd.name, Kind: ErrReadOnly, Text: "mailbox status changed to READ-ONLY"}
	}
	tag, done, err := c.send(ctx, cmd)
	if err != nil {
		return Result{}, err
	}
	if done.kind == kindNone {
		done, err = c.complete(ctx, cmd, tag)
		if err != nil {
			return Result{}, err
		}
	}
	res, err := c.finish(cmd, &done, col)
	if err == nil {
		err = s.failure(cmd.name)
	}
	return res, err
}

// send writes cmd, handling literals. If the server answers with a tagged
// completion before taking a literal, it is returned as done (otherwise
// done is of kindNone).
//
// Completions are passed by value here and below: a pointer to one would
// put every command's response on the heap, garbage that leaves holes
// among the long-lived objects of a connection being set up.
func (c *Client) send(ctx context.Context, cmd *command) (tag string, done response, err error) {
	tag = c.nextTag()
	line := make([]byte, 0, 64)
	line = append(append(append(line, tag...), ' '), cmd.name...)
	trace := c.tr().enabled()
	var tline []byte
	if trace {
		tline = append([]byte(nil), line...)
	}
	for _, a := range cmd.args {
		line = append(line, ' ')
		line = append(line, a.text...)
		if trace {
			tline = append(tline, ' ')
			tline = appendTrace(tline, a.text, a.secret)
		}
		if a.lit == nil {
			continue
		}
		sync := !c.nonSyncOK(len(a.lit))
		marker := a.litMark + "{" + itoa(len(a.lit))
		if !sync {
			marker += "+"
		}
		marker += "}"
		line = append(line, marker...)
		if trace {
			tline = append(tline, marker...)
		}
		if err := c.write(cmd.name, append(line, "\r\n"...), tline); err != nil {
			return tag, response{}, err
		}
		if sync {
			r, err := c.waitContinuation(ctx, cmd.name, tag)
			if err != nil || r.kind != kindNone {
				return tag, r, err
			}
		}
		if err := c.writeLiteral(cmd.name, a.lit, a.secret); err != nil {
			return tag, response{}, err
		}
		line = append(line[:0], a.after...)
		if trace {
			tline = append(tline[:0], a.after...)
		}
	}
	line = append(line, "\r\n"...)
	return tag, response{}, c.write(cmd.name, line, tline)
}

// nonSyncOK reports whether a literal of n bytes may be sent without
// waiting for the server's go-ahead (LITERAL+, or LITERAL- up to 4096).
func (c *Client) nonSyncOK(n int) bool {
	return c.has("LITERAL+") || (n <= 4096 && (c.has("LITERAL-") || c.has("IMAP4REV2")))
}

// waitContinuation reads responses until a "+" (returning kindNone) or the
// command's tagged completion (returning it).
func (c *Client) waitContinuation(ctx context.Context, name, tag string) (response, error) {
	for {
		var r response
		err := c.readResponse(&r, ctx, name, phaseCommand, time.Time{})
		if err != nil && errors.Is(err, wire.ErrLineTooLong) && errors.Is(err, ErrCommand) && !isOwnTooLong(err, tag) {
			// Fix (limits): a command error here would leave the server
			// waiting for the literal while the client goes on with the
			// next command. Only a skipped completion of this command
			// ends it cleanly.
			var tl *wire.LineTooLongError
			errors.As(err, &tl)
			return response{}, c.abort(name, tl, "line too long while waiting to send a literal")
		}
		if err != nil {
			return response{}, err
		}
		switch r.kind {
		case kindContinuation:
			return response{}, nil
		case kindTagged:
			if string(r.tag) != tag {
				return response{}, c.abort(name, nil, "unexpected tagged response: %q", clip(r.line))
			}
			return r, nil
		}
	}
}

// complete reads responses until tag completes. For LOGOUT it also stops at
// BYE, like imaplib.
func (c *Client) complete(ctx context.Context, cmd *command, tag string) (response, error) {
	var tooLong error
	for {
		var r response
		err := c.readResponse(&r, ctx, cmd.name, phaseCommand, time.Time{})
		if err != nil {
			if cmd.name == "LOGOUT" && c.byeText != nil {
				return response{kind: kindTagged, status: "BYE", text: c.byeText}, nil
			}
			if errors.Is(err, wire.ErrLineTooLong) && errors.Is(err, ErrCommand) && c.broken == nil {
				// The line was skipped and the stream is still framed: read
				// on to this command's completion so that the connection
				// stays usable, as ErrCommand promises, then report it.
				if tooLong == nil {
					tooLong = err
				}
				if isOwnTooLong(err, tag) {
					// Fix (limits): the skipped line was this command's
					// completion; waiting for it would only end in a
					// timeout.
					return response{}, tooLong
				}
				continue
			}
			return response{}, err
		}
		switch r.kind {
		case kindTagged:
			if string(r.tag) != tag {
				return response{}, c.abort(cmd.name, nil, "unexpected tagged response: %q", clip(r.line))
			}
			if tooLong != nil {
				return response{}, tooLong
			}
			return r, nil
		case kindContinuation:
			if cmd.auth == nil {
				// A stray "+" is not ours to answer; imaplib ignores it too.
				continue
			}
			reply, err := cmd.auth(ctx, r.text)
			if err != nil {
				return response{}, err
			}
			if err := c.write(cmd.name, append(reply, "\r\n"...), []byte("<redacted>")); err != nil {
				return response{}, err
			}
		case kindUntagged:
			if r.resp.Type == "BYE" && cmd.name == "LOGOUT" {
				return response{kind: kindTagged, status: "BYE", text: r.text}, nil
			}
		}
	}
}

// finish turns a completion into a Result and error.
func (c *Client) finish(cmd *command, done *response, col *collector) (Result, error) {
	if cmd.onDone != nil {
		cmd.onDone(done.status)
	}
	if c.byeText != nil && cmd.name != "LOGOUT" {
		e := c.abort(cmd.name, nil, "server said BYE: %s", c.byeText)
		e.Code = responseCode(c.byeText)
		return Result{}, e
	}
	text := clone(done.text)
	switch done.status {
	case "BAD":
		return Result{Status: "BAD", Data: []Datum{{Text: text}}},
			&Error{Command: cmd.name, Kind: ErrCommand, Status: "BAD", Code: responseCode(text), Text: string(text)}
	case "NO":
		return Result{Status: "NO", Data: []Datum{{Text: text}}},
			&Error{Command: cmd.name, Kind: ErrCommand, Status: "NO", Code: responseCode(text), Text: string(text)}
	}
	if cmd.want == "" {
		return Result{Status: done.status, Data: []Datum{{Text: text}}}, nil
	}
	return Result{Status: done.status, Data: col.take()}, nil
}

// write sends b with the write deadline; tline is its trace form.
func (c *Client) write(name string, b, tline []byte) error {
	c.conn.SetWriteDeadline(c.opDeadline())
	if _, err := c.conn.Write(b); err != nil {
		return c.abort(name, err, "socket error while sending")
	}
	c.tr().send(tline)
	return nil
}

func (c *Client) writeLiteral(name string, lit []byte, secret bool) error {
	c.conn.SetWriteDeadline(c.opDeadline())
	if _, err := c.conn.Write(lit); err != nil {
		return c.abort(name, err, "socket error while sending a literal")
	}
	c.tr().sendLiteral(len(lit), secret)
	return nil
}

func appendTrace(dst []byte, text string, secret bool) []byte {
	if secret {
		return append(dst, "<redacted>"...)
	}
	return append(dst, text...)
}

func quoteString(s string) string { return string(wire.AppendQuoted(nil, s)) }
