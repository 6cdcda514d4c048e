package imap

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imapkit/imap/internal/wire"
)

// Client is a connection to an IMAP4 server, speaking imaplib's protocol
// model: one command at a time, each finished by its tagged completion.
// A command's result holds the untagged data of its type that arrived while
// it ran; every other untagged response is cached, in arrival order, until
// Response (by type) or Unsolicited (in order) collects it.
//
// A Client is safe for use by several goroutines; commands are serialized.
// While an Idler is open, every other command fails at once with a state
// error instead of waiting.
//
// Fields are ordered so that the small ones share words: thousands of idle
// clients add up (the struct fits the 416-byte allocation class).
type Client struct {
	mu   sync.Mutex // serializes all I/O
	conn net.Conn
	rd   *wire.Reader
	opts Options // also the trace destinations (see tr)

	state atomic.Int32 // a State; read without mu for fast state checks
	utf8  atomic.Bool
	isTLS atomic.Bool              // read without mu, as State: IsTLS must not wait for an IDLE
	shown atomic.Pointer[net.Conn] // conn, for Conn without mu

	secure    bool // TLS, or a local stream
	readOnly  bool
	readDLSet bool  // readDL is valid
	protocol  uint8 // index in protocols, plus one; zero: not known yet

	host string // for TLS server name verification

	caps atomic.Pointer[capabilities] // also holds the welcome line

	tagNum int // the tag prefix is opts.TagPrefix

	cache   cache
	dropped atomic.Int64 // read without mu: Dropped must not wait for an IDLE

	// cur takes the untagged responses read while a command or an Idler
	// has the connection; nil: they are cached (see sink).
	cur     sink
	byeText []byte // text of a BYE seen on this connection

	// secrets holds the credentials of the authentication command running
	// (see scrub), nil otherwise: a server echoing them back must not get
	// them into a trace, a log or an error. A pointer, to keep idle
	// clients small.
	secrets *[][]byte

	broken  *Error // sticky: set once the connection is aborted
	closeFn func() error

	rs readState // how the next network read is bounded

	// readDL is the read deadline last set on conn, valid while readDLSet
	// (see setReadDeadline).
	readDL time.Time

	// skipUntil is when (Unix nanoseconds) the rest of a line longer than
	// MaxLine, being skipped, must have arrived (see beforeRead); zero
	// when none is.
	skipUntil int64
}

// protocols are the protocol versions a server may speak, preferred first.
var protocols = [...]string{"IMAP4REV2", "IMAP4REV1", "IMAP4"}

// NewClient runs an IMAP session over conn: it reads the greeting and the
// server's capabilities. conn's deadlines bound every wait; when conn is a
// *tls.Conn the connection counts as secure.
func NewClient(conn net.Conn, opts *Options) (*Client, error) {
	return newClient(context.Background(), conn, opts, "", false, nil)
}

func newClient(ctx context.Context, conn net.Conn, opts *Options, host string, stream bool, closeFn func() error) (*Client, error) {
	c := &Client{conn: conn, host: host, closeFn: closeFn}
	if opts != nil {
		c.opts = *opts
	}
	c.opts.setDefaults()
	c.rd = wire.NewReader(conn, c.opts.MaxLine)
	c.rd.BeforeRead = c.beforeRead
	c.rs.ctx = context.Background()
	_, isTLS := conn.(*tls.Conn)
	c.isTLS.Store(isTLS)
	c.shown.Store(&conn)
	c.secure = isTLS || stream
	if c.opts.TagPrefix == "" {
		// Kept in opts rather than a field of its own: a smaller Client.
		var b [2]byte
		_, _ = rand.Read(b[:])
		c.opts.TagPrefix = string(Int2AP(uint64(4096 + binary.BigEndian.Uint16(b[:])%(65536-4096))))
	}
	if err := c.greet(ctx); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

func (o *Options) setDefaults() {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxLine == 0 {
		o.MaxLine = DefaultMaxLine
	}
	if o.MaxLiteral == 0 {
		o.MaxLiteral = DefaultMaxLiteral
	}
	if o.MaxResponseLiterals == 0 {
		o.MaxResponseLiterals = DefaultMaxResponseLiterals
	}
	if o.MaxCached == 0 {
		o.MaxCached = DefaultMaxCached
	}
	if o.MaxCachedBytes == 0 {
		o.MaxCachedBytes = DefaultMaxCachedBytes
	}
}

// greet reads the greeting and the capabilities.
func (c *Client) greet(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	stop := c.watch(ctx)
	defer stop()
	var r response
	err := c.readResponse(&r, ctx, "", phaseCommand, time.Time{})
	if err != nil {
		return err
	}
	if r.kind != kindUntagged {
		return c.abort("", nil, "unexpected greeting: %q", clip(r.line))
	}
	switch r.resp.Type {
	case "PREAUTH":
		c.setState(StateAuth)
	case "OK":
		c.setState(StateNonAuth)
	case "BYE":
		return c.abort("", nil, "server refused the connection: %s", r.text)
	default:
		return &Error{Kind: ErrCommand, Text: "unexpected greeting: " + string(clip(r.line))}
	}
	if codes := c.pop("CAPABILITY"); len(codes) > 0 {
		c.storeCaps(r.line, codes[len(codes)-1].Text)
	} else {
		c.storeCaps(r.line, nil)
		if err := c.refreshCaps(ctx); err != nil {
			return err
		}
	}
	for i, v := range protocols {
		if c.has(v) {
			c.protocol = uint8(i + 1)
			break
		}
	}
	if c.protocol == 0 {
		return &Error{Kind: ErrCommand, Text: "server not IMAP4 compliant"}
	}
	c.tr().event("connected", "state", c.State().String(), "tagprefix", c.opts.TagPrefix)
	return nil
}

// refreshCaps runs CAPABILITY. c.mu must be held.
func (c *Client) refreshCaps(ctx context.Context) error {
	c.pop("CAPABILITY")
	res, err := c.run(ctx, &command{name: "CAPABILITY", want: "CAPABILITY"})
	if err != nil {
		return err
	}
	if len(res.Data) == 0 {
		return cmdError("CAPABILITY", "no CAPABILITY response from server")
	}
	c.setCaps(res.Data[len(res.Data)-1].Text)
	return nil
}

// capabilities is an immutable snapshot, swapped atomically so that Has
// never waits for a command (or an Idler) holding the connection. It is one
// string, the welcome line (which never changes) followed by the
// capabilities, upper-cased, sorted, without duplicates and separated by
// single spaces: two small allocations per client instead of a slice of
// strings, its backing array and a separate welcome line.
type capabilities struct {
	text string
	n    int // text[:n] is the welcome line
}

func (cs *capabilities) welcome() string { return cs.text[:cs.n] }
func (cs *capabilities) list() string    { return cs.text[cs.n:] }

// has reports whether the sorted list holds name: a binary search over
// the words of the list.
func (cs *capabilities) has(name string) bool {
	s := cs.list()
	for s != "" {
		mid := len(s) / 2
		start := strings.LastIndexByte(s[:mid], ' ') + 1
		end := len(s)
		if i := strings.IndexByte(s[start:], ' '); i >= 0 {
			end = start + i
		}
		switch w := s[start:end]; {
		case name == w:
			return true
		case name < w:
			s = s[:max(start-1, 0)]
		default:
			s = s[min(end+1, len(s)):]
		}
	}
	return false
}

// setCaps stores the capabilities in text, keeping the welcome line.
func (c *Client) setCaps(text []byte) { c.storeCaps(nil, text) }

// storeCaps stores the capabilities in text with the welcome line:
// greeting if not nil, else the current one.
func (c *Client) storeCaps(greeting, text []byte) {
	// The words, in an array on the stack when they are few: the slice
	// bytes.Fields returns would be short-lived garbage among a new
	// connection's long-lived objects.
	var words [24][]byte
	fields := words[:0]
	for w := range bytes.FieldsSeq(bytes.ToUpper(text)) {
		fields = append(fields, w)
	}
	slices.SortFunc(fields, bytes.Compare)
	fields = slices.CompactFunc(fields, bytes.Equal)
	old := ""
	if cs := c.caps.Load(); greeting == nil && cs != nil {
		old = cs.welcome()
	}
	n := len(greeting) + len(old) + len(fields)
	for _, f := range fields {
		n += len(f)
	}
	var b strings.Builder
	b.Grow(n)
	b.Write(greeting)
	b.WriteString(old)
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.Write(f)
	}
	c.caps.Store(&capabilities{text: b.String(), n: len(greeting) + len(old)})
}

// Capabilities returns the server's capabilities, upper-cased and sorted,
// as last reported (after connecting, STARTTLS and authentication).
func (c *Client) Capabilities() []string {
	if cs := c.caps.Load(); cs != nil && cs.list() != "" {
		return strings.Split(cs.list(), " ")
	}
	return nil
}

// Has reports whether the server advertised capability name (case-insensitive).
func (c *Client) Has(name string) bool { return c.has(strings.ToUpper(name)) }

// has is Has for an upper-case name.
func (c *Client) has(name string) bool {
	cs := c.caps.Load()
	return cs != nil && cs.has(name)
}

// State returns the current protocol state.
func (c *Client) State() State { return State(c.state.Load()) }

func (c *Client) setState(s State) { c.state.Store(int32(s)) }

// Welcome returns the server's greeting line, without CRLF.
func (c *Client) Welcome() []byte {
	if cs := c.caps.Load(); cs != nil {
		return []byte(cs.welcome())
	}
	return nil
}

// ProtocolVersion returns "IMAP4REV1" (or "IMAP4REV2", "IMAP4"): the
// protocol the server speaks, like imaplib's PROTOCOL_VERSION.
func (c *Client) ProtocolVersion() string {
	if c.protocol == 0 {
		return ""
	}
	return protocols[c.protocol-1]
}

// UTF8Enabled reports whether ENABLE UTF8=ACCEPT succeeded.
func (c *Client) UTF8Enabled() bool { return c.utf8.Load() }

// IsTLS reports whether the connection is encrypted (implicit TLS or after
// StartTLS). Like State and Has, it answers at once, also while an Idler
// waits.
func (c *Client) IsTLS() bool { return c.isTLS.Load() }

// Conn returns the underlying connection (the TLS one after StartTLS). It
// answers at once, also while an Idler waits. Reading from or writing to
// it directly corrupts the session.
func (c *Client) Conn() net.Conn { return *c.shown.Load() }

// Dropped returns how many untagged data were dropped because the cache
// reached Options.MaxCached or Options.MaxCachedBytes, or held too many
// response types, or because an Idler's queue or a command's result
// reached Options.MaxCached. It answers at once, also while an Idler
// waits.
func (c *Client) Dropped() int { return int(c.dropped.Load() + c.cache.evicted.Load()) }

// Shutdown closes the connection without logging out, like imaplib's
// shutdown. It is safe to call more than once and while another goroutine
// is blocked in a command, which then fails with an abort.
func (c *Client) Shutdown() error { return c.Close() }

// Close closes the connection without logging out, as every Go Close
// does: a Client is an io.Closer (Shutdown is imaplib's name for it). It
// is safe to call more than once and while another goroutine is blocked
// in a command, which then fails with an abort. The IMAP command CLOSE is
// CloseMailbox.
func (c *Client) Close() error {
	err := c.conn.Close()
	c.setState(StateLogout)
	if c.closeFn != nil {
		if e := c.closeFn(); err == nil {
			err = e
		}
	}
	if isClosedErr(err) {
		err = nil
	}
	return err
}

// nextTag returns a new command tag: the prefix and a decimal counter.
func (c *Client) nextTag() string {
	t := c.opts.TagPrefix + itoa(c.tagNum)
	c.tagNum++
	return t
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func clip(b []byte) []byte {
	if len(b) > 100 {
		return append(append([]byte(nil), b[:100]...), "..."...)
	}
	return b
}
