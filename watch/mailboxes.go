package watch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imapkit/imap"
)

// The set of watched mailboxes changes: a mailbox deleted on the server is
// dropped (MailboxDeleted); with AllMailboxes, one created is added
// (MailboxCreated) and one renamed follows its new name (MailboxRenamed).
// A session learns of it when a SELECT or STATUS is refused (a deleted
// mailbox — and Dovecot ends the connection of one that was selected, so
// the next SELECT is refused), from NOTIFY's MailboxName event (an
// untagged LIST), from a LIST of the mailbox it keeps selected (Cyrus and
// Courier say nothing of its deletion: checkPrimary), and with
// AllMailboxes from a LIST of every mailbox every ListInterval.

// listEntry is a mailbox LIST showed, with the name it had before a rename
// when the server said (OLDNAME).
type listEntry struct {
	name, oldName string
}

// list returns the mailboxes that match pattern and can be selected, in the
// server's order, each once; INBOX is always spelled so.
func (s *session) list(ctx context.Context, c *imap.Client, pattern string) ([]listEntry, error) {
	res, err := c.List(ctx, "", pattern)
	if err != nil {
		return nil, err
	}
	return selectable(c, res.Data), nil
}

// selectable parses LIST data, keeping the mailboxes that can be selected.
// A malformed entry is skipped: the others still count.
func selectable(c *imap.Client, data []imap.Datum) []listEntry {
	parse := imap.ParseList
	if c != nil && c.UTF8Enabled() {
		parse = imap.ParseListUTF8
	}
	entries, _ := parse(data)
	var out []listEntry
	seen := map[string]bool{}
	for _, e := range entries {
		if e.HasAttr(`\Noselect`) || e.HasAttr(`\NonExistent`) {
			continue
		}
		name := e.Name
		if strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, listEntry{name: name, oldName: e.OldName})
		}
	}
	return out
}

// exists reports whether LIST shows the mailbox name (and not just others
// that its wildcards, if it has any, match). Other names in the answer are
// MailboxName events NOTIFY sent meanwhile: they are handled as such.
func (s *session) exists(ctx context.Context, c *imap.Client, name string) (bool, error) {
	res, err := c.List(ctx, "", name)
	if err != nil {
		return false, err
	}
	there := false
	for _, e := range selectable(c, res.Data) {
		there = there || sameName(e.name, name)
	}
	for _, e := range selectableOrNot(c, res.Data) {
		if !sameName(e.name, name) && !strings.ContainsAny(name, "*%") {
			s.noteList(e)
		}
	}
	return there, nil
}

// sameName reports whether two names are the same mailbox: equal, or both
// INBOX in any case.
func sameName(a, b string) bool {
	return a == b || strings.EqualFold(a, "INBOX") && strings.EqualFold(b, "INBOX")
}

// selectFailed handles a SELECT or STATUS of b that failed. When the
// server refused it (NO, and not for now), the mailbox may have been
// deleted: with AllMailboxes a LIST of every mailbox tells (and a rename
// from a deletion); otherwise a LIST of its name. A mailbox gone that was
// watched before (selected in this run, or with a saved position) is
// reported deleted and dropped, and the session goes on with the others
// (errNoMailboxes when none is left); one never watched is a mistake in
// the options (a *MailboxError), as is one that is there but refused the
// first time. A failure that is not a refusal is returned as it is: the
// connection is retried.
func (s *session) selectFailed(ctx context.Context, c *imap.Client, b *box, err error) error {
	if !errors.Is(err, imap.ErrCommand) || temporary(err) {
		return err
	}
	if s.all {
		name := b.name
		if lerr := s.reconcile(ctx, c); lerr != nil {
			return lerr
		}
		if b.dropped || b.name != name {
			return nil // deleted or renamed, and reported
		}
		// Listed, and yet the server will not open it: not one to watch.
		s.w.opts.Logger.Warn("watch: the server lists a mailbox but refuses to open it: not watching it",
			"account", s.w.opts.Account, "mailbox", b.name, "error", err)
		if s.unselectable == nil {
			s.unselectable = map[string]bool{}
		}
		s.unselectable[b.name] = true
		s.remove(b)
		if !b.l.known {
			s.w.forget(b.l)
		}
		return nil
	}
	there, lerr := s.exists(ctx, c, b.name)
	if lerr != nil {
		return lerr
	}
	if !there && (b.everSelected || b.l.known) {
		text := ""
		if b.movedTo != "" {
			text = "renamed to " + strconv.Quote(b.movedTo)
		}
		s.drop(b, text)
		if len(s.boxes) == 0 {
			return errNoMailboxes
		}
		return nil
	}
	if !b.everSelected {
		return &MailboxError{Mailbox: b.name, Err: err}
	}
	return err
}

// checkPrimary looks for the mailbox the session keeps selected with
// LIST, when IDLE ends and ListInterval has passed since it was last found
// there (a SELECT finds it too): a server may say nothing to a connection
// whose selected mailbox another deletes (Cyrus and Courier go on
// answering NOOP and IDLE as if it were there). One gone is dropped as if
// its SELECT had been refused. The other mailboxes need no such look:
// their STATUS polls are refused.
func (s *session) checkPrimary(ctx context.Context, c *imap.Client) error {
	s.primaryAt = time.Now()
	p := s.primary
	if p == nil || !p.everSelected {
		return nil
	}
	there, err := s.exists(ctx, c, p.name)
	if errors.Is(err, imap.ErrCommand) {
		// A server that will not LIST it: its next SELECT will tell.
		s.w.opts.Logger.Debug("watch: LIST of the selected mailbox refused", "account", s.w.opts.Account, "mailbox", p.name, "error", err)
		return nil
	}
	if err != nil || there {
		return err
	}
	text := ""
	if p.movedTo != "" {
		text = "renamed to " + strconv.Quote(p.movedTo)
	}
	s.drop(p, text)
	if len(s.boxes) == 0 {
		return errNoMailboxes
	}
	return nil
}

// remove takes b out of the session.
func (s *session) remove(b *box) {
	b.dropped = true
	for i, x := range s.boxes {
		if x == b {
			s.boxes = append(s.boxes[:i:i], s.boxes[i+1:]...)
			break
		}
	}
	if s.selected == b {
		s.selected = nil
	}
	s.arrange()
}

// drop stops watching b, which was deleted on the server, and reports it.
func (s *session) drop(b *box, text string) {
	s.remove(b)
	s.w.opts.Logger.Info("watch: mailbox deleted: no longer watched", "account", s.w.opts.Account, "mailbox", b.name, "details", text)
	b.l.deleted(Event{Kind: EventMailboxDeleted, Mailbox: b.name, UIDValidity: b.l.uidValidity(), Text: text})
}

// listChanged handles NOTIFY's MailboxName event: an untagged LIST for a
// mailbox created, deleted (\NonExistent) or renamed (with OLDNAME). With
// AllMailboxes it asks for a LIST, which decides (events of several
// changes may come in any order, Dovecot's do); otherwise a watched
// mailbox it names is looked at again, and a deleted one is then found
// gone.
func (s *session) listChanged(r imap.Response) {
	for _, e := range selectableOrNot(s.conn.Load(), r.Data) {
		s.noteList(e)
	}
}

// noteList handles one MailboxName event (see listChanged).
func (s *session) noteList(e listEntry) {
	if s.all {
		s.listDue = true
		if e.oldName != "" {
			if s.oldNames == nil {
				s.oldNames = map[string]string{}
			}
			s.oldNames[e.name] = e.oldName
		}
		return
	}
	if b := s.lookup(e.name); b != nil {
		b.dirty = true
	}
	if e.oldName != "" {
		if b := s.lookup(e.oldName); b != nil {
			b.dirty, b.movedTo = true, e.name
		}
	}
}

// selectedList takes the LIST responses that came with the SELECT of b.
// An IMAP4rev2 server answers SELECT with a LIST of the mailbox (RFC 9051
// 6.3.2; mox does, naming the inbox "Inbox"): that one is no MailboxName
// event — taken for one, it would have the mailbox synced again and again.
// Any other is.
func (s *session) selectedList(c *imap.Client, b *box) {
	for _, e := range selectableOrNot(c, c.Response("LIST").Data) {
		if !sameName(e.name, b.name) {
			s.noteList(e)
		}
	}
}

// selectableOrNot parses LIST data like selectable, keeping every entry:
// a MailboxName event of a deletion is \NonExistent.
func selectableOrNot(c *imap.Client, data []imap.Datum) []listEntry {
	parse := imap.ParseList
	if c != nil && c.UTF8Enabled() {
		parse = imap.ParseListUTF8
	}
	entries, _ := parse(data)
	out := make([]listEntry, len(entries))
	for i, e := range entries {
		out[i] = listEntry{name: e.Name, oldName: e.OldName}
	}
	return out
}

// found is a mailbox LIST showed that the session did not watch, and what
// STATUS says of it.
type found struct {
	name                 string
	uidValidity, uidNext uint32
}

// reconcile (AllMailboxes) lists every mailbox (LIST "" "*") and brings the
// session's in line. A watched mailbox LIST no longer shows was renamed —
// when NOTIFY said so, or when one new mailbox has its UIDVALIDITY (and
// UIDs up to its position) — or deleted. A mailbox LIST shows that is not
// watched was created, and is watched from its first message; but on the
// first LIST of a first run (no saved state says it covered every
// mailbox), every mailbox starts from a baseline instead. The first LIST
// of a run also takes in the mailboxes of the saved state, so that what
// became of them while away is reported.
func (s *session) reconcile(ctx context.Context, c *imap.Client) error {
	entries, err := s.list(ctx, c, "*")
	if err != nil {
		return err
	}
	s.listAt, s.listDue = time.Now(), false
	hints := s.oldNames
	s.oldNames = nil
	if !s.listedOK && len(s.boxes) == 0 {
		for _, name := range s.w.savedNames() {
			l, err := s.w.addLedger(name)
			if err != nil {
				return err
			}
			s.boxes = append(s.boxes, &box{view: view{name: name}, l: l, announce: true})
		}
	}
	listed := make(map[string]bool, len(entries))
	for _, e := range entries {
		listed[e.name] = true
		if e.oldName != "" {
			if hints == nil {
				hints = map[string]string{}
			}
			hints[e.name] = e.oldName
		}
	}
	var gone []*box
	for _, b := range s.boxes {
		if !listed[b.name] && !(strings.EqualFold(b.name, "INBOX") && listed["INBOX"]) {
			gone = append(gone, b)
		}
	}
	created := s.listedOK || s.w.savedAll()
	var fresh []found
	for _, e := range entries {
		if s.lookup(e.name) != nil || s.unselectable[e.name] {
			continue
		}
		f := found{name: e.name}
		if created || len(gone) > 0 {
			// Its UIDVALIDITY tells a rename, and starts a created one.
			var err error
			f, err = s.statusOf(ctx, c, e.name)
			var ie *imap.Error
			switch {
			case errors.Is(err, imap.ErrCommand) && !temporary(err):
				continue // gone again already, or not ours to open: the next LIST tells
			case err != nil && !errors.As(err, &ie):
				f = found{name: e.name} // no UIDVALIDITY: no rename, and the first SELECT gives it
			case err != nil:
				return err
			}
		}
		fresh = append(fresh, f)
	}

	renamed := renames(gone, fresh, hints)
	for _, b := range gone {
		if to, ok := renamed[b]; ok {
			s.rename(b, to)
		} else if b.l.known {
			s.drop(b, "")
		} else {
			s.remove(b) // listed once, gone before its first sync: never watched
			s.w.forget(b.l)
		}
	}
	for _, f := range fresh {
		if _, taken := renamedTo(renamed, f.name); taken {
			continue
		}
		l, err := s.w.addLedger(f.name)
		if err != nil {
			return err
		}
		b := &box{view: view{name: f.name}, l: l, announce: !created}
		b.dirty = true
		if created {
			s.w.opts.Logger.Info("watch: mailbox created: watching it from its first message", "account", s.w.opts.Account, "mailbox", f.name)
			if f.uidValidity != 0 {
				l.created(Event{Kind: EventMailboxCreated, Mailbox: f.name, UIDValidity: f.uidValidity}, f.uidValidity)
			} else {
				b.createdUnannounced = true // its first SELECT tells the UIDVALIDITY (sync)
			}
		}
		s.boxes = append(s.boxes, b)
	}
	s.arrange()
	if !s.listedOK {
		s.listedOK = true
		s.w.setListed()
	}
	return nil
}

// renames pairs mailboxes gone from the list with new ones that are the
// same mailbox renamed: the one NOTIFY named as its new name, or else the
// only new one with its UIDVALIDITY — when no other gone one has it — and
// a UIDNEXT above the last UID it knew (a created mailbox starts at 1).
func renames(gone []*box, fresh []found, hints map[string]string) map[*box]found {
	out := map[*box]found{}
	taken := map[string]bool{}
	for _, f := range fresh {
		old, ok := hints[f.name]
		if !ok {
			continue
		}
		for _, b := range gone {
			if _, done := out[b]; !done && sameName(b.name, old) && b.l.known {
				out[b], taken[f.name] = f, true
				break
			}
		}
	}
	for _, b := range gone {
		if _, done := out[b]; done || !b.l.known {
			continue
		}
		uv, last := b.l.uidValidity(), b.l.lastUID()
		if uv == 0 {
			continue
		}
		same := 0
		for _, g := range gone {
			if _, done := out[g]; !done && g.l.known && g.l.uidValidity() == uv {
				same++
			}
		}
		var match []found
		for _, f := range fresh {
			if !taken[f.name] && f.uidValidity == uv && (f.uidNext == 0 || f.uidNext > last) {
				match = append(match, f)
			}
		}
		if same == 1 && len(match) == 1 {
			out[b], taken[match[0].name] = match[0], true
		}
	}
	return out
}

// renamedTo reports whether a rename in renamed has the new name name.
func renamedTo(renamed map[*box]found, name string) (*box, bool) {
	for b, f := range renamed {
		if f.name == name {
			return b, true
		}
	}
	return nil, false
}

// rename moves b to its new name and reports it. Its position goes with
// it; it is synced again (mail may have come meanwhile, and a UIDVALIDITY
// that changed resets it).
func (s *session) rename(b *box, to found) {
	old := b.name
	s.w.opts.Logger.Info("watch: mailbox renamed: watching it under its new name", "account", s.w.opts.Account, "mailbox", to.name, "old_name", old)
	b.name, b.movedTo, b.dirty = to.name, "", true
	uv := to.uidValidity
	if uv == 0 {
		uv = b.l.uidValidity()
	}
	b.l.renamed(Event{Kind: EventMailboxRenamed, Mailbox: to.name, OldMailbox: old, UIDValidity: uv}, to.name)
}

// statusOf asks for the UIDVALIDITY and UIDNEXT of a mailbox that is not
// watched. NOTIFY's own STATUS of the mailbox (MESSAGES, UIDNEXT, UNSEEN)
// may come with the answer: each item is taken from where it is.
func (s *session) statusOf(ctx context.Context, c *imap.Client, name string) (found, error) {
	res, err := c.Status(ctx, name, "(UIDVALIDITY UIDNEXT)")
	if err != nil {
		return found{}, err
	}
	sts, err := imap.ParseStatus(res.Data)
	if err != nil {
		return found{}, fmt.Errorf("watch: STATUS %q: %w", name, err)
	}
	f := found{name: name}
	for _, st := range sts {
		if !sameName(st.Mailbox, name) {
			continue
		}
		// Zero is no UIDVALIDITY (RFC 3501: nz-number), but Dovecot says it
		// of a mailbox whose creation another process has not finished.
		if st.Has(imap.StatusUIDValidity) && st.UIDValidity != 0 {
			f.uidValidity = st.UIDValidity
		}
		if st.Has(imap.StatusUIDNext) {
			f.uidNext = st.UIDNext
		}
	}
	if f.uidValidity == 0 {
		return found{}, fmt.Errorf("watch: STATUS %q: the server sent no UIDVALIDITY for it", name)
	}
	return f, nil
}
