// Package record loads the benchmark corpus into a private Dovecot and
// captures the raw bytes of the server's answer to each workload command,
// producing a replay.Set.
//
// It speaks IMAP with a few lines of its own bufio code rather than with a
// client under test, so that the recordings do not depend on any contender.
package record

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/imapkit/imap/bench/corpus"
	"github.com/imapkit/imap/bench/replay"
	"github.com/imapkit/imap/internal/dovecot"
)

// Mailbox names used by the recordings.
const (
	MailboxMain    = "INBOX"   // the corpus: FETCH metadata and bodies
	MailboxBig     = "big"     // one large message
	MailboxSearch  = "search"  // many tiny messages for UID SEARCH
	MailboxExpunge = "expunge" // messages expunged while another connection idles
)

// Workload commands, as sent to Dovecot.
const (
	CmdFetchMeta = "FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"
	CmdFetchBody = "FETCH 1:* BODY.PEEK[]"
	CmdSearch    = "UID SEARCH ALL"
)

// Config says what to record.
type Config struct {
	Seed     uint64
	Messages int // corpus size for INBOX
	BigSize  int // bytes of the large message's attachment
	SearchN  int // messages in the search mailbox
	ExpungeN int // messages expunged during IDLE
	Logf     func(format string, args ...any)
	Corpus   []*corpus.Message // the corpus for Seed/Messages, if already generated
	Timeout  time.Duration     // per read; zero means 5 minutes
}

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// Record starts a private Dovecot, loads the mailboxes, captures every
// workload's response and stops the server.
func Record(ctx context.Context, cfg Config) (*replay.Set, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Minute
	}
	t0 := time.Now()
	srv, err := dovecot.Start(dovecot.Config{})
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	user, pass, err := srv.NewUser()
	if err != nil {
		return nil, err
	}

	msgs := cfg.Corpus
	if msgs == nil {
		msgs = corpus.Generate(cfg.Seed, cfg.Messages)
	}
	cfg.logf("record: delivering %d corpus messages, a %d-byte message, %d + %d small messages into Dovecot",
		len(msgs), cfg.BigSize, cfg.SearchN, cfg.ExpungeN)
	if err := srv.DeliverMaildir(user, MailboxMain, corpus.RawMessages(msgs)); err != nil {
		return nil, err
	}
	big := corpus.Big(cfg.Seed, cfg.BigSize)
	if err := srv.DeliverMaildir(user, MailboxBig, [][]byte{big.Raw}); err != nil {
		return nil, err
	}
	if err := srv.DeliverMaildir(user, MailboxSearch, corpus.Tiny(cfg.Seed, cfg.SearchN)); err != nil {
		return nil, err
	}
	if err := srv.DeliverMaildir(user, MailboxExpunge, corpus.Tiny(cfg.Seed+1, cfg.ExpungeN)); err != nil {
		return nil, err
	}

	set := replay.NewSet()
	set.Meta["server"] = dovecotVersion()
	set.Meta["seed"] = strconv.FormatUint(cfg.Seed, 10)
	set.Meta["messages"] = strconv.Itoa(len(msgs))
	set.Meta["big_message_bytes"] = strconv.Itoa(len(big.Raw))
	set.Meta["source"] = "dovecot"

	s, err := dial(ctx, srv.Addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if _, err := s.run(fmt.Sprintf("LOGIN %s %s", quote(user), quote(pass))); err != nil {
		return nil, err
	}
	caps, err := s.run("CAPABILITY")
	if err != nil {
		return nil, err
	}
	set.Meta["capability"] = strings.TrimSpace(strings.TrimPrefix(firstLine(caps.Untagged), "* CAPABILITY"))

	// Give the messages their flags, as a real mailbox would have.
	if _, err := s.run("SELECT INBOX"); err != nil {
		return nil, err
	}
	for _, st := range flagStores(msgs) {
		if _, err := s.run(st); err != nil {
			return nil, err
		}
	}
	if _, err := s.run("UNSELECT"); err != nil {
		return nil, err
	}

	record := func(mailbox string, kind replay.Kind, cmd string) error {
		t := time.Now()
		rec, err := s.run(cmd)
		if err != nil {
			return fmt.Errorf("recording %s in %s: %w", cmd, mailbox, err)
		}
		if !strings.HasPrefix(rec.Tagged, "OK") {
			return fmt.Errorf("recording %s in %s: server said %s", cmd, mailbox, rec.Tagged)
		}
		set.Add(mailbox, kind, rec)
		cfg.logf("record: %-8s %-10s %10d bytes in %v", mailbox, kind, len(rec.Untagged), time.Since(t).Round(time.Millisecond))
		return nil
	}
	for _, step := range []struct {
		mailbox string
		kind    replay.Kind
		cmd     string
	}{
		{MailboxMain, replay.KindSelect, "EXAMINE INBOX"},
		{MailboxMain, replay.KindFetchMeta, CmdFetchMeta},
		{MailboxMain, replay.KindFetchBody, CmdFetchBody},
		{MailboxBig, replay.KindSelect, "EXAMINE " + MailboxBig},
		{MailboxBig, replay.KindFetchBody, CmdFetchBody},
		{MailboxSearch, replay.KindSelect, "EXAMINE " + MailboxSearch},
		{MailboxSearch, replay.KindSearch, CmdSearch},
		{MailboxExpunge, replay.KindSelect, "EXAMINE " + MailboxExpunge},
	} {
		if err := record(step.mailbox, step.kind, step.cmd); err != nil {
			return nil, err
		}
	}
	if _, err := s.run("LOGOUT"); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}

	rec, err := recordExpunge(ctx, srv.Addr, user, pass, cfg)
	if err != nil {
		return nil, fmt.Errorf("recording IDLE EXPUNGE burst: %w", err)
	}
	set.Add(MailboxExpunge, replay.KindIdle, rec)
	cfg.logf("record: %-8s %-10s %10d bytes", MailboxExpunge, replay.KindIdle, len(rec.Untagged))
	cfg.logf("record: done in %v", time.Since(t0).Round(time.Millisecond))
	return set, nil
}

// recordExpunge idles on one connection while another expunges every
// message of the expunge mailbox, and captures what the idler receives.
func recordExpunge(ctx context.Context, addr, user, pass string, cfg Config) (*replay.Recording, error) {
	idler, err := dial(ctx, addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	defer idler.close()
	deleter, err := dial(ctx, addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	defer deleter.close()
	for _, s := range []*session{idler, deleter} {
		if _, err := s.run(fmt.Sprintf("LOGIN %s %s", quote(user), quote(pass))); err != nil {
			return nil, err
		}
		if _, err := s.run("SELECT " + MailboxExpunge); err != nil {
			return nil, err
		}
	}
	tag, err := idler.send("IDLE")
	if err != nil {
		return nil, err
	}
	line, err := idler.line()
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(line, []byte("+")) {
		return nil, fmt.Errorf("IDLE answered %q", line)
	}
	if _, err := deleter.run("STORE 1:* +FLAGS.SILENT (\\Deleted)"); err != nil {
		return nil, err
	}
	if _, err := deleter.run("EXPUNGE"); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for n := 0; n < cfg.ExpungeN; {
		line, err := idler.line()
		if err != nil {
			return nil, fmt.Errorf("after %d EXPUNGE lines: %w", n, err)
		}
		buf.Write(line)
		if bytes.HasSuffix(line, []byte(" EXPUNGE\r\n")) {
			n++
		}
	}
	if _, err := idler.w.WriteString("DONE\r\n"); err != nil {
		return nil, err
	}
	if err := idler.w.Flush(); err != nil {
		return nil, err
	}
	rest, err := idler.capture(tag)
	if err != nil {
		return nil, err
	}
	return &replay.Recording{Untagged: buf.Bytes(), Tagged: rest.Tagged}, nil
}

// flagStores returns STORE commands that give each message its corpus flags.
func flagStores(msgs []*corpus.Message) []string {
	byFlag := map[string][]int{}
	for i, m := range msgs {
		for _, f := range m.Flags {
			byFlag[f] = append(byFlag[f], i+1)
		}
	}
	flags := make([]string, 0, len(byFlag))
	for f := range byFlag {
		flags = append(flags, f)
	}
	sort.Strings(flags)
	var out []string
	for _, f := range flags {
		nums := byFlag[f]
		// Keep each command well under Dovecot's 64 KiB line limit.
		for len(nums) > 0 {
			n := min(len(nums), 4000)
			out = append(out, fmt.Sprintf("STORE %s +FLAGS.SILENT (%s)", seqSet(nums[:n]), f))
			nums = nums[n:]
		}
	}
	return out
}

// seqSet formats sorted numbers as an IMAP sequence set with ranges.
func seqSet(nums []int) string {
	var b strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d:%d", nums[i], nums[j])
		} else {
			b.WriteString(strconv.Itoa(nums[i]))
		}
		i = j + 1
	}
	return b.String()
}

func quote(s string) string { return strconv.Quote(s) }

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return strings.TrimRight(string(b), "\r")
}

func dovecotVersion() string {
	for _, p := range []string{"dovecot", "/usr/sbin/dovecot"} {
		if out, err := exec.Command(p, "--version").Output(); err == nil {
			return "Dovecot " + strings.TrimSpace(string(out))
		}
	}
	return "Dovecot"
}

// session is a minimal raw IMAP connection.
type session struct {
	conn    net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	n       int
	timeout time.Duration
}

func dial(ctx context.Context, addr string, timeout time.Duration) (*session, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &session{conn: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriter(c), timeout: timeout}
	greet, err := s.line()
	if err != nil {
		c.Close()
		return nil, err
	}
	if !bytes.HasPrefix(greet, []byte("* OK")) {
		c.Close()
		return nil, fmt.Errorf("greeting %q", greet)
	}
	return s, nil
}

func (s *session) close() { s.conn.Close() }

// line reads one line, CRLF included.
func (s *session) line() ([]byte, error) {
	s.conn.SetReadDeadline(time.Now().Add(s.timeout))
	return s.r.ReadBytes('\n')
}

func (s *session) send(cmd string) (string, error) {
	s.n++
	tag := fmt.Sprintf("R%04d", s.n)
	if _, err := fmt.Fprintf(s.w, "%s %s\r\n", tag, cmd); err != nil {
		return "", err
	}
	return tag, s.w.Flush()
}

// run sends cmd and captures its response.
func (s *session) run(cmd string) (*replay.Recording, error) {
	tag, err := s.send(cmd)
	if err != nil {
		return nil, err
	}
	rec, err := s.capture(tag)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(rec.Tagged, "NO") || strings.HasPrefix(rec.Tagged, "BAD") {
		return rec, fmt.Errorf("%s: %s", strings.Fields(cmd)[0], rec.Tagged)
	}
	return rec, nil
}

// capture reads every byte up to and including the line tagged tag.
func (s *session) capture(tag string) (*replay.Recording, error) {
	var buf bytes.Buffer
	prefix := []byte(tag + " ")
	for {
		line, err := s.line()
		if err != nil {
			return nil, err
		}
		buf.Write(line)
		if bytes.HasPrefix(line, prefix) {
			return replay.Split(buf.Bytes(), tag)
		}
		if n, ok := literalSize(line); ok {
			s.conn.SetReadDeadline(time.Now().Add(s.timeout))
			if _, err := io.CopyN(&buf, s.r, n); err != nil {
				return nil, err
			}
		}
	}
}

// literalSize parses "{N}\r\n" at the end of line.
func literalSize(line []byte) (int64, bool) {
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	if !bytes.HasSuffix(line, []byte("}")) {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(line[i+1:len(line)-1]), 10, 64)
	return n, err == nil && n >= 0
}
