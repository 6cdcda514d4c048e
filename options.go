package imap

import (
	"crypto/tls"
	"io"
	"log/slog"
	"time"
)

// Defaults used when the corresponding Options field is zero.
const (
	// DefaultTimeout bounds every wait for the server: each read or write
	// must make progress within it. IDLE waits are bounded by the Idler's
	// own deadline instead.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxLine is imaplib's _MAXLINE.
	DefaultMaxLine = 1_000_000
	// DefaultMaxLiteral bounds a single literal the server may send.
	DefaultMaxLiteral = 1 << 30
	// DefaultMaxResponseLiterals bounds the sum of the literals of one
	// response that is not a FETCH body section (ENVELOPE strings, mailbox
	// names, ...).
	DefaultMaxResponseLiterals = 16 << 20
	// DefaultMaxCached bounds the number of untagged data the client keeps
	// for Response; a server flooding unsolicited data cannot grow it
	// without bound.
	DefaultMaxCached = 1_000_000
	// DefaultMaxCachedBytes bounds the bytes of untagged data the client
	// keeps for Response and Unsolicited, counting 64 bytes per datum on
	// top of its text: 16 MiB holds the flag changes of about 150,000
	// messages ("* 1 FETCH (UID 1 FLAGS (\Seen))" and its overhead are
	// about 100 bytes), far beyond what a session leaves between two
	// collections, and equals DefaultMaxResponseLiterals, so that one
	// response a command may legitimately receive also fits. It is small
	// enough that thousands of clients flooded at once do not exhaust a
	// machine; a command's own result (a FETCH) is not counted.
	DefaultMaxCachedBytes = 16 << 20
)

// Options configures a Client. A nil *Options is equivalent to a zero
// Options, and every zero field means its default.
type Options struct {
	// Timeout bounds each wait for the server to make progress (per read and
	// per write, not per command). Zero means DefaultTimeout; a negative
	// value disables it.
	Timeout time.Duration

	// TLSConfig is used by DialTLS and StartTLS. When ServerName is empty it
	// is taken from the address. Verification is on unless the config turns
	// it off.
	TLSConfig *tls.Config

	// MaxLine is the longest line accepted from the server (default
	// DefaultMaxLine). A longer line is a command error.
	MaxLine int

	// MaxLiteral is the largest single literal accepted from the server
	// (default DefaultMaxLiteral).
	MaxLiteral int64

	// MaxResponseLiterals bounds the literals of one non-body response
	// (default DefaultMaxResponseLiterals).
	MaxResponseLiterals int64

	// MaxCached bounds the untagged data kept for Response and
	// Unsolicited (default DefaultMaxCached), and separately the data of
	// one command's result. Past it the oldest half of the type holding
	// the most data is dropped and counted in (*Client).Dropped.
	MaxCached int

	// MaxCachedBytes bounds the bytes of untagged data kept for Response
	// and Unsolicited, each datum counting its bytes plus 64 for its
	// bookkeeping (default DefaultMaxCachedBytes). Past it the oldest half of
	// the type holding the most bytes is dropped and counted in
	// (*Client).Dropped. A command's own result (the FETCH data of a
	// Fetch) is not bounded by it: its size is what the caller asked for.
	MaxCachedBytes int

	// MaxNesting bounds list nesting in the typed results of FetchMessages
	// (default MaxNesting).
	MaxNesting int

	// InsecureAuth allows LOGIN and AUTHENTICATE on a connection that is
	// neither TLS nor a local stream. Without it, sending credentials in
	// plaintext is refused before anything is sent.
	InsecureAuth bool

	// Trace, if set, receives a protocol trace: "C: " lines sent and "S: "
	// lines received. Passwords and authentication payloads are redacted.
	Trace io.Writer

	// Logger, if set, receives the same trace at debug level, plus
	// connection events at info level. Secrets are redacted.
	Logger *slog.Logger

	// StreamStderr receives the standard error of a DialStream command
	// (default os.Stderr, as with imaplib's IMAP4_stream).
	StreamStderr io.Writer

	// TagPrefix overrides the random four-letter tag prefix (tests).
	TagPrefix string
}
