package watch

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/imapkit/imap"
)

// session runs one connection: it (re)connects, resyncs its mailboxes and
// then waits for changes with IDLE (or polling), until ctx is done.
type session struct {
	w         *Watcher
	mailboxes []string
	notify    bool

	boxes    map[string]*box
	primary  *box          // the mailbox kept selected and idled on
	extras   []*box        // mailboxes checked with STATUS (or via NOTIFY)
	selected *box          // the mailbox selected now, if any
	hint     time.Duration // server-suggested minimum backoff
}

// box is a watched mailbox and what is known of it on this connection.
type box struct {
	name       string
	key        string
	st         *mailboxState // what has been reported
	uids       []uint32      // UIDs in sequence order, while selected
	exists     uint32
	pendingNew bool
	dirty      bool // needs a resync (overflow, NOTIFY, STATUS change)
}

func (s *session) run(ctx context.Context) {
	s.boxes = map[string]*box{}
	for _, name := range s.mailboxes {
		b := &box{name: name, key: stateKey(s.w.opts.Account, name)}
		s.boxes[name] = b
		if s.primary == nil && !s.notify {
			s.primary = b
		} else {
			s.extras = append(s.extras, b)
		}
	}
	failures := 0
	connected := false
	for ctx.Err() == nil {
		c, err := s.w.dial(ctx)
		s.selected = nil
		if err == nil {
			if connected || failures > 0 {
				s.w.emit(Event{Kind: EventReconnected, Mailbox: s.mailboxes[0]})
			}
			connected = true
			failures = 0
			s.hint = 0
			err = s.serve(ctx, c)
			if err == errOnceDone {
				logoutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.w.opts.ProbeTimeout)
				c.Logout(logoutCtx)
				cancel()
				return
			}
			c.Shutdown()
		}
		if ctx.Err() != nil {
			return
		}
		s.w.opts.Logger.Info("watch: connection lost", "mailboxes", s.mailboxes, "error", err)
		s.w.emit(Event{Kind: EventDisconnected, Mailbox: s.mailboxes[0], Err: err})
		s.noteUnavailable(err)
		if sleep(ctx, s.w.backoff(failures, s.hint)) != nil {
			return
		}
		failures++
	}
}

// noteUnavailable makes the backoff respect a server that said it is
// unavailable or overloaded.
func (s *session) noteUnavailable(err error) {
	if err == nil {
		return
	}
	msg := strings.ToUpper(err.Error())
	if strings.Contains(msg, "[UNAVAILABLE]") || strings.Contains(msg, "TOO MANY") || strings.Contains(msg, "[LIMIT]") {
		s.hint = 30 * time.Second
	}
}

// serve runs one connection until it fails.
func (s *session) serve(ctx context.Context, c *imap.Client) error {
	for _, ext := range []string{"QRESYNC", "CONDSTORE"} {
		if c.Has(ext) && c.State() == imap.StateAuth {
			if _, err := c.Enable(ctx, ext); err == nil {
				break
			}
		}
	}
	if s.notify {
		return s.serveNotify(ctx, c)
	}
	for _, b := range s.extras {
		if err := s.sync(ctx, c, b); err != nil {
			return err
		}
	}
	if err := s.sync(ctx, c, s.primary); err != nil {
		return err
	}
	if s.w.opts.Once {
		return errOnceDone
	}
	idle := c.Has("IDLE") && !s.w.opts.Poll
	for {
		if err := s.catchUp(ctx, c); err != nil {
			return err
		}
		var err error
		if idle {
			err = s.idleOnce(ctx, c)
		} else {
			err = s.pollOnce(ctx, c)
		}
		if err != nil {
			return err
		}
	}
}

// idleOnce runs one IDLE command until its restart interval, a change that
// needs a command, or a dead link.
func (s *session) idleOnce(ctx context.Context, c *imap.Client) error {
	d := s.w.opts.IdleRestart
	if len(s.extras) > 0 && !s.notify {
		d = min(d, s.w.opts.PollInterval)
	}
	idler, err := c.Idle(ctx, d)
	if err != nil {
		return err
	}
	err = s.idleWait(idler)
	if cerr := idler.Close(); err == nil {
		err = cerr
	}
	if err == errProbe {
		return s.probe(ctx, c)
	}
	return err
}

var (
	errProbe    = errors.New("no data from the server: probing")
	errOnceDone = errors.New("once: done")
)

func (s *session) idleWait(idler *imap.Idler) error {
	for {
		r, ok, err := idler.Next(s.w.opts.Inactivity)
		if err != nil {
			if errors.Is(err, imap.ErrIdleEnded) && !errors.Is(err, imap.ErrAbort) {
				return nil // the server ended IDLE: start a new one
			}
			return err
		}
		if !ok {
			if !idler.Deadline().IsZero() && !time.Now().Before(idler.Deadline()) {
				return nil // time to re-issue IDLE
			}
			return errProbe
		}
		s.handle(r)
		if s.needsCommand() {
			// Collect the rest of a burst before leaving IDLE.
			for {
				r, ok, err := idler.Next(50 * time.Millisecond)
				if err != nil || !ok {
					return nil
				}
				s.handle(r)
			}
		}
	}
}

// probe checks a silent link with NOOP under ProbeTimeout.
func (s *session) probe(ctx context.Context, c *imap.Client) error {
	pctx, cancel := context.WithTimeout(ctx, s.w.opts.ProbeTimeout)
	defer cancel()
	_, err := c.Noop(pctx)
	return err
}

// pollOnce waits PollInterval, then asks the server for changes with NOOP.
func (s *session) pollOnce(ctx context.Context, c *imap.Client) error {
	if err := sleep(ctx, s.w.opts.PollInterval); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, s.w.opts.ProbeTimeout)
	defer cancel()
	if _, err := c.Noop(pctx); err != nil {
		return err
	}
	s.handleCached(c)
	for _, b := range s.extras {
		b.dirty = true // Status check happens in catchUp
	}
	return nil
}

func (s *session) needsCommand() bool {
	for _, b := range s.boxes {
		if b.pendingNew || b.dirty {
			return true
		}
	}
	return false
}

// catchUp does what IDLE cannot: fetch new messages, resync mailboxes that
// need it, and check the extra mailboxes.
func (s *session) catchUp(ctx context.Context, c *imap.Client) error {
	s.handleCached(c)
	for _, b := range s.extras {
		if !s.notify {
			changed, err := s.statusChanged(ctx, c, b)
			if err != nil {
				return err
			}
			b.dirty = b.dirty || changed
		}
		if b.dirty && s.w.hasRoom() {
			if err := s.sync(ctx, c, b); err != nil {
				return err
			}
		}
	}
	if s.primary == nil {
		return nil
	}
	p := s.primary
	if s.selected != p || c.State() != imap.StateSelected || (p.dirty && s.w.hasRoom()) {
		return s.sync(ctx, c, p)
	}
	if p.pendingNew {
		p.pendingNew = false
		if err := s.fetchNew(ctx, c, p); err != nil {
			return err
		}
		s.handleCached(c)
	}
	return nil
}

// statusChanged reports whether STATUS shows changes in a mailbox that is
// not selected.
func (s *session) statusChanged(ctx context.Context, c *imap.Client, b *box) (bool, error) {
	if b.st == nil {
		return true, nil
	}
	items := "(MESSAGES UIDNEXT UIDVALIDITY"
	if c.Has("CONDSTORE") {
		items += " HIGHESTMODSEQ"
	}
	res, err := c.Status(ctx, b.name, items+")")
	if err != nil {
		return false, err
	}
	sts, err := imap.ParseStatus(res.Data)
	if err != nil || len(sts) == 0 {
		return true, nil
	}
	st := sts[len(sts)-1]
	known := uint32(len(decodeUIDs(b.st.UIDs)))
	return st.UIDValidity != b.st.UIDValidity || st.UIDNext-1 > b.st.LastUID ||
		st.Messages != known || (st.HighestModSeq != 0 && st.HighestModSeq != b.st.HighestModSeq), nil
}

// handleCached processes untagged data that arrived during commands.
func (s *session) handleCached(c *imap.Client) {
	for _, typ := range []string{"EXPUNGE", "VANISHED", "EXISTS", "FETCH", "STATUS", "ALERT"} {
		r := c.Response(typ)
		if len(r.Data) == 0 {
			continue
		}
		if typ == "FETCH" || typ == "STATUS" || typ == "VANISHED" {
			// Regroup fragments into whole responses.
			for _, resp := range splitResponses(typ, r.Data) {
				s.handle(resp)
			}
			continue
		}
		for _, d := range r.Data {
			s.handle(imap.Response{Type: typ, Data: []imap.Datum{d}})
		}
	}
}

// splitResponses groups cached fragments back into responses: a response
// ends with the first datum that carries no literal.
func splitResponses(typ string, data []imap.Datum) []imap.Response {
	var out []imap.Response
	start := 0
	for i, d := range data {
		if !d.IsLiteral() {
			out = append(out, imap.Response{Type: typ, Data: data[start : i+1]})
			start = i + 1
		}
	}
	return out
}

// handle applies one untagged response to the selected mailbox (or, for
// STATUS, to the named one) and emits events.
func (s *session) handle(r imap.Response) {
	p := s.selected
	text := ""
	if len(r.Data) > 0 {
		text = string(r.Data[0].Text)
	}
	switch r.Type {
	case "EXISTS":
		if p == nil {
			return
		}
		n, err := strconv.ParseUint(text, 10, 32)
		if err != nil {
			return
		}
		if uint32(n) > p.exists {
			p.pendingNew = true
		} else if uint32(n) < uint32(len(p.uids)) {
			p.dirty = true // count went down without EXPUNGE: resync
		}
		p.exists = uint32(n)
	case "EXPUNGE":
		if p == nil {
			return
		}
		seq, err := strconv.ParseUint(text, 10, 32)
		if err != nil || seq == 0 || int(seq) > len(p.uids) {
			p.dirty = true
			return
		}
		uid := p.uids[seq-1]
		p.uids = append(p.uids[:seq-1], p.uids[seq:]...)
		if p.exists > 0 {
			p.exists--
		}
		s.expunged(p, uid)
	case "VANISHED":
		if p == nil {
			return
		}
		set := strings.TrimSpace(strings.TrimPrefix(strings.ToUpper(text), "(EARLIER)"))
		uids, err := imap.ParseSequenceSet(set)
		if err != nil {
			p.dirty = true
			return
		}
		for _, uid := range uids {
			if i := indexOf(p.uids, uid); i >= 0 {
				p.uids = append(p.uids[:i], p.uids[i+1:]...)
				if p.exists > 0 {
					p.exists--
				}
				s.expunged(p, uid)
			}
		}
	case "FETCH":
		if p == nil {
			return
		}
		msg, err := imap.ParseFetchResponse(r)
		if err != nil || p.st == nil {
			return
		}
		uid := msg.UID
		if uid == 0 && msg.Seq > 0 && int(msg.Seq) <= len(p.uids) {
			uid = p.uids[msg.Seq-1]
		}
		if uid == 0 || uid > p.st.LastUID || msg.Flags == nil {
			return // a message not reported yet: it comes as New
		}
		ev := Event{Kind: EventFlags, Mailbox: p.name, UIDValidity: p.st.UIDValidity, UID: uid, Flags: msg.Flags, ModSeq: msg.ModSeq}
		if !s.w.emit(ev) {
			p.dirty = true
		}
		if msg.ModSeq > p.st.HighestModSeq {
			p.st.HighestModSeq = msg.ModSeq
		}
	case "STATUS":
		sts, err := imap.ParseStatus(r.Data)
		if err != nil {
			return
		}
		for _, st := range sts {
			if b := s.boxes[st.Mailbox]; b != nil {
				b.dirty = true
			}
		}
	case "ALERT":
		mb := s.mailboxes[0]
		if p != nil {
			mb = p.name
		}
		s.w.emit(Event{Kind: EventAlert, Mailbox: mb, Text: text})
	case "OK", "NO", "BAD":
		// [ALERT] arrives as its own ALERT entry; nothing else to do.
	}
}

func (s *session) expunged(b *box, uid uint32) {
	if b.st == nil || uid > b.st.LastUID {
		return // never reported, so nothing to retract
	}
	if !s.w.emit(Event{Kind: EventExpunge, Mailbox: b.name, UIDValidity: b.st.UIDValidity, UID: uid}) {
		b.dirty = true
	}
	b.st.UIDs = encodeUIDs(uidsUpTo(b.uids, b.st.LastUID))
	s.save(b)
}

func (s *session) save(b *box) {
	if err := s.w.state.put(b.key, b.st); err != nil {
		s.w.opts.Logger.Error("watch: cannot save state", "error", err)
	}
}

func indexOf(uids []uint32, uid uint32) int {
	lo, hi := 0, len(uids)
	for lo < hi {
		m := (lo + hi) / 2
		if uids[m] < uid {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(uids) && uids[lo] == uid {
		return lo
	}
	return -1
}

func uidsUpTo(uids []uint32, max uint32) []uint32 {
	n := len(uids)
	for n > 0 && uids[n-1] > max {
		n--
	}
	return uids[:n]
}
