package watch

import (
	"context"
	"errors"
	"slices"
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
	// extrasAt is when the extra mailboxes were last checked with STATUS.
	extrasAt time.Time
}

// box is a watched mailbox and what is known of it on this connection.
type box struct {
	name string
	key  string
	st   *mailboxState // what has been reported
	// selected once: from then on a failing SELECT is a trouble to wait
	// out, not a mistake in the options.
	everSelected bool

	// While selected: the UIDs in sequence order, including ghosts.
	uids []uint32
	// ghosts are UIDs that vanished before they could be fetched: never
	// reported, so their expunge is not news either.
	ghosts map[uint32]bool
	// undelivered are expunged UIDs whose Expunge did not fit the buffer:
	// they stay in the state's UID set so that the next resync reports them.
	undelivered []uint32

	pendingNew bool      // EXISTS announced messages not fetched yet
	dirty      bool      // needs a resync (overflow, NOTIFY, STATUS change, confusion)
	stale      bool      // uids no longer maps sequence numbers: ignore them until the resync
	announce   bool      // report Resynced after the next sync (new connection, overflow)
	newModSeq  uint64    // highest MODSEQ seen in New events since the last commit
	unsaved    bool      // st changed since it was last written
	noAt       time.Time // last resync caused by an untagged NO
	status     statusSeen
}

// statusSeen is what the last sync showed of a mailbox, to tell whether a
// STATUS response reports anything new.
type statusSeen struct {
	uidValidity, uidNext, messages uint32
	highestModSeq                  uint64
}

const (
	// cancelGrace is how long a cancelled session may take to end its
	// IDLE and log out before its connection is simply closed.
	cancelGrace = 300 * time.Millisecond
	// roomPoll is how often a watcher that waits for room in the events
	// buffer (to resync after an overflow) checks for it.
	roomPoll = 100 * time.Millisecond
	// noResyncInterval limits resyncs caused by untagged NO responses.
	noResyncInterval = 10 * time.Second
	// maxCatchUpRounds bounds the command rounds between two IDLEs.
	maxCatchUpRounds = 10
)

// run serves the session's mailboxes until ctx is done. It returns an
// error only when giving up: the first login is refused, or (Once) the
// connection fails before the sync is done.
func (s *session) run(ctx context.Context) error {
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
			for _, b := range s.boxes {
				b.pendingNew, b.stale, b.announce = false, false, true
			}
			err = s.serveConn(ctx, c)
			if err == errOnceDone {
				return nil
			}
		} else if !connected && fatal(err) && ctx.Err() == nil {
			return err
		}
		var missing *MailboxError
		if errors.As(err, &missing) && ctx.Err() == nil {
			return err // a mailbox that never could be selected: the options are wrong
		}
		if ctx.Err() != nil {
			return nil
		}
		if s.w.opts.Once {
			return err
		}
		s.w.opts.Logger.Info("watch: connection lost", "mailboxes", s.mailboxes, "error", err)
		s.w.emit(Event{Kind: EventDisconnected, Mailbox: s.mailboxes[0], Err: err})
		s.noteUnavailable(err)
		if sleep(ctx, s.w.backoff(failures, s.hint)) != nil {
			return nil
		}
		failures++
	}
	return nil
}

// serveConn serves one connection and closes it. When ctx is cancelled it
// logs out, but never takes more than cancelGrace for it: a server that
// stopped answering must not hold up Run.
func (s *session) serveConn(ctx context.Context, c *imap.Client) error {
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
			select {
			case <-done:
			case <-time.After(cancelGrace):
				c.Shutdown()
			}
		}
	}()
	defer close(done)
	err := s.serve(ctx, c)
	s.flush()
	if err == errOnceDone || ctx.Err() != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.w.opts.ProbeTimeout)
		c.Logout(lctx)
		cancel()
	}
	c.Shutdown()
	return err
}

// noteUnavailable makes the backoff respect a server that said it is
// unavailable or overloaded.
func (s *session) noteUnavailable(err error) {
	if err == nil {
		return
	}
	if temporary(err) {
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
	s.extrasAt = time.Now()
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
	// Before every IDLE, ask: some servers (go-imap's, for one) report a
	// change made since the last command only in answer to the next
	// command, not when IDLE starts, so mail delivered between a sync and
	// IDLE would wait for the next restart. NOOP makes them say it now.
	pctx, cancel := context.WithTimeout(ctx, s.w.opts.ProbeTimeout)
	_, err := c.Noop(pctx)
	cancel()
	if err != nil {
		return err
	}
	s.handleCached(c)
	if s.needsCommand() {
		return nil // catch up first; IDLE on the next round
	}
	d := s.w.opts.IdleRestart
	if len(s.extras) > 0 && !s.notify {
		d = min(d, s.w.opts.PollInterval)
	}
	idler, err := c.Idle(ctx, d)
	if err != nil {
		return err
	}
	err = s.idleWait(idler)
	if cerr := idler.Close(); err == nil || err == errProbe && cerr != nil {
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

// idleWait reads IDLE responses until one needs a command, the IDLE
// duration ends, or nothing arrived for Inactivity (errProbe). While a
// resync waits for room in the events buffer it also returns once there
// is room.
func (s *session) idleWait(idler *imap.Idler) error {
	last := time.Now()
	for {
		wait := s.w.opts.Inactivity - time.Since(last)
		if wait <= 0 {
			return errProbe
		}
		blocked := s.anyDirty()
		if blocked {
			wait = min(wait, roomPoll)
		}
		r, ok, err := idler.Next(0) // what is already here
		if err == nil && !ok {
			s.flush()
			r, ok, err = idler.Next(wait)
		}
		if err != nil {
			if errors.Is(err, imap.ErrIdleEnded) && !errors.Is(err, imap.ErrAbort) {
				return nil // the server ended IDLE: start a new one
			}
			return err
		}
		if !ok {
			if dl := idler.Deadline(); !dl.IsZero() && !time.Now().Before(dl) {
				return nil // time to re-issue IDLE
			}
			if blocked && s.w.hasRoom() {
				return nil // room for the pending resync
			}
			continue
		}
		last = time.Now()
		s.handle(r)
		if s.needsCommand() {
			// Collect the rest of a burst before leaving IDLE.
			defer s.flush()
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

// pollOnce waits PollInterval (less when a resync waits for room in the
// events buffer and room appears), then asks the server for changes with
// NOOP.
func (s *session) pollOnce(ctx context.Context, c *imap.Client) error {
	end := time.Now().Add(s.w.opts.PollInterval)
	for {
		left := time.Until(end)
		if left <= 0 {
			break
		}
		if s.anyDirty() {
			if s.w.hasRoom() {
				return nil
			}
			left = min(left, roomPoll)
		}
		if err := sleep(ctx, left); err != nil {
			return err
		}
	}
	pctx, cancel := context.WithTimeout(ctx, s.w.opts.ProbeTimeout)
	defer cancel()
	if _, err := c.Noop(pctx); err != nil {
		return err
	}
	s.handleCached(c)
	return nil
}

func (s *session) anyDirty() bool {
	for _, b := range s.boxes {
		if b.dirty {
			return true
		}
	}
	return false
}

// needsCommand reports whether IDLE should end to fetch new mail or to
// resync (the latter only once the events buffer has room).
func (s *session) needsCommand() bool {
	room := s.w.hasRoom()
	for _, b := range s.boxes {
		if b.dirty && room || b.pendingNew && !b.dirty {
			return true
		}
	}
	return false
}

// catchUp does what IDLE cannot: fetch new messages, resync mailboxes that
// need it, and check the extra mailboxes with STATUS (every PollInterval;
// IDLE is cut to that length when there are extras). It repeats until
// nothing is left to do, so that nothing announced during its commands
// waits for the end of the next IDLE.
func (s *session) catchUp(ctx context.Context, c *imap.Client) error {
	if len(s.extras) > 0 && time.Since(s.extrasAt) >= s.w.opts.PollInterval {
		s.extrasAt = time.Now()
		for _, b := range s.extras {
			changed, err := s.statusChanged(ctx, c, b)
			if err != nil {
				return err
			}
			if changed {
				b.dirty = true
			}
		}
	}
	for range maxCatchUpRounds {
		s.handleCached(c)
		worked := false
		for _, b := range s.extras {
			if b.dirty && s.w.hasRoom() {
				if err := s.sync(ctx, c, b); err != nil {
					return err
				}
				worked = true
			}
		}
		p := s.primary
		switch {
		case s.selected != p || c.State() != imap.StateSelected || p.dirty && s.w.hasRoom():
			if err := s.sync(ctx, c, p); err != nil {
				return err
			}
			worked = true
		case p.pendingNew && !p.dirty:
			p.pendingNew = false
			if err := s.fetchNew(ctx, c, p); err != nil {
				return err
			}
			worked = true
		}
		if !worked {
			break
		}
	}
	s.commit()
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
	if err != nil {
		return true, nil
	}
	changed := true
	for i := range sts {
		if s.lookup(sts[i].Mailbox) == b {
			changed = b.statusDiffers(&sts[i])
		}
	}
	return changed, nil
}

// statusDiffers reports whether a STATUS response shows a change since the
// last sync. A response with none of the items that tell (only UNSEEN, say:
// a flag change without CONDSTORE) counts as a change.
func (b *box) statusDiffers(st *imap.StatusData) bool {
	if b.st == nil {
		return true
	}
	told := false
	if st.Has(imap.StatusUIDValidity) {
		told = true
		if st.UIDValidity != b.status.uidValidity {
			return true
		}
	}
	if st.Has(imap.StatusUIDNext) {
		told = true
		if st.UIDNext != b.status.uidNext {
			return true
		}
	}
	if st.Has(imap.StatusMessages) {
		told = true
		if st.Messages != b.status.messages {
			return true
		}
	}
	if st.Has(imap.StatusHighestModSeq) {
		told = true
		if st.HighestModSeq != b.status.highestModSeq {
			return true
		}
	}
	return !told
}

// lookup finds a watched mailbox by the name a server response gave.
func (s *session) lookup(name string) *box {
	if b := s.boxes[name]; b != nil {
		return b
	}
	if strings.EqualFold(name, "INBOX") {
		for n, b := range s.boxes {
			if strings.EqualFold(n, "INBOX") {
				return b
			}
		}
	}
	return nil
}

// handleCached processes untagged data that arrived during commands. The
// cache keeps the order within a type, not across types: expunges are
// applied first, and sequence numbers of FETCH responses without UID are
// not trusted when expunges came in the same batch.
func (s *session) handleCached(c *imap.Client) {
	expunges := c.Response("EXPUNGE").Data
	vanished := splitResponses("VANISHED", c.Response("VANISHED").Data)
	exists := c.Response("EXISTS").Data
	fetches := splitResponses("FETCH", c.Response("FETCH").Data)
	statuses := splitResponses("STATUS", c.Response("STATUS").Data)
	modseqs := c.Response("HIGHESTMODSEQ").Data
	alerts := c.Response("ALERT").Data
	oks := c.Response("OK").Data // for "[ALERT] text" (cleared by the next command)

	for _, d := range expunges {
		s.handle(imap.Response{Type: "EXPUNGE", Data: []imap.Datum{d}})
	}
	for _, r := range vanished {
		s.handle(r)
	}
	for _, d := range exists {
		s.handle(imap.Response{Type: "EXISTS", Data: []imap.Datum{d}})
	}
	for _, r := range fetches {
		msg, err := imap.ParseFetchResponse(r)
		if err != nil {
			continue
		}
		if msg.UID == 0 && len(expunges) > 0 {
			if p := s.selected; p != nil {
				p.dirty, p.stale = true, true
			}
			continue
		}
		s.fetched(s.selected, msg)
	}
	for _, r := range statuses {
		s.handle(r)
	}
	for _, d := range modseqs {
		s.handle(imap.Response{Type: "HIGHESTMODSEQ", Data: []imap.Datum{d}})
	}
	for _, d := range alerts {
		s.handle(imap.Response{Type: "ALERT", Data: []imap.Datum{d}})
	}
	for _, d := range oks {
		s.alert(s.selected, string(d.Text))
	}
	s.flush()
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
	if p != nil && p.st == nil {
		p = nil // not synced yet: the sync reads the mailbox whole
	}
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
		switch {
		case n > uint64(len(p.uids)):
			p.pendingNew = true
		case n < uint64(len(p.uids)):
			p.dirty, p.stale = true, true // fewer than we know, without EXPUNGE: resync
		}
	case "EXPUNGE":
		if p == nil || p.stale {
			return
		}
		seq, err := strconv.ParseUint(text, 10, 32)
		if err != nil || seq == 0 || seq > uint64(len(p.uids)) {
			p.dirty, p.stale = true, true
			return
		}
		uid := p.uids[seq-1]
		p.uids = slices.Delete(p.uids, int(seq-1), int(seq))
		s.expunged(p, uid)
	case "VANISHED":
		if p == nil {
			return
		}
		_, uids, err := parseVanished(text)
		if err != nil {
			p.dirty, p.stale = true, true
			return
		}
		for _, uid := range uids {
			if i := indexOf(p.uids, uid); i >= 0 {
				p.uids = slices.Delete(p.uids, i, i+1)
				s.expunged(p, uid)
			}
		}
	case "FETCH":
		msg, err := imap.ParseFetchResponse(r)
		if err != nil {
			return
		}
		s.fetched(p, msg)
	case "HIGHESTMODSEQ":
		// Sent after changes: everything up to this mod-sequence has been
		// reported to this connection, and was handled before it.
		if p == nil || p.dirty {
			return
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(text), 10, 64); err == nil && n > p.st.HighestModSeq {
			p.st.HighestModSeq = n
			p.unsaved = true
		}
	case "STATUS":
		sts, err := imap.ParseStatus(r.Data)
		if err != nil {
			return
		}
		for i := range sts {
			if b := s.lookup(sts[i].Mailbox); b != nil && b.statusDiffers(&sts[i]) {
				b.dirty = true
			}
		}
	case "OK":
		s.alert(p, text)
	case "NO":
		s.alert(p, text)
		// Trouble with the selected mailbox (Dovecot says "Internal error"
		// when it was deleted and recreated under us): look again.
		if p != nil && time.Since(p.noAt) > noResyncInterval {
			p.noAt = time.Now()
			p.dirty, p.stale = true, true
		}
	case "ALERT":
		// The code's own data, which servers rarely send: the text to show
		// follows the bracket of the OK or NO that carried it (see alert).
		if text != "" {
			s.emitAlert(p, text)
		}
	}
}

// alert reports an "[ALERT] text" at the start of an OK or NO response:
// RFC 3501 says the client must show that text to the user.
func (s *session) alert(p *box, text string) {
	const code = "[ALERT]"
	if len(text) >= len(code) && strings.EqualFold(text[:len(code)], code) {
		s.emitAlert(p, strings.TrimSpace(text[len(code):]))
	}
}

func (s *session) emitAlert(p *box, text string) {
	mb := s.mailboxes[0]
	if p != nil {
		mb = p.name
	}
	s.w.emit(Event{Kind: EventAlert, Mailbox: mb, Text: text})
}

// parseVanished parses the data of a VANISHED response (RFC 7162):
// "(EARLIER) 1:3,7" or "5".
func parseVanished(text string) (earlier bool, uids []uint32, err error) {
	set := strings.TrimSpace(text)
	if len(set) >= 9 && strings.EqualFold(set[:9], "(EARLIER)") {
		earlier = true
		set = strings.TrimSpace(set[9:])
	}
	uids, err = imap.ParseSequenceSet(set)
	return earlier, uids, err
}

// fetched handles a FETCH response that is not the answer to our own
// request for new messages: a flag change.
func (s *session) fetched(p *box, msg *imap.Message) {
	if p == nil || p.st == nil || msg.Flags == nil {
		return
	}
	uid := msg.UID
	if uid == 0 {
		if p.stale || msg.Seq == 0 || int(msg.Seq) > len(p.uids) {
			return // the resync reports it (with CONDSTORE)
		}
		uid = p.uids[msg.Seq-1]
	}
	if uid > p.st.LastUID || p.ghosts[uid] || indexOf(p.uids, uid) < 0 {
		return // not reported yet (it comes as New), or gone
	}
	ev := Event{Kind: EventFlags, Mailbox: p.name, UIDValidity: p.st.UIDValidity, UID: uid, Flags: cleanFlags(msg.Flags), ModSeq: msg.ModSeq}
	if !s.w.emit(ev) {
		p.dirty, p.announce = true, true
		return
	}
	if !p.dirty && msg.ModSeq > p.st.HighestModSeq {
		p.st.HighestModSeq = msg.ModSeq
		p.unsaved = true
	}
}

// expunged reports that uid left b.
func (s *session) expunged(b *box, uid uint32) {
	if b.ghosts[uid] {
		delete(b.ghosts, uid)
		return
	}
	if b.st == nil || uid > b.st.LastUID {
		return // never reported, so nothing to retract
	}
	if !s.w.emit(Event{Kind: EventExpunge, Mailbox: b.name, UIDValidity: b.st.UIDValidity, UID: uid}) {
		b.dirty, b.announce = true, true
		b.undelivered = append(b.undelivered, uid)
	}
	b.st.UIDs = encodeUIDs(b.knownUIDs())
	b.unsaved = true
}

// knownUIDs is the UID set to remember: the messages reported and still
// present, plus the expunged ones whose Expunge is still owed.
func (b *box) knownUIDs() []uint32 {
	out := make([]uint32, 0, len(b.uids)+len(b.undelivered))
	for _, uid := range b.uids {
		if uid <= b.st.LastUID && !b.ghosts[uid] {
			out = append(out, uid)
		}
	}
	out = append(out, b.undelivered...)
	slices.Sort(out)
	return slices.Compact(out)
}

// commit records the mod-sequence reached by the New events delivered
// since the last commit, once everything received before has been handled.
func (s *session) commit() {
	for _, b := range s.boxes {
		if b.st != nil && !b.dirty && b.newModSeq > b.st.HighestModSeq {
			b.st.HighestModSeq = b.newModSeq
			b.unsaved = true
		}
		b.newModSeq = 0
	}
	s.flush()
}

// save writes b's state (to the state file, if any).
func (s *session) save(b *box) {
	b.unsaved = false
	if err := s.w.state.put(b.key, b.st); err != nil {
		s.w.opts.Logger.Error("watch: cannot save state", "error", err)
	}
}

// flush saves what changed one response at a time (expunges, flag
// changes) once a burst of responses has been handled, so that a bulk
// delete costs one write of the state file, not one per message.
func (s *session) flush() {
	for _, b := range s.boxes {
		if b.unsaved && b.st != nil {
			s.save(b)
		}
	}
}

// cleanFlags drops \Recent, which only says which session saw the message
// first (and is gone from IMAP4rev2).
func cleanFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, f)
		}
	}
	return out
}

func indexOf(uids []uint32, uid uint32) int {
	if i, ok := slices.BinarySearch(uids, uid); ok {
		return i
	}
	return -1
}
