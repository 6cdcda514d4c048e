package watch

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/imapkit/imap"
)

// serve runs one connection until it fails: sync every mailbox, then
// alternate catching up (commands, on a worker) and waiting (IDLE, or the
// polling interval, on the session's goroutine: see work).
func (s *session) serve(ctx context.Context, c *imap.Client) error {
	if err := work(func() error { return s.setup(ctx, c) }); err != nil {
		return err // or errOnceDone
	}
	for {
		// IDLE needs a selected mailbox, or NOTIFY: with AllMailboxes, an
		// account whose every mailbox is gone polls.
		idle := c.Has("IDLE") && (s.notify || !s.w.opts.Poll && s.primary != nil)
		var idler *imap.Idler
		err := work(func() (err error) {
			if s.notify {
				err = s.catchUpNotify(ctx, c)
			} else {
				err = s.catchUp(ctx, c)
			}
			if err == nil && idle {
				idler, err = s.startIdle(ctx, c)
			}
			return err
		})
		switch {
		case err != nil:
			return err
		case idler != nil:
			waitErr := s.idleWait(idler)
			if err := work(func() error { return s.endIdle(ctx, c, idler, waitErr) }); err != nil {
				return err
			}
		case !idle:
			if err := s.pollWait(ctx); err != nil {
				return err
			}
			if err := work(func() error { return s.poll(ctx, c) }); err != nil {
				return err
			}
		}
		// idle and no Idler: changes came before IDLE; catch up first.
	}
}

// setup enables what helps, sets NOTIFY, and syncs every mailbox (the
// primary last, which stays selected). With Once it also waits until every
// change found was handed over.
func (s *session) setup(ctx context.Context, c *imap.Client) error {
	s.enable(ctx, c)
	if s.all {
		// One connection either way: NOTIFY if this server has it.
		s.notify = !s.w.opts.NoNotify && !s.w.opts.Poll && c.Has("NOTIFY") && c.Has("IDLE")
	}
	if s.notify && !s.w.opts.Once {
		if err := s.setNotify(ctx, c); err != nil {
			return err
		}
	}
	if s.all {
		if err := s.reconcile(ctx, c); err != nil {
			return err
		}
	}
	s.arrange()
	for _, b := range slices.Clone(s.extras) {
		if err := s.sync(ctx, c, b); err != nil {
			return err
		}
	}
	s.extrasAt = time.Now()
	for p := s.primary; p != nil; p = s.primary {
		if err := s.sync(ctx, c, p); err != nil {
			return err
		}
		if !p.dropped {
			break
		}
		// Deleted: the next in line, already synced, is selected now.
	}
	if s.w.opts.Once {
		return s.finishOnce(ctx, c)
	}
	return nil
}

// enable turns on QRESYNC or, failing that, CONDSTORE when the server
// has them.
func (s *session) enable(ctx context.Context, c *imap.Client) {
	for _, ext := range []string{"QRESYNC", "CONDSTORE"} {
		if c.Has(ext) && c.State() == imap.StateAuth {
			if _, err := c.Enable(ctx, ext); err == nil {
				return
			}
		}
	}
}

// finishOnce waits, with Options.Once, until every new message found by the
// sync was handed over: a full window holds some back until the consumer
// acknowledges.
func (s *session) finishOnce(ctx context.Context, c *imap.Client) error {
	for {
		waiting := false
		for _, b := range slices.Clone(s.boxes) {
			if b.dropped || !b.hasUnreported() {
				continue
			}
			waiting = true
			if b.l.hasRoom() {
				if s.selected != b {
					if err := s.sync(ctx, c, b); err != nil {
						return err
					}
				} else if err := s.reportNew(ctx, c, b); err != nil {
					return err
				}
			}
		}
		if !waiting {
			return errOnceDone
		}
		if err := sleepCtx(ctx, roomPoll); err != nil {
			return err
		}
	}
}

// endIdle closes IDLE (DONE) after idleWait, and probes a link that was
// silent for too long (errProbe).
func (s *session) endIdle(ctx context.Context, c *imap.Client, idler *imap.Idler, waitErr error) error {
	err := waitErr
	if cerr := idler.Close(); err == nil || err == errProbe && cerr != nil {
		err = cerr
	}
	if err == errProbe {
		return s.probe(ctx, c)
	}
	return err
}

// startIdle asks the server for pending changes, and starts IDLE unless
// they need a command first (a nil Idler and error).
func (s *session) startIdle(ctx context.Context, c *imap.Client) (*imap.Idler, error) {
	// Before every IDLE, ask: some servers (go-imap's, for one) report a
	// change made since the last command only in answer to the next
	// command, not when IDLE starts, so mail delivered between a sync and
	// IDLE would wait for the next restart. NOOP makes them say it now.
	if err := s.probe(ctx, c); err != nil {
		return nil, err
	}
	s.handleCached(c)
	if s.needsCommand() {
		return nil, nil
	}
	d := s.w.opts.IdleRestart
	if len(s.extras) > 0 && !s.notify {
		d = min(d, s.w.opts.PollInterval)
	}
	if s.all && !s.notify {
		d = min(d, max(time.Until(s.listAt.Add(s.w.opts.ListInterval)), time.Millisecond))
	}
	return c.Idle(ctx, d)
}

// idleWait reads IDLE responses until one needs a command, the IDLE
// duration ends, or nothing arrived for Inactivity (errProbe). A change
// that needs a command ends the wait at once: what arrives meanwhile is
// handled after that command, in one batch, rather than waited for. While
// a mailbox has new messages to report, it also returns once its window
// has room.
func (s *session) idleWait(idler *imap.Idler) error {
	last := time.Now()
	for {
		wait := s.w.opts.Inactivity - time.Since(last)
		if wait <= 0 {
			return errProbe
		}
		// Poll while a message waits, not only while its window is full:
		// the consumer's acknowledgement makes room at any moment, also
		// between a look at the window and the wait, which would then last
		// until Inactivity.
		waiting := s.hasNewToReport()
		if waiting {
			wait = min(wait, roomPoll)
		}
		r, ok, err := idler.Next(wait)
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
			if waiting && s.needsCommand() {
				return nil // room for what waited
			}
			continue
		}
		last = time.Now()
		needs := false
		work(func() error {
			s.handle(r)
			needs = s.needsCommand()
			return nil
		})
		if needs {
			return nil
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

// pollWait waits PollInterval, less when a mailbox waits for room in its
// window and room appears.
func (s *session) pollWait(ctx context.Context) error {
	end := time.Now().Add(s.w.opts.PollInterval)
	if next := s.listAt.Add(s.w.opts.ListInterval); s.all && !s.notify && next.Before(end) {
		end = next
	}
	for {
		left := time.Until(end)
		if left <= 0 {
			return nil
		}
		if s.hasNewToReport() { // see idleWait
			if s.needsCommand() {
				return nil
			}
			left = min(left, roomPoll)
		}
		if err := sleepCtx(ctx, left); err != nil {
			return err
		}
	}
}

// poll asks the server for changes with NOOP.
func (s *session) poll(ctx context.Context, c *imap.Client) error {
	if err := s.probe(ctx, c); err != nil {
		return err
	}
	s.handleCached(c)
	return nil
}

// hasNewToReport reports whether a mailbox knows of new messages it has
// not reported: only the session changes that, unlike the room in a
// window, which acknowledgements make on the consumer's goroutine.
func (s *session) hasNewToReport() bool {
	return slices.ContainsFunc(s.boxes, (*box).hasNewToReport)
}

// hasNewToReport reports whether b knows of new messages it has not
// reported: announced by EXISTS, or with known UIDs.
func (b *box) hasNewToReport() bool {
	return b.pendingNew || b.hasUnreported()
}

// needsCommand reports whether IDLE should end: a mailbox must be
// resynced, or has new messages to fetch and room to report them, or the
// list of mailboxes changed (AllMailboxes).
func (s *session) needsCommand() bool {
	if s.listDue {
		return true
	}
	for _, b := range s.boxes {
		if b.dirty {
			return true
		}
		if b.hasNewToReport() && b.l.hasRoom() {
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
	if s.all && (s.listDue || time.Since(s.listAt) >= s.w.opts.ListInterval) {
		if err := s.reconcile(ctx, c); err != nil {
			return err
		}
	}
	if !s.all && !s.notify && time.Since(s.primaryAt) >= s.w.opts.ListInterval {
		if err := s.checkPrimary(ctx, c); err != nil {
			return err
		}
	}
	if len(s.extras) > 0 && time.Since(s.extrasAt) >= s.w.opts.PollInterval {
		s.extrasAt = time.Now()
		for _, b := range slices.Clone(s.extras) {
			if b.dropped {
				continue // by a LIST after an earlier STATUS was refused
			}
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
		if s.listDue {
			if err := s.reconcile(ctx, c); err != nil {
				return err
			}
		}
		worked := false
		for _, b := range slices.Clone(s.extras) {
			if b.dropped {
				continue
			}
			if b.dirty || b.hasUnreported() && b.l.hasRoom() {
				if err := s.sync(ctx, c, b); err != nil {
					return err
				}
				worked = true
			}
		}
		p := s.primary
		switch {
		case p == nil: // AllMailboxes, and the account has none left
		case s.selected != p || c.State() != imap.StateSelected || p.dirty:
			if err := s.sync(ctx, c, p); err != nil {
				return err
			}
			worked = true
		case !p.l.hasRoom():
		case p.pendingNew:
			p.pendingNew = false
			if err := s.fetchNew(ctx, c, p); err != nil {
				return err
			}
			worked = true
		case p.hasUnreported():
			if err := s.reportNew(ctx, c, p); err != nil {
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
	if !b.l.known {
		return true, nil
	}
	items := "(MESSAGES UIDNEXT UIDVALIDITY"
	if c.Has("CONDSTORE") {
		items += " HIGHESTMODSEQ"
	}
	res, err := c.Status(ctx, b.name, items+")")
	if err != nil {
		return false, s.selectFailed(ctx, c, b, err)
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
	if !b.l.known {
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
	for _, b := range s.boxes {
		if b.name == name {
			return b
		}
	}
	if strings.EqualFold(name, "INBOX") {
		for _, b := range s.boxes {
			if strings.EqualFold(b.name, "INBOX") {
				return b
			}
		}
	}
	return nil
}

// handleCached processes the untagged responses that arrived during
// commands, in the order the server sent them: an EXPUNGE is applied
// before the FETCH that follows it, so sequence numbers mean what they
// meant to the server.
func (s *session) handleCached(c *imap.Client) {
	for _, r := range c.Unsolicited() {
		s.handle(r)
	}
}

// handle applies one untagged response: to the selected mailbox's view
// (whose events go to its ledger), or, for STATUS, to the named mailbox.
func (s *session) handle(r imap.Response) {
	p := s.selected
	if p != nil && !p.l.known {
		p = nil // not synced yet: the sync reads the mailbox whole
	}
	text := ""
	if len(r.Data) > 0 {
		text = string(r.Data[0].Text)
	}
	switch r.Type {
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
			p.confused()
		}
	case "ALERT":
		// The code's own data, which servers rarely send: the text to show
		// follows the bracket of the OK or NO that carried it (see alert).
		if text != "" {
			s.emitAlert(p, text)
		}
	case "LIST":
		s.listChanged(r) // NOTIFY's MailboxName event
	default:
		if p == nil {
			return
		}
		for _, ev := range p.apply(r) {
			p.l.record(ev)
			p.noteEvent(ev)
		}
		if p.modseq > 0 {
			// Sent after changes: everything up to this mod-sequence was
			// sent to this connection, and handled before it.
			if !p.dirty {
				p.l.advanceModSeq(p.modseq)
			}
			p.modseq = 0
		}
	}
}

// alert reports an "[ALERT] text" at the start of an OK or NO response.
func (s *session) alert(p *box, text string) {
	if t, ok := alertText(text); ok {
		s.emitAlert(p, t)
	}
}

func (s *session) emitAlert(p *box, text string) {
	mb := s.mailboxes[0]
	if p != nil {
		mb = p.name
	}
	s.w.notice(Event{Kind: EventAlert, Mailbox: mb, Text: text})
}

// commit records the mod-sequence reached by the New events handed over
// since the last commit, once everything received before has been handled.
func (s *session) commit() {
	for _, b := range s.boxes {
		if b.l.known && !b.dirty && b.newModSeq > 0 {
			b.l.advanceModSeq(b.newModSeq)
		}
		b.newModSeq = 0
	}
	s.w.saveSoon()
}
