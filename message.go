package imap

import (
	"bytes"
	"context"
	"strings"
	"time"
)

// Append appends message to mailbox ("" means INBOX) with optional flags
// (e.g. `\Seen`, parenthesized if needed) and internal date (zero: none).
// Line endings in message are normalised to CRLF. After ENABLE UTF8=ACCEPT
// a message with 8-bit bytes is sent in the UTF8 literal form; a 7-bit one
// as a plain literal (Courier refuses the UTF8 form for every message). Data holds the tagged text,
// where an APPENDUID code also lands in the cache.
func (c *Client) Append(ctx context.Context, mailbox, flags string, date time.Time, message []byte) (Result, error) {
	if mailbox == "" {
		mailbox = "INBOX"
	}
	var l argList
	l.add(c.mailboxArg("APPEND", mailbox))
	if flags != "" {
		l.add(rawArg("APPEND", parenthesize(flags)))
	}
	if !date.IsZero() {
		l.add(arg{text: Time2Internaldate(date)}, nil)
	}
	if l.err != nil {
		return Result{}, l.err
	}
	msg := normalizeCRLF(message)
	if c.utf8.Load() && has8bit(msg) {
		l.add(arg{text: "UTF8 (", lit: msg, litMark: "~", after: ")"}, nil)
	} else {
		l.add(arg{lit: msg}, nil)
	}
	return c.exec(ctx, &command{name: "APPEND", args: l.args})
}

// has8bit reports whether b has a byte outside ASCII.
func has8bit(b []byte) bool {
	for _, x := range b {
		if x >= 0x80 {
			return true
		}
	}
	return false
}

// normalizeCRLF turns every CR, LF and CRLF into CRLF, as imaplib's MapCRLF.
func normalizeCRLF(b []byte) []byte {
	if !bytes.ContainsAny(b, "\r\n") {
		return b
	}
	out := make([]byte, 0, len(b)+len(b)/40)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			out = append(out, '\r', '\n')
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, b[i])
		}
	}
	return out
}

// Check requests a checkpoint of the selected mailbox.
func (c *Client) Check(ctx context.Context) (Result, error) {
	return c.exec(ctx, &command{name: "CHECK"})
}

// Expunge removes messages marked \Deleted. Data holds the EXPUNGE data
// (sequence numbers, in the order the server sent them).
func (c *Client) Expunge(ctx context.Context) (Result, error) {
	return c.exec(ctx, &command{name: "EXPUNGE", want: "EXPUNGE"})
}

// Copy copies the messages in set (e.g. "1:3,5") to mailbox.
func (c *Client) Copy(ctx context.Context, set, mailbox string) (Result, error) {
	return c.setMailboxCmd(ctx, "COPY", set, mailbox)
}

// Move moves the messages in set to mailbox (RFC 6851; needs MOVE).
func (c *Client) Move(ctx context.Context, set, mailbox string) (Result, error) {
	if !c.Has("MOVE") {
		return Result{}, cmdError("MOVE", "server does not support MOVE")
	}
	return c.setMailboxCmd(ctx, "MOVE", set, mailbox)
}

func (c *Client) setMailboxCmd(ctx context.Context, name, set, mailbox string) (Result, error) {
	var l argList
	l.add(rawArg(name, set))
	l.add(c.mailboxArg(name, mailbox))
	if l.err != nil {
		return Result{}, l.err
	}
	return c.exec(ctx, &command{name: name, args: l.args})
}

// Fetch fetches items (e.g. "(FLAGS UID)" or "BODY.PEEK[]") of the messages
// in set. Data holds the FETCH data in imaplib's shape; ParseFetch turns it
// into Message values, and FetchMessages does both.
func (c *Client) Fetch(ctx context.Context, set, items string) (Result, error) {
	return c.rawCmd(ctx, "FETCH", "FETCH", set, items)
}

// Partial fetches length bytes from start of part of message num, with the
// obsolete PARTIAL command (imaplib parity).
func (c *Client) Partial(ctx context.Context, num, part string, start, length int) (Result, error) {
	return c.rawCmd(ctx, "PARTIAL", "FETCH", num, part, itoa(start), itoa(length))
}

// Store changes flags: op is e.g. "+FLAGS", "-FLAGS.SILENT" or
// "FLAGS"; flags are parenthesized if needed. Data holds the FETCH data.
func (c *Client) Store(ctx context.Context, set, op, flags string) (Result, error) {
	return c.rawCmd(ctx, "STORE", "FETCH", set, op, parenthesize(flags))
}

// Search searches the selected mailbox; criteria are sent raw, as in
// imaplib (quote strings yourself, or use Quote). charset, if not empty, is
// sent as CHARSET; it must be empty after ENABLE UTF8=ACCEPT. Data holds the
// SEARCH data; ParseSearch turns it into numbers.
func (c *Client) Search(ctx context.Context, charset string, criteria ...string) (Result, error) {
	args, err := c.searchArgs("SEARCH", charset, criteria)
	if err != nil {
		return Result{}, err
	}
	return c.rawCmd(ctx, "SEARCH", "SEARCH", args...)
}

func (c *Client) searchArgs(name, charset string, criteria []string) ([]string, error) {
	var args []string
	if charset != "" {
		if c.utf8.Load() {
			return nil, cmdError(name, "Non-None charset not valid in UTF8 mode")
		}
		args = append(args, "CHARSET", charset)
	}
	return append(args, criteria...), nil
}

// Sort searches and sorts (RFC 5256): charset ("" means UTF-8), the sort
// criteria like "(REVERSE DATE)", then the search criteria. The charset
// comes first, as in Search and Thread (imaplib's sort takes it second).
// Data holds the SORT data.
func (c *Client) Sort(ctx context.Context, charset, criteria string, search ...string) (Result, error) {
	if charset == "" {
		charset = "UTF-8"
	}
	args := append([]string{parenthesize(criteria), charset}, search...)
	return c.rawCmd(ctx, "SORT", "SORT", args...)
}

// Thread threads messages (RFC 5256): charset ("" means UTF-8), the
// algorithm such as "REFERENCES", then the search criteria. The charset
// comes first, as in Search and Sort (imaplib's thread takes it second).
// Data holds the THREAD data.
func (c *Client) Thread(ctx context.Context, charset, algorithm string, search ...string) (Result, error) {
	if charset == "" {
		charset = "UTF-8"
	}
	args := append([]string{algorithm, charset}, search...)
	return c.rawCmd(ctx, "THREAD", "THREAD", args...)
}

// UID runs a command that takes UIDs instead of sequence numbers: FETCH,
// SEARCH, SORT, THREAD, STORE, COPY, MOVE or EXPUNGE. args are raw except
// the mailbox of COPY and MOVE, which is encoded like any mailbox name.
// Data holds the SEARCH, SORT or THREAD data for those, FETCH otherwise.
func (c *Client) UID(ctx context.Context, cmdName string, args ...string) (Result, error) {
	sub := strings.ToUpper(cmdName)
	if _, ok := commandStates[sub]; !ok {
		return Result{}, cmdError("UID", "Unknown IMAP4 UID command: %s", cmdName)
	}
	want := "FETCH"
	switch sub {
	case "SEARCH", "SORT", "THREAD":
		want = sub
	}
	var l argList
	for i, a := range args {
		if (sub == "COPY" || sub == "MOVE") && i == len(args)-1 {
			l.add(c.mailboxArg("UID "+sub, a))
			continue
		}
		l.add(rawArg("UID "+sub, a))
	}
	if l.err != nil {
		return Result{}, l.err
	}
	return c.exec(ctx, &command{name: "UID " + sub, check: sub, args: l.args, want: want})
}

// rawCmd runs a command whose arguments are all raw.
func (c *Client) rawCmd(ctx context.Context, name, want string, args ...string) (Result, error) {
	var l argList
	for _, a := range args {
		l.add(rawArg(name, a))
	}
	if l.err != nil {
		return Result{}, l.err
	}
	return c.exec(ctx, &command{name: name, args: l.args, want: want})
}

// Quote returns s as an IMAP quoted string, for building raw criteria. It
// fails on control characters, which cannot be quoted.
func Quote(s string) (string, error) {
	if _, err := rawArg("", s); err != nil {
		return "", err
	}
	return quoteString(s), nil
}
