package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/dovecot"
)

// writeConfig writes a --config file of stream accounts, name → stream
// command, in the order given.
func writeConfig(t *testing.T, path string, accounts ...[2]string) {
	t.Helper()
	var list []map[string]any
	for _, a := range accounts {
		list = append(list, map[string]any{"name": a[0], "stream": a[1]})
	}
	b, err := json.Marshal(map[string]any{"accounts": list})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readLines returns the lines of a file, none when it does not exist.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitLines waits until the file at path holds at least n lines.
func waitLines(t *testing.T, path string, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		lines := readLines(t, path)
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d lines after %v, want %d: %q", path, len(lines), within, n, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPID waits until a hook has written its process ID and a newline
// to path (the shell creates the file before it writes), and returns it.
func waitPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if s, ok := strings.CutSuffix(string(b), "\n"); ok {
			pid, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("%s holds %q, not a process ID", path, b)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q after 20 s, not a process ID and a newline", path, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchHookRetries: every 5th event's hook fails twice and then
// succeeds: every event is delivered, nothing is dead-lettered, and --once
// exits 0 once the last hook succeeded.
func TestWatchHookRetries(t *testing.T) {
	srv := dovecot.StartT(t)
	stream, other := dovecotUser(t, srv)
	dir := t.TempDir()
	state, log, dead := filepath.Join(dir, "state.json"), filepath.Join(dir, "hook.log"), filepath.Join(dir, "dead.jsonl")
	hook := `n=$(cat ` + dir + `/try.$IMAPKIT_EVENT_ID 2>/dev/null || echo 0); n=$((n+1)); echo $n > ` + dir + `/try.$IMAPKIT_EVENT_ID
if [ $((IMAPKIT_UID % 5)) = 0 ] && [ $n -le 2 ]; then echo "failing try $n" >&2; exit 1; fi
echo "$IMAPKIT_UID $n" >> ` + log
	args := []string{"watch", "--stream", stream, "--once", "--state", state, "--exec", hook, "--retry-backoff", "50ms", "--dead-letter", dead}
	if code, _, stderr := runCmd(t, args...); code != 0 {
		t.Fatalf("baseline run: exit %d: %s", code, stderr)
	}
	for i := range 10 {
		appendMsg(t, other, "retry "+strconv.Itoa(i+1))
	}
	code, _, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []string
	for _, line := range readLines(t, log) {
		got = append(got, line)
	}
	want := []string{"1 1", "2 1", "3 1", "4 1", "5 3", "6 1", "7 1", "8 1", "9 1", "10 3"}
	if !slices.Equal(got, want) {
		t.Errorf("hook log (uid try) %q, want %q", got, want)
	}
	if lines := readLines(t, dead); len(lines) != 0 {
		t.Errorf("dead letters: %q", lines)
	}
	if !strings.Contains(stderr, "failing try 1") {
		t.Errorf("the hook's stderr is not on ours: %q", stderr)
	}
}

// TestWatchHungHook: one account's hook hangs; it is killed at the timeout,
// retried, and dead-lettered after the last try, while the other account's
// events keep flowing. The dead letter says which account, mailbox and UID.
func TestWatchHungHook(t *testing.T) {
	srv := dovecot.StartT(t)
	slowStream, slowOther := dovecotUser(t, srv)
	fastStream, fastOther := dovecotUser(t, srv)
	dir := t.TempDir()
	config, log, dead := filepath.Join(dir, "accounts.json"), filepath.Join(dir, "hook.log"), filepath.Join(dir, "dead.jsonl")
	writeConfig(t, config, [2]string{"slow", slowStream}, [2]string{"fast", fastStream})
	hook := `if [ "$IMAPKIT_ACCOUNT" = slow ]; then sleep 30; fi; echo "$IMAPKIT_ACCOUNT $IMAPKIT_UID" >> ` + log
	inv := start("watch", "--config", config, "--state", filepath.Join(dir, "state.json"), "--exec", hook,
		"--exec-timeout", "1500ms", "--exec-retries", "1", "--retry-backoff", "100ms", "--dead-letter", dead)
	waitOutput(t, "output", &inv.stdout, "resynced     fast/INBOX")
	waitOutput(t, "output", &inv.stdout, "resynced     slow/INBOX")
	appendMsg(t, slowOther, "stuck")
	began := time.Now()
	for i := range 3 {
		appendMsg(t, fastOther, "flowing "+strconv.Itoa(i))
	}
	defer func() {
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", inv.stdout.String(), inv.stderr.String())
		}
	}()
	lines := waitLines(t, log, 3, 10*time.Second)
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("the fast account's hooks ran %v after the slow one hung: held up", d)
	}
	if !slices.Equal(lines, []string{"fast 1", "fast 2", "fast 3"}) {
		t.Errorf("hook log %q", lines)
	}
	// Two tries of 1.5 s and a backoff: dead-lettered.
	recs := waitLines(t, dead, 1, 10*time.Second)
	var rec struct {
		Event    map[string]any `json:"event"`
		Sink     string         `json:"sink"`
		Error    string         `json:"error"`
		Attempts int            `json:"attempts"`
		Time     string         `json:"time"`
	}
	if err := json.Unmarshal([]byte(recs[0]), &rec); err != nil {
		t.Fatalf("dead letter %q: %v", recs[0], err)
	}
	if rec.Event["account"] != "slow" || rec.Event["uid"] != 1.0 || rec.Event["event"] != "new" || rec.Sink != "exec" || rec.Attempts != 2 || rec.Time == "" {
		t.Errorf("dead letter %s", recs[0])
	}
	if len(rec.Event["id"].(string)) != 32 {
		t.Errorf("dead letter without the event's ID: %s", recs[0])
	}
	if !strings.Contains(rec.Error, "1.5s") {
		t.Errorf("dead letter error %q does not say the timeout", rec.Error)
	}
	waitOutput(t, "stderr", &inv.stderr, "account=slow mailbox=INBOX uid=1")
	waitOutput(t, "stderr", &inv.stderr, "dead_letter="+dead)
	inv.cancel()
	if code := inv.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, inv.stderr.String())
	}
	if slices.Contains(readLines(t, log), "slow 1") {
		t.Error("the hung hook was not killed")
	}
}

// TestWatchSignals runs the command as a process: the first SIGTERM lets a
// hung hook run for --grace, then kills it (its process group too) and
// exits 0 within grace + 1 s; the event was not acknowledged, so the next
// run delivers it, with the same ID. A second signal exits at once.
func TestWatchSignals(t *testing.T) {
	bin := imapkitBinary(t)
	srv := dovecot.StartT(t)
	for _, tc := range []struct {
		name    string
		signals int
		code    int
		within  time.Duration
	}{
		{name: "one signal: grace", signals: 1, code: 0, within: 2 * time.Second},
		{name: "two signals: at once", signals: 2, code: 128 + int(syscall.SIGTERM), within: 700 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stream, other := dovecotUser(t, srv)
			dir := t.TempDir()
			state, pidFile := filepath.Join(dir, "state.json"), filepath.Join(dir, "hook.pid")
			hung := `echo $$ > ` + pidFile + `; sleep 60`
			cmd := exec.Command(bin, "watch", "--stream", stream, "--state", state, "--json", "--exec", hung, "--grace", "1s")
			var stdout, stderr buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			waitOutput(t, "stdout", &stdout, "resynced")
			appendMsg(t, other, "hung")
			hookPID := waitPID(t, pidFile)
			began := time.Now()
			for range tc.signals {
				cmd.Process.Signal(syscall.SIGTERM)
				time.Sleep(50 * time.Millisecond)
			}
			err := cmd.Wait()
			took := time.Since(began)
			code := 0
			if exit, ok := err.(*exec.ExitError); ok {
				code = exit.ExitCode()
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d (%v)\n%s", code, tc.code, err, stderr.String())
			}
			if took > tc.within {
				t.Errorf("exited %v after the signal, want within %v", took, tc.within)
			}
			if !gone(hookPID) {
				t.Errorf("the hung hook (pid %d) still runs", hookPID)
			}
			// The event comes back, with the same ID.
			var ids []string
			for _, o := range jsonLines(t, stdout.String()) {
				if o["event"] == "new" {
					ids = append(ids, o["id"].(string))
				}
			}
			if tc.signals == 1 {
				code, out, errOut := runCmd(t, "watch", "--stream", stream, "--state", state, "--once", "--json", "--exec", "true")
				if code != 0 {
					t.Fatalf("next run: exit %d: %s", code, errOut)
				}
				news := events(jsonLines(t, out), "new")
				if len(news) != 1 || news[0]["uid"] != 1.0 {
					t.Fatalf("next run delivered %v, want the unacknowledged new 1", news)
				}
				if len(ids) != 1 || news[0]["id"] != ids[0] {
					t.Errorf("new 1 came back with ID %v; first delivered with %q", news[0]["id"], ids)
				}
			}
		})
	}
}

// gone reports whether the process pid has ended (a zombie counts: this
// machine's init may not reap orphans).
func gone(pid int) bool {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return true
		}
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestWatchWebhook delivers to a webhook alongside --json: the body is the
// event's JSON line, the ID header matches it, and the signature verifies
// with the secret file's content less its newline.
func TestWatchWebhook(t *testing.T) {
	srv := dovecot.StartT(t)
	stream, other := dovecotUser(t, srv)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type request struct {
		body      []byte
		id, sig   string
		mediaType string
	}
	var mu sync.Mutex
	var reqs []request
	fails := 2 // the first tries fail: retried
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		reqs = append(reqs, request{body, r.Header.Get("X-Imapkit-Event-Id"), r.Header.Get("X-Imapkit-Signature"), r.Header.Get("Content-Type")})
	}))
	defer hook.Close()
	args := []string{"watch", "--stream", stream, "--once", "--json", "--state", filepath.Join(dir, "state.json"),
		"--webhook", hook.URL + "/events", "--webhook-secret-file", secretFile, "--retry-backoff", "50ms"}
	if code, _, stderr := runCmd(t, args...); code != 0 {
		t.Fatalf("baseline run: exit %d: %s", code, stderr)
	}
	appendMsg(t, other, "one")
	appendMsg(t, other, "two")
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if strings.Contains(line, `"event":"new"`) {
			lines = append(lines, line)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 2 || len(lines) != 2 {
		t.Fatalf("%d webhook calls and %d new lines on stdout, want 2 and 2", len(reqs), len(lines))
	}
	for i, r := range reqs {
		if string(r.body) != lines[i] {
			t.Errorf("webhook body\n%s\nstdout line\n%s", r.body, lines[i])
		}
		var obj map[string]any
		json.Unmarshal(r.body, &obj)
		if r.id != obj["id"] || r.id == "" {
			t.Errorf("X-Imapkit-Event-Id %q, JSON id %v", r.id, obj["id"])
		}
		mac := hmac.New(sha256.New, []byte("s3cret"))
		mac.Write(r.body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); r.sig != want {
			t.Errorf("signature %q, want %q", r.sig, want)
		}
		if r.mediaType != "application/json" {
			t.Errorf("Content-Type %q", r.mediaType)
		}
	}
}

// TestWatchHookOutput: what a hook prints goes to stderr, prefixed, never
// into the --json stream.
func TestWatchHookOutput(t *testing.T) {
	srv := dovecot.StartT(t)
	stream, other := dovecotUser(t, srv)
	state := filepath.Join(t.TempDir(), "state.json")
	args := []string{"watch", "--stream", stream, "--once", "--json", "--state", state, "--exec", `echo "to stdout $IMAPKIT_UID"; echo "to stderr" >&2`}
	if code, _, stderr := runCmd(t, args...); code != 0 {
		t.Fatalf("baseline run: exit %d: %s", code, stderr)
	}
	appendMsg(t, other, "noisy")
	code, stdout, stderr := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	jsonLines(t, stdout) // fails on any line that is not JSON
	for _, want := range []string{"hook local/INBOX uid=1: to stdout 1", "hook local/INBOX uid=1: to stderr"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}
