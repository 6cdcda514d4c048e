package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/delivery"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/internal/natstest"
	"github.com/imapkit/imap/service"
	"github.com/imapkit/imap/watch"
)

// clusterAccounts is how many accounts TestServeCluster watches.
const clusterAccounts = 1000

// TestServeCluster runs three imapkit serve nodes (child processes) on a
// three-server NATS cluster (nats-server processes built from the module,
// every stream and bucket with three replicas) watching clusterAccounts accounts of one Dovecot, and disturbs
// them in turn while mail is appended to a rotating set of accounts: a
// node SIGKILLed, a node frozen (SIGSTOP) past its lease TTL and resumed, a
// rolling restart of every node, one NATS server killed. After each,
// once the appends stopped and everything settled: every appended UID is
// in IMAPKIT_EVENTS as exactly one "new" event, and no event ID is stored
// twice. Throughout, no account's position in IMAPKIT_STATE goes back, and
// the frozen node publishes nothing for the accounts the others took from
// it (seen on the wire, through a proxy in front of each NATS server). Then
// accounts are added, changed and removed through the API of a node; a
// removed account's connection closes and nothing more is published for
// it; no NATS server stores a password in clear, and a sealed one does not
// open without the key. Last, the webhook that every node delivers to (a
// durable consumer shared by the nodes) got every event, or the event is in
// IMAPKIT_DEAD, across all of the above.
// clusterLeaseTTL is the nodes' lease TTL in TestServeCluster: short, so
// that takeovers come soon, yet longer than the pauses of NATS on a loaded
// 2-core machine (a heartbeat write answered after more than a second while
// a NATS server is killed and its streams elect new leaders); with 2 s the
// nodes' leases lapsed several times in each run.
const clusterLeaseTTL = 4 * time.Second

func TestServeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("a NATS cluster, three serve nodes and a Dovecot with many accounts (about four minutes)")
	}
	if raceDetector {
		// The nodes and NATS servers are child processes, built without
		// -race; under it only this process slows down, and with it the
		// taps every NATS message of the nodes goes through, until the
		// short leases lapse over and over. make test runs this test on its
		// own, without -race.
		t.Skip("runs without -race: make test runs it on its own (go test -run TestServeCluster ./cmd/imapkit)")
	}
	began := time.Now()
	h := newClusterHarness(t, clusterAccounts)
	made := time.Now()
	h.startNodes("n1", "n2", "n3")
	h.waitWatched(t, h.accounts, "INBOX", 120*time.Second)
	t.Logf("setup: NATS, Dovecot and %d accounts in %v; watched by 3 nodes %v later", len(h.accounts),
		made.Sub(began).Round(100*time.Millisecond), time.Since(made).Round(100*time.Millisecond))

	hot := h.hotAccounts(120)
	parallel(hot, 16, func(a *clusterAccount) {
		if err := h.connect(a); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	for _, sc := range []struct {
		name string
		// disturb runs while mail is appended, which goes on a second
		// longer.
		disturb func(t *testing.T, h *clusterHarness)
	}{
		{"node SIGKILLed", func(t *testing.T, h *clusterHarness) {
			n1 := h.nodes["n1"]
			held := h.leases.heldBy("n1")
			// n1 dies in the middle of webhook calls.
			h.hook.hold()
			h.hook.waitPending(t, "n1", 2, 30*time.Second)
			n1.kill(syscall.SIGKILL)
			killed := time.Now()
			h.hook.waitAbandoned(t, "n1", 10*time.Second)
			h.hook.release()
			h.leases.waitTaken(t, held, "n1", killed, 30*time.Second)
			t.Logf("n1's %d accounts taken over %v after the kill", len(held), time.Since(killed).Round(10*time.Millisecond))
			h.appendFor(time.Second)
			n1.start(t)
		}},
		{"node frozen past its TTL", func(t *testing.T, h *clusterHarness) {
			n2 := h.nodes["n2"]
			held := h.leases.heldBy("n2")
			n2.signal(syscall.SIGSTOP)
			frozen := time.Now()
			h.leases.waitTaken(t, held, "n2", frozen, 30*time.Second)
			// Dovecot pushes the mail of n2's accounts to its
			// connections meanwhile: it finds them on waking up.
			h.appendFor(time.Second)
			n2.signal(syscall.SIGCONT)
			resumed := time.Now()
			t.Logf("n2 frozen %v; its %d accounts taken over", resumed.Sub(frozen).Round(10*time.Millisecond), len(held))
			h.appendFor(2 * time.Second)
			h.fenced = append(h.fenced, fenceCheck{node: "n2", accounts: held, from: resumed})
		}},
		{"rolling restart", func(t *testing.T, h *clusterHarness) {
			for _, id := range []string{"n1", "n2", "n3"} {
				n := h.nodes[id]
				held := h.leases.heldBy(id)
				n.signal(syscall.SIGTERM)
				if err := n.waitExit(30 * time.Second); err != nil {
					t.Fatalf("%s after SIGTERM: %v\n%s", id, err, n.logTail(40))
				}
				exited := time.Now()
				h.leases.waitTaken(t, held, id, exited, 30*time.Second)
				t.Logf("%s stopped; its %d accounts taken over %v after it exited", id, len(held), time.Since(exited).Round(10*time.Millisecond))
				n.start(t)
				started := time.Now()
				h.waitHolding(t, id, 1, 60*time.Second)
				t.Logf("%s started again; it watches accounts %v later", id, time.Since(started).Round(10*time.Millisecond))
			}
		}},
		{"NATS server killed", func(t *testing.T, h *clusterHarness) {
			h.nats[2].Kill()
			h.appendFor(3 * time.Second)
		}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			start := time.Now()
			h.appenders = startAppending(h, hot, 4)
			h.appendFor(time.Second)
			sc.disturb(t, h)
			h.appendFor(time.Second)
			n := h.appenders.halt(t)
			h.waitPublished(t, 60*time.Second)
			h.checkEvents(t)
			h.checkFences(t)
			h.fenced = nil
			h.states.check(t)
			t.Logf("%d messages appended in %v, all published once", n, time.Since(start).Round(100*time.Millisecond))
		})
		if t.Failed() {
			return
		}
	}

	t.Run("accounts through the API", func(t *testing.T) {
		start := time.Now()
		h.apiScenario(t)
		t.Logf("took %v", time.Since(start).Round(100*time.Millisecond))
	})
	t.Run("webhooks", func(t *testing.T) {
		start := time.Now()
		h.waitWebhooks(t, 90*time.Second)
		t.Logf("took %v", time.Since(start).Round(100*time.Millisecond))
	})
	h.states.check(t)
	t.Logf("in all %v", time.Since(began).Round(100*time.Millisecond))
}

// clusterHarness is the NATS cluster, the Dovecot, the serve nodes, and
// what the test sees of IMAPKIT_EVENTS, IMAPKIT_STATE and IMAPKIT_LEASES.
type clusterHarness struct {
	t        *testing.T
	bin      string
	nats     []*natstest.Proc
	srv      *dovecot.Server
	js       jetstream.JetStream
	infra    *service.Infra
	sealer   *service.Sealer
	key      string
	token    string
	nodes    map[string]*serveNode
	accounts []*clusterAccount
	byName   map[string]*clusterAccount

	events *eventLog
	states *stateLog
	leases *leaseLog
	hook   *hookRecorder

	appenders *appenders
	fenced    []fenceCheck
}

// clusterAccount is an account and the UIDs appended to its mailboxes.
type clusterAccount struct {
	name, user, pass string

	mu   sync.Mutex
	conn *imap.Client
	uids map[string][]uint32 // by mailbox
}

// appended returns the UIDs appended to each mailbox.
func (a *clusterAccount) appended() map[string][]uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]uint32{}
	for mb, uids := range a.uids {
		out[mb] = slices.Clone(uids)
	}
	return out
}

// deadAccount is the account whose events the webhook refuses: they end in
// IMAPKIT_DEAD.
const deadAccount = "c0007"

func newClusterHarness(t *testing.T, n int) *clusterHarness {
	t.Helper()
	h := &clusterHarness{t: t, bin: imapkitBinary(t), nodes: map[string]*serveNode{}, byName: map[string]*clusterAccount{}}
	// The servers advertise no other URL than their own: the nodes
	// know them only through their taps.
	h.nats = natstest.ProcCluster(t, 3)
	var urls []string
	for _, s := range h.nats {
		urls = append(urls, s.ClientURL)
	}
	_, h.js = natstest.Connect(t, strings.Join(urls, ","))
	h.srv = dovecot.StartTConfig(t, dovecot.Config{MaxSessions: n + 500, IdleCheckInterval: time.Second, LoginProcesses: 2})

	dir := t.TempDir()
	h.key, h.token = filepath.Join(dir, "secret.key"), filepath.Join(dir, "api.token")
	if code, _, stderr := runCmd(t, "keygen", "--out", h.key); code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	if err := os.WriteFile(h.token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if h.sealer, err = service.LoadKeyFile(h.key); err != nil {
		t.Fatal(err)
	}
	if h.infra, err = service.EnsureInfra(t.Context(), h.js, service.InfraOptions{Replicas: 3, LeaseTTL: clusterLeaseTTL}); err != nil {
		t.Fatal(err)
	}
	h.events = watchEvents(t, h.js)
	h.states = watchStates(t, h.js)
	h.leases = watchLeases(t, h.js)
	h.hook = newHookRecorder(t, h.callerNode)

	users, err := h.srv.NewUsers(n)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		a := &clusterAccount{name: fmt.Sprintf("c%04d", i+1), user: u.Name, pass: u.Password}
		h.accounts = append(h.accounts, a)
		h.byName[a.name] = a
	}
	store := service.NewAccountStore(h.infra.Accounts, h.sealer)
	parallel(h.accounts, 32, func(a *clusterAccount) {
		if _, err := store.Create(t.Context(), service.Account{Name: a.name, Server: h.srv.Addr, Mode: service.ModePlaintext, User: a.user, Password: a.pass}); err != nil {
			t.Errorf("creating %s: %v", a.name, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	return h
}

// parallel calls f for each item, n at a time.
func parallel[T any](items []T, n int, f func(T)) {
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(it)
		})
	}
	wg.Wait()
}

// hotAccounts returns n accounts spread over all of them, the dead account
// among them: those that get mail.
func (h *clusterHarness) hotAccounts(n int) []*clusterAccount {
	n = min(n, len(h.accounts))
	out := []*clusterAccount{h.byName[deadAccount]}
	for i := range n - 1 {
		a := h.accounts[i*len(h.accounts)/n+len(h.accounts)/(2*n)]
		if a.name != deadAccount {
			out = append(out, a)
		}
	}
	return out
}

// serveNode is one imapkit serve node: a child process, started again
// after each stop, that reaches each NATS server through a tap of its own.
type serveNode struct {
	id   string
	bin  string
	args []string
	http string
	taps []*natstest.Tap
	log  buffer // the output of every run

	mu      sync.Mutex
	runs    int
	cmd     *exec.Cmd
	done    chan struct{} // closed when the run's process has exited
	waitErr error
}

func (h *clusterHarness) startNodes(ids ...string) {
	for _, id := range ids {
		n := &serveNode{id: id, bin: h.bin, http: freeAddr(h.t)}
		var urls []string
		for _, s := range h.nats {
			tap := natstest.NewTap(h.t, s.ClientAddr, service.SubjectEvents+".", stateSubject)
			n.taps = append(n.taps, tap)
			urls = append(urls, tap.URL())
		}
		n.args = []string{"serve", "--nats", strings.Join(urls, ","), "--replicas", "3", "--lease-ttl", clusterLeaseTTL.String(),
			"--debug", "--node-id", id, "--http", n.http, "--secret-key-file", h.key, "--api-token-file", h.token,
			"--start-concurrency", "64", "--per-server", "32", "--timeout", "20s",
			"--webhook", h.hook.srv.URL, "--webhook-retries", "1", "--retry-backoff", "100ms", "--webhook-timeout", "5s"}
		h.nodes[id] = n
		h.t.Cleanup(func() { n.kill(syscall.SIGKILL) })
		n.start(h.t)
	}
	h.t.Cleanup(func() {
		if d := os.Getenv("CLUSTER_LOGS"); d != "" {
			if h.t.Failed() {
				// Their goroutines, to see what a stuck node waits for.
				for _, n := range h.nodes {
					n.signal(syscall.SIGQUIT)
				}
				for _, n := range h.nodes {
					n.waitExit(5 * time.Second)
				}
			}
			for id, n := range h.nodes {
				os.WriteFile(filepath.Join(d, id+".log"), []byte(n.log.String()), 0o644)
			}
		}
		if h.t.Failed() {
			for _, id := range slices.Sorted(maps.Keys(h.nodes)) {
				h.t.Logf("output of %s (end):\n%s", id, h.nodes[id].logTail(40))
			}
		}
	})
}

// start runs the node and waits until it says it is ready.
func (n *serveNode) start(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	n.runs++
	fmt.Fprintf(&n.log, "=== run %d\n", n.runs)
	var stdout buffer
	cmd := exec.Command(n.bin, n.args...)
	cmd.Stdout = io.MultiWriter(&stdout, &n.log)
	cmd.Stderr = &n.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		n.mu.Unlock()
		t.Fatal(err)
	}
	done := make(chan struct{})
	n.cmd, n.done = cmd, done
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "node "+n.id+" ready") {
		select {
		case <-done:
			t.Fatalf("%s exited before it was ready:\n%s", n.id, n.logTail(40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 30 s:\n%s", n.id, n.logTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// serve starts itself again with small goroutine stacks (stacks.go).
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", n.pid()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Split(string(env), "\x00"), "GODEBUG="+stacksSetting) {
		t.Errorf("%s runs without GODEBUG=%s", n.id, stacksSetting)
	}
}

// pid is the process ID of the node's current run.
func (n *serveNode) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

func (n *serveNode) signal(sig syscall.Signal) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		n.cmd.Process.Signal(sig)
	}
}

// kill sends sig (SIGKILL, say) and waits for the process to exit.
func (n *serveNode) kill(sig syscall.Signal) {
	n.signal(sig)
	n.waitExit(10 * time.Second)
}

// waitExit waits for the process to exit and returns how it did.
func (n *serveNode) waitExit(d time.Duration) error {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.waitErr
	case <-time.After(d):
		return fmt.Errorf("still running after %v", d)
	}
}

func (n *serveNode) logTail(lines int) string {
	l := strings.Split(strings.TrimRight(n.log.String(), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// stateSubject prefixes the subjects of the writes to IMAPKIT_STATE.
var stateSubject = kvSubject(service.BucketState)

// pubs returns what the node published on imapkit.events and wrote to
// IMAPKIT_STATE, through every tap, in time order.
func (n *serveNode) pubs() []natstest.Pub {
	var out []natstest.Pub
	for _, tap := range n.taps {
		out = append(out, tap.Pubs()...)
	}
	slices.SortFunc(out, func(a, b natstest.Pub) int { return a.Time.Compare(b.Time) })
	return out
}

// call sends an API request to a node, with the token, and returns the
// status and the body.
func (h *clusterHarness) call(t *testing.T, node, method, path string, body any, header ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+h.nodes[node].http+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer t0ken")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// appenders append mail to accounts, one goroutine per share of them,
// recording the UID of every message.
type appenders struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	count atomic.Int64

	mu  sync.Mutex
	err error
}

// appendPause is how long an appender waits between two messages.
const appendPause = 25 * time.Millisecond

func startAppending(h *clusterHarness, accounts []*clusterAccount, goroutines int) *appenders {
	a := &appenders{stop: make(chan struct{})}
	for g := range goroutines {
		var mine []*clusterAccount
		for i := g; i < len(accounts); i += goroutines {
			mine = append(mine, accounts[i])
		}
		a.wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-a.stop:
					return
				case <-time.After(appendPause):
				}
				if _, err := h.appendOne(mine[k%len(mine)], "INBOX", fmt.Sprintf("msg %d.%d", g, k)); err != nil {
					a.mu.Lock()
					a.err = err
					a.mu.Unlock()
					return
				}
				a.count.Add(1)
			}
		})
	}
	return a
}

// halt stops the appenders and returns how many messages they appended.
func (a *appenders) halt(t *testing.T) int64 {
	t.Helper()
	close(a.stop)
	a.wg.Wait()
	if a.err != nil {
		t.Fatalf("appending: %v", a.err)
	}
	return a.count.Load()
}

// appendFor lets the appenders run for d, and for a few messages at least.
func (h *clusterHarness) appendFor(d time.Duration) {
	from := h.appenders.count.Load()
	time.Sleep(d)
	deadline := time.Now().Add(30 * time.Second)
	for h.appenders.count.Load() < from+10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

var appendUIDPattern = regexp.MustCompile(`APPENDUID \d+ (\d+)`)

// connect opens the account's connection for appends, if it has none.
func (h *clusterHarness) connect(a *clusterAccount) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conn != nil {
		return nil
	}
	c, err := imap.Dial(context.Background(), h.srv.Addr, &imap.Options{Timeout: 20 * time.Second, InsecureAuth: true})
	if err != nil {
		return err
	}
	if _, err := c.Login(context.Background(), a.user, a.pass); err != nil {
		c.Shutdown()
		return fmt.Errorf("%s: %w", a.name, err)
	}
	a.conn = c
	h.t.Cleanup(func() { c.Shutdown() })
	return nil
}

// appendOne appends a message to an account's mailbox, over a connection
// of its own kept for the next, and records its UID.
func (h *clusterHarness) appendOne(a *clusterAccount, mailbox, subject string) (uint32, error) {
	if err := h.connect(a); err != nil {
		return 0, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	msg := "From: ada@example.org\r\nSubject: " + subject + "\r\n\r\nbody\r\n"
	res, err := a.conn.Append(context.Background(), mailbox, "", time.Time{}, []byte(msg))
	if err != nil {
		return 0, fmt.Errorf("%s: APPEND: %w", a.name, err)
	}
	m := appendUIDPattern.FindStringSubmatch(strings.Join(res.Texts(), " "))
	if m == nil {
		return 0, fmt.Errorf("%s: APPEND without APPENDUID: %q", a.name, res.Texts())
	}
	uid, _ := strconv.ParseUint(m[1], 10, 32)
	if a.uids == nil {
		a.uids = map[string][]uint32{}
	}
	a.uids[mailbox] = append(a.uids[mailbox], uint32(uid))
	return uint32(uid), nil
}

// waitWatched waits until every account has a position in IMAPKIT_STATE:
// its baseline is saved, and mail appended from now on is new to it.
func (h *clusterHarness) waitWatched(t *testing.T, accounts []*clusterAccount, mailbox string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var missing []string
		for _, a := range accounts {
			if !h.states.has(a.name, mailbox) {
				missing = append(missing, a.name)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d accounts without a position after %v: %v", len(missing), d, missing[:min(10, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitHolding waits until node holds at least n leases: it is back at work.
func (h *clusterHarness) waitHolding(t *testing.T, node string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for len(h.leases.heldBy(node)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d leases after %v, want %d", node, len(h.leases.heldBy(node)), d, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitPublished waits until every appended message is in IMAPKIT_EVENTS,
// and every position in IMAPKIT_STATE got past it.
func (h *clusterHarness) waitPublished(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var missing []string
		for _, a := range h.accounts {
			for mb, uids := range a.appended() {
				got := h.events.newUIDs(a.name, mb)
				for _, uid := range uids {
					if !got[uid] {
						missing = append(missing, fmt.Sprintf("%s/%s/%d", a.name, mb, uid))
					}
				}
				if last := h.states.lastUID(a.name, mb); last < slices.Max(uids) {
					missing = append(missing, fmt.Sprintf("%s/%s: position %d < %d", a.name, mb, last, slices.Max(uids)))
				}
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			// Tell a follower of this test that fell behind from
			// events that are not there.
			stored := map[string]bool{}
			for _, ev := range readEvents(t, h.js) {
				if ev.Kind == "new" {
					stored[fmt.Sprintf("%s/%s/%d", ev.Account, ev.Mailbox, ev.UID)] = true
				}
			}
			inStream := 0
			for _, m := range missing {
				if stored[m] {
					inStream++
				}
			}
			t.Fatalf("after %v, %d appended messages are not published or passed (%d of them are in %s, which this test's follower did not see): %v",
				d, len(missing), inStream, service.StreamEvents, missing[:min(20, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkEvents reads IMAPKIT_EVENTS from its start: every event ID is stored
// once, and every appended message is there as one "new" event.
func (h *clusterHarness) checkEvents(t *testing.T) []storedEvent {
	t.Helper()
	evs := readEvents(t, h.js)
	ids := map[string]int{}
	news := map[string]map[uint32]int{}
	for _, ev := range evs {
		ids[ev.msgID]++
		if ev.msgID == "" || ev.msgID != ev.ID {
			t.Errorf("stream sequence %d: Nats-Msg-Id %q, event id %q", ev.seq, ev.msgID, ev.ID)
		}
		if ev.Kind == "new" {
			k := ev.Account + "/" + ev.Mailbox
			if news[k] == nil {
				news[k] = map[uint32]int{}
			}
			news[k][ev.UID]++
		}
	}
	for id, n := range ids {
		if n > 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	// A watcher that could not save its positions says so in a
	// state_error event: fine while NATS elects a leader, as long as the
	// positions move on (waitPublished).
	stateErrors := 0
	for _, ev := range evs {
		if ev.Kind == "state_error" {
			stateErrors++
		}
	}
	total := 0
	for _, a := range h.accounts {
		for mb, uids := range a.appended() {
			for _, uid := range uids {
				total++
				if n := news[a.name+"/"+mb][uid]; n != 1 {
					t.Errorf("%s %s UID %d: %d new events stored, want 1", a.name, mb, uid, n)
				}
			}
		}
	}
	t.Logf("IMAPKIT_EVENTS: %d events, %d distinct IDs, %d state errors; %d appended messages checked", len(evs), len(ids), stateErrors, total)
	return evs
}

// fenceCheck asks that node published no event and wrote no position for
// accounts from a time on, until it took an account's lease again.
type fenceCheck struct {
	node     string
	accounts []string
	from     time.Time
}

// fenceSlack is how much earlier than the server stored a lease a node may
// seem to act for the account: the two clocks are one, but the tap notes
// a write as it passes it on.
const fenceSlack = 10 * time.Millisecond

// pubAccount returns the account of an event or state subject.
func pubAccount(subject string) string {
	if rest, ok := strings.CutPrefix(subject, stateSubject); ok {
		return rest
	}
	account, _, _ := strings.Cut(strings.TrimPrefix(subject, service.SubjectEvents+"."), ".")
	return account
}

func (h *clusterHarness) checkFences(t *testing.T) {
	t.Helper()
	for _, f := range h.fenced {
		held := map[string]bool{}
		for _, a := range f.accounts {
			held[a] = true
		}
		stale, later := 0, 0
		for _, p := range h.nodes[f.node].pubs() {
			account := pubAccount(p.Subject)
			if p.Time.Before(f.from) || !held[account] {
				continue
			}
			if back, ok := h.leases.takenBy(account, f.node, f.from); ok && p.Time.After(back.Add(-fenceSlack)) {
				later++ // it holds the account again
				continue
			}
			if stale++; stale <= 10 {
				t.Errorf("%s wrote %s %v after it resumed, while another node held the lease", f.node, p.Subject, p.Time.Sub(f.from).Round(time.Millisecond))
			}
		}
		if stale > 10 {
			t.Errorf("… %d stale writes by %s in all", stale, f.node)
		}
		if stale == 0 {
			t.Logf("fencing: %s published no event and wrote no position for the %d accounts taken from it until it took them back (%d writes after that)", f.node, len(f.accounts), later)
		}
	}
}

// storedEvent is an event as IMAPKIT_EVENTS holds it.
type storedEvent struct {
	delivery.Event
	msgID string // Nats-Msg-Id
	seq   uint64
}

func parseStored(m jetstream.Msg) storedEvent {
	var ev storedEvent
	json.Unmarshal(m.Data(), &ev.Event)
	ev.msgID = m.Headers().Get(jetstream.MsgIDHeader)
	if meta, err := m.Metadata(); err == nil {
		ev.seq = meta.Sequence.Stream
	}
	return ev
}

// readEvents reads IMAPKIT_EVENTS from its first event to its last.
func readEvents(t *testing.T, js jetstream.JetStream) []storedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, service.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	last := s.CachedInfo().State.LastSeq
	c, err := js.OrderedConsumer(ctx, service.StreamEvents, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []storedEvent
	for last > 0 && (len(out) == 0 || out[len(out)-1].seq < last) {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			t.Fatalf("reading %s: %v", service.StreamEvents, err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, parseStored(m))
			n++
		}
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %d events of %d after 60 s: %v", service.StreamEvents, len(out), last, batch.Error())
		}
		if n == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}

// eventLog follows IMAPKIT_EVENTS: the UIDs of each mailbox with a "new"
// event.
type eventLog struct {
	mu   sync.Mutex
	news map[string]map[uint32]bool // account/mailbox → UIDs
}

func watchEvents(t *testing.T, js jetstream.JetStream) *eventLog {
	t.Helper()
	l := &eventLog{news: map[string]map[uint32]bool{}}
	follow(t, js, service.StreamEvents, func(m jetstream.Msg, _ *jetstream.MsgMetadata) {
		ev := parseStored(m)
		if ev.Kind != "new" {
			return
		}
		k := ev.Account + "/" + ev.Mailbox
		l.mu.Lock()
		if l.news[k] == nil {
			l.news[k] = map[uint32]bool{}
		}
		l.news[k][ev.UID] = true
		l.mu.Unlock()
	})
	return l
}

// follow calls f for every message of stream, in order, from the first,
// until the test ends. Each Fetch of an ordered consumer starts a consumer
// from where the last one ended, so that the test keeps up after the
// server of its consumer dies (a consumer created once, with Consume, may
// not).
func follow(t *testing.T, js jetstream.JetStream, stream string, f func(jetstream.Msg, *jetstream.MsgMetadata)) {
	t.Helper()
	ctx := t.Context()
	var last uint64 // stream sequence of the last message handed to f
	// A plain ephemeral consumer, not an ordered one: after a NATS server
	// was killed, an ordered consumer of nats.go delivered nothing more
	// (the test then saw no event after the kill, while the webhook
	// consumer got them), and starting another ordered one did not help.
	consume := func() (jetstream.Consumer, error) {
		cfg := jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: 30 * time.Second, MemoryStorage: true}
		if last > 0 {
			cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			cfg.OptStartSeq = last + 1
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return js.CreateConsumer(cctx, stream, cfg)
	}
	c, err := consume()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		progress := time.Now()
		var delivered uint64 // consumer sequence of the last message received
		for ctx.Err() == nil {
			batch, err := c.Fetch(1000, jetstream.FetchMaxWait(300*time.Millisecond))
			n, gap := 0, false
			if err == nil {
				for m := range batch.Messages() {
					meta, err := m.Metadata()
					if err != nil || gap {
						continue
					}
					// Without acknowledgements, a delivery answering
					// a pull request that expired is lost: a gap in
					// the consumer's sequence says so, and a new
					// consumer starts after the last message seen.
					if meta.Sequence.Consumer != delivered+1 {
						gap = true
						continue
					}
					delivered = meta.Sequence.Consumer
					if meta.Sequence.Stream <= last {
						continue
					}
					last = meta.Sequence.Stream
					f(m, meta)
					n++
				}
			}
			if gap {
				if again, err := consume(); err == nil {
					c, delivered = again, 0
				}
				continue
			}
			if n > 0 {
				progress = time.Now()
				continue
			}
			// The consumer may have lived on a NATS server that was
			// killed: start another after the last message seen when
			// fetching fails, or nothing came for a while although the
			// stream holds more.
			if err != nil || time.Since(progress) > 2*time.Second && streamBeyond(ctx, js, stream, last) {
				if again, err := consume(); err == nil {
					c, delivered = again, 0
				}
				progress = time.Now()
			}
			if err != nil {
				sleepCtx(ctx, 100*time.Millisecond)
			}
		}
	}()
}

// streamBeyond reports whether stream holds a message after sequence seq.
func streamBeyond(ctx context.Context, js jetstream.JetStream, stream string, seq uint64) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	return err == nil && s.CachedInfo().State.LastSeq > seq
}

// kvSubject prefixes the subjects of a bucket's stream.
func kvSubject(bucket string) string { return "$KV." + bucket + "." }

// kvPut reports whether m, from a bucket's stream, puts a value (rather
// than deleting or purging the key).
func kvPut(m jetstream.Msg) bool { return m.Headers().Get("KV-Operation") == "" }

func (l *eventLog) newUIDs(account, mailbox string) map[uint32]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.news[account+"/"+mailbox])
}

// stateLog follows IMAPKIT_STATE, and notes every position that went back.
type stateLog struct {
	mu        sync.Mutex
	pos       map[string]map[string]watch.MailboxState // account → mailbox → last seen
	updates   int
	backwards []string
	reported  int
}

func watchStates(t *testing.T, js jetstream.JetStream) *stateLog {
	t.Helper()
	l := &stateLog{pos: map[string]map[string]watch.MailboxState{}}
	follow(t, js, "KV_"+service.BucketState, func(m jetstream.Msg, meta *jetstream.MsgMetadata) {
		l.apply(strings.TrimPrefix(m.Subject(), stateSubject), kvPut(m), m.Data(), meta.Sequence.Stream)
	})
	return l
}

func (l *stateLog) apply(account string, put bool, value []byte, rev uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.updates++
	if !put {
		delete(l.pos, account)
		return
	}
	var st watch.AccountState
	if err := json.Unmarshal(value, &st); err != nil {
		l.backwards = append(l.backwards, fmt.Sprintf("%s revision %d: %v", account, rev, err))
		return
	}
	if l.pos[account] == nil {
		l.pos[account] = map[string]watch.MailboxState{}
	}
	for mb, p := range st.Mailboxes {
		prev, ok := l.pos[account][mb]
		if ok && prev.UIDValidity == p.UIDValidity && p.LastUID < prev.LastUID {
			l.backwards = append(l.backwards, fmt.Sprintf("%s %s: last_uid %d after %d (revision %d)", account, mb, p.LastUID, prev.LastUID, rev))
		}
		l.pos[account][mb] = *p
	}
}

func (l *stateLog) has(account, mailbox string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.pos[account][mailbox]
	return ok
}

func (l *stateLog) lastUID(account, mailbox string) uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pos[account][mailbox].LastUID
}

// check fails the test for every position that went back since the last
// check.
func (l *stateLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.backwards[l.reported:] {
		t.Errorf("IMAPKIT_STATE went back: %s", b)
	}
	l.reported = len(l.backwards)
}

// leaseLog follows IMAPKIT_LEASES: who holds each lease, as far as the
// writes tell (a lease that expires leaves no trace until it is taken).
type leaseLog struct {
	mu      sync.Mutex
	owner   map[string]string // "" after a delete
	changes map[string][]ownerChange
}

type ownerChange struct {
	at    time.Time
	owner string
}

func watchLeases(t *testing.T, js jetstream.JetStream) *leaseLog {
	t.Helper()
	l := &leaseLog{owner: map[string]string{}, changes: map[string][]ownerChange{}}
	prefix := kvSubject(service.BucketLeases)
	follow(t, js, "KV_"+service.BucketLeases, func(m jetstream.Msg, meta *jetstream.MsgMetadata) {
		account, owner := strings.TrimPrefix(m.Subject(), prefix), ""
		if kvPut(m) {
			owner = string(m.Data())
		}
		l.mu.Lock()
		if owner != l.owner[account] {
			l.owner[account] = owner
			// When the server stored it: the test may read it later.
			l.changes[account] = append(l.changes[account], ownerChange{meta.Timestamp, owner})
		}
		l.mu.Unlock()
	})
	return l
}

// heldBy returns the accounts whose lease node wrote last.
func (l *leaseLog) heldBy(node string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for a, o := range l.owner {
		if o == node {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// waitTaken waits until another node than node holds every account.
func (l *leaseLog) waitTaken(t *testing.T, accounts []string, node string, since time.Time, d time.Duration) {
	t.Helper()
	if len(accounts) == 0 {
		t.Fatalf("%s held no lease", node)
	}
	deadline := since.Add(d)
	for {
		var left []string
		l.mu.Lock()
		for _, a := range accounts {
			if o := l.owner[a]; o == "" || o == node {
				left = append(left, a)
			}
		}
		l.mu.Unlock()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %s's accounts not taken by another node within %v: %v", len(left), node, d, left[:min(10, len(left))])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// takenBy returns when node took account's lease after from, if it did.
func (l *leaseLog) takenBy(account, node string, from time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.changes[account] {
		if c.owner == node && c.at.After(from) {
			return c.at, true
		}
	}
	return time.Time{}, false
}

// hookRecorder is the webhook of every node: it takes 20 ms per event,
// records the IDs it accepted, and refuses every event of deadAccount.
// While held, it answers nothing: the calls wait, counted by the node that
// makes them, and those whose node goes away (killed) are abandoned.
type hookRecorder struct {
	srv *httptest.Server
	// caller names the node that called from an address, "" if unknown.
	caller func(remote string) string

	mu        sync.Mutex
	accepted  map[string]int // event ID → deliveries accepted
	refused   int
	held      chan struct{}     // closed to release the calls waiting; nil: not held
	pending   map[string]int    // node → calls waiting
	abandoned map[string]string // event ID → node that went away during its call
}

func newHookRecorder(t *testing.T, caller func(remote string) string) *hookRecorder {
	r := &hookRecorder{caller: caller, accepted: map[string]int{}, pending: map[string]int{}, abandoned: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ev delivery.Event
		if err := json.NewDecoder(req.Body).Decode(&ev); err != nil || ev.ID == "" {
			http.Error(w, "not an event", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		if ev.Account == deadAccount {
			r.refused++
			r.mu.Unlock()
			http.Error(w, "refused", http.StatusInternalServerError)
			return
		}
		held := r.held
		r.mu.Unlock()
		if held != nil {
			node := r.caller(req.RemoteAddr)
			r.mu.Lock()
			r.pending[node]++
			r.mu.Unlock()
			select {
			case <-held:
			case <-req.Context().Done():
				r.mu.Lock()
				r.pending[node]--
				r.abandoned[ev.ID] = node
				r.mu.Unlock()
				return
			}
			r.mu.Lock()
			r.pending[node]--
			r.mu.Unlock()
		}
		time.Sleep(20 * time.Millisecond)
		r.mu.Lock()
		r.accepted[ev.ID]++
		r.mu.Unlock()
	}))
	t.Cleanup(func() {
		r.release()
		r.srv.Close()
	})
	return r
}

func (r *hookRecorder) hold() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == nil {
		r.held = make(chan struct{})
	}
}

func (r *hookRecorder) release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held != nil {
		close(r.held)
		r.held = nil
	}
}

// waitPending waits until node has n calls waiting for the held webhook.
func (r *hookRecorder) waitPending(t *testing.T, node string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r.mu.Lock()
		pending := maps.Clone(r.pending)
		r.mu.Unlock()
		if pending[node] >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook calls waiting after %v: %v; want %d of %s", d, pending, n, node)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAbandoned waits until none of node's calls is waiting: it went away.
func (r *hookRecorder) waitAbandoned(t *testing.T, node string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		r.mu.Lock()
		left, gone := r.pending[node], 0
		for _, n := range r.abandoned {
			if n == node {
				gone++
			}
		}
		r.mu.Unlock()
		if left == 0 && gone > 0 {
			t.Logf("%s died in %d webhook calls", node, gone)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d webhook calls of %s still waiting %v after it was killed", left, node, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// callerNode names the node whose process holds the client end of the
// loopback connection from remote ("127.0.0.1:PORT") to the webhook, or "".
func (h *clusterHarness) callerNode(remote string) string {
	_, port, _ := strings.Cut(remote, ":")
	p, _ := strconv.Atoi(port)
	_, hookPort, _ := strings.Cut(strings.TrimPrefix(h.hook.srv.URL, "http://"), ":")
	hp, _ := strconv.Atoi(hookPort)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return ""
	}
	// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
	local, rem, inode := fmt.Sprintf(":%04X", p), fmt.Sprintf(":%04X", hp), ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 9 && strings.HasSuffix(f[1], local) && strings.HasSuffix(f[2], rem) {
			inode = f[9]
			break
		}
	}
	if inode == "" {
		return ""
	}
	socket := "socket:[" + inode + "]"
	for id, n := range h.nodes {
		pid := n.pid()
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); l == socket {
				return id
			}
		}
	}
	return ""
}

// hookKinds are the kinds that reach webhooks by default.
var hookKinds = map[string]bool{"new": true, "expunge": true, "flags": true, "reset": true, "alert": true}

// waitWebhooks waits until every event of IMAPKIT_EVENTS of a webhook kind
// was accepted by the webhook or is a dead letter (GET /v1/dead).
func (h *clusterHarness) waitWebhooks(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		evs := readEvents(t, h.js)
		code, body := h.call(t, "n1", "GET", "/v1/dead?limit=1000", nil)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/dead: %d %s", code, body)
		}
		var reply struct{ Dead []service.DeadLetter }
		if err := json.Unmarshal([]byte(body), &reply); err != nil {
			t.Fatal(err)
		}
		dead := map[string]bool{}
		for _, l := range reply.Dead {
			dead[l.Event.ID] = true
		}
		h.hook.mu.Lock()
		var missing []string
		wanted, repeated, deadCount := 0, 0, 0
		for _, ev := range evs {
			if !hookKinds[ev.Kind] {
				continue
			}
			wanted++
			n := h.hook.accepted[ev.ID]
			switch {
			case ev.Account == deadAccount && n > 0:
				t.Fatalf("the webhook accepted an event of %s", deadAccount)
			case ev.Account == deadAccount && dead[ev.ID]:
				deadCount++
			case n == 0 && !dead[ev.ID]:
				missing = append(missing, fmt.Sprintf("%s %s/%d (%s)", ev.Kind, ev.Account, ev.UID, ev.ID))
			case n > 1:
				repeated++
			}
		}
		refused := h.hook.refused
		redone := 0
		for id := range h.hook.abandoned {
			if h.hook.accepted[id] > 0 {
				redone++
			}
		}
		abandoned := len(h.hook.abandoned)
		h.hook.mu.Unlock()
		if len(missing) == 0 && redone < abandoned {
			missing = append(missing, fmt.Sprintf("%d calls abandoned by the killed node not delivered again", abandoned-redone))
		}
		if len(missing) == 0 {
			t.Logf("%d events: %d accepted by the webhook (%d of them more than once; the %d cut short by the kill delivered again), %d dead letters of %s (%d refusals); %d dead letters in all",
				wanted, wanted-deadCount, repeated, abandoned, deadCount, deadAccount, refused, len(reply.Dead))
			if deadCount == 0 {
				t.Errorf("no dead letter of %s", deadAccount)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %d of %d events neither reached the webhook nor are dead letters: %v", d, len(missing), wanted, missing[:min(10, len(missing))])
		}
		time.Sleep(time.Second)
	}
}

// apiScenario adds, changes and removes accounts through a node's API
// while the nodes run, and checks where their secrets are stored.
func (h *clusterHarness) apiScenario(t *testing.T) {
	users, err := h.srv.NewUsers(3)
	if err != nil {
		t.Fatal(err)
	}
	var added []*clusterAccount
	for i, name := range []string{"api-add", "api-change", "api-remove"} {
		a := &clusterAccount{name: name, user: users[i].Name, pass: users[i].Password}
		code, body := h.call(t, "n1", "PUT", "/v1/accounts/"+name,
			map[string]any{"server": h.srv.Addr, "mode": "plaintext", "user": a.user, "password": a.pass}, "If-None-Match", "*")
		if code != http.StatusCreated {
			t.Fatalf("PUT /v1/accounts/%s: %d %s", name, code, body)
		}
		// Appends over a pre-authenticated stream: Dovecot's network
		// sessions of the user are the watcher's only.
		c, err := imap.DialStream(context.Background(), h.srv.StreamCommand(a.user), &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Shutdown() })
		a.conn = c
		added = append(added, a)
		h.accounts = append(h.accounts, a)
		h.byName[name] = a
	}
	add, change, remove := added[0], added[1], added[2]
	h.waitWatched(t, added, "INBOX", 30*time.Second)
	for _, a := range added {
		if _, err := h.appendOne(a, "INBOX", "api"); err != nil {
			t.Fatal(err)
		}
	}
	h.waitPublished(t, 30*time.Second)

	// Changed: Archive watched too, from a baseline.
	if _, err := change.conn.Create(context.Background(), "Archive"); err != nil {
		t.Fatal(err)
	}
	code, body := h.call(t, "n2", "PUT", "/v1/accounts/api-change",
		map[string]any{"server": h.srv.Addr, "mode": "plaintext", "user": change.user, "mailboxes": []string{"INBOX", "Archive"}}, "If-Match", "*")
	if code != http.StatusOK || !strings.Contains(body, "Archive") {
		t.Fatalf("PUT /v1/accounts/api-change: %d %s", code, body)
	}
	h.waitWatched(t, []*clusterAccount{change}, "Archive", 30*time.Second)
	if _, err := h.appendOne(change, "Archive", "archived"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.appendOne(change, "INBOX", "still watched"); err != nil {
		t.Fatal(err)
	}
	h.waitPublished(t, 30*time.Second)

	// Removed: its connection closes, and its mail is no longer reported.
	if pids, err := h.srv.IMAPPIDs(remove.user); err != nil || len(pids) != 1 {
		t.Fatalf("%s's sessions before the removal: %v (%v), want the watcher's", remove.name, pids, err)
	}
	code, body = h.call(t, "n3", "DELETE", "/v1/accounts/api-remove", nil)
	if code != http.StatusNoContent {
		t.Fatalf("DELETE /v1/accounts/api-remove: %d %s", code, body)
	}
	removed := time.Now()
	for deadline := removed.Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pids, err := h.srv.IMAPPIDs(remove.user)
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's connection still open 10 s after its removal", remove.name)
		}
	}
	t.Logf("%s's connection closed %v after DELETE", remove.name, time.Since(removed).Round(time.Millisecond))
	if code, body := h.call(t, "n1", "GET", "/v1/accounts/api-remove", nil); code != http.StatusNotFound {
		t.Errorf("GET /v1/accounts/api-remove after DELETE: %d %s", code, body)
	}
	unwatched, err := h.appendOne(remove, "INBOX", "unwatched")
	if err != nil {
		t.Fatal(err)
	}
	remove.mu.Lock()
	remove.uids = nil // not to be published
	remove.mu.Unlock()
	// Mail to a watched account, after: once it is published, the
	// removed account's would have been too.
	if _, err := h.appendOne(add, "INBOX", "after the removal"); err != nil {
		t.Fatal(err)
	}
	h.waitPublished(t, 30*time.Second)
	if h.events.newUIDs(remove.name, "INBOX")[unwatched] {
		t.Errorf("%s's mail published after its removal", remove.name)
	}
	for id, n := range h.nodes {
		for _, p := range n.pubs() {
			if strings.HasPrefix(p.Subject, service.SubjectEvents+"."+remove.name+".") && p.Time.After(removed) {
				t.Errorf("%s published %s %v after %s was removed", id, p.Subject, p.Time.Sub(removed).Round(time.Millisecond), remove.name)
			}
		}
	}
	h.checkEvents(t)
	h.checkSecrets(t)
}

// checkSecrets: the passwords are sealed in IMAPKIT_ACCOUNTS, and a sealed
// password opens with the key only; no NATS server stores any password in
// clear, in any file of its store directory, and no node logs one.
func (h *clusterHarness) checkSecrets(t *testing.T) {
	t.Helper()
	store := service.NewAccountStore(h.infra.Accounts, h.sealer)
	first, added := h.accounts[0], h.byName["api-add"]
	var sealed []string // what must be found in the store directories
	for _, a := range []*clusterAccount{first, added} {
		acc, err := store.GetSealed(t.Context(), a.name)
		if err != nil {
			t.Fatal(err)
		}
		if pass, err := h.sealer.Open(a.name, acc.PasswordSealed); err != nil || pass != a.pass {
			t.Errorf("%s's sealed password opens to %q (%v) with the key", a.name, pass, err)
		}
		other := make([]byte, service.KeySize)
		rand.Read(other)
		wrong, err := service.NewSealer(other)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wrong.Open(a.name, acc.PasswordSealed); err == nil {
			t.Errorf("%s's sealed password opens with another key", a.name)
		}
		sealed = append(sealed, acc.PasswordSealed)
	}
	secrets := map[string]string{} // password → account
	for _, a := range h.accounts {
		secrets[a.pass] = a.name
	}
	for i, s := range h.nats {
		// What each server must hold: c0001's sealed password, and the
		// added account's but on the server killed before it.
		want := sealed
		if !s.Running() {
			want = sealed[:1]
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			found, err := grepDir(s.StoreDir, want)
			if err != nil {
				t.Fatal(err)
			}
			if len(found) == len(want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("NATS server %d: %d of %d sealed passwords found under %s", i, len(found), len(want), s.StoreDir)
			}
		}
		hits, files, err := findSecrets(s.StoreDir, secrets)
		if err != nil {
			t.Fatal(err)
		}
		for _, hit := range hits {
			t.Errorf("NATS server %d stores a password in clear: %s", i, hit)
		}
		t.Logf("NATS server %d: %d files, no password of the %d in clear; the sealed ones there", i, files, len(secrets))
	}
	for id, n := range h.nodes {
		for _, hit := range scanSecrets([]byte(n.log.String()), secrets) {
			t.Errorf("%s logged the password of %s", id, hit)
		}
	}
}

// grepDir returns which of strs some file under dir holds.
func grepDir(dir string, strs []string) (map[string]bool, error) {
	found := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // removed meanwhile
		}
		for _, s := range strs {
			if bytes.Contains(b, []byte(s)) {
				found[s] = true
			}
		}
		return nil
	})
	return found, err
}

// findSecrets scans every file under dir for the secrets, and returns
// where it found which, and how many files it read.
func findSecrets(dir string, secrets map[string]string) (hits []string, files int, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		files++
		for _, account := range scanSecrets(b, secrets) {
			hits = append(hits, path+": "+account)
		}
		return nil
	})
	return hits, files, err
}

// scanSecrets returns the accounts whose secret b holds, in one pass over
// b: the secrets are the 16 hex digits of Dovecot's test passwords.
func scanSecrets(b []byte, secrets map[string]string) []string {
	const n = 16
	for s := range secrets {
		if len(s) != n || strings.Trim(s, "0123456789abcdef") != "" {
			panic("scanSecrets: not a password of internal/dovecot: " + s)
		}
	}
	var out []string
	run := 0
	for i, c := range b {
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' {
			run++
			if run >= n {
				if account, ok := secrets[string(b[i-n+1:i+1])]; ok {
					out = append(out, account)
				}
			}
			continue
		}
		run = 0
	}
	return out
}
