package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hookEnvBase is the base environment of test hooks: enough for sh to find
// its tools, DIR naming the test's directory, and a stale IMAPKIT_SUBJECT
// the hook's own must replace.
func hookEnvBase(dir string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "DIR=" + dir, "IMAPKIT_SUBJECT=stale"}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func TestExecEnvAndStdin(t *testing.T) {
	e1 := ev("work", "INBOX", 4241)
	e2 := Event{ID: "id-2", Kind: "new", Time: "2025-03-04T07:06:11Z", Account: "work", Mailbox: "INBOX", UIDValidity: 7,
		UID: 4242, Flags: []string{`\Seen`, `\Flagged`}, From: "ada@example.org", Subject: "Build passed\x00 ok",
		MessageID: "<m@x>"}
	tests := []struct {
		name  string
		batch []Event
	}{
		{"single", []Event{e2}},
		{"burst", []Event{e1, ev("work", "INBOX", 4240), e2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := &ExecSink{
				Command: `env | grep '^IMAPKIT_' | sort > "$DIR/env"; cat > "$DIR/stdin"`,
				Env:     hookEnvBase(dir),
			}
			if err := s.Deliver(context.Background(), tt.batch); err != nil {
				t.Fatal(err)
			}
			want := []string{
				"IMAPKIT_ACCOUNT=work",
				"IMAPKIT_COUNT=" + strconv.Itoa(len(tt.batch)),
				"IMAPKIT_EVENT=new",
				"IMAPKIT_EVENT_ID=id-2",
				`IMAPKIT_FLAGS=\Seen \Flagged`,
				"IMAPKIT_FROM=ada@example.org",
				"IMAPKIT_MAILBOX=INBOX",
				"IMAPKIT_MESSAGE_ID=<m@x>",
				"IMAPKIT_OLD_MAILBOX=",
				"IMAPKIT_SUBJECT=Build passed ok",
				"IMAPKIT_UID=4242",
				"IMAPKIT_UIDVALIDITY=7",
			}
			sort.Strings(want)
			if got := lines(readFile(t, filepath.Join(dir, "env"))); !slices.Equal(got, want) {
				t.Errorf("hook environment\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			var wantStdin string
			for _, e := range tt.batch {
				b, _ := e.line()
				wantStdin += string(b)
			}
			if got := readFile(t, filepath.Join(dir, "stdin")); got != wantStdin {
				t.Errorf("hook stdin\n%s\nwant\n%s", got, wantStdin)
			}
		})
	}
}

func TestExecOutputGoesToStderrPrefixed(t *testing.T) {
	burst := []Event{ev("work", "INBOX", 1), ev("work", "INBOX", 2), ev("work", "INBOX", 3)}
	disc := Event{Kind: "disconnected", Account: "work"}
	tests := []struct {
		batch  []Event
		prefix string
	}{
		{[]Event{ev("work", "INBOX", 4242)}, "hook work/INBOX uid=4242: "},
		{burst, "hook work/INBOX (3 events): "},
		{[]Event{disc}, "hook work disconnected: "},
	}
	for _, tt := range tests {
		var stderr syncBuffer
		s := &ExecSink{Command: `echo out; echo err >&2; echo; printf 'no newline'`, Stderr: &stderr}
		if err := s.Deliver(context.Background(), tt.batch); err != nil {
			t.Fatal(err)
		}
		want := tt.prefix + "out\n" + tt.prefix + "err\n" + tt.prefix + "\n" + tt.prefix + "no newline\n"
		if got := stderr.String(); got != want {
			t.Errorf("Stderr got\n%q\nwant\n%q", got, want)
		}
	}
}

func TestExecLongLineIsCut(t *testing.T) {
	var stderr syncBuffer
	s := &ExecSink{Command: fmt.Sprintf(`head -c %d /dev/zero | tr '\0' x`, maxHookLine+10), Stderr: &stderr}
	if err := s.Deliver(context.Background(), []Event{ev("a", "b", 1)}); err != nil {
		t.Fatal(err)
	}
	got := lines(stderr.String())
	if len(got) != 2 || got[1] != "hook a/b uid=1: xxxxxxxxxx" {
		t.Errorf("%d lines, the last %q", len(got), got[len(got)-1])
	}
}

func TestExecFailure(t *testing.T) {
	tests := []struct {
		command string
		want    string
	}{
		{`echo "bad config" >&2; exit 3`, `exec: hook failed: exit status 3 (last output: "bad config")`},
		{`exit 1`, `exec: hook failed: exit status 1`},
		{`kill -TERM $$`, `exec: hook failed: signal: terminated`},
	}
	for _, tt := range tests {
		s := &ExecSink{Command: tt.command}
		err := s.Deliver(context.Background(), []Event{ev("a", "b", 1)})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: Deliver = %v, want %s", tt.command, err, tt.want)
		}
	}
}

func TestExecBurstThroughDispatcher(t *testing.T) {
	checkNoLeak(t)
	dir := t.TempDir()
	s := &ExecSink{Command: `echo "$IMAPKIT_COUNT $IMAPKIT_UID" >> "$DIR/runs"; cat >> "$DIR/stdin"`, Env: hookEnvBase(dir)}
	d := NewDispatcher(Config{Routes: []Route{{Sink: s, Retry: fast, Burst: 300 * time.Millisecond}}})
	done := newDoneSet()
	for uid := uint32(1); uid <= 3; uid++ {
		e := ev("work", "INBOX", uid)
		d.Submit(e, done.fn(e.ID))
	}
	waitFor(t, 5*time.Second, "the burst done", func() bool { return done.total() == 3 })
	d.Shutdown(context.Background())
	if got := readFile(t, filepath.Join(dir, "runs")); got != "3 3\n" {
		t.Errorf("hook runs (count, last UID):\n%s\nwant one run of 3 events", got)
	}
	if got := lines(readFile(t, filepath.Join(dir, "stdin"))); len(got) != 3 || !strings.Contains(got[0], `"uid":1`) {
		t.Errorf("stdin:\n%s", strings.Join(got, "\n"))
	}
}

func TestExecRetriesUntilDelivered(t *testing.T) {
	checkNoLeak(t)
	dir := t.TempDir()
	// Every 5th event's hook fails twice, then succeeds.
	s := &ExecSink{Env: hookEnvBase(dir), Command: `
		n=$(cat "$DIR/tries.$IMAPKIT_EVENT_ID" 2>/dev/null || echo 0); n=$((n+1))
		echo $n > "$DIR/tries.$IMAPKIT_EVENT_ID"
		if [ $((IMAPKIT_UID % 5)) -eq 0 ] && [ $n -le 2 ]; then echo "try $n fails" >&2; exit 1; fi
		echo $IMAPKIT_UID >> "$DIR/delivered.$IMAPKIT_ACCOUNT"`}
	dl := &memDeadLetter{}
	d := NewDispatcher(Config{DeadLetter: dl, Routes: []Route{{Sink: s, Retry: fast}}})
	done := newDoneSet()
	for uid := uint32(1); uid <= 10; uid++ {
		for _, acct := range []string{"a", "b"} {
			e := ev(acct, "INBOX", uid)
			d.Submit(e, done.fn(e.ID))
		}
	}
	waitFor(t, 10*time.Second, "every event done", func() bool { return done.total() == 20 })
	d.Shutdown(context.Background())
	for _, acct := range []string{"a", "b"} {
		if got := readFile(t, filepath.Join(dir, "delivered."+acct)); got != "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n" {
			t.Errorf("account %s delivered, in order:\n%s", acct, got)
		}
		for uid := uint32(1); uid <= 10; uid++ {
			want := "1\n"
			if uid%5 == 0 {
				want = "3\n"
			}
			if got := readFile(t, filepath.Join(dir, "tries."+ev(acct, "INBOX", uid).ID)); got != want {
				t.Errorf("%s uid %d tried %q times, want %q", acct, uid, got, want)
			}
		}
	}
	if recs := dl.records(); len(recs) != 0 {
		t.Errorf("dead records: %+v", recs)
	}
}

// processGone reports whether the process pid has ended. A killed orphan
// stays a zombie until init reaps it, which some containers' init never
// does; a zombie has ended.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the state follows the command name
	return i >= 0 && len(s) > i+2 && s[i+2] == 'Z'
}

// readPids returns the pids listed in the file at path, one a line, and
// makes sure they are killed when the test ends, pass or fail: each, and
// the process group it leads if it is a hook's shell.
func readPids(t *testing.T, path string) []int {
	t.Helper()
	var pids []int
	for _, l := range strings.Fields(readFile(t, path)) {
		pid, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("pid file %s: %v", path, err)
		}
		pids = append(pids, pid)
		t.Cleanup(func() {
			syscall.Kill(-pid, syscall.SIGKILL)
			syscall.Kill(pid, syscall.SIGKILL)
		})
	}
	return pids
}

// hungHook hangs for account "hung" — in the foreground and in a
// background grandchild holding the hook's output open, both pids written
// to $DIR/pids — and succeeds at once for other accounts.
const hungHook = `
	if [ "$IMAPKIT_ACCOUNT" = hung ]; then
		sleep 30 & echo $! >> "$DIR/pids"
		echo $$ >> "$DIR/pids"
		sleep 30
	fi
	echo "$IMAPKIT_ACCOUNT $IMAPKIT_UID" >> "$DIR/delivered"`

func TestExecHungHookKilledAndDeadLettered(t *testing.T) {
	checkNoLeak(t)
	dir := t.TempDir()
	s := &ExecSink{Command: hungHook, Env: hookEnvBase(dir)}
	dl := &memDeadLetter{}
	retry := Retry{Retries: 1, Backoff: time.Millisecond, Timeout: 400 * time.Millisecond}
	d := NewDispatcher(Config{DeadLetter: dl, Routes: []Route{{Sink: s, Retry: retry}}})
	done := newDoneSet()
	hung := ev("hung", "INBOX", 1)
	d.Submit(hung, done.fn(hung.ID))
	waitFor(t, 5*time.Second, "the hung hook to start", func() bool {
		return len(strings.Fields(readFile(t, filepath.Join(dir, "pids")))) >= 2
	})
	for uid := uint32(1); uid <= 3; uid++ {
		e := ev("ok", "INBOX", uid)
		d.Submit(e, done.fn(e.ID))
	}
	waitFor(t, 5*time.Second, "the other account's events done", func() bool { return done.total() == 3 })
	if done.count(hung.ID) != 0 || len(dl.records()) != 0 {
		t.Fatal("the hung event was finished before the other account's events: they were not independent")
	}

	waitFor(t, 5*time.Second, "the hung event dead-lettered", func() bool { return done.count(hung.ID) == 1 })
	d.Shutdown(context.Background())
	recs := dl.records()
	if len(recs) != 1 {
		t.Fatalf("%d dead records, want 1", len(recs))
	}
	r := recs[0]
	if r.Event.ID != hung.ID || r.Sink != "exec" || r.Attempts != retry.Retries+1 ||
		!strings.Contains(r.Err, "killed") || !strings.Contains(r.Err, "timed out after 400ms") {
		t.Errorf("dead record %+v", r)
	}
	pids := readPids(t, filepath.Join(dir, "pids"))
	if len(pids) != 4 {
		t.Fatalf("pids %v, want 2 per try", pids)
	}
	for _, pid := range pids {
		waitFor(t, 3*time.Second, fmt.Sprintf("process %d killed", pid), func() bool { return processGone(pid) })
	}
	if got := readFile(t, filepath.Join(dir, "delivered")); got != "ok 1\nok 2\nok 3\n" {
		t.Errorf("delivered:\n%s", got)
	}
}

func TestExecShutdownKillsHungHook(t *testing.T) {
	checkNoLeak(t)
	dir := t.TempDir()
	s := &ExecSink{Command: hungHook, Env: hookEnvBase(dir)}
	dl := &memDeadLetter{}
	d := NewDispatcher(Config{DeadLetter: dl, Routes: []Route{{Sink: s}}}) // default Retry: 60 s tries
	done := newDoneSet()
	for uid := uint32(1); uid <= 3; uid++ {
		e := ev("hung", "INBOX", uid)
		d.Submit(e, done.fn(e.ID))
	}
	waitFor(t, 5*time.Second, "the hung hook to start", func() bool {
		return len(strings.Fields(readFile(t, filepath.Join(dir, "pids")))) >= 2
	})
	const grace = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	err := d.Shutdown(ctx)
	if el := time.Since(start); el > grace+time.Second {
		t.Errorf("Shutdown took %v, grace %v", el, grace)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	for _, pid := range readPids(t, filepath.Join(dir, "pids")) {
		waitFor(t, 3*time.Second, fmt.Sprintf("process %d killed", pid), func() bool { return processGone(pid) })
	}
	if done.total() != 0 || len(dl.records()) != 0 {
		t.Errorf("%d events done, %d dead records; want none", done.total(), len(dl.records()))
	}
}

func TestExecBackgroundProcessHoldingOutput(t *testing.T) {
	dir := t.TempDir()
	var stderr syncBuffer
	// The hook succeeds but leaves a process with its output open.
	s := &ExecSink{Command: `sleep 30 & echo $! > "$DIR/pids"; echo done`, Env: hookEnvBase(dir), Stderr: &stderr}
	start := time.Now()
	err := s.Deliver(context.Background(), []Event{ev("a", "b", 1)})
	readPids(t, filepath.Join(dir, "pids"))
	if err != nil {
		t.Fatalf("Deliver = %v, want success", err)
	}
	if el := time.Since(start); el > execWaitDelay+time.Second {
		t.Errorf("Deliver took %v", el)
	}
	if got := stderr.String(); !strings.Contains(got, "hook a/b uid=1: done\n") || !strings.Contains(got, "background process") {
		t.Errorf("Stderr:\n%s", got)
	}
}
