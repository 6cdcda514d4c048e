package imap

import (
	"errors"
	"fmt"
	"strings"
)

// The three kinds of failure, after imaplib's error, abort and readonly
// exceptions. Every error a Client returns is an *Error that matches exactly
// one of them with errors.Is.
var (
	// ErrCommand reports a failed command on a connection that is still
	// usable: a tagged NO or BAD, a command issued in the wrong state, a
	// missing capability, or an argument that cannot be sent.
	ErrCommand = errors.New("command failed")

	// ErrAbort reports that the connection can no longer be used: EOF, a
	// network error, a timeout in the middle of a response, a protocol
	// violation, or BYE. Discard the Client and dial again.
	ErrAbort = errors.New("connection aborted")

	// ErrReadOnly reports that the selected mailbox became read-only while
	// the client asked for read-write access. The connection is usable.
	ErrReadOnly = errors.New("mailbox is read-only")
)

// Error is the error type returned by Client methods. It names the command
// that failed and, through errors.Is, whether the connection survived.
type Error struct {
	Command string // the IMAP command, e.g. "FETCH"; empty for the greeting
	Kind    error  // ErrCommand, ErrAbort or ErrReadOnly
	Status  string // the server's status word ("NO", "BAD", "BYE"), if any
	Code    string // the response code of the server's reply ("AUTHENTICATIONFAILED", "TRYCREATE", …), if any
	Text    string // the server's text or a description of what went wrong
	Err     error  // the underlying cause, such as a network error, if any
}

// Error returns "imap: COMMAND: [connection aborted: ][STATUS: ]text[: cause]".
func (e *Error) Error() string {
	cmd := e.Command
	if cmd == "" {
		cmd = "connect"
	}
	msg := "imap: " + cmd
	switch e.Kind {
	case ErrAbort:
		msg += ": connection aborted"
	case ErrReadOnly:
		msg += ": read-only"
	}
	if e.Status != "" {
		msg += ": " + e.Status
	}
	if e.Text != "" {
		msg += ": " + e.Text
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is the kind of e.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying cause, so that errors.Is(err,
// context.Canceled) or os.ErrDeadlineExceeded work as expected.
func (e *Error) Unwrap() error { return e.Err }

// Usable reports whether the connection can still be used after e.
func (e *Error) Usable() bool { return e.Kind != ErrAbort }

// responseCode returns the response code at the start of a status
// response's text ("[TRYCREATE] …" gives "TRYCREATE"), upper-cased and
// without its arguments; "" when there is none.
func responseCode(text []byte) string {
	if len(text) < 2 || text[0] != '[' {
		return ""
	}
	end := 1
	for end < len(text) && text[end] != ']' && text[end] != ' ' {
		end++
	}
	if end == len(text) || end == 1 {
		return ""
	}
	return strings.ToUpper(string(text[1:end]))
}

func cmdError(cmd, format string, args ...any) *Error {
	return &Error{Command: cmd, Kind: ErrCommand, Text: fmt.Sprintf(format, args...)}
}

func abortError(cmd string, err error, format string, args ...any) *Error {
	return &Error{Command: cmd, Kind: ErrAbort, Text: fmt.Sprintf(format, args...), Err: err}
}
