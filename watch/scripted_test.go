package watch_test

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
	"github.com/imapkit/imap/watch"
)

// script is a fake server's answers: for each command (its arguments
// after the tag, e.g. "UID SEARCH ALL"), a queue of untagged lines to send
// before "OK"; the last entry repeats. IDLE answers are sent after "+".
type script map[string][][]string

type scriptedServer struct {
	mu sync.Mutex
	s  script
}

func (ss *scriptedServer) next(cmd string) ([]string, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	q, ok := ss.s[cmd]
	if !ok {
		// A command prefix: "UID FETCH 3:4" for "UID FETCH 3:4 (UID FLAGS)".
		for k, v := range ss.s {
			if strings.HasPrefix(cmd, k+" ") {
				q, ok, cmd = v, true, k
				break
			}
		}
	}
	if !ok || len(q) == 0 {
		return nil, ok
	}
	lines := q[0]
	if len(q) > 1 {
		ss.s[cmd] = q[1:]
	}
	return lines, true
}

// newScripted starts a fake IMAP server (IMAP4rev1 IDLE) that answers from
// the script.
func newScripted(t *testing.T, sc script) *imaptest.Server {
	return newScriptedCaps(t, "IDLE", sc)
}

// newScriptedCaps is newScripted for a server with other capabilities.
func newScriptedCaps(t *testing.T, caps string, sc script) *imaptest.Server {
	ss := &scriptedServer{s: sc}
	answer := func(name string) imaptest.CommandFunc {
		return func(s *imaptest.Session, tag, args string) {
			cmd := strings.TrimSpace(name + " " + args)
			lines, ok := ss.next(cmd)
			if !ok {
				_ = s.Send(tag + " BAD unexpected command " + cmd)
				return
			}
			_ = s.Send(append(lines, tag+" OK "+name+" completed")...)
		}
	}
	return imaptest.NewServer(t, imaptest.Config{
		Capabilities: caps,
		Commands: map[string]imaptest.CommandFunc{
			"EXAMINE": answer("EXAMINE"),
			// NOOP answers from the script when it has an entry, else OK.
			"NOOP": func(s *imaptest.Session, tag, args string) {
				lines, _ := ss.next("NOOP")
				_ = s.Send(append(lines, tag+" OK NOOP completed")...)
			},
			"UID":   answer("UID"),
			"FETCH": answer("FETCH"),
			"IDLE": func(s *imaptest.Session, tag, args string) {
				lines, _ := ss.next("IDLE")
				_ = s.Send(append([]string{"+ idling"}, lines...)...)
				if line, err := s.ReadLine(); err != nil || !strings.EqualFold(line, "DONE") {
					return
				}
				_ = s.Send(tag + " OK IDLE completed")
			},
		},
	})
}

func scriptedDialer(addr string) watch.Dialer {
	return func(ctx context.Context) (*imap.Client, error) {
		c, err := imap.Dial(ctx, addr, &imap.Options{InsecureAuth: true, Timeout: 5 * time.Second})
		if err != nil {
			return nil, err
		}
		if _, err := c.Login(ctx, "u", "p"); err != nil {
			c.Shutdown()
			return nil, err
		}
		return c, nil
	}
}

// TestScripted plays server behaviours that a real server produces only
// by chance: new mail fetched by sequence number in one command, with a
// flag change of another message in the answer; a message expunged
// between learning its UID and fetching it (the window lets the watcher
// fetch one message at a time, by UID, when the server may send EXPUNGE);
// and EXPUNGEs sent during a UID SEARCH (before its result), which make
// sequence numbers ambiguous.
func TestScripted(t *testing.T) {
	examine := [][]string{{"* 2 EXISTS", "* OK [UIDVALIDITY 7] UIDs valid", "* OK [UIDNEXT 3] Predicted next UID"}}
	for _, tc := range []struct {
		name   string
		window int
		caps   string // "": IDLE; "-": none (the watcher polls with NOOP)
		script script
		want   []string // the events after the baseline, as "kind uid"
	}{
		{
			name: "new mail by sequence number",
			script: script{
				"EXAMINE INBOX":  examine,
				"UID SEARCH ALL": {{"* SEARCH 1 2"}},
				"IDLE":           {{"* 4 EXISTS"}, {}},
				"FETCH 3:4":      {{"* 3 FETCH (UID 3 FLAGS ())", "* 4 FETCH (UID 4 FLAGS (\\Recent))"}},
			},
			want: []string{"new 3", "new 4"},
		},
		{
			name:   "expunged before fetch",
			window: 1,
			script: script{
				"EXAMINE INBOX":  examine,
				"UID SEARCH ALL": {{"* SEARCH 1 2"}},
				"IDLE": {
					{"* 4 EXISTS"},  // UIDs 3 and 4
					{"* 3 EXPUNGE"}, // UID 4 (UID 3 went during its FETCH)
					{},
				},
				// Room for one: the UIDs first, then one message by UID.
				"FETCH 3:4 (UID)": {{"* 3 FETCH (UID 3)", "* 4 FETCH (UID 4)"}},
				// UID 3 is gone by the time of its FETCH: no answer, and
				// the EXPUNGE of 3 follows.
				"UID FETCH 3": {{"* 3 EXPUNGE"}},
				"UID FETCH 4": {{"* 3 FETCH (UID 4 FLAGS (\\Recent))"}},
			},
			want: []string{"new 4", "expunge 4"},
		},
		{
			name:   "new mail while older mail waits for room",
			window: 1,
			script: script{
				"EXAMINE INBOX":   examine,
				"UID SEARCH ALL":  {{"* SEARCH 1 2"}},
				"IDLE":            {{"* 4 EXISTS"}, {}},
				"FETCH 3:4 (UID)": {{"* 3 FETCH (UID 3)", "* 4 FETCH (UID 4)"}},
				// A fifth message arrives while 4 waits for room: it must
				// not be reported before 4.
				"UID FETCH 3":     {{"* 3 FETCH (UID 3 FLAGS ())", "* 5 EXISTS"}},
				"FETCH 5:5 (UID)": {{"* 5 FETCH (UID 5)"}},
				"UID FETCH 4":     {{"* 4 FETCH (UID 4 FLAGS ())"}},
				"UID FETCH 5":     {{"* 5 FETCH (UID 5 FLAGS ())"}},
			},
			want: []string{"new 3", "new 4", "new 5"},
		},
		{
			name: "expunge during search",
			script: script{
				"EXAMINE INBOX": examine,
				// The first search's EXPUNGE comes before its result: is
				// the result before or after it? The watcher asks again.
				"UID SEARCH ALL": {{"* 2 EXPUNGE", "* 2 EXISTS", "* SEARCH 1 3"}, {"* SEARCH 1 3"}},
				"IDLE": {
					{"* 2 EXPUNGE"}, // UID 3
					{},
				},
			},
			want: []string{"expunge 3"},
		},
		{
			// Sequence numbers of a FETCH without UID count the EXPUNGE
			// sent before it in the same batch: applied in order, the
			// FETCH of 2 is UID 3, no resync needed (the scripted server
			// lacks CONDSTORE: a resync could not report the change).
			name: "fetch by sequence number after expunge in one batch",
			script: script{
				"EXAMINE INBOX":  {{"* 3 EXISTS", "* OK [UIDVALIDITY 7] UIDs valid", "* OK [UIDNEXT 4] Predicted next UID"}},
				"UID SEARCH ALL": {{"* SEARCH 1 2 3"}},
				"NOOP":           {{"* 1 EXPUNGE", "* 2 FETCH (FLAGS (\\Seen))"}, {}},
				"IDLE":           {{}},
			},
			want: []string{"expunge 1", "flags 3 [\\Seen]"},
		},
		{
			name: "flag change during fetch of new mail",
			script: script{
				"EXAMINE INBOX":  examine,
				"UID SEARCH ALL": {{"* SEARCH 1 2"}},
				"IDLE":           {{"* 3 EXISTS"}, {}},
				// A flag change of message 1 (by someone else) and one of
				// the new message arrive with the answer.
				"FETCH 3:3": {{"* 1 FETCH (UID 1 FLAGS (\\Seen))", "* 3 FETCH (UID 3 FLAGS ())", "* 3 FETCH (UID 3 FLAGS (\\Flagged))"}},
			},
			want: []string{"flags 1 [\\Seen]", "new 3 [\\Flagged]"},
		},
		// A server without IDLE, polled with NOOP, sends changes with the
		// answer to any command: nothing may be lost or reported twice.
		{
			name: "pushed during NOOP",
			caps: "-",
			script: script{
				"EXAMINE INBOX":  examine,
				"UID SEARCH ALL": {{"* SEARCH 1 2"}},
				"NOOP":           {{"* 3 EXISTS", "* 1 FETCH (FLAGS (\\Seen))"}, {"* 2 EXPUNGE"}, {}},
				"FETCH 3:3":      {{"* 3 FETCH (UID 3 FLAGS ())"}},
			},
			want: []string{"flags 1 [\\Seen]", "new 3 []", "expunge 2"},
		},
		{
			name: "pushed with the answer to a FETCH",
			caps: "-",
			script: script{
				"EXAMINE INBOX":  examine,
				"UID SEARCH ALL": {{"* SEARCH 1 2"}},
				"NOOP":           {{"* 3 EXISTS"}, {}},
				// A fourth message arrives, and the first goes, as the
				// third is fetched: the fourth is now number 3.
				"FETCH 3:3": {{"* 3 FETCH (UID 3 FLAGS ())", "* 4 EXISTS", "* 1 EXPUNGE"}, {"* 3 FETCH (UID 4 FLAGS ())"}},
			},
			want: []string{"new 3", "expunge 1", "new 4"},
		},
		{
			name: "flags of a new message pushed before it is fetched",
			caps: "-",
			script: script{
				"EXAMINE INBOX":  examine,
				"UID SEARCH ALL": {{"* SEARCH 1 2"}},
				"NOOP":           {{"* 3 EXISTS", "* 3 FETCH (FLAGS (\\Flagged))"}, {}},
				"FETCH 3:3":      {{"* 3 FETCH (UID 3 FLAGS (\\Flagged))"}},
			},
			want: []string{"new 3 [\\Flagged]"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *imaptest.Server
			switch tc.caps {
			case "":
				srv = newScripted(t, tc.script)
			case "-":
				srv = newScriptedCaps(t, "", tc.script)
			default:
				srv = newScriptedCaps(t, tc.caps, tc.script)
			}
			opts := fastOptions()
			opts.Inactivity = time.Minute
			opts.Envelope = false
			opts.Window = tc.window
			r := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
			r.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))
			evs := r.waitFor(strings.Join(tc.want, ", "), func(evs []watch.Event) bool {
				return len(evs) >= 1+len(tc.want)
			})
			if tc.caps == "-" {
				time.Sleep(3 * opts.PollInterval) // polls that would report anything twice
			}
			r.stop()
			evs = r.events()
			var got []string
			for _, ev := range evs[1:] {
				s := fmt.Sprintf("%s %d", ev.Kind, ev.UID)
				if ev.Kind == watch.EventFlags || strings.Contains(strings.Join(tc.want, " "), "[") && ev.Kind == watch.EventNew {
					s += " [" + strings.Join(ev.Flags, " ") + "]"
				}
				got = append(got, s)
			}
			if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Errorf("events after the baseline:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestLoginRefused: a login refused for good ends Run with the error; one
// refused for now (too many connections) is retried.
func TestLoginRefused(t *testing.T) {
	for _, tc := range []struct {
		name, reply string
		fatal       bool
	}{
		{name: "bad credentials", reply: "NO [AUTHENTICATIONFAILED] Authentication failed.", fatal: true},
		{name: "too many connections", reply: "NO [UNAVAILABLE] Too many simultaneous connections."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := imaptest.NewServer(t, imaptest.Config{
				Capabilities: "IDLE",
				Commands: map[string]imaptest.CommandFunc{
					"LOGIN": func(s *imaptest.Session, tag, _ string) { _ = s.Send(tag + " " + tc.reply) },
				},
			})
			w, err := watch.New(scriptedDialer(srv.Addr), fastOptions())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			disconnected := 0
			for ev := range w.Events() {
				if ev.Kind == watch.EventDisconnected {
					disconnected++
				}
			}
			err = <-done
			switch {
			case tc.fatal && (err == nil || !strings.Contains(err.Error(), "AUTHENTICATIONFAILED")):
				t.Errorf("Run = %v, want the login error", err)
			case !tc.fatal && (err != nil || disconnected == 0):
				t.Errorf("Run = %v after %d Disconnected events, want retries until cancelled", err, disconnected)
			}
		})
	}
}

// TestAlert: "[ALERT] text" during IDLE reaches the consumer with its text
// (RFC 3501: the client must show it).
func TestAlert(t *testing.T) {
	srv := newScripted(t, script{
		"EXAMINE INBOX":  {{"* 2 EXISTS", "* OK [UIDVALIDITY 7] UIDs valid", "* OK [UIDNEXT 3] Predicted next UID"}},
		"UID SEARCH ALL": {{"* SEARCH 1 2"}},
		"IDLE":           {{"* OK [ALERT] Mailbox is 95% full"}, {}},
	})
	opts := fastOptions()
	opts.Inactivity = time.Minute
	r := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
	evs := r.waitFor("alert", func(evs []watch.Event) bool {
		for _, ev := range evs {
			if ev.Kind == watch.EventAlert {
				return true
			}
		}
		return false
	})
	r.stop()
	for _, ev := range evs {
		if ev.Kind == watch.EventAlert {
			if ev.Text != "Mailbox is 95% full" || ev.Mailbox != "INBOX" {
				t.Errorf("alert %+v", ev)
			}
			return
		}
	}
}

// TestChangeBeforeIdle: a server that reports a change made between
// commands only in answer to the next command, and says nothing when IDLE
// starts (go-imap's memory server does this). The watcher asks before every
// IDLE, so the new message is reported at once rather than at the next
// IDLE restart.
func TestChangeBeforeIdle(t *testing.T) {
	srv := newScripted(t, script{
		"EXAMINE INBOX":  {{"* 2 EXISTS", "* OK [UIDVALIDITY 7] UIDs valid", "* OK [UIDNEXT 3] Predicted next UID"}},
		"UID SEARCH ALL": {{"* SEARCH 1 2"}},
		"NOOP":           {{"* 3 EXISTS"}, {}},
		"IDLE":           {{}}, // silent
		"FETCH 3:3":      {{"* 3 FETCH (UID 3 FLAGS ())"}},
	})
	opts := fastOptions()
	opts.Inactivity = time.Minute
	opts.IdleRestart = time.Minute
	opts.Envelope = false
	r := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
	start := time.Now()
	evs := r.waitFor("new 3", func(evs []watch.Event) bool {
		for _, ev := range evs {
			if ev.Kind == watch.EventNew && ev.UID == 3 {
				return true
			}
		}
		return false
	})
	r.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("new mail reported after %v", d)
	}
	_ = evs
}

// TestGmailAttributes: a server that advertises X-GM-EXT-1 is asked for
// X-GM-MSGID, X-GM-THRID and X-GM-LABELS with new messages — fetched by
// sequence number, and by UID when the window holds one — and the New
// events carry them; a server without the capability is never asked
// (it would answer BAD), and its events have none.
func TestGmailAttributes(t *testing.T) {
	examine := [][]string{{"* 2 EXISTS", "* OK [UIDVALIDITY 7] UIDs valid", "* OK [UIDNEXT 3] Predicted next UID"}}
	const (
		gm3 = `X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334865 X-GM-LABELS (\Inbox \Sent Important "Muy Importante")`
		gm4 = `X-GM-THRID 1278455344230334865 X-GM-MSGID 18446744073709551615 X-GM-LABELS ("\\Important" "&AMk-t&AOk-")`
	)
	type gm struct {
		msgID, thrID uint64
		labels       []string
	}
	withGM := []gm{
		{1278455344230334865, 1278455344230334865, []string{`\Inbox`, `\Sent`, "Important", "Muy Importante"}},
		{1<<64 - 1, 1278455344230334865, []string{`\Important`, "Été"}},
	}
	for _, tc := range []struct {
		name   string
		caps   string
		window int
		script script
		want   []gm // of the New events of UIDs 3 and 4
	}{
		{
			name: "by sequence number",
			caps: "IDLE X-GM-EXT-1",
			script: script{
				"EXAMINE INBOX":  examine,
				"UID SEARCH ALL": {{"* SEARCH 1 2"}},
				"IDLE":           {{"* 4 EXISTS"}, {}},
				"FETCH 3:4":      {{"* 3 FETCH (UID 3 FLAGS () " + gm3 + ")", "* 4 FETCH (" + gm4 + " UID 4 FLAGS (\\Seen))"}},
			},
			want: withGM,
		},
		{
			name:   "by UID",
			caps:   "IDLE X-GM-EXT-1",
			window: 1,
			script: script{
				"EXAMINE INBOX":   examine,
				"UID SEARCH ALL":  {{"* SEARCH 1 2"}},
				"IDLE":            {{"* 4 EXISTS"}, {}},
				"FETCH 3:4 (UID)": {{"* 3 FETCH (UID 3)", "* 4 FETCH (UID 4)"}},
				"UID FETCH 3":     {{"* 3 FETCH (UID 3 FLAGS () " + gm3 + ")"}},
				"UID FETCH 4":     {{"* 4 FETCH (UID 4 FLAGS () " + gm4 + ")"}},
			},
			want: withGM,
		},
		{
			name: "without the capability",
			caps: "IDLE",
			script: script{
				"EXAMINE INBOX":  examine,
				"UID SEARCH ALL": {{"* SEARCH 1 2"}},
				"IDLE":           {{"* 4 EXISTS"}, {}},
				"FETCH 3:4":      {{"* 3 FETCH (UID 3 FLAGS ())", "* 4 FETCH (UID 4 FLAGS ())"}},
			},
			want: []gm{{}, {}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptedCaps(t, tc.caps, tc.script)
			opts := fastOptions()
			opts.Inactivity = time.Minute
			opts.Envelope = false
			opts.Window = tc.window
			r := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
			r.waitFor("new 3 and 4", count(watch.EventNew, "INBOX", 2))
			r.stop()
			var got []gm
			for _, ev := range ofKind(r.events(), watch.EventNew, "INBOX") {
				got = append(got, gm{ev.GMMsgID, ev.GMThrID, ev.GMLabels})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("New events' Gmail attributes:\n got %+v\nwant %+v", got, tc.want)
			}
			asked := 0
			for _, cmd := range srv.Commands() {
				if !strings.Contains(cmd, "FETCH") || !strings.Contains(cmd, "FLAGS") || strings.HasSuffix(cmd, " (UID FLAGS)") {
					continue // not a fetch of new messages' data (the last: the flags kept without CONDSTORE)
				}
				if strings.Contains(cmd, "X-GM-") {
					asked++
				}
				if tc.caps != "IDLE" && !strings.HasSuffix(cmd, " X-GM-MSGID X-GM-THRID X-GM-LABELS)") {
					t.Errorf("command %q does not ask for the X-GM items", cmd)
				}
			}
			if tc.caps == "IDLE" && asked > 0 {
				t.Errorf("a server without X-GM-EXT-1 was asked for X-GM items %d times: %q", asked, srv.Commands())
			}
			if tc.caps != "IDLE" && asked == 0 {
				t.Errorf("no FETCH asked for the X-GM items: %q", srv.Commands())
			}
		})
	}
}

// TestScriptedNoUIDNext: a server whose SELECT answer has no UIDNEXT
// (Courier's, for one) is watched all the same. The baseline is the
// highest UID present, new mail is reported, the saved position advances,
// a restart reports only what came since, and the debug log says what was
// assumed.
func TestScriptedNoUIDNext(t *testing.T) {
	srv := newScripted(t, script{
		"EXAMINE INBOX": {
			{"* 2 EXISTS", "* OK [UIDVALIDITY 7] UIDs valid"},
			{"* 4 EXISTS", "* OK [UIDVALIDITY 7] UIDs valid"}, // at the restart
		},
		"UID SEARCH ALL": {{"* SEARCH 1 2"}, {"* SEARCH 1 2 3 4"}},
		"IDLE":           {{"* 3 EXISTS"}, {}},
		"FETCH 3:3":      {{"* 3 FETCH (UID 3 FLAGS ())"}},
		"UID FETCH 4":    {{"* 4 FETCH (UID 4 FLAGS ())"}},
	})
	state := t.TempDir() + "/state.json"
	var log logBuffer
	opts := fastOptions()
	opts.Inactivity = time.Minute
	opts.Envelope = false
	opts.Store = openState(t, state)
	opts.Logger = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))

	first := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
	evs := first.waitFor("new 3", has(watch.EventNew, "INBOX", 3))
	waitSaved(t, state, "acct", "last UID 3", func(mbs map[string]watch.MailboxState, _ bool) bool {
		return mbs["INBOX"].LastUID == 3 && mbs["INBOX"].UIDs == "1:3"
	})
	first.stop()
	if base := ofKind(evs, watch.EventResynced, "INBOX"); len(base) != 1 || !strings.HasPrefix(base[0].Text, "baseline") {
		t.Errorf("resyncs %v, want one baseline", base)
	}
	checkExactlyOnce(t, evs, "INBOX", []uint32{3})
	if !strings.Contains(log.String(), "the server sent no UIDNEXT: taking the highest UID present as the last one given") ||
		!strings.Contains(log.String(), "highest_uid=2") {
		t.Errorf("the debug log does not say what was assumed:\n%s", log.String())
	}

	second := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
	evs = second.waitFor("new 4", has(watch.EventNew, "INBOX", 4))
	waitSaved(t, state, "acct", "last UID 4", func(mbs map[string]watch.MailboxState, _ bool) bool {
		return mbs["INBOX"].LastUID == 4
	})
	second.stop()
	checkExactlyOnce(t, evs, "INBOX", []uint32{4})
	for _, ev := range ofKind(evs, watch.EventResynced, "INBOX") {
		if ev.Text != "" {
			t.Errorf("the restart resynced with %q, want a plain resync from the saved position", ev.Text)
		}
	}
}

// TestScriptedEmptyUIDValidity: Courier gives an empty folder a new
// UIDVALIDITY at every SELECT, until its first message. A mailbox whose
// position holds no UID (nothing was ever there) has nothing to reset: the
// new UIDVALIDITY is taken, and the message found at the next start is
// reported as new — a reset would have made it part of a new baseline,
// and skipped it.
func TestScriptedEmptyUIDValidity(t *testing.T) {
	srv := newScripted(t, script{
		"EXAMINE INBOX": {
			{"* 0 EXISTS", "* OK [UIDVALIDITY 100] Ok"},
			{"* 1 EXISTS", "* OK [UIDVALIDITY 101] Ok"}, // at the restart
		},
		"UID SEARCH ALL": {{"* SEARCH"}, {"* SEARCH 1"}},
		"IDLE":           {{}},
		"UID FETCH 1":    {{"* 1 FETCH (UID 1 FLAGS ())"}},
	})
	state := t.TempDir() + "/state.json"
	opts := fastOptions()
	opts.Inactivity = time.Minute
	opts.Envelope = false
	opts.Store = openState(t, state)
	first := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
	first.waitFor("baseline", count(watch.EventResynced, "INBOX", 1))
	first.stop()

	second := startWatcher(t, scriptedDialer(srv.Addr), opts, false)
	evs := second.waitFor("new 1", has(watch.EventNew, "INBOX", 1))
	second.stop()
	if n := len(ofKind(evs, watch.EventMailboxReset, "")); n != 0 {
		t.Errorf("%d resets of a mailbox that had no message", n)
	}
	if ev := ofKind(evs, watch.EventNew, "INBOX")[0]; ev.UIDValidity != 101 {
		t.Errorf("got %s, want UIDVALIDITY 101", describe(ev))
	}
	if mbs, _ := savedMailboxes(t, state, "acct"); mbs["INBOX"].UIDValidity != 101 || mbs["INBOX"].LastUID != 1 {
		t.Errorf("saved %+v, want UIDVALIDITY 101 and last UID 1", mbs["INBOX"])
	}
}
