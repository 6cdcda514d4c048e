package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
)

// buffer is a bytes.Buffer safe for the command's goroutines and the test.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// invocation is a command run in the background.
type invocation struct {
	stdout, stderr buffer
	code           chan int
	cancel         context.CancelFunc
}

// start runs the command line in the background; cancelling stands for
// SIGINT.
func start(args ...string) *invocation {
	ctx, cancel := context.WithCancel(context.Background())
	inv := &invocation{code: make(chan int, 1), cancel: cancel}
	go func() { inv.code <- runContext(ctx, args, &inv.stdout, &inv.stderr) }()
	return inv
}

// wait returns the exit code, failing the test after d.
func (inv *invocation) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case code := <-inv.code:
		return code
	case <-time.After(d):
		inv.cancel()
		t.Fatalf("the command did not finish within %v\nstdout:\n%s\nstderr:\n%s", d, inv.stdout.String(), inv.stderr.String())
		return -1
	}
}

// waitOutput waits until out contains want.
func waitOutput(t *testing.T, what string, out *buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the %s within 15 s:\n%s", want, what, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runCmd runs a command line to its end, as main does.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	inv := &invocation{code: make(chan int, 1), cancel: func() {}}
	go func() { inv.code <- run(args, &inv.stdout, &inv.stderr) }()
	code = inv.wait(t, 30*time.Second)
	return code, inv.stdout.String(), inv.stderr.String()
}

// jsonLines decodes one JSON object per line.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var objs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		objs = append(objs, m)
	}
	return objs
}

// events selects the JSON events of a kind.
func events(objs []map[string]any, kind string) []map[string]any {
	var out []map[string]any
	for _, o := range objs {
		if o["event"] == kind {
			out = append(out, o)
		}
	}
	return out
}

func uidsOf(objs []map[string]any) []int {
	var out []int
	for _, o := range objs {
		if n, ok := o["uid"].(float64); ok {
			out = append(out, int(n))
		}
	}
	slices.Sort(out)
	return out
}

// freeAddr returns a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUsageAndErrors(t *testing.T) {
	t.Setenv("IMAPKIT_TEST_PASSWORD", "secret")
	unreachable := freeAddr(t)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string // part of the error message
		stdout string
	}{
		{name: "no command", args: nil, code: 2, stderr: "usage: imapkit COMMAND"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`},
		{name: "help", args: []string{"help"}, code: 0, stdout: "usage: imapkit COMMAND"},
		{name: "bad flag", args: []string{"watch", "--no-such-flag"}, code: 2, stderr: "no-such-flag"},
		{name: "bad duration", args: []string{"idle", "--duration", "soon"}, code: 2, stderr: "invalid value"},
		{name: "no server", args: []string{"watch"}, code: 2, stderr: "--server or --stream is required"},
		{name: "no user", args: []string{"idle", "--server", unreachable}, code: 2, stderr: "--user is required"},
		{name: "two transports", args: []string{"idle", "--server", unreachable, "--tls", "--plaintext", "--user", "u"}, code: 2, stderr: "choose one of"},
		{name: "demo bad flag", args: []string{"demo", "--messages", "many"}, code: 2, stderr: "invalid value"},
		{name: "no password", args: []string{"watch", "--server", unreachable, "--plaintext", "--user", "u"}, code: 1, stderr: "no password source"},
		{name: "unset password variable", args: []string{"watch", "--server", unreachable, "--plaintext", "--user", "u", "--password-env", "IMAPKIT_TEST_UNSET"}, code: 1, stderr: "IMAPKIT_TEST_UNSET is not set"},
		{name: "idle unreachable", args: []string{"idle", "--server", unreachable, "--plaintext", "--user", "u", "--password-env", "IMAPKIT_TEST_PASSWORD"}, code: 1, stderr: "cannot connect to " + unreachable},
		{name: "watch once unreachable", args: []string{"watch", "--server", unreachable, "--tls", "--user", "u", "--password-env", "IMAPKIT_TEST_PASSWORD", "--once"}, code: 1, stderr: "cannot connect to " + unreachable},
		{name: "missing config", args: []string{"watch", "--config", "/nonexistent/accounts.json"}, code: 1, stderr: "config"},
		{name: "stream that fails", args: []string{"idle", "--stream", "exit 3"}, code: 1, stderr: "imapkit idle:"},
		// Arguments no command takes, and flags that contradict each other
		// or cannot mean what they say, are usage errors.
		{name: "idle argument", args: []string{"idle", "--stream", "exit 3", "Sent"}, code: 2, stderr: `unexpected argument "Sent"`},
		{name: "watch argument", args: []string{"watch", "--stream", "exit 3", "INBOX"}, code: 2, stderr: `unexpected argument "INBOX"`},
		{name: "server with config", args: []string{"watch", "--config", "/nonexistent/accounts.json", "--server", unreachable}, code: 2, stderr: "--server with --config"},
		{name: "account flags with config", args: []string{"watch", "--user", "u", "--config", "/nonexistent/accounts.json", "--starttls", "--password-env", "P", "--oauth2-token-file", "t", "--ca-file", "c", "--mailbox", "Sent"},
			code: 2, stderr: "--starttls, --user, --password-env, --oauth2-token-file, --ca-file, --mailbox with --config"},
		{name: "stream with config", args: []string{"watch", "--config", "/nonexistent/accounts.json", "--stream", "exit 3", "--plaintext"}, code: 2, stderr: "--plaintext, --stream with --config"},
		{name: "exec-burst without exec", args: []string{"watch", "--stream", "exit 3", "--exec-burst", "2s"}, code: 2, stderr: "--exec-burst without --exec: there is no hook"},
		{name: "exec flags without exec", args: []string{"watch", "--stream", "exit 3", "--exec-timeout", "5s", "--exec-retries", "1"}, code: 2, stderr: "--exec-timeout, --exec-retries without --exec"},
		{name: "webhook flags without webhook", args: []string{"watch", "--stream", "exit 3", "--exec", "true", "--webhook-retries", "1"}, code: 2, stderr: "--webhook-retries without --webhook"},
		{name: "backoff without sinks", args: []string{"watch", "--stream", "exit 3", "--retry-backoff", "1s"}, code: 2, stderr: "--retry-backoff without --exec or --webhook"},
		{name: "dead letter without sinks", args: []string{"watch", "--stream", "exit 3", "--dead-letter", "dl.jsonl"}, code: 2, stderr: "--dead-letter without --exec or --webhook"},
		{name: "idle --idle-restart over 29m", args: []string{"idle", "--stream", "exit 3", "--idle-restart", "30m"}, code: 2, stderr: "--idle-restart 30m0s: want a positive duration of at most 29m0s"},
		{name: "idle-restart over 29m", args: []string{"watch", "--stream", "exit 3", "--idle-restart", "30m"}, code: 2, stderr: "--idle-restart 30m0s: want a positive duration of at most 29m0s"},
		{name: "idle-restart zero", args: []string{"watch", "--stream", "exit 3", "--idle-restart", "0"}, code: 2, stderr: "--idle-restart 0s"},
		{name: "negative inactivity", args: []string{"watch", "--stream", "exit 3", "--inactivity", "-1s"}, code: 2, stderr: "--inactivity -1s"},
		{name: "zero poll", args: []string{"watch", "--stream", "exit 3", "--poll", "0"}, code: 2, stderr: "--poll 0s"},
		{name: "list interval too short", args: []string{"watch", "--stream", "exit 3", "--all-mailboxes", "--list-interval", "10ms"}, code: 2, stderr: "--list-interval 10ms: want at least 1s"},
		{name: "all mailboxes and mailbox", args: []string{"watch", "--stream", "exit 3", "--all-mailboxes", "--mailbox", "Sent"}, code: 2, stderr: "--all-mailboxes with --mailbox"},
		{name: "all mailboxes with config", args: []string{"watch", "--config", "/nonexistent/accounts.json", "--all-mailboxes"}, code: 2, stderr: "--all-mailboxes with --config"},
		{name: "bad kind", args: []string{"watch", "--stream", "exit 3", "--events", "new,frob"}, code: 2, stderr: `unknown kind "frob" (kinds: new, expunge, flags, reset, alert, disconnected, reconnected, resynced, state_error, auth_failed, mailbox_created, mailbox_renamed, mailbox_deleted)`},
		{name: "negative grace", args: []string{"watch", "--stream", "exit 3", "--grace", "-1s"}, code: 2, stderr: "--grace -1s"},
		{name: "zero window", args: []string{"watch", "--stream", "exit 3", "--window", "0"}, code: 2, stderr: "--window 0: want 1 or more"},
		{name: "zero timeout", args: []string{"watch", "--stream", "exit 3", "--timeout", "0"}, code: 2, stderr: "--timeout 0s"},
		{name: "negative exec retries", args: []string{"watch", "--stream", "exit 3", "--exec", "true", "--exec-retries", "-1"}, code: 2, stderr: "--exec-retries -1"},
		{name: "negative exec burst", args: []string{"watch", "--stream", "exit 3", "--exec", "true", "--exec-burst", "-2s"}, code: 2, stderr: "--exec-burst -2s"},
		{name: "rebaseline without state", args: []string{"watch", "--stream", "exit 3", "--rebaseline"}, code: 2, stderr: "--rebaseline without --state"},
		{name: "idle negative duration", args: []string{"idle", "--stream", "exit 3", "--duration", "-1m"}, code: 2, stderr: "--duration -1m0s"},
		{name: "idle negative burst", args: []string{"idle", "--stream", "exit 3", "--burst", "-1s"}, code: 2, stderr: "--burst -1s"},
		{name: "idle zero timeout", args: []string{"idle", "--stream", "exit 3", "--timeout", "0"}, code: 2, stderr: "--timeout 0s"},
		{name: "demo negative messages", args: []string{"demo", "--messages", "-1"}, code: 2, stderr: "--messages -1"},
		{name: "serve embedded flags with nats", args: []string{"serve", "--secret-key-file", "k", "--nats", "nats://127.0.0.1:1", "--data-dir", "d"}, code: 2, stderr: "--data-dir with --nats"},
		{name: "serve token without API", args: []string{"serve", "--secret-key-file", "k", "--api-token-file", "t", "--http", ""}, code: 2, stderr: "--api-token-file with an empty --http"},
		{name: "serve replicas", args: []string{"serve", "--secret-key-file", "k", "--replicas", "7"}, code: 2, stderr: "--replicas 7: want 1 to 5"},
		{name: "serve lease", args: []string{"serve", "--secret-key-file", "k", "--lease-ttl", "0"}, code: 2, stderr: "--lease-ttl 0s"},
		{name: "serve concurrency", args: []string{"serve", "--secret-key-file", "k", "--per-server", "0"}, code: 2, stderr: "--per-server 0"},
		{name: "serve bad webhook URL", args: []string{"serve", "--secret-key-file", "k", "--webhook", "hooks.example.org"}, code: 2, stderr: "want an http:// or https:// URL"},
		{name: "serve bad kind", args: []string{"serve", "--secret-key-file", "k", "--events", "new,frob"}, code: 2, stderr: `unknown kind "frob"`},
		{name: "serve secret without webhook", args: []string{"serve", "--secret-key-file", "k", "--webhook-secret-file", "s"}, code: 2, stderr: "--webhook-secret-file without --webhook"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout %q does not contain %q", stdout, tc.stdout)
			}
			if tc.code != 0 && stdout != "" {
				t.Errorf("stdout should be empty on error: %q", stdout)
			}
		})
	}
}

// dovecotUser starts a Dovecot with a fresh user and returns the stream
// command for it and a connection to make changes with.
func dovecotUser(t *testing.T, srv *dovecot.Server) (stream string, other *imap.Client) {
	t.Helper()
	user, _, err := srv.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	stream = srv.StreamCommand(user)
	other, err = imap.DialStream(context.Background(), stream, &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Shutdown() })
	return stream, other
}

func appendMsg(t *testing.T, c *imap.Client, subject string) {
	t.Helper()
	msg := "From: Ada Lovelace <ada@example.org>\r\nSubject: " + subject + "\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@example.org>\r\n\r\nbody\r\n"
	if _, err := c.Append(context.Background(), "INBOX", "", time.Time{}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, what string, _ imap.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestWatchOnce runs "watch --once --state" three times: the first run
// records a baseline, the second reports what happened since (new mail,
// a flag change, an expunge), the third reports nothing new.
func TestWatchOnce(t *testing.T) {
	srv := dovecot.StartT(t)
	stream, other := dovecotUser(t, srv)
	appendMsg(t, other, "before") // UID 1
	appendMsg(t, other, "doomed") // UID 2
	state := filepath.Join(t.TempDir(), "state.json")
	args := []string{"watch", "--stream", stream, "--json", "--once", "--state", state}

	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	objs := jsonLines(t, stdout)
	if len(objs) != 1 || objs[0]["event"] != "resynced" || !strings.HasPrefix(objs[0]["text"].(string), "baseline") {
		t.Fatalf("first run printed %v, want one baseline resync", objs)
	}
	if !strings.Contains(stderr, "first run") {
		t.Errorf("the first run is not announced on stderr: %q", stderr)
	}
	uidvalidity := objs[0]["uidvalidity"]

	appendMsg(t, other, "Grüße aus Köln") // UID 3
	appendMsg(t, other, "second")         // UID 4
	r, err := other.Select(context.Background(), "INBOX", false)
	must(t, "SELECT", r, err)
	r, err = other.UID(context.Background(), "STORE", "1", "+FLAGS", `(\Flagged)`)
	must(t, "STORE", r, err)
	r, err = other.UID(context.Background(), "STORE", "2", "+FLAGS.SILENT", `(\Deleted)`)
	must(t, "STORE", r, err)
	r, err = other.Expunge(context.Background())
	must(t, "EXPUNGE", r, err)

	code, stdout, stderr = runCmd(t, args...)
	if code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr)
	}
	objs = jsonLines(t, stdout)
	news := events(objs, "new")
	if got := uidsOf(news); !slices.Equal(got, []int{3, 4}) {
		t.Fatalf("new UIDs %v, want [3 4]\n%s", got, stdout)
	}
	first := news[0]
	for k, want := range map[string]any{"event": "new", "mailbox": "INBOX", "uidvalidity": uidvalidity, "uid": 3.0,
		"from": "ada@example.org", "subject": "Grüße aus Köln", "message_id": "<Grüße-aus-Köln@example.org>"} {
		if first[k] != want {
			t.Errorf("new event: %s = %v, want %v (%v)", k, first[k], want, first)
		}
	}
	if first["account"] == "" || first["time"] == nil {
		t.Errorf("new event without account or time: %v", first)
	}
	if id, _ := first["id"].(string); len(id) != 32 {
		t.Errorf("new event without a 32-digit id: %v", first)
	}
	if ts, _ := first["time"].(string); ts != "" {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("time %q: %v", ts, err)
		}
	}
	if got := uidsOf(events(objs, "expunge")); !slices.Equal(got, []int{2}) {
		t.Errorf("expunged UIDs %v, want [2]", got)
	}
	flags := events(objs, "flags")
	if len(flags) != 1 || flags[0]["uid"] != 1.0 || !slices.Contains(flags[0]["flags"].([]any), any(`\Flagged`)) || flags[0]["modseq"] == nil {
		t.Errorf("flags events %v, want one for UID 1 with \\Flagged and a modseq", flags)
	}

	code, stdout, stderr = runCmd(t, args...)
	if code != 0 {
		t.Fatalf("third run: exit %d: %s", code, stderr)
	}
	objs = jsonLines(t, stdout)
	if len(objs) != 1 || objs[0]["event"] != "resynced" {
		t.Errorf("third run printed %v, want only a resync", objs)
	}
}

// TestWatchExec runs --exec per event and per burst: the (last) event in
// IMAPKIT_* variables, every event as a JSON line on stdin.
func TestWatchExec(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name  string
		burst string
		// The --exec runs of the second run (the baseline run has
		// nothing for hooks: resynced is not among the default --events).
		want []string
	}{
		{name: "per event", want: []string{"new 1 INBOX first|ada@example.org|1", "new 2 INBOX second|ada@example.org|1"}},
		{name: "per burst", burst: "1s", want: []string{"new 2 INBOX second|ada@example.org|2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stream, other := dovecotUser(t, srv)
			dir := t.TempDir()
			state := filepath.Join(dir, "state.json")
			lines, vars := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "vars")
			exec := `cat >> ` + lines + `; echo "$IMAPKIT_EVENT $IMAPKIT_UID $IMAPKIT_MAILBOX $IMAPKIT_SUBJECT|$IMAPKIT_FROM|$IMAPKIT_COUNT" >> ` + vars
			args := []string{"watch", "--stream", stream, "--once", "--state", state, "--exec", exec}
			if tc.burst != "" {
				args = append(args, "--exec-burst", tc.burst)
			}
			if code, _, stderr := runCmd(t, args...); code != 0 {
				t.Fatalf("baseline run: exit %d: %s", code, stderr)
			}
			appendMsg(t, other, "first")
			appendMsg(t, other, "second")
			code, stdout, stderr := runCmd(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, "new") || !strings.Contains(stdout, `subject="second"`) {
				t.Errorf("text output lacks the events:\n%s", stdout)
			}
			b, err := os.ReadFile(vars)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Split(strings.TrimSpace(string(b)), "\n"); !slices.Equal(got, tc.want) {
				t.Errorf("--exec saw\n%q\nwant\n%q", got, tc.want)
			}
			b, err = os.ReadFile(lines)
			if err != nil {
				t.Fatal(err)
			}
			objs := jsonLines(t, string(b))
			if got := uidsOf(events(objs, "new")); !slices.Equal(got, []int{1, 2}) {
				t.Errorf("JSON on stdin: new UIDs %v, want [1 2]", got)
			}
			if n := len(events(objs, "resynced")); n != 0 {
				t.Errorf("JSON on stdin: %d resyncs, want none (not among the default --events)", n)
			}
			for _, o := range objs {
				if id, _ := o["id"].(string); len(id) != 32 {
					t.Errorf("JSON on stdin without an id: %v", o)
				}
			}
		})
	}
}

// TestWatchStreaming runs "watch" until interrupted: new mail is printed as
// it arrives, and an interrupt ends it with exit code 0.
func TestWatchStreaming(t *testing.T) {
	srv := dovecot.StartT(t)
	stream, other := dovecotUser(t, srv)
	inv := start("watch", "--stream", stream, "--json", "--mailbox", "INBOX")
	waitOutput(t, "output", &inv.stdout, `"event":"resynced"`)
	appendMsg(t, other, "live")
	waitOutput(t, "output", &inv.stdout, `"subject":"live"`)
	inv.cancel()
	if code := inv.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("exit %d after interrupt: %s", code, inv.stderr.String())
	}
	objs := jsonLines(t, inv.stdout.String())
	news := events(objs, "new")
	if len(news) != 1 || news[0]["uid"] != 1.0 || news[0]["account"] != "local" {
		t.Errorf("new events %v", news)
	}
}

// TestIdle runs "idle" while another connection appends: each untagged
// response is a JSON line (one per batch with --burst), and the command
// exits 0 when the duration ends.
func TestIdle(t *testing.T) {
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		idles int // IDLE commands the server must see; 0: one
	}{
		{name: "responses", want: `{"type":"EXISTS","data":["2"]}`},
		{name: "burst", args: []string{"--burst", "300ms"}, want: `{"burst":[{"type":"EXISTS","data":["2"]}`},
		// Restarted every 600 ms: three IDLEs in 2 s, the push still printed.
		{name: "restart", args: []string{"--idle-restart", "600ms"}, want: `{"type":"EXISTS","data":["2"]}`, idles: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stream, other := dovecotUser(t, srv)
			appendMsg(t, other, "one")
			args := append([]string{"idle", "--stream", stream, "--duration", "2s", "--json", "--debug"}, tc.args...)
			inv := start(args...)
			// --debug traces the protocol on stderr: append once IDLE runs.
			waitOutput(t, "trace", &inv.stderr, "+ idling")
			began := time.Now()
			appendMsg(t, other, "two")
			if code := inv.wait(t, 10*time.Second); code != 0 {
				t.Fatalf("exit %d: %s", code, inv.stderr.String())
			}
			if d := time.Since(began); d > 3*time.Second {
				t.Errorf("idle ran %v after IDLE began, want about 2 s", d)
			}
			out := inv.stdout.String()
			if !strings.Contains(out, tc.want) {
				t.Errorf("stdout lacks %s:\n%s", tc.want, out)
			}
			jsonLines(t, out) // every line is JSON
			want := max(tc.idles, 1)
			if n := strings.Count(inv.stderr.String(), "+ idling"); n < want || tc.idles == 0 && n != 1 {
				t.Errorf("%d IDLE commands went ahead, want %d", n, want)
			}
		})
	}
}

// TestDemo runs the demo: it needs no setup and prints new mail, a flag
// change and an expunge.
func TestDemo(t *testing.T) {
	for _, tc := range []struct {
		name string
		json bool
	}{{name: "text"}, {name: "json", json: true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := []string{"demo", "--messages", "2", "--every", "200ms"}
			if tc.json {
				args = append(args, "--json")
			}
			code, stdout, stderr := runCmd(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if tc.json {
				var objs []map[string]any
				for _, line := range strings.Split(stdout, "\n") {
					if strings.HasPrefix(line, "{") {
						objs = append(objs, jsonLines(t, line)...)
					}
				}
				if got := uidsOf(events(objs, "new")); !slices.Equal(got, []int{1, 2}) {
					t.Errorf("new UIDs %v, want [1 2]\n%s", got, stdout)
				}
				if len(events(objs, "flags")) == 0 || len(events(objs, "expunge")) != 1 {
					t.Errorf("want flags and one expunge:\n%s", stdout)
				}
				return
			}
			for _, want := range []string{"resynced", "new          demo/INBOX uid=1", `subject="Welcome to imapkit"`,
				"new          demo/INBOX uid=2", `subject="Grüße aus Köln"`, "flags        demo/INBOX uid=1", "expunge      demo/INBOX uid=1", "demo: done"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
		})
	}
}
