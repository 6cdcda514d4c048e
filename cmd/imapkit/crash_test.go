package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
)

// binary builds the imapkit command once per test process, for tests that
// must kill it with SIGKILL.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "imapkit-bin-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "imapkit")
	out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return path, nil
})

func imapkitBinary(t *testing.T) string {
	t.Helper()
	path, err := binary()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return path
}

// delivered is one event as a sink saw it.
type delivered struct {
	kind string
	uid  int
	id   string
}

// crashSink is where a crash test's watcher delivers: a hook or a slow
// reader of --json. It collects what reached it, across every process.
type crashSink interface {
	args() []string
	// attach starts reading the process's output, if the sink needs it.
	attach(stdout io.Reader)
	// wait returns once everything attached was read.
	wait()
	events() []delivered
}

// hookSink is a hook that sleeps 0–199 ms, then appends the event to a log.
type hookSink struct{ log string }

func (h *hookSink) args() []string {
	script := `sleep 0.$(printf '%03d' $(( (IMAPKIT_UID * 7919 + ${#IMAPKIT_EVENT_ID}) % 200 )))
printf '%s %s %s\n' "$IMAPKIT_EVENT" "$IMAPKIT_UID" "$IMAPKIT_EVENT_ID" >> ` + h.log
	return []string{"--exec", script, "--exec-timeout", "10s", "--retry-backoff", "100ms"}
}
func (h *hookSink) attach(stdout io.Reader) { go io.Copy(io.Discard, stdout) }

func (h *hookSink) wait() {}
func (h *hookSink) events() []delivered {
	b, _ := os.ReadFile(h.log)
	var out []delivered
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		uid, _ := strconv.Atoi(f[1])
		out = append(out, delivered{kind: f[0], uid: uid, id: f[2]})
	}
	return out
}

// slowReader reads --json lines slowly: a few ms per line.
type slowReader struct {
	mu   sync.Mutex
	evs  []delivered
	read sync.WaitGroup
}

func (r *slowReader) args() []string { return []string{"--json"} }
func (r *slowReader) attach(stdout io.Reader) {
	r.read.Add(1)
	go func() {
		defer r.read.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			time.Sleep(3 * time.Millisecond)
			var objs []map[string]any
			line := sc.Text()
			if !strings.HasPrefix(line, "{") {
				continue
			}
			objs = append(objs, jsonLinesOf(line)...)
			r.mu.Lock()
			for _, o := range objs {
				uid, _ := o["uid"].(float64)
				id, _ := o["id"].(string)
				kind, _ := o["event"].(string)
				r.evs = append(r.evs, delivered{kind: kind, uid: int(uid), id: id})
			}
			r.mu.Unlock()
		}
	}()
}
func (r *slowReader) wait() { r.read.Wait() }
func (r *slowReader) events() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.evs)
}

// TestWatchCrash appends 200 messages while the watcher is SIGKILLed 3
// times at seeded random moments and restarted with the same --state; then
// changes flags and expunges, and kills it once more: every appended UID
// reaches the sink, and every flag change and expunge too; a repeat carries
// the same ID. 8 runs with a hook sleeping 0–200 ms, 8 with a --json reader
// that reads slowly. The runs of a kind go at once (they mostly wait), each
// on a goroutine of its own with its own log.
func TestWatchCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the watcher 64 times (about 40 s)")
	}
	bin := imapkitBinary(t)
	srv := dovecot.StartT(t)
	for _, variant := range []string{"hook", "json"} {
		t.Run(variant, func(t *testing.T) {
			t.Parallel()
			logs := make([]*runLog, 8)
			var wg sync.WaitGroup
			for run := range logs {
				logs[run] = &runLog{}
				wg.Go(func() {
					dir := t.TempDir()
					var sink crashSink = &slowReader{}
					if variant == "hook" {
						sink = &hookSink{log: filepath.Join(dir, "hook.log")}
					}
					crashRun(logs[run], bin, srv, sink, dir, rand.New(rand.NewPCG(uint64(run), 42)))
				})
			}
			wg.Wait()
			for run, l := range logs {
				if l.failed {
					t.Errorf("run %d failed:\n%s", run, strings.Join(l.lines, "\n"))
				} else {
					t.Logf("run %d: %s", run, strings.Join(l.lines, "; "))
				}
			}
		})
	}
}

// runLog is the log of one crash run, on a goroutine of the test's.
type runLog struct {
	mu     sync.Mutex
	lines  []string
	failed bool
}

func (l *runLog) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *runLog) Errorf(format string, args ...any) {
	l.Logf(format, args...)
	l.mu.Lock()
	l.failed = true
	l.mu.Unlock()
}

// Fatalf ends the run: its goroutine is the run's own, not the test's.
func (l *runLog) Fatalf(format string, args ...any) {
	l.Errorf(format, args...)
	runtime.Goexit()
}

func (l *runLog) Failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

func crashRun(t *runLog, bin string, srv *dovecot.Server, sink crashSink, dir string, rnd *rand.Rand) {
	user, pass, err := srv.NewUser()
	if err != nil {
		t.Fatalf("%v", err)
	}
	other, err := imap.DialStream(context.Background(), srv.StreamCommand(user), &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard})
	if err != nil {
		t.Fatalf("%v", err)
	}
	defer other.Shutdown()
	var stderr buffer
	args := append([]string{"watch", "--server", srv.Addr, "--plaintext", "--user", user, "--password-env", "CRASH_PASSWORD",
		"--state", filepath.Join(dir, "state.json"), "--inactivity", "5s"}, sink.args()...)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CRASH_PASSWORD="+pass)
		cmd.Stderr = &stderr
		// A pipe of our own, not StdoutPipe: Wait closes that one, and
		// lines written before the kill (acknowledged) must still be read.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatalf("%v", err)
		}
		cmd.Stdout = w
		if err := cmd.Start(); err != nil {
			t.Fatalf("%v", err)
		}
		w.Close()
		sink.attach(r)
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	defer func() {
		if t.Failed() {
			state, _ := os.ReadFile(filepath.Join(dir, "state.json"))
			t.Logf("stderr of the watchers:\n%s\nstate file:\n%s", stderr.String(), state)
		}
	}()

	cmd := start()
	waitFile(t, filepath.Join(dir, "state.json")) // the baseline is saved

	const total = 200
	var appended atomic.Int32
	errc := make(chan error, 1)
	pause := rand.New(rand.NewPCG(rnd.Uint64(), 1)) // the appender's own
	go func() {
		for i := range total {
			msg := fmt.Sprintf("From: ada@example.org\r\nSubject: crash %d\r\n\r\nbody\r\n", i+1)
			if _, err := other.Append(context.Background(), "INBOX", "", time.Time{}, []byte(msg)); err != nil {
				errc <- err
				return
			}
			appended.Add(1)
			time.Sleep(time.Duration(pause.IntN(4)) * time.Millisecond)
		}
		errc <- nil
	}()
	points := []int32{int32(10 + rnd.IntN(60)), int32(70 + rnd.IntN(60)), int32(130 + rnd.IntN(60))}
	for _, at := range points {
		for appended.Load() < at {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rnd.IntN(800)) * time.Millisecond)
		kill(cmd)
		cmd = start()
	}
	if err := <-errc; err != nil {
		t.Fatalf("%v", err)
	}
	waitDelivered(t, sink, "every appended UID", func(got map[string]map[int]bool) bool { return len(got["new"]) == total })

	// Flag changes and expunges, pending when it is killed once more.
	if _, err := other.Select(context.Background(), "INBOX", false); err != nil {
		t.Fatalf("%v", err)
	}
	if _, err := other.UID(context.Background(), "STORE", "1:10", "+FLAGS", `(\Flagged)`); err != nil {
		t.Fatalf("%v", err)
	}
	if _, err := other.UID(context.Background(), "STORE", "11:15", "+FLAGS.SILENT", `(\Deleted)`); err != nil {
		t.Fatalf("%v", err)
	}
	if _, err := other.Expunge(context.Background()); err != nil {
		t.Fatalf("%v", err)
	}
	time.Sleep(time.Duration(400+rnd.IntN(800)) * time.Millisecond) // Dovecot pushes 0.5 s late
	kill(cmd)
	cmd = start()
	waitDelivered(t, sink, "the flag changes and expunges", func(got map[string]map[int]bool) bool {
		for uid := 1; uid <= 10; uid++ {
			if !got["flags"][uid] {
				return false
			}
		}
		for uid := 11; uid <= 15; uid++ {
			if !got["expunge"][uid] {
				return false
			}
		}
		return true
	})
	kill(cmd)
	sink.wait()

	ids := map[string]map[string]bool{} // kind/uid → IDs
	var repeats []string
	for _, ev := range sink.events() {
		if ev.uid == 0 {
			continue
		}
		if ev.id == "" {
			t.Errorf("%s %d delivered without an ID", ev.kind, ev.uid)
		}
		k := ev.kind + "/" + strconv.Itoa(ev.uid)
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		} else {
			repeats = append(repeats, k)
		}
		ids[k][ev.id] = true
	}
	for k, set := range ids {
		if len(set) != 1 && !strings.HasPrefix(k, "flags/") {
			t.Errorf("%s delivered with %d different IDs", k, len(set))
		}
	}
	for uid := 1; uid <= 10; uid++ {
		if n := len(ids["flags/"+strconv.Itoa(uid)]); n != 1 {
			t.Errorf("the flag change of UID %d delivered with %d different IDs", uid, n)
		}
	}
	if len(repeats) > 10 {
		repeats = append(repeats[:10], "…")
	}
	t.Logf("kills after %v appends; repeats (same IDs): %v", points, repeats)
}

// waitDelivered waits until cond holds for what reached the sink, by kind
// and UID.
func waitDelivered(t *runLog, sink crashSink, what string, cond func(map[string]map[int]bool) bool) {
	deadline := time.Now().Add(120 * time.Second)
	for {
		got := map[string]map[int]bool{}
		for _, ev := range sink.events() {
			if got[ev.kind] == nil {
				got[ev.kind] = map[int]bool{}
			}
			got[ev.kind][ev.uid] = true
		}
		if cond(got) {
			return
		}
		if time.Now().After(deadline) {
			var missing []int
			for uid := 1; uid <= 200; uid++ {
				if !got["new"][uid] {
					missing = append(missing, uid)
				}
			}
			t.Fatalf("%s did not reach the sink within 120 s; new UIDs missing: %v", what, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFile waits until path exists.
func waitFile(t *runLog, path string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not written within 20 s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// jsonLinesOf decodes the JSON objects of one line, ignoring what is not.
func jsonLinesOf(line string) []map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return nil
	}
	return []map[string]any{m}
}
