package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imapkit/imap/internal/dovecot"
)

// The watch section: what watching an account costs, and how much latency
// the watcher adds, against a real Dovecot, side by side with a raw Idler
// (the floor of what watching an account can cost).
//
// Cost: one private Dovecot with K users. Each contender runs in a fresh
// child process (this binary with -watch-child), so that none inherits
// another's freed stacks or heap. The child opens K accounts, asks the
// parent to wait until Dovecot shows K sessions in IDLE ("IDLE K",
// answered "ok"), measures, asks the parent to deliver one message to
// every account ("PUSHALL", answered "ok N"), waits until every account's
// push reached the application, asks for K sessions in IDLE again,
// measures again, and prints "RESULT <json>" (or "ERROR <text>").
//
// Latency: see watchlatency.go.

// Contender names of the watch section.
const (
	nameWatchIdler = "raw Idler"
	nameWatcher    = "Watcher"
)

// watchContenderNames are the contenders in the order they run.
var watchContenderNames = []string{nameWatchIdler, nameWatcher}

// watchSignal is what an account reports to the harness.
type watchSignal int

const (
	signalPush   watchSignal = iota + 1 // a pushed message reached the application
	signalFailed                        // the account lost its connection or stopped
)

// accountFunc opens one watched account: it connects to addr as u and
// returns once the account is set up (the Idler started IDLE; the Watcher
// handed over its baseline), after which the account's goroutines call on
// for each push that reaches the application, with the time it did. ready
// is a channel of capacity 1 that the contender may use to learn that the
// account is set up (it is allocated by the harness, so that its memory is
// not counted). The account runs until ctx is done or it is closed.
type accountFunc func(ctx context.Context, addr string, u dovecot.User, ready chan struct{}, on func(watchSignal, time.Time)) (closer, error)

// costSample is heap in use, stack in use and goroutines, per account.
type costSample struct{ Heap, Stack, Goroutines float64 }

func (c costSample) total() float64 { return c.Heap + c.Stack }

// watchCost is one contender's cost per account at one K.
type watchCost struct {
	name           string
	k              int
	parked, pushed costSample
	took           time.Duration // opening the K accounts, in the child
	err            error
}

// watchLatency is one contender's latency from EXISTS on the wire to the
// application.
type watchLatency struct {
	name               string
	n                  int
	discarded          int // samples during which the other contender was active
	p50, p90, p99, max time.Duration
	server             time.Duration // median APPEND sent -> EXISTS forwarded: Dovecot's own delay
	// Percentiles of the part of each sample spent waiting for Dovecot's
	// answers to the client's commands (DONE, FETCH), and of the rest.
	inServer50, inServer99, rest50, rest99 time.Duration
	err                                    error
}

// watchResult is the outcome of the watch section.
type watchResult struct {
	server  string // Dovecot's version
	skipped string // why the section did not run, when it did not
	err     error  // setting up failed
	costs   []watchCost
	latency []watchLatency
	notes   []string
	took    time.Duration
	// Fraction of CPU time the machine was busy during the latency
	// measurement (-1: unknown): other work on the machine disturbs it.
	busyLatency float64
}

func (w *watchResult) cost(name string, k int) *watchCost {
	for i := range w.costs {
		if c := &w.costs[i]; c.name == name && c.k == k && c.err == nil {
			return c
		}
	}
	return nil
}

func (w *watchResult) lat(name string) *watchLatency {
	for i := range w.latency {
		if l := &w.latency[i]; l.name == name && l.err == nil {
			return l
		}
	}
	return nil
}

// failures counts the measurements of the section that failed.
func (w *watchResult) failures() int {
	if w == nil {
		return 0
	}
	n := 0
	if w.err != nil {
		n++
	}
	for _, c := range w.costs {
		if c.err != nil {
			n++
		}
	}
	for _, l := range w.latency {
		if l.err != nil {
			n++
		}
	}
	return n
}

// runWatch runs the watch section.
func runWatch(ctx context.Context, cfg *config, limit uint64) *watchResult {
	start := time.Now()
	res := &watchResult{}
	defer func() { res.took = time.Since(start) }()
	contenders := watchContenders()
	if contenders == nil {
		res.skipped = "built with `-tags nokit`"
		return res
	}
	res.server = dovecotVersion()
	if err := runWatchCost(cfg, limit, res); err != nil {
		res.err = err
		log.Printf("watch      FAILED: %v", err)
		return res
	}
	// The latency has a server of its own, with no other session and a
	// quick polling fallback.
	srv, err := startWatchDovecot(dovecot.Config{IdleCheckInterval: time.Second}, res)
	if err != nil {
		res.err = err
		return res
	}
	defer srv.stop()
	users, err := srv.NewUsers(len(watchContenderNames))
	if err != nil {
		res.err = err
		return res
	}
	// The cost measurement's thousands of Dovecot processes take a few
	// seconds to go: wait for that before measuring.
	for range 10 {
		if !busy(cpuBusy(time.Second)) {
			break
		}
	}
	t0 := readCPUTimes()
	res.latency = runLatencyRounds(ctx, cfg.latencyRounds, srv.Server, users, cfg.watchSamples, watchContenderNames, contenders)
	// The measurement itself, Dovecot included, takes a few milliseconds of
	// CPU per half second: beyond that, this is other work.
	res.busyLatency = t0.busySince()
	if busy(res.busyLatency) {
		log.Printf("warning: the CPUs were %s busy during the watch latency measurement; other work disturbs the tail", fmtBusy(res.busyLatency))
	}
	return res
}

// watchDovecot is a Dovecot of the watch section.
type watchDovecot struct {
	*dovecot.Server
	res *watchResult
}

func startWatchDovecot(dc dovecot.Config, res *watchResult) (*watchDovecot, error) {
	srv, err := dovecot.Start(dc)
	if err != nil {
		return nil, fmt.Errorf("starting Dovecot (the watch section needs dovecot-imapd and root): %w", err)
	}
	return &watchDovecot{srv, res}, nil
}

// stop notes in the report whether Dovecot ran out of inotify instances,
// and stops it.
func (s *watchDovecot) stop() {
	logs, err := os.ReadFile(filepath.Join(s.Dir, "dovecot.log"))
	if err == nil && strings.Contains(string(logs), "Inotify instance limit") {
		const note = "Dovecot ran out of inotify instances (fs.inotify.max_user_instances, 128 by default, is shared by every Dovecot on the machine), so some idling sessions noticed new mail by polling (mailbox_idle_check_interval) instead of by inotify. This changes when the EXISTS is sent, not what the client does after it."
		if !slices.Contains(s.res.notes, note) {
			s.res.notes = append(s.res.notes, note)
		}
	}
	if err := s.Stop(); err != nil {
		log.Printf("watch      stopping Dovecot: %v", err)
	}
}

// watchIdleCheck is the mailbox_idle_check_interval for k idling sessions:
// past about 128 on the machine, sessions have no inotify instance and
// poll, and thousands of sessions polling every second would keep the CPUs
// busy. Pushes to such sessions arrive within the interval.
func watchIdleCheck(k int) time.Duration {
	return min(max(time.Duration(k/200)*time.Second, time.Second), 30*time.Second)
}

// runWatchCost measures the cost per account of every contender at every
// K, on one Dovecot.
func runWatchCost(cfg *config, limit uint64, res *watchResult) error {
	maxK := 0
	for _, k := range cfg.watchAccounts {
		maxK = max(maxK, k)
	}
	srv, err := startWatchDovecot(dovecot.Config{
		MaxSessions: maxK + 64,
		// Long-lived login processes: a new session then costs Dovecot
		// about 20 ms of CPU instead of 40.
		LoginProcesses:    runtime.NumCPU(),
		IdleCheckInterval: watchIdleCheck(maxK),
	}, res)
	if err != nil {
		return err
	}
	defer srv.stop()
	users, err := srv.NewUsers(maxK)
	if err != nil {
		return err
	}
	usersFile, err := writeUsers(users)
	if err != nil {
		return err
	}
	defer os.Remove(usersFile)

	for _, k := range cfg.watchAccounts {
		for _, name := range watchContenderNames {
			c := watchCost{name: name, k: k}
			if uint64(k)+64 > limit {
				c.err = fmt.Errorf("open-file limit %d is too low for %d connections", limit, k)
			} else {
				log.Printf("watch      %-22s %d accounts", name, k)
				c = measureWatchCostInChild(srv.Server, name, k, usersFile, users[:k])
			}
			if c.err != nil {
				log.Printf("watch      %-22s FAILED: %v", name, c.err)
			} else {
				log.Printf("watch      %-22s %d accounts opened in %v: parked %.0f B per account (heap %.0f, stack %.0f), %.2f goroutines; after a push %.0f B (heap %.0f, stack %.0f), %.2f goroutines",
					name, k, c.took.Round(time.Millisecond), c.parked.total(), c.parked.Heap, c.parked.Stack, c.parked.Goroutines,
					c.pushed.total(), c.pushed.Heap, c.pushed.Stack, c.pushed.Goroutines)
			}
			res.costs = append(res.costs, c)
			// The next contender starts with no session left on the server.
			if err := waitSessions(srv.Server, 0, -1, time.Minute); err != nil {
				return fmt.Errorf("after %s with %d accounts: %w", name, k, err)
			}
		}
	}
	return nil
}

// dovecotVersion returns "Dovecot 2.3.19.1 ..." or "Dovecot".
func dovecotVersion() string {
	for _, p := range []string{"dovecot", "/usr/sbin/dovecot"} {
		if out, err := exec.Command(p, "--version").Output(); err == nil {
			return "Dovecot " + strings.TrimSpace(string(out))
		}
	}
	return "Dovecot"
}

// writeUsers writes users to a temporary file, "name password" per line,
// for the child processes.
func writeUsers(users []dovecot.User) (string, error) {
	f, err := os.CreateTemp("", "imapkit-bench-users-*")
	if err != nil {
		return "", err
	}
	w := bufio.NewWriter(f)
	for _, u := range users {
		fmt.Fprintf(w, "%s %s\n", u.Name, u.Password)
	}
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func readUsers(path string, k int) ([]dovecot.User, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var users []dovecot.User
	for _, line := range strings.Split(string(data), "\n") {
		if name, pass, ok := strings.Cut(line, " "); ok && len(users) < k {
			users = append(users, dovecot.User{Name: name, Password: pass})
		}
	}
	if len(users) < k {
		return nil, fmt.Errorf("%s holds %d users, want %d", path, len(users), k)
	}
	return users, nil
}

// waitSessions waits until srv has total sessions (any number when
// negative) of which idling are in IDLE (any number when negative).
func waitSessions(srv *dovecot.Server, total, idling int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		t, i, err := srv.IMAPSessions()
		if err != nil {
			return err
		}
		if (total < 0 || t == total) && (idling < 0 || i == idling) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Dovecot shows %d sessions, %d in IDLE, after %v; want %d in IDLE of %d", t, i, timeout, idling, total)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pushMessage is the message delivered to every account.
const pushMessage = "From: bench <bench@example.org>\r\nTo: watched <watched@example.org>\r\nSubject: push\r\n" +
	"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <push@example.org>\r\n\r\nOne new message.\r\n"

// deliverAll delivers one message to the INBOX of every user, straight into
// their Maildirs (Dovecot then sees it and pushes EXISTS).
func deliverAll(srv *dovecot.Server, users []dovecot.User) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(users) {
					return
				}
				if err := srv.DeliverMaildir(users[i].Name, "INBOX", [][]byte{[]byte(pushMessage)}); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// costJSON is watchCost in the form the child prints.
type costJSON struct {
	Parked, Pushed costSample
	TookMS         float64
}

// measureWatchCostInChild runs contender name with k accounts in a child
// process and serves its requests.
func measureWatchCostInChild(srv *dovecot.Server, name string, k int, usersFile string, users []dovecot.User) watchCost {
	res := watchCost{name: name, k: k}
	exe, err := os.Executable()
	if err != nil {
		res.err = err
		return res
	}
	cmd := exec.Command(exe, "-watch-child", name, "-watch-k", strconv.Itoa(k), "-watch-addr", srv.Addr, "-watch-users", usersFile)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		res.err = err
		return res
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		res.err = err
		return res
	}
	if err := cmd.Start(); err != nil {
		res.err = err
		return res
	}
	defer cmd.Wait()
	defer stdin.Close()
	out := bufio.NewReader(stdout)
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			res.err = fmt.Errorf("watch child for %s: %w", name, err)
			return res
		}
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "IDLE "):
			n, _ := strconv.Atoi(line[len("IDLE "):])
			if err := waitSessions(srv, n, n, time.Minute+time.Duration(n)*10*time.Millisecond); err != nil {
				fmt.Fprintf(stdin, "error %s\n", oneLine(err))
			} else {
				fmt.Fprintf(stdin, "ok\n")
			}
		case line == "PUSHALL":
			if err := deliverAll(srv, users); err != nil {
				fmt.Fprintf(stdin, "error %s\n", oneLine(err))
			} else {
				fmt.Fprintf(stdin, "ok %d\n", len(users))
			}
		case strings.HasPrefix(line, "RESULT "):
			var j costJSON
			if err := json.Unmarshal([]byte(line[len("RESULT "):]), &j); err != nil {
				res.err = err
				return res
			}
			res.parked, res.pushed = j.Parked, j.Pushed
			res.took = time.Duration(j.TookMS * float64(time.Millisecond))
			return res
		case strings.HasPrefix(line, "ERROR "):
			res.err = errors.New(line[len("ERROR "):])
			return res
		}
	}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// watchSettle is how long the accounts get, once Dovecot shows every
// session in IDLE, to read IDLE's continuation and park.
const watchSettle = 300 * time.Millisecond

// watchChild is the child's main: it measures one contender with k
// accounts and reports.
func watchChild(name string, k int, addr, usersFile string) error {
	raiseFileLimit()
	open := watchContenders()[name]
	if open == nil {
		return fmt.Errorf("no watch contender %q", name)
	}
	fail := func(err error) error {
		fmt.Printf("ERROR %s\n", oneLine(err))
		return nil
	}
	users, err := readUsers(usersFile, k)
	if err != nil {
		return fail(err)
	}
	ask := askParent(bufio.NewReader(os.Stdin))

	// The harness's own per-account state is allocated before the baseline.
	readies := make([]chan struct{}, k)
	for i := range readies {
		readies[i] = make(chan struct{}, 1)
	}
	accounts := make([]closer, k)
	var pushed, failed atomic.Int64
	on := func(s watchSignal, _ time.Time) {
		switch s {
		case signalPush:
			pushed.Add(1)
		case signalFailed:
			failed.Add(1)
		}
	}
	ctx := context.Background()

	h0, s0 := memStat()
	g0 := runtime.NumGoroutine()
	measure := func() costSample {
		h, s := memStat()
		g := runtime.NumGoroutine()
		return costSample{
			Heap:       float64(int64(h)-int64(h0)) / float64(k),
			Stack:      float64(int64(s)-int64(s0)) / float64(k),
			Goroutines: float64(g-g0) / float64(k),
		}
	}

	start := time.Now()
	firstErr := openAll(k, func(i int) error {
		a, err := open(ctx, addr, users[i], readies[i], on)
		if err != nil {
			return fmt.Errorf("account %d (%s): %w", i, users[i].Name, err)
		}
		accounts[i] = a
		return nil
	})
	if firstErr != nil {
		return fail(firstErr)
	}
	took := time.Since(start)

	parkedAll := func() error {
		if _, err := ask(fmt.Sprintf("IDLE %d", k)); err != nil {
			return err
		}
		time.Sleep(watchSettle)
		if n := failed.Load(); n > 0 {
			return fmt.Errorf("%d accounts lost their connection", n)
		}
		return nil
	}
	if err := parkedAll(); err != nil {
		return fail(err)
	}
	parked := measure()

	before := pushed.Load()
	if _, err := ask("PUSHALL"); err != nil {
		return fail(err)
	}
	for t := time.Now(); pushed.Load()-before < int64(k); time.Sleep(10 * time.Millisecond) {
		if time.Since(t) > 2*time.Minute {
			return fail(fmt.Errorf("%d of %d pushes reached the application within 2 minutes", pushed.Load()-before, k))
		}
	}
	if err := parkedAll(); err != nil {
		return fail(fmt.Errorf("after the push: %w", err))
	}
	afterPush := measure()

	b, err := json.Marshal(costJSON{Parked: parked, Pushed: afterPush, TookMS: float64(took) / float64(time.Millisecond)})
	if err != nil {
		return err
	}
	fmt.Printf("RESULT %s\n", b)
	runtime.KeepAlive(accounts)
	runtime.KeepAlive(readies)
	return nil
}
