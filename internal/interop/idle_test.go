package interop

import (
	"errors"
	"strings"
	"time"

	"github.com/imapkit/imap"
)

// pushWithin bounds how long a pushed change may take to arrive: every
// server here pushes within a second or two when set up as its harness
// does (Cyrus's idled, Courier's enhanced IDLE); 60 s would mean polling.
const pushWithin = 5 * time.Second

func checkIdlePush(e *env) {
	ctx := e.ctx()
	other := e.dial()
	e.appendN(other, "INBOX", 1, testDate)
	if q, ok := e.quirk(); ok && strings.Contains(q, "uid already present") {
		// The quirk must really happen: this connection was logged in
		// during the APPEND, selects, and the server drops it at IDLE.
		e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
		id, err := e.c.Idle(ctx, time.Minute)
		if err == nil {
			_, _, err = id.Next(pushWithin)
		}
		if !errors.Is(err, imap.ErrAbort) {
			e.errorf("IDLE after SELECT: %v; the differences table says the server drops the connection", err)
		}
		e.c = e.dial()
	}
	// Told of the APPEND before selecting (see the mox quirk).
	e.must("NOOP")(e.c.Noop(ctx))
	e.must("SELECT")(e.c.Select(ctx, "INBOX", false))
	id, err := e.c.Idle(ctx, time.Minute)
	if err != nil {
		e.fatalf("IDLE: %v", err)
	}
	e.must("APPEND")(other.Append(ctx, "INBOX", "", time.Time{}, message("pushed")))
	e.awaitPush(id, "EXISTS 2 after APPEND", func(r imap.Response) bool {
		return r.Type == "EXISTS" && len(r.Data) > 0 && string(r.Data[0].Text) == "2"
	})
	e.must("SELECT")(other.Select(ctx, "INBOX", false))
	e.must("STORE")(other.Store(ctx, "1", "+FLAGS.SILENT", `(\Flagged)`))
	e.awaitPush(id, "FETCH FLAGS after STORE", func(r imap.Response) bool {
		m, err := imap.ParseFetchResponse(r)
		return r.Type == "FETCH" && err == nil && m.Seq == 1 && m.HasFlag(`\Flagged`)
	})
	e.must("STORE")(other.Store(ctx, "1", "+FLAGS.SILENT", `(\Deleted)`))
	e.must("EXPUNGE")(other.Expunge(ctx))
	e.awaitPush(id, "EXPUNGE 1", func(r imap.Response) bool {
		return r.Type == "EXPUNGE" && len(r.Data) > 0 && string(r.Data[0].Text) == "1"
	})
	if err := id.Close(); err != nil {
		e.errorf("DONE: %v", err)
	}
	e.must("NOOP after IDLE")(e.c.Noop(ctx))
}

// awaitPush reads what the Idler delivers until match, for pushWithin.
func (e *env) awaitPush(id *imap.Idler, what string, match func(imap.Response) bool) {
	e.t.Helper()
	deadline := time.Now().Add(pushWithin)
	for time.Now().Before(deadline) {
		r, ok, err := id.Next(time.Until(deadline))
		if err != nil {
			e.fatalf("IDLE, waiting for %s: %v", what, err)
		}
		if ok && match(r) {
			return
		}
	}
	e.fatalf("IDLE: no %s within %v", what, pushWithin)
}
