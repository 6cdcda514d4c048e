package interop

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/imapkit/imap"
)

// commandChecks exercise the library's commands the way a user's program
// does, on a connection of the check's own user.
func commandChecks() []*check {
	return []*check{
		{name: "connect-starttls", what: "STARTTLS with certificate verification, LOGIN, LOGOUT", run: checkStartTLS},
		{name: "connect-tls", what: "implicit TLS with certificate verification", run: checkTLS},
		{name: "tls-unknown-ca", what: "a certificate from an unknown CA is refused before any credentials are sent", run: checkUnknownCA},
		{name: "mailboxes", what: "CREATE (also non-ASCII names), RENAME, LIST, SUBSCRIBE, LSUB, DELETE; a failed DELETE leaves the connection usable", run: checkMailboxes},
		{name: "append-fetch", what: "APPEND with flags and date; STATUS; SELECT; typed FETCH of UID, FLAGS, INTERNALDATE, size, envelope and sections", run: checkAppendFetch},
		{name: "select", what: "SELECT's data: EXISTS, UIDVALIDITY, UIDNEXT, FLAGS, PERMANENTFLAGS; EXAMINE is read-only", run: checkSelect},
		{name: "append-8bit", what: "an 8-bit message is stored byte for byte", run: checkAppend8bit},
		{name: "search", what: "SEARCH and UID SEARCH by flag and subject", run: checkSearch},
		{name: "store", what: "STORE and UID STORE of system flags and keywords", run: checkStore},
		{name: "copy", what: "COPY and UID COPY into another mailbox", run: checkCopy},
		{name: "move", what: "UID MOVE; a later EXPUNGE's result holds only its own expunges", needs: "MOVE",
			run: checkMove, without: checkMoveRefused, fallback: "MOVE is answered NO/BAD, nothing moves, the connection stays usable"},
		{name: "expunge", what: "EXPUNGE returns the expunged sequence numbers; UID EXPUNGE", run: checkExpunge},
		{name: "unselect", what: "UNSELECT leaves the mailbox", needs: "UNSELECT",
			run: checkUnselect, without: checkUnselectRefused, fallback: "UNSELECT is refused and the client stays in the selected state (CLOSE works)"},
		{name: "close", what: "CLOSE leaves the mailbox and expunges", run: checkClose},
		{name: "list-only-own", what: "a LIST's result holds only what arrived during that LIST", run: checkListOwn},
		{name: "condstore", what: "ENABLE CONDSTORE, HIGHESTMODSEQ and FETCH MODSEQ", needs: "CONDSTORE",
			run: checkCondstore, without: checkCondstoreRefused, fallback: "ENABLE CONDSTORE changes nothing; FETCH MODSEQ is refused"},
		{name: "idle-push", what: "IDLE reports another connection's APPEND, STORE and EXPUNGE promptly", needs: "IDLE", run: checkIdlePush},
		{name: "errors", what: "a NO names the command and leaves the connection usable; a command in the wrong state fails locally", run: checkErrors},
	}
}

func checkStartTLS(e *env) {
	c, err := imap.DialStartTLS(e.ctx(), e.srv.addr, e.options())
	if err != nil {
		e.fatalf("DialStartTLS: %v", err)
	}
	defer c.Close()
	if !c.IsTLS() {
		e.errorf("IsTLS false after STARTTLS")
	}
	e.must("LOGIN")(c.Login(e.ctx(), e.user, e.pass))
	if c.State() != imap.StateAuth {
		e.errorf("state after LOGIN = %v", c.State())
	}
	if r, err := c.Logout(e.ctx()); err != nil || r.Status != "BYE" {
		e.errorf("LOGOUT = %v, %v; want BYE", r.Status, err)
	}
}

func checkTLS(e *env) {
	c, err := imap.DialTLS(e.ctx(), e.srv.tlsAddr, e.options())
	if err != nil {
		e.fatalf("DialTLS: %v", err)
	}
	defer c.Close()
	if !c.IsTLS() {
		e.errorf("IsTLS false on implicit TLS")
	}
	e.must("LOGIN")(c.Login(e.ctx(), e.user, e.pass))
	e.must("NOOP")(c.Noop(e.ctx()))
	c.Logout(e.ctx())
}

func checkUnknownCA(e *env) {
	opts := e.options()
	opts.TLSConfig = &tls.Config{ServerName: "localhost"} // the system roots only
	for _, dial := range []struct {
		name string
		addr string
		fn   func() (*imap.Client, error)
	}{
		{"DialTLS", e.srv.tlsAddr, func() (*imap.Client, error) { return imap.DialTLS(e.ctx(), e.srv.tlsAddr, opts) }},
		{"DialStartTLS", e.srv.addr, func() (*imap.Client, error) { return imap.DialStartTLS(e.ctx(), e.srv.addr, opts) }},
	} {
		c, err := dial.fn()
		if err == nil {
			c.Close()
			e.errorf("%s with an unknown CA succeeded", dial.name)
			continue
		}
		var verify *tls.CertificateVerificationError
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &verify) && !errors.As(err, &unknown) {
			e.errorf("%s: %v; want a certificate verification error", dial.name, err)
		}
	}
}

func checkMailboxes(e *env) {
	ctx := e.ctx()
	for _, name := range []string{"Work", "Entwürfe", "With Space"} {
		e.must("CREATE " + name)(e.c.Create(ctx, e.box(name)))
	}
	e.must("RENAME")(e.c.Rename(ctx, e.box("With Space"), e.box("Renamed Box")))
	e.must("SUBSCRIBE")(e.c.Subscribe(ctx, e.box("Work")))
	names := e.listNames("*")
	if q, ok := e.quirk(); ok && strings.Contains(q, `"Inbox"`) {
		if !names["Inbox"] {
			e.errorf("LIST has no \"Inbox\", which the differences table says it sends: %v", names)
		}
		names["INBOX"] = true // INBOX is case-insensitive (RFC 3501, 5.1)
	}
	for _, want := range []string{"INBOX", e.box("Work"), e.box("Entwürfe"), e.box("Renamed Box")} {
		if !names[want] {
			e.errorf("LIST lacks %q: %v", want, names)
		}
	}
	if names[e.box("With Space")] {
		e.errorf("LIST still shows the renamed mailbox's old name")
	}
	lsub, err := imap.ParseList(e.must("LSUB")(e.c.Lsub(ctx, "", "*")).Data)
	if err != nil {
		e.fatalf("LSUB: %v", err)
	}
	if !slices.ContainsFunc(lsub, func(l imap.ListEntry) bool { return l.Name == e.box("Work") }) {
		e.errorf("LSUB lacks %q: %+v", e.box("Work"), lsub)
	}
	e.must("UNSUBSCRIBE")(e.c.Unsubscribe(ctx, e.box("Work")))
	e.must("DELETE")(e.c.Delete(ctx, e.box("Renamed Box")))
	if e.listNames("*")[e.box("Renamed Box")] {
		e.errorf("LIST still shows a deleted mailbox")
	}
	_, err = e.c.Delete(ctx, e.box("No Such Box"))
	e.refused("DELETE of a missing mailbox", err)
}

// listNames returns the decoded names LIST "" pattern gives.
func (e *env) listNames(pattern string) map[string]bool {
	e.t.Helper()
	entries, err := imap.ParseList(e.must("LIST")(e.c.List(e.ctx(), "", pattern)).Data)
	if err != nil {
		e.fatalf("LIST: %v", err)
	}
	names := map[string]bool{}
	for _, l := range entries {
		names[l.Name] = true
	}
	return names
}

// appendN appends n messages "message 1".. to mailbox, even ones flagged,
// all with the given internal date.
func (e *env) appendN(c *imap.Client, mailbox string, n int, date time.Time) {
	e.t.Helper()
	for i := 1; i <= n; i++ {
		flags := ""
		if i%2 == 0 {
			flags = `\Flagged`
		}
		e.must("APPEND")(c.Append(e.ctx(), mailbox, flags, date, message(fmt.Sprintf("message %d", i))))
	}
}

var testDate = time.Date(2024, 12, 6, 6, 0, 0, 0, time.FixedZone("", 3600))

func checkAppendFetch(e *env) {
	ctx := e.ctx()
	e.appendN(e.c, "INBOX", 5, testDate)
	st, err := e.c.StatusMailbox(ctx, "INBOX", "(MESSAGES UIDVALIDITY)")
	if err != nil || st.Messages != 5 || st.UIDValidity == 0 {
		e.fatalf("STATUS = %+v, %v", st, err)
	}
	md, err := e.c.SelectMailbox(ctx, "INBOX", false)
	if err != nil || md.Exists != 5 {
		e.fatalf("SELECT = %+v, %v", md, err)
	}
	msgs, err := e.c.FetchMessages(ctx, "1:5", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
	if err != nil || len(msgs) != 5 {
		e.fatalf("FETCH gave %d messages, %v", len(msgs), err)
	}
	var last uint32
	for i, m := range msgs {
		n := i + 1
		subject := fmt.Sprintf("message %d", n)
		if m.Seq != uint32(n) || m.UID <= last {
			e.errorf("message %d: seq %d UID %d after UID %d", n, m.Seq, m.UID, last)
		}
		last = m.UID
		if !m.InternalDate.Equal(testDate) {
			e.errorf("message %d: INTERNALDATE %v, want %v", n, m.InternalDate, testDate)
		}
		if m.HasFlag(`\Flagged`) != (n%2 == 0) {
			e.errorf("message %d: flags %v", n, m.Flags)
		}
		if want := int64(len(message(subject))); m.Size != want {
			e.errorf("message %d: RFC822.SIZE %d, want %d", n, m.Size, want)
		}
		if m.Envelope == nil || m.Envelope.Subject != subject || len(m.Envelope.From) != 1 || m.Envelope.MessageID == "" {
			e.errorf("message %d: envelope %+v", n, m.Envelope)
		}
		if len(m.Sections) != 2 || string(m.Sections[0].Data) != "Subject: "+subject+"\r\n\r\n" ||
			string(m.Sections[1].Data) != "body of "+subject+"\r\n" {
			e.errorf("message %d: sections %q", n, m.Sections)
		}
	}
}

func checkSelect(e *env) {
	ctx := e.ctx()
	e.appendN(e.c, "INBOX", 2, testDate)
	md, err := e.c.SelectMailbox(ctx, "INBOX", false)
	if err != nil {
		e.fatalf("SELECT: %v", err)
	}
	if md.Exists != 2 || md.UIDValidity == 0 || len(md.Flags) == 0 || md.ReadOnly {
		e.errorf("SELECT data %+v", md)
	}
	if q, ok := e.quirk(); ok && strings.Contains(q, "UIDNEXT") {
		if md.UIDNext != 0 {
			e.errorf("SELECT sent UIDNEXT %d, which the differences table says it omits", md.UIDNext)
		}
	} else if md.UIDNext < 3 {
		e.errorf("SELECT UIDNEXT = %d, want > 2", md.UIDNext)
	}
	ex, err := e.c.SelectMailbox(ctx, "INBOX", true)
	if err != nil || !ex.ReadOnly || ex.Exists != 2 {
		e.errorf("EXAMINE = %+v, %v", ex, err)
	}
}

func checkAppend8bit(e *env) {
	ctx := e.ctx()
	msg := []byte("From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln, ½ € — ✓\r\n")
	e.must("APPEND")(e.c.Append(ctx, "INBOX", "", time.Time{}, msg))
	e.must("SELECT")(e.c.Select(ctx, "INBOX", true))
	msgs, err := e.c.FetchMessages(ctx, "1", "BODY.PEEK[]")
	if err != nil || len(msgs) != 1 || len(msgs[0].Sections) != 1 {
		e.fatalf("FETCH BODY[] = %v, %v", msgs, err)
	}
	if got := msgs[0].Sections[0].Data; !bytes.Equal(got, msg) {
		e.errorf("BODY[] = %q, want %q", got, msg)
	}
}

func checkSearch(e *env) {
	ctx := e.ctx()
	e.appendN(e.c, "INBOX", 5, testDate)
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	if nums, err := e.c.SearchNumbers(ctx, "", "FLAGGED"); err != nil || fmt.Sprint(nums) != "[2 4]" {
		e.errorf("SEARCH FLAGGED = %v, %v", nums, err)
	}
	uids, err := e.c.UIDSearchNumbers(ctx, "", "SUBJECT", `"message 3"`)
	if err != nil || len(uids) != 1 {
		e.fatalf("UID SEARCH SUBJECT = %v, %v", uids, err)
	}
	msgs, err := e.c.UIDFetchMessages(ctx, fmt.Sprint(uids[0]), "ENVELOPE")
	if err != nil || len(msgs) != 1 || msgs[0].Envelope.Subject != "message 3" {
		e.errorf("UID FETCH of the found UID = %v, %v", msgs, err)
	}
	if nums, err := e.c.SearchNumbers(ctx, "", "UNFLAGGED", "NOT", "SUBJECT", `"message 5"`); err != nil || fmt.Sprint(nums) != "[1 3]" {
		e.errorf("SEARCH UNFLAGGED NOT SUBJECT = %v, %v", nums, err)
	}
}

func checkStore(e *env) {
	ctx := e.ctx()
	e.appendN(e.c, "INBOX", 2, testDate)
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	r := e.must("STORE")(e.c.Store(ctx, "1", "+FLAGS", `(\Seen $Label1)`))
	msgs, err := imap.ParseFetch(r.Data)
	if err != nil || len(msgs) != 1 || !msgs[0].HasFlag(`\Seen`) || !msgs[0].HasFlag("$Label1") {
		e.errorf("STORE result %q, %v", r.Texts(), err)
	}
	e.must("UID STORE")(e.c.UID(ctx, "STORE", "1:*", "+FLAGS.SILENT", `(\Answered)`))
	e.must("STORE -FLAGS")(e.c.Store(ctx, "2", "-FLAGS.SILENT", `(\Flagged)`))
	msgs, err = e.c.FetchMessages(ctx, "1:2", "FLAGS")
	if err != nil || len(msgs) != 2 {
		e.fatalf("FETCH FLAGS = %v, %v", msgs, err)
	}
	if m := msgs[0]; !m.HasFlag(`\Seen`) || !m.HasFlag(`\Answered`) || !m.HasFlag("$Label1") {
		e.errorf("message 1 flags %v", m.Flags)
	}
	if m := msgs[1]; m.HasFlag(`\Flagged`) || !m.HasFlag(`\Answered`) || m.HasFlag(`\Seen`) {
		e.errorf("message 2 flags %v", m.Flags)
	}
}

func checkCopy(e *env) {
	ctx := e.ctx()
	e.must("CREATE")(e.c.Create(ctx, e.box("Work")))
	e.appendN(e.c, "INBOX", 3, testDate)
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	e.must("COPY")(e.c.Copy(ctx, "1:2", e.box("Work")))
	e.must("UID COPY")(e.c.UID(ctx, "COPY", "1:*", e.box("Work")))
	if st, err := e.c.StatusMailbox(ctx, e.box("Work"), "(MESSAGES)"); err != nil || st.Messages != 5 {
		e.errorf("STATUS of the copies' mailbox = %+v, %v", st, err)
	}
	if md, err := e.c.SelectMailbox(ctx, "INBOX", true); err != nil || md.Exists != 3 {
		e.errorf("the source after COPY = %+v, %v", md, err)
	}
}

func checkMove(e *env) {
	ctx := e.ctx()
	e.must("CREATE")(e.c.Create(ctx, e.box("Moved")))
	e.appendN(e.c, "INBOX", 4, testDate)
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	uids, err := e.c.UIDSearchNumbers(ctx, "", "ALL")
	if err != nil || len(uids) != 4 {
		e.fatalf("UID SEARCH ALL = %v, %v", uids, err)
	}
	e.must("STORE")(e.c.Store(ctx, "1", "+FLAGS.SILENT", `(\Deleted)`))
	e.c.Unsolicited()
	e.must("UID MOVE")(e.c.UID(ctx, "MOVE", fmt.Sprint(uids[3]), e.box("Moved")))
	if got := (imap.Result{Data: e.c.Response("EXPUNGE").Data}).Texts(); fmt.Sprint(got) != "[4]" {
		e.errorf("EXPUNGE responses of UID MOVE = %q, want [4]", got)
	}
	res := e.must("EXPUNGE")(e.c.Expunge(ctx))
	if got := res.Texts(); fmt.Sprint(got) != "[1]" {
		e.errorf("EXPUNGE result %q, want [1] (only its own)", got)
	}
	if st, err := e.c.StatusMailbox(ctx, e.box("Moved"), "(MESSAGES)"); err != nil || st.Messages != 1 {
		e.errorf("STATUS Archive = %+v, %v", st, err)
	}
}

func checkMoveRefused(e *env) {
	ctx := e.ctx()
	e.must("CREATE")(e.c.Create(ctx, e.box("Moved")))
	e.appendN(e.c, "INBOX", 2, testDate)
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	_, err := e.c.UID(ctx, "MOVE", "1:*", e.box("Moved"))
	e.refused("UID MOVE", err)
	if e.c.State() != imap.StateSelected {
		e.errorf("state after the refused MOVE = %v", e.c.State())
	}
	if st, err := e.c.StatusMailbox(ctx, e.box("Moved"), "(MESSAGES)"); err != nil || st.Messages != 0 {
		e.errorf("STATUS Archive after the refused MOVE = %+v, %v", st, err)
	}
}

func checkExpunge(e *env) {
	ctx := e.ctx()
	e.appendN(e.c, "INBOX", 4, testDate)
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	e.must("STORE")(e.c.Store(ctx, "2,4", "+FLAGS.SILENT", `(\Deleted)`))
	res := e.must("EXPUNGE")(e.c.Expunge(ctx))
	if got := res.Texts(); fmt.Sprint(got) != "[4 2]" && fmt.Sprint(got) != "[2 3]" {
		e.errorf("EXPUNGE = %q, want the sequence numbers of messages 2 and 4", got)
	}
	if e.c.Has("UIDPLUS") {
		uids, _ := e.c.UIDSearchNumbers(ctx, "", "ALL")
		e.must("STORE")(e.c.Store(ctx, "1:*", "+FLAGS.SILENT", `(\Deleted)`))
		e.must("UID EXPUNGE")(e.c.UID(ctx, "EXPUNGE", fmt.Sprint(uids[0])))
		if left, _ := e.c.UIDSearchNumbers(ctx, "", "ALL"); len(left) != 1 || left[0] != uids[1] {
			e.errorf("after UID EXPUNGE of %d: %v", uids[0], left)
		}
	}
}

func checkUnselect(e *env) {
	ctx := e.ctx()
	e.appendN(e.c, "INBOX", 1, testDate)
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	e.must("STORE")(e.c.Store(ctx, "1", "+FLAGS.SILENT", `(\Deleted)`))
	e.must("UNSELECT")(e.c.Unselect(ctx))
	if e.c.State() != imap.StateAuth {
		e.errorf("state after UNSELECT = %v", e.c.State())
	}
	if st, err := e.c.StatusMailbox(ctx, "INBOX", "(MESSAGES)"); err != nil || st.Messages != 1 {
		e.errorf("UNSELECT expunged: STATUS %+v, %v", st, err)
	}
}

func checkUnselectRefused(e *env) {
	ctx := e.ctx()
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	_, err := e.c.Unselect(ctx)
	e.refused("UNSELECT", err)
	if e.c.State() != imap.StateSelected {
		e.errorf("state after the refused UNSELECT = %v, want selected", e.c.State())
	}
	e.must("CLOSE")(e.c.CloseMailbox(ctx))
	if e.c.State() != imap.StateAuth {
		e.errorf("state after CLOSE = %v", e.c.State())
	}
}

func checkClose(e *env) {
	ctx := e.ctx()
	e.appendN(e.c, "INBOX", 2, testDate)
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	e.must("STORE")(e.c.Store(ctx, "1", "+FLAGS.SILENT", `(\Deleted)`))
	e.must("CLOSE")(e.c.CloseMailbox(ctx))
	if e.c.State() != imap.StateAuth {
		e.errorf("state after CLOSE = %v", e.c.State())
	}
	if st, err := e.c.StatusMailbox(ctx, "INBOX", "(MESSAGES)"); err != nil || st.Messages != 1 {
		e.errorf("CLOSE did not expunge: STATUS %+v, %v", st, err)
	}
	if _, err := e.c.Fetch(ctx, "1", "FLAGS"); !errors.Is(err, imap.ErrCommand) {
		e.errorf("FETCH after CLOSE: %v, want ErrCommand", err)
	}
}

func checkListOwn(e *env) {
	ctx := e.ctx()
	e.must("CREATE")(e.c.Create(ctx, e.box("Work")))
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	entries, err := imap.ParseList(e.must("LIST")(e.c.List(ctx, "", e.box("Work"))).Data)
	if err != nil || len(entries) != 1 || entries[0].Name != e.box("Work") {
		e.errorf("LIST %q after SELECT = %+v, %v; want exactly that mailbox", e.box("Work"), entries, err)
	}
	if q, ok := e.quirk(); ok && strings.Contains(q, "LIST during SELECT") {
		// The quirk must really happen: the LIST sent with SELECT waits
		// with the unsolicited responses.
		e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
		found := false
		for _, r := range e.c.Unsolicited() {
			found = found || r.Type == "LIST"
		}
		if !found {
			e.errorf("no LIST arrived during SELECT, which the differences table says it sends")
		}
	}
}

func checkCondstore(e *env) {
	ctx := e.ctx()
	e.must("ENABLE")(e.c.Enable(ctx, "CONDSTORE"))
	e.appendN(e.c, "INBOX", 2, testDate)
	md, err := e.c.SelectMailbox(ctx, "INBOX", false)
	if err != nil || md.HighestModSeq == 0 {
		e.fatalf("SELECT after ENABLE CONDSTORE = %+v, %v", md, err)
	}
	e.must("STORE")(e.c.Store(ctx, "1", "+FLAGS.SILENT", `(\Seen)`))
	msgs, err := e.c.FetchMessages(ctx, "1:2", "(FLAGS MODSEQ)")
	if err != nil || len(msgs) != 2 || msgs[0].ModSeq <= msgs[1].ModSeq || msgs[0].ModSeq <= md.HighestModSeq-1 {
		e.errorf("FETCH MODSEQ after STORE = %+v, %v (HIGHESTMODSEQ was %d)", msgs, err, md.HighestModSeq)
	}
	changed, err := e.c.FetchMessages(ctx, "1:*", fmt.Sprintf("(FLAGS) (CHANGEDSINCE %d)", md.HighestModSeq))
	if err != nil || len(changed) != 1 || changed[0].Seq != 1 {
		e.errorf("FETCH CHANGEDSINCE = %+v, %v; want message 1 only", changed, err)
	}
}

func checkCondstoreRefused(e *env) {
	ctx := e.ctx()
	e.appendN(e.c, "INBOX", 1, testDate)
	md, err := e.c.SelectMailbox(ctx, "INBOX", false)
	if err != nil || md.HighestModSeq != 0 {
		e.errorf("SELECT = %+v, %v; want no HIGHESTMODSEQ", md, err)
	}
	_, err = e.c.Fetch(ctx, "1", "(FLAGS MODSEQ)")
	e.refused("FETCH MODSEQ", err)
}

func checkErrors(e *env) {
	ctx := e.ctx()
	_, err := e.c.Select(ctx, e.box("No Such Box"), false)
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Command != "SELECT" || !errors.Is(err, imap.ErrCommand) {
		e.errorf("SELECT of a missing mailbox: %v; want an *imap.Error of SELECT, ErrCommand", err)
	}
	if e.c.State() == imap.StateSelected {
		e.errorf("selected after a failed SELECT")
	}
	e.must("NOOP after the failed SELECT")(e.c.Noop(ctx))
	if _, err := e.c.Fetch(ctx, "1", "FLAGS"); !errors.Is(err, imap.ErrCommand) || !strings.Contains(err.Error(), "FETCH") {
		e.errorf("FETCH in the authenticated state: %v", err)
	}
	_, err = e.c.Login(ctx, e.user, e.pass)
	if !errors.Is(err, imap.ErrCommand) {
		e.errorf("LOGIN when logged in: %v", err)
	}
	e.must("NOOP")(e.c.Noop(ctx))
}
