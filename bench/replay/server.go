package replay

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultCapability is the capability list the server advertises.
const DefaultCapability = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"

// Push makes the server push "* N EXISTS" lines to a client idling in
// Mailbox, for measuring push latency.
type Push struct {
	// Mailbox is the mailbox whose IDLE pushes (INBOX if empty).
	Mailbox string
	// Count lines are pushed, one every Interval.
	Count    int
	Interval time.Duration
	// Written, if set, is called with the index of each line and the time
	// taken right before the line was written to the socket.
	Written func(i int, t time.Time)
}

// Config configures a Server.
type Config struct {
	// Set holds the recordings served. It may be nil.
	Set *Set
	// Capability overrides DefaultCapability.
	Capability string
	// Push, if set, makes IDLE in Push.Mailbox push EXISTS lines.
	Push *Push
}

// Server is a loopback replay server. Create it with Listen.
type Server struct {
	ln  net.Listener
	cfg Config

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	idling map[net.Conn]struct{} // connections waiting in IDLE
	closed bool
	wg     sync.WaitGroup
}

// Listen starts a server on addr ("127.0.0.1:0" picks a free port).
func Listen(addr string, cfg Config) (*Server, error) {
	if cfg.Capability == "" {
		cfg.Capability = DefaultCapability
	}
	if cfg.Set == nil {
		cfg.Set = NewSet()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, cfg: cfg, conns: map[net.Conn]struct{}{}, idling: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr returns the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Conns returns the number of open connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// CloseConns closes every open connection, leaving the listener running,
// and waits until their handlers have noticed.
func (s *Server) CloseConns() {
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	for s.Conns() > 0 {
		time.Sleep(time.Millisecond)
	}
}

// PushAll writes line (CRLF added) to every connection waiting in IDLE and
// returns how many there were. While a connection idles its handler only
// reads, so the write races with nothing.
func (s *Server) PushAll(line string) int {
	b := []byte(line + "\r\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.idling {
		c.Write(b)
	}
	return len(s.idling)
}

// Close stops listening, closes every connection and waits for their
// handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors: back off as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

type session struct {
	s        *Server
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	mailbox  string
	selected bool
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	ss := &session{s: s, conn: c, r: bufio.NewReaderSize(c, 1024), w: bufio.NewWriterSize(c, 1024)}
	fmt.Fprintf(ss.w, "* OK [CAPABILITY %s] imapkit replay server ready.\r\n", s.cfg.Capability)
	if ss.w.Flush() != nil {
		return
	}
	for {
		line, err := ss.readCommand()
		if err != nil {
			return
		}
		done, err := ss.handle(line)
		if err == nil {
			err = ss.w.Flush()
		}
		if done || err != nil {
			return
		}
	}
}

// readCommand reads one command line, resolving literals in it.
func (ss *session) readCommand() (string, error) {
	var b strings.Builder
	for {
		line, err := ss.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimRight(line, "\r\n")
		n, sync, ok := trailingLiteral(line)
		if !ok {
			b.WriteString(line)
			return b.String(), nil
		}
		b.WriteString(line[:strings.LastIndexByte(line, '{')])
		if sync {
			if _, err := io.WriteString(ss.conn, "+ Ready for literal data\r\n"); err != nil {
				return "", err
			}
		}
		if n > 1<<20 {
			return "", errors.New("literal too large")
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(ss.r, buf); err != nil {
			return "", err
		}
		b.WriteString(strconv.Quote(string(buf)))
	}
}

// trailingLiteral parses "{N}" or "{N+}" at the end of line.
func trailingLiteral(line string) (n int, sync, ok bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false, false
	}
	num := line[i+1 : len(line)-1]
	sync = true
	if strings.HasSuffix(num, "+") || strings.HasSuffix(num, "-") {
		num, sync = num[:len(num)-1], false
	}
	v, err := strconv.Atoi(num)
	if err != nil || v < 0 {
		return 0, false, false
	}
	return v, sync, true
}

// nextWord splits s at the first space.
func nextWord(s string) (word, rest string) {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// mailboxArg decodes an astring: quoted (with escapes) or atom.
func mailboxArg(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, `"`) {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return strings.Trim(s, `"`)
	}
	w, _ := nextWord(s)
	return w
}

func (ss *session) tagged(tag, text string) {
	ss.w.WriteString(tag)
	ss.w.WriteByte(' ')
	ss.w.WriteString(text)
	ss.w.WriteString("\r\n")
}

// handle answers one command. done reports that the connection should end.
func (ss *session) handle(line string) (done bool, err error) {
	tag, rest := nextWord(line)
	cmd, args := nextWord(rest)
	cmd = strings.ToUpper(cmd)
	if cmd == "UID" {
		var sub string
		sub, args = nextWord(args)
		cmd = "UID " + strings.ToUpper(sub)
	}
	switch cmd {
	case "CAPABILITY":
		fmt.Fprintf(ss.w, "* CAPABILITY %s\r\n", ss.s.cfg.Capability)
		ss.tagged(tag, "OK Capability completed.")
	case "NOOP", "CHECK":
		ss.tagged(tag, "OK "+titleCase(cmd)+" completed.")
	case "LOGIN", "AUTHENTICATE":
		ss.tagged(tag, fmt.Sprintf("OK [CAPABILITY %s] Logged in", ss.s.cfg.Capability))
	case "ENABLE":
		ss.tagged(tag, "OK Enabled.")
	case "ID":
		ss.w.WriteString("* ID NIL\r\n")
		ss.tagged(tag, "OK ID completed.")
	case "SELECT", "EXAMINE":
		ss.mailbox, ss.selected = mailboxArg(args), true
		if rec := ss.s.cfg.Set.Get(ss.mailbox, KindSelect); rec != nil {
			ss.w.Write(rec.Untagged)
		} else {
			ss.w.WriteString("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n" +
				"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n" +
				"* 0 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY 1700000000] UIDs valid\r\n* OK [UIDNEXT 1] Predicted next UID\r\n")
		}
		if cmd == "EXAMINE" {
			ss.tagged(tag, "OK [READ-ONLY] Examine completed.")
		} else {
			ss.tagged(tag, "OK [READ-WRITE] Select completed.")
		}
	case "CLOSE", "UNSELECT":
		ss.selected = false
		ss.tagged(tag, "OK "+titleCase(cmd)+" completed.")
	case "FETCH", "UID FETCH", "SEARCH", "UID SEARCH":
		if !ss.selected {
			ss.tagged(tag, "BAD No mailbox selected.")
			return false, nil
		}
		kind := KindSearch
		if strings.HasSuffix(cmd, "FETCH") {
			kind = fetchKind(args)
		}
		rec := ss.s.cfg.Set.Get(ss.mailbox, kind)
		if rec == nil {
			ss.tagged(tag, fmt.Sprintf("NO [NONEXISTENT] no %s recording for mailbox %q", kind, ss.mailbox))
			return false, nil
		}
		return false, ss.writeRecording(tag, rec)
	case "IDLE":
		return ss.idle(tag)
	case "LOGOUT":
		ss.w.WriteString("* BYE Logging out\r\n")
		ss.tagged(tag, "OK Logout completed.")
		return true, ss.w.Flush()
	default:
		ss.tagged(tag, "BAD Unknown command.")
	}
	return false, nil
}

func titleCase(s string) string {
	return s[:1] + strings.ToLower(s[1:])
}

// fetchKind tells a body fetch from a metadata fetch.
func fetchKind(args string) Kind {
	u := strings.ToUpper(args)
	if strings.Contains(u, "ENVELOPE") || strings.Contains(u, "BODYSTRUCTURE") {
		return KindFetchMeta
	}
	if strings.Contains(u, "BODY[") || strings.Contains(u, "BODY.PEEK[") || strings.Contains(u, "BINARY") ||
		strings.Contains(strings.ReplaceAll(u, "RFC822.SIZE", ""), "RFC822") {
		return KindFetchBody
	}
	return KindFetchMeta
}

// writeRecording writes rec's untagged bytes and a tagged line for tag with
// a single vectored write.
func (ss *session) writeRecording(tag string, rec *Recording) error {
	if err := ss.w.Flush(); err != nil {
		return err
	}
	bufs := net.Buffers{rec.Untagged, []byte(tag + " " + rec.Tagged + "\r\n")}
	_, err := bufs.WriteTo(ss.conn)
	return err
}

func (ss *session) idle(tag string) (bool, error) {
	ss.w.WriteString("+ idling\r\n")
	if err := ss.w.Flush(); err != nil {
		return true, err
	}
	var stop chan struct{}
	var pushDone chan struct{}
	if p := ss.s.cfg.Push; p != nil && ss.selected && normMailbox(ss.mailbox) == normMailbox(orInbox(p.Mailbox)) {
		stop, pushDone = make(chan struct{}), make(chan struct{})
		go ss.push(p, stop, pushDone)
	} else if rec := ss.s.cfg.Set.Get(ss.mailbox, KindIdle); rec != nil && ss.selected {
		if _, err := ss.conn.Write(rec.Untagged); err != nil {
			return true, err
		}
	}
	ss.s.mu.Lock()
	ss.s.idling[ss.conn] = struct{}{}
	ss.s.mu.Unlock()
	line, err := ss.r.ReadString('\n')
	ss.s.mu.Lock()
	delete(ss.s.idling, ss.conn)
	ss.s.mu.Unlock()
	if stop != nil {
		close(stop)
		<-pushDone
	}
	if err != nil {
		return true, err
	}
	if !strings.EqualFold(strings.TrimRight(line, "\r\n"), "DONE") {
		ss.tagged(tag, "BAD Expected DONE.")
		return false, nil
	}
	text := "OK Idle completed."
	if rec := ss.s.cfg.Set.Get(ss.mailbox, KindIdle); rec != nil && rec.Tagged != "" {
		text = rec.Tagged
	}
	ss.tagged(tag, text)
	return false, nil
}

func orInbox(m string) string {
	if m == "" {
		return "INBOX"
	}
	return m
}

// push writes p.Count EXISTS lines, one every p.Interval, until stop.
func (ss *session) push(p *Push, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	var line []byte
	for i := range p.Count {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		line = fmt.Appendf(line[:0], "* %d EXISTS\r\n", i+1)
		now := time.Now()
		if p.Written != nil {
			p.Written(i, now)
		}
		if _, err := ss.conn.Write(line); err != nil {
			return
		}
	}
}
