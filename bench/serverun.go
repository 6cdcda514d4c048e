//go:build !nokit

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/service"
)

// runServe runs the serve section (see serve.go).
func runServe(ctx context.Context, cfg *config, limit uint64) *serveResult {
	start := time.Now()
	res := &serveResult{ttl: cfg.serveTTL, busyLatency: -1}
	defer func() { res.took = time.Since(start) }()
	res.server, res.natsVersion = dovecotVersion(), server.VERSION
	tmp, err := os.MkdirTemp("", "imapkit-bench-serve-")
	if err != nil {
		res.err = err
		return res
	}
	defer func() {
		if res.failures() > 0 || res.leaseTrouble() {
			log.Printf("serve      the nodes' logs are kept in %s", tmp)
			return
		}
		os.RemoveAll(tmp)
	}()
	h := &serveHarness{cfg: cfg, res: res, dir: tmp, limit: limit}
	// The latency first: after the runs with many accounts, thousands of
	// Dovecot sessions ending and NATS's storage being removed disturb
	// the machine for a while (p99 18.9 ms measured then, 6.4 ms first).
	if err := h.runLatency(ctx); err != nil {
		res.err = err
		log.Printf("serve      latency FAILED: %v", err)
		return res
	}
	if err := h.runMany(ctx); err != nil {
		res.err = err
		log.Printf("serve      FAILED: %v", err)
	}
	return res
}

// serveHarness runs the measurements of the serve section.
type serveHarness struct {
	cfg   *config
	res   *serveResult
	dir   string // temporary: NATS's storage, the key files, the nodes' logs
	limit uint64 // open files
	envs  int    // serveEnvs made, for their directories' names
}

// runMany runs the measurements with many accounts (memory, first sync,
// takeover) on one Dovecot.
func (h *serveHarness) runMany(ctx context.Context) error {
	cfg := h.cfg
	maxN := max(cfg.serveAccounts, cfg.serveSync, cfg.serveTakeover)
	if uint64(maxN)+64 > h.limit {
		return fmt.Errorf("open-file limit %d is too low for %d connections", h.limit, maxN)
	}
	wres := &watchResult{}
	srv, err := startWatchDovecot(dovecot.Config{
		MaxSessions:       maxN + 64,
		LoginProcesses:    runtime.NumCPU(),
		IdleCheckInterval: watchIdleCheck(maxN),
	}, wres)
	if err != nil {
		return err
	}
	defer func() {
		if h.res.failures() > 0 || h.res.leaseTrouble() {
			// Dovecot's log goes with its directory: keep it beside the
			// nodes'.
			if b, err := os.ReadFile(filepath.Join(srv.Dir, "dovecot.log")); err == nil {
				os.WriteFile(filepath.Join(h.dir, "dovecot.log"), b, 0o644)
			}
		}
		srv.stop()
		h.res.notes = append(h.res.notes, wres.notes...)
	}()
	users, err := srv.NewUsers(maxN)
	if err != nil {
		return err
	}
	usersFile, err := writeUsers(users)
	if err != nil {
		return err
	}
	defer os.Remove(usersFile)

	if err := h.memory(ctx, srv.Server, users[:cfg.serveAccounts], usersFile); err != nil {
		return err
	}
	if cfg.serveSync != cfg.serveAccounts {
		n := cfg.serveSync
		log.Printf("serve      first sync: %d accounts", n)
		_, sync, _ := h.nodeRun(ctx, srv.Server, users[:n], false)
		sync.run = "first sync"
		h.res.syncs = append(h.res.syncs, sync)
		if err := waitSessions(srv.Server, 0, -1, 2*time.Minute); err != nil {
			return fmt.Errorf("after the first sync: %w", err)
		}
	}
	h.res.takeover = h.takeover(ctx, srv.Server, users[:cfg.serveTakeover])
	return nil
}

// memory measures the raw Idler's cost per account, then the node's, at
// the same count.
func (h *serveHarness) memory(ctx context.Context, srv *dovecot.Server, users []dovecot.User, usersFile string) error {
	n := len(users)
	log.Printf("serve      %-22s %d accounts", nameWatchIdler, n)
	c := measureWatchCostInChild(srv, nameWatchIdler, n, usersFile, users)
	if c.err != nil {
		log.Printf("serve      %-22s FAILED: %v", nameWatchIdler, c.err)
	} else {
		log.Printf("serve      %-22s %d accounts: parked %.0f B per account (heap %.0f, stack %.0f), %.2f goroutines",
			nameWatchIdler, n, c.parked.total(), c.parked.Heap, c.parked.Stack, c.parked.Goroutines)
	}
	h.res.memory = append(h.res.memory, serveMemory{name: nameWatchIdler, n: n, parked: c.parked, pushed: c.pushed, err: c.err})
	if c.err == nil {
		// Its opening, 16 at a time, is a pace Dovecot allows.
		h.res.syncs = append(h.res.syncs, serveSync{run: "raw Idler, memory run", n: n, took: c.took, busy: -1})
	}
	if err := waitSessions(srv, 0, -1, 2*time.Minute); err != nil {
		return fmt.Errorf("after the raw Idler: %w", err)
	}

	log.Printf("serve      %-22s %d accounts", nameServeNode, n)
	mem, sync, idle := h.nodeRun(ctx, srv, users, true)
	sync.run = "memory run"
	h.res.memory = append(h.res.memory, mem)
	h.res.syncs = append(h.res.syncs, sync)
	h.res.idleCPU = idle
	if err := waitSessions(srv, 0, -1, 2*time.Minute); err != nil {
		return fmt.Errorf("after the node: %w", err)
	}
	return nil
}

// nodeRun runs one node, adds users as its accounts and measures their
// first sync and, if measureMem, the memory per account once they all
// idle and the CPU time the node and NATS take then.
func (h *serveHarness) nodeRun(ctx context.Context, srv *dovecot.Server, users []dovecot.User, measureMem bool) (serveMemory, serveSync, *serveIdleCPU) {
	n := len(users)
	mem := serveMemory{name: nameServeNode, n: n}
	sync := serveSync{n: n, busy: -1}
	var e *serveEnv
	fail := func(err error) (serveMemory, serveSync, *serveIdleCPU) {
		if e != nil {
			sync.leases = e.leaseTrouble()
			err = fmt.Errorf("%w (%s)", err, sync.leases)
		}
		log.Printf("serve      %-22s FAILED: %v", nameServeNode, err)
		if measureMem {
			mem.err = err
		}
		sync.err = err
		return mem, sync, nil
	}
	e, err := h.newEnv(ctx, h.cfg.serveTTL)
	if err != nil {
		return fail(err)
	}
	defer e.close()
	var extra []string
	if measureMem && h.cfg.serveProfile != "" {
		extra = []string{"-serve-node-memprofilerate", "64"}
	}
	node, err := e.startNode("node-1", extra...)
	if err != nil {
		return fail(err)
	}
	if err := e.waitBeats(5); err != nil {
		return fail(err)
	}
	var h0, s0 uint64
	var g0 int
	if measureMem {
		if h0, s0, g0, err = node.mem(); err != nil {
			return fail(err)
		}
		mem.baselineHeap, mem.baselineStack = h0, s0
	}

	names := accountNames(users)
	busy0 := readCPUTimes()
	cpu0, err := node.cpu()
	if err != nil {
		return fail(err)
	}
	nats0, natsErr := e.nats.cpu()
	dovecot0, dovecotErr := srv.CPUTime()
	t0 := time.Now()
	if err := e.addAccounts(ctx, users, srv.Addr); err != nil {
		return fail(err)
	}
	last, err := e.waitAllIdle(names, e.liveNodes(), t0, time.Minute+time.Duration(n)*50*time.Millisecond)
	if err != nil {
		return fail(e.withLogs(err))
	}
	cpu1, err := node.cpu()
	if err != nil {
		return fail(err)
	}
	sync.natsCPU, sync.dovecotCPU = -1, -1
	if nats1, err := e.nats.cpu(); err == nil && natsErr == nil {
		sync.natsCPU = nats1 - nats0
	}
	if dovecot1, err := srv.CPUTime(); err == nil && dovecotErr == nil {
		sync.dovecotCPU = dovecot1 - dovecot0
	}
	sync.busy = busy0.busySince()
	sync.took, sync.cpu = last.Sub(t0), cpu1-cpu0
	sync.leases = e.leaseTrouble()
	log.Printf("serve      %-22s first sync of %d accounts in %v: %.0f accounts/s, node CPU %v (%.2f ms per account), NATS %v, Dovecot %v; CPUs busy %s, the rest %s; %s",
		nameServeNode, n, sync.took.Round(time.Millisecond), sync.rate(), sync.cpu, float64(sync.cpu)/1e6/float64(n), sync.natsCPU, sync.dovecotCPU,
		fmtBusy(sync.busy), fmtBusy(sync.rest(runtime.NumCPU())), sync.leases)
	if !measureMem {
		return mem, sync, nil
	}

	if err := waitSessions(srv, n, n, time.Minute+time.Duration(n)*10*time.Millisecond); err != nil {
		return fail(err)
	}
	time.Sleep(watchSettle)
	h1, s1, g1, err := node.mem()
	if err != nil {
		return fail(err)
	}
	mem.parked = costSample{
		Heap:       float64(int64(h1)-int64(h0)) / float64(n),
		Stack:      float64(int64(s1)-int64(s0)) / float64(n),
		Goroutines: float64(g1-g0) / float64(n),
	}
	log.Printf("serve      %-22s %d accounts idle: %.0f B per account (heap %.0f, stack %.0f), %.2f goroutines; baseline heap %s, stack %s",
		nameServeNode, n, mem.parked.total(), mem.parked.Heap, mem.parked.Stack, mem.parked.Goroutines, fmtBytes(float64(h0)), fmtBytes(float64(s0)))
	if dir := h.cfg.serveProfile; dir != "" {
		prefix := filepath.Join(dir, fmt.Sprintf("serve-node-%d", n))
		if abs, err := filepath.Abs(prefix); err == nil {
			prefix = abs
		}
		if _, err := node.command("PROFILE "+prefix, 2*time.Minute); err != nil {
			log.Printf("serve      profiles not written: %v", err)
		} else {
			log.Printf("serve      heap profile and goroutines of the node with %d accounts: %s.heap.pprof, %s.goroutines", n, prefix, prefix)
		}
	}

	// The CPU time of idling: two lease periods (TTL/3 each).
	idle := &serveIdleCPU{n: n, over: 2 * h.cfg.serveTTL / 3}
	nodeCPU0, err1 := node.cpu()
	natsCPU0, err2 := e.nats.cpu()
	time.Sleep(idle.over)
	nodeCPU1, err3 := node.cpu()
	natsCPU1, err4 := e.nats.cpu()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		log.Printf("serve      idle CPU not measured: %v", err)
		return mem, sync, nil
	}
	idle.node, idle.nats = nodeCPU1-nodeCPU0, natsCPU1-natsCPU0
	log.Printf("serve      %-22s %d accounts idle: over %v, node CPU %v, NATS CPU %v", nameServeNode, n, idle.over.Round(time.Millisecond), idle.node, idle.nats)
	return mem, sync, idle
}

// takeover runs three nodes with users as accounts, SIGKILLs one once the
// accounts are spread and idle, and times the takeover.
func (h *serveHarness) takeover(ctx context.Context, srv *dovecot.Server, users []dovecot.User) *serveTakeover {
	const nodes = 3
	ttl := h.cfg.serveTakeoverTTL
	to := &serveTakeover{nodes: nodes, n: len(users), ttl: ttl}
	var e *serveEnv
	fail := func(err error) *serveTakeover {
		if e != nil {
			to.leases = e.leaseTrouble()
			err = fmt.Errorf("%w (%s)", err, to.leases)
		}
		to.err = err
		log.Printf("serve      takeover FAILED: %v", err)
		return to
	}
	log.Printf("serve      takeover: %d nodes, %d accounts, lease TTL %v", nodes, len(users), ttl)
	e, err := h.newEnv(ctx, ttl)
	if err != nil {
		return fail(err)
	}
	defer func() {
		e.close()
		if err := waitSessions(srv, 0, -1, 2*time.Minute); err != nil {
			log.Printf("serve      after the takeover: %v", err)
		}
	}()
	var procs []*childProc
	for i := range nodes {
		p, err := e.startNode(fmt.Sprintf("node-%d", i+1))
		if err != nil {
			return fail(err)
		}
		procs = append(procs, p)
	}
	// Three heartbeats each: every node has balanced once since all three
	// were listed.
	if err := e.waitBeats(8); err != nil {
		return fail(err)
	}
	names := accountNames(users)
	t0 := time.Now()
	if err := e.addAccounts(ctx, users, srv.Addr); err != nil {
		return fail(err)
	}
	timeout := time.Minute + time.Duration(len(users))*50*time.Millisecond
	if _, err := e.waitAllIdle(names, e.liveNodes(), t0, timeout); err != nil {
		return fail(e.withLogs(err))
	}
	// Settled: no lease has changed hands for a lease period (TTL/3).
	period := ttl / 3
	if err := waitFor(timeout, func() (bool, string, error) {
		var latest time.Time
		for _, l := range e.leases.snapshot() {
			if l.changed.After(latest) {
				latest = l.changed
			}
		}
		return time.Since(latest) > period, fmt.Sprintf("leases still changing hands (last at %v)", latest.Format(time.TimeOnly)), nil
	}); err != nil {
		return fail(err)
	}
	if _, err := e.waitAllIdle(names, e.liveNodes(), t0, timeout); err != nil {
		return fail(e.withLogs(err))
	}
	held := map[string]int{}
	for _, name := range names {
		held[e.leases.get(name).val]++
	}
	to.before = e.leaseTrouble()
	victim := procs[0]
	to.held = held[victim.id]
	log.Printf("serve      takeover: accounts per node %v; SIGKILL to %s", held, victim.id)

	kill := time.Now()
	victim.kill()
	if _, err := e.waitAllIdle(names, e.liveNodes(), kill, 3*ttl+timeout); err != nil {
		return fail(e.withLogs(err))
	}
	leases := e.leases.snapshot()
	var first, last time.Time
	for _, name := range names {
		l := leases[name]
		if !l.changed.After(kill) {
			continue
		}
		to.moved++
		if first.IsZero() || l.changed.Before(first) {
			first = l.changed
		}
		if l.changed.After(last) {
			last = l.changed
		}
	}
	var idle time.Time
	for _, name := range names {
		if st := e.status.get(name); st.changed.After(idle) {
			idle = st.changed
		}
	}
	if !first.IsZero() {
		to.firstLease, to.lastLease = first.Sub(kill), last.Sub(kill)
	}
	to.allIdle = idle.Sub(kill)
	to.leases = e.leaseTrouble()
	log.Printf("serve      takeover: %d accounts held by the killed node, %d changed hands; first lease taken after %v, last after %v; every account idle again after %v; before the kill: %s; in all: %s",
		to.held, to.moved, to.firstLease.Round(time.Millisecond), to.lastLease.Round(time.Millisecond), to.allIdle.Round(time.Millisecond), to.before, to.leases)
	return to
}

// runLatency measures the latency from EXISTS to the publish acknowledged
// on a Dovecot of its own, side by side with a raw Idler.
func (h *serveHarness) runLatency(ctx context.Context) error {
	wres := &watchResult{}
	srv, err := startWatchDovecot(dovecot.Config{IdleCheckInterval: time.Second}, wres)
	if err != nil {
		return err
	}
	defer func() {
		srv.stop()
		h.res.notes = append(h.res.notes, wres.notes...)
	}()
	names := []string{nameWatchIdler, nameServeNode}
	users, err := srv.NewUsers(len(names))
	if err != nil {
		return err
	}
	e, err := h.newEnv(ctx, h.cfg.serveTTL)
	if err != nil {
		return err
	}
	defer e.close()
	if _, err := e.startNode("node-1"); err != nil {
		return err
	}
	if err := e.waitBeats(5); err != nil {
		return err
	}
	obs, err := e.observeAcks(ctx)
	if err != nil {
		return err
	}
	defer obs.stop()
	// The sessions of the earlier measurements take a few seconds to go.
	tries := 10
	if h.cfg.quick {
		tries = 2
	}
	for range tries {
		if !busy(cpuBusy(time.Second)) {
			break
		}
	}
	contenders := map[string]accountFunc{nameWatchIdler: openRawIdler, nameServeNode: e.nodeAccount(obs)}
	t0 := readCPUTimes()
	h.res.latency = runLatencyRounds(ctx, h.cfg.latencyRounds, srv.Server, users, h.cfg.serveSamples, names, contenders)
	h.res.busyLatency = t0.busySince()
	if busy(h.res.busyLatency) {
		log.Printf("warning: the CPUs were %s busy during the serve latency measurement; other work disturbs the tail", fmtBusy(h.res.busyLatency))
	}
	return nil
}

func accountNames(users []dovecot.User) []string {
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Name
	}
	return names
}

// serveEnv is one NATS server (a child process) with imapkit's streams and
// buckets, this process's connection to it, the nodes started on it, and
// what this process follows of the buckets.
type serveEnv struct {
	dir     string
	ttl     time.Duration
	nats    *childProc
	url     string
	nc      *nats.Conn
	js      jetstream.JetStream
	infra   *service.Infra
	sealer  *service.Sealer
	keyFile string
	status  *kvTracker[serveStatus] // IMAPKIT_STATUS
	leases  *kvTracker[string]      // IMAPKIT_LEASES: the owner's ID
	beats   *kvTracker[string]      // IMAPKIT_NODES: heartbeats
	nodes   []*childProc
}

// serveStatus is an entry of IMAPKIT_STATUS (service's accountState).
type serveStatus struct {
	Node      string `json:"node"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
}

func (h *serveHarness) newEnv(ctx context.Context, ttl time.Duration) (*serveEnv, error) {
	h.envs++
	dir := filepath.Join(h.dir, fmt.Sprintf("nats-%d", h.envs))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	e := &serveEnv{dir: dir, ttl: ttl, keyFile: filepath.Join(dir, "key")}
	ok := false
	defer func() {
		if !ok {
			e.close()
		}
	}()
	if err := service.WriteKeyFile(e.keyFile); err != nil {
		return nil, err
	}
	var err error
	if e.sealer, err = service.LoadKeyFile(e.keyFile); err != nil {
		return nil, err
	}
	if e.nats, err = startChild("NATS", "", []string{"-serve-nats-child", filepath.Join(dir, "data")}, "URL "); err != nil {
		return nil, err
	}
	e.url = e.nats.first
	if e.nc, err = nats.Connect(e.url, nats.Name("imapkit bench")); err != nil {
		return nil, err
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return nil, err
	}
	if e.infra, err = service.EnsureInfra(ctx, e.js, service.InfraOptions{LeaseTTL: ttl}); err != nil {
		return nil, err
	}
	parseStatus := func(b []byte) serveStatus {
		var st serveStatus
		json.Unmarshal(b, &st)
		return st
	}
	parseString := func(b []byte) string { return string(b) }
	if e.status, err = trackKV(ctx, e.infra.Status, parseStatus); err != nil {
		return nil, err
	}
	if e.leases, err = trackKV(ctx, e.infra.Leases, parseString); err != nil {
		return nil, err
	}
	if e.beats, err = trackKV(ctx, e.infra.Nodes, parseString); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// close kills the nodes still running and stops NATS.
func (e *serveEnv) close() {
	for _, p := range e.nodes {
		p.kill()
	}
	if e.status != nil {
		e.status.stop()
	}
	if e.leases != nil {
		e.leases.stop()
	}
	if e.beats != nil {
		e.beats.stop()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.nats != nil {
		e.nats.stop(10 * time.Second)
	}
}

// startNode starts a node process.
func (e *serveEnv) startNode(id string, extra ...string) (*childProc, error) {
	logFile := filepath.Join(e.dir, id+".log")
	args := append([]string{"-serve-node-child", id, "-serve-nats-url", e.url,
		"-serve-key", e.keyFile, "-serve-node-log", logFile, "-serve-node-ttl", e.ttl.String()}, extra...)
	// As the imapkit binary sets it (cmd/imapkit/godebug.go).
	p, err := startChild("node "+id, logFile, args, "READY", "GODEBUG=adaptivestackstart=0")
	if err != nil {
		return nil, err
	}
	p.id = id
	e.nodes = append(e.nodes, p)
	return p, nil
}

// liveNodes returns the IDs of the nodes started and not killed.
func (e *serveEnv) liveNodes() map[string]bool {
	live := map[string]bool{}
	for _, p := range e.nodes {
		if !p.killed() {
			live[p.id] = true
		}
	}
	return live
}

// waitBeats waits until every live node has written n heartbeats (one
// every TTL/10): a node balances from one period (TTL/3) after its first
// on, its fifth.
func (e *serveEnv) waitBeats(n int) error {
	live := e.liveNodes()
	return waitFor(time.Duration(n+2)*e.ttl/10+30*time.Second, func() (bool, string, error) {
		beats := e.beats.snapshot()
		for id := range live {
			if b := beats[id]; b.puts < n {
				return false, fmt.Sprintf("node %s wrote %d heartbeats, want %d", id, b.puts, n), nil
			}
		}
		return true, "", nil
	})
}

// addAccounts adds users as accounts on server, 16 at a time.
func (e *serveEnv) addAccounts(ctx context.Context, users []dovecot.User, server string) error {
	store := service.NewAccountStore(e.infra.Accounts, e.sealer)
	return openAll(len(users), func(i int) error {
		u := users[i]
		_, err := store.Create(ctx, service.Account{Name: u.Name, Server: server, Mode: service.ModePlaintext, User: u.Name, Password: u.Password})
		return err
	})
}

// waitAllIdle waits until, for every account of names, a node of live
// holds the lease and says the account is idle, and returns the latest
// time one of those statuses changed after since. It fails at once if an
// account's watcher gave up.
func (e *serveEnv) waitAllIdle(names []string, live map[string]bool, since time.Time, timeout time.Duration) (time.Time, error) {
	var last time.Time
	err := waitFor(timeout, func() (bool, string, error) {
		status, leases := e.status.snapshot(), e.leases.snapshot()
		counts := map[string]int{}
		ready := 0
		last = time.Time{}
		for _, name := range names {
			st, ok := status[name]
			owner := leases[name].val
			switch {
			case !ok:
				counts["no status"]++
			case st.val.State == service.StateStopped && st.val.LastError != "" && live[st.val.Node] && owner == st.val.Node:
				// The watcher gave up (a refused LOGIN, say). Stopped
				// without an error is a lease lost or handed back: the
				// account starts again where its lease is taken.
				return false, "", fmt.Errorf("account %s stopped on %s: %s", name, st.val.Node, st.val.LastError)
			case st.val.State == service.StateIdle && live[st.val.Node] && owner == st.val.Node:
				ready++
				if st.changed.After(since) && st.changed.After(last) {
					last = st.changed
				}
			case !live[owner]:
				counts["no live owner"]++
			default:
				counts[st.val.State]++
			}
		}
		return ready == len(names), fmt.Sprintf("%d of %d accounts idle with a live owner; the others: %v", ready, len(names), counts), nil
	})
	return last, err
}

// leaseTrouble counts, in the logs of the env's nodes, the leases that
// lapsed (the heartbeat not renewed in time: the node stops the account),
// those found lost (taken by another node, or the heartbeat had expired),
// and the heartbeat renewals that failed (no answer within a period).
func (e *serveEnv) leaseTrouble() (t leaseTrouble) {
	for _, p := range e.nodes {
		b, err := os.ReadFile(p.logFile)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.Contains(line, "leases not renewed in time"):
				t.lapsed += logInt(line, "count")
			case strings.Contains(line, "leases lost: expired or taken"):
				t.lost += logInt(line, "count")
			case strings.Contains(line, "lease renewals failed"):
				t.renewFailed += logInt(line, "failed")
			}
		}
	}
	return t
}

// logInt returns the integer value of key in a slog text line, or 0.
func logInt(line, key string) int {
	_, rest, ok := strings.Cut(line, " "+key+"=")
	if !ok {
		return 0
	}
	v, _, _ := strings.Cut(rest, " ")
	n, _ := strconv.Atoi(v)
	return n
}

// withLogs adds the last lines of the nodes' logs to err.
func (e *serveEnv) withLogs(err error) error {
	var tails []string
	for _, p := range e.nodes {
		if t := tailFile(p.logFile, 3); t != "" {
			tails = append(tails, p.id+": "+t)
		}
	}
	if len(tails) == 0 {
		return err
	}
	log.Printf("serve      the nodes' last log lines:\n%s", strings.Join(tails, "\n"))
	return err
}

// tailFile returns the last n lines of path, or "".
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitFor calls cond every 50 ms until it reports done or an error, or
// timeout passes (then the error says what cond said last).
func waitFor(timeout time.Duration, cond func() (done bool, state string, err error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, state, err := cond()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %s", timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kvEntry is what a kvTracker knows of a key.
type kvEntry[T comparable] struct {
	val     T
	changed time.Time // when this process saw val first
	puts    int       // values written, the same or not
}

// kvTracker follows a KV bucket with a watcher: the latest value of each
// key, and when it last changed (in this process's clock, as the update
// arrived). Keys that expire (a lease's TTL) stay as they were: KV sends
// no update for them.
type kvTracker[T comparable] struct {
	w jetstream.KeyWatcher

	mu sync.Mutex
	m  map[string]kvEntry[T]
}

func trackKV[T comparable](ctx context.Context, kv jetstream.KeyValue, parse func([]byte) T) (*kvTracker[T], error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", kv.Bucket(), err)
	}
	t := &kvTracker[T]{w: w, m: map[string]kvEntry[T]{}}
	go func() {
		for u := range w.Updates() {
			if u == nil {
				continue // the initial values are in
			}
			now := time.Now()
			t.mu.Lock()
			if u.Operation() == jetstream.KeyValuePut {
				v := parse(u.Value())
				e, ok := t.m[u.Key()]
				if !ok || e.val != v {
					e.val, e.changed = v, now
				}
				e.puts++
				t.m[u.Key()] = e
			} else {
				delete(t.m, u.Key())
			}
			t.mu.Unlock()
		}
	}()
	return t, nil
}

func (t *kvTracker[T]) snapshot() map[string]kvEntry[T] {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.m)
}

func (t *kvTracker[T]) get(key string) kvEntry[T] {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key]
}

func (t *kvTracker[T]) stop() { t.w.Stop() }

// childProc is a child process of the serve section: this binary in one
// of its child modes, answering commands on stdin with lines on stdout.
type childProc struct {
	name    string
	id      string // a node's ID
	logFile string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan string // stdout, line by line
	first   string      // the first line, after its prefix
	exited  chan struct{}

	mu   sync.Mutex
	dead bool // killed or stopped
}

// startChild starts this binary with args and waits (up to a minute) for
// its first line, which must start with ready.
// env is added to this process's environment.
func startChild(name, logFile string, args []string, ready string, env ...string) (*childProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &childProc{name: name, logFile: logFile, cmd: cmd, stdin: stdin, lines: make(chan string, 16), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		cmd.Wait()
		close(p.exited)
	}()
	line, err := p.read(time.Minute)
	if err == nil && !strings.HasPrefix(line, ready) {
		err = fmt.Errorf("%s: %s", name, strings.TrimPrefix(line, "ERROR "))
	}
	if err != nil {
		p.kill()
		return nil, err
	}
	p.first = strings.TrimSpace(strings.TrimPrefix(line, ready))
	return p, nil
}

// read returns the child's next line.
func (p *childProc) read(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("%s exited", p.name)
		}
		return line, nil
	case <-t.C:
		return "", fmt.Errorf("%s: no answer within %v", p.name, timeout)
	}
}

// command sends cmd and returns the answer.
func (p *childProc) command(cmd string, timeout time.Duration) (string, error) {
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return "", fmt.Errorf("%s: %w", p.name, err)
	}
	line, err := p.read(timeout)
	if err == nil && strings.HasPrefix(line, "ERROR ") {
		err = fmt.Errorf("%s: %s", p.name, line[len("ERROR "):])
	}
	return line, err
}

// mem asks a node for its heap and stack in use after two GCs, and its
// goroutines.
func (p *childProc) mem() (heap, stack uint64, goroutines int, err error) {
	line, err := p.command("MEM", 2*time.Minute)
	if err != nil {
		return 0, 0, 0, err
	}
	if _, err := fmt.Sscanf(line, "MEM %d %d %d", &heap, &stack, &goroutines); err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %q", p.name, line)
	}
	return heap, stack, goroutines, nil
}

// cpu returns the child's user and system CPU time so far.
func (p *childProc) cpu() (time.Duration, error) { return procCPU(p.cmd.Process.Pid) }

func (p *childProc) killed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dead
}

// kill SIGKILLs the child and waits for it; it may be called more than
// once.
func (p *childProc) kill() {
	p.mu.Lock()
	dead := p.dead
	p.dead = true
	p.mu.Unlock()
	if dead {
		<-p.exited
		return
	}
	p.cmd.Process.Kill()
	p.stdin.Close()
	<-p.exited
}

// stop closes the child's stdin, which asks it to exit, and kills it if
// it has not within timeout.
func (p *childProc) stop(timeout time.Duration) {
	p.mu.Lock()
	dead := p.dead
	p.dead = true
	p.mu.Unlock()
	if dead {
		<-p.exited
		return
	}
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// procCPU returns the user plus system CPU time of process pid, from
// /proc/PID/stat (in USER_HZ, 100 per second on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	// Fields 14 and 15 of the line: utime and stime; f[0] is field 3.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ut+st) * time.Second / 100, nil
}

// ackObserver sees the PubAcks of the events published on IMAPKIT_EVENTS:
// a subscriber on _INBOX.> receives the server's acknowledgement of each
// publish at the moment the publishing node's connection does (nats.go
// sends every request with a reply subject under _INBOX.), and an ordered
// consumer of the stream names the event of each acknowledged sequence.
type ackObserver struct {
	sub *nats.Subscription
	cc  jetstream.ConsumeContext

	mu       sync.Mutex
	acks     map[uint64]time.Time // stream sequence → PubAck seen, event not yet
	pending  map[uint64]string    // stream sequence → account of a New event, PubAck not yet
	handlers map[string]func(time.Time)
}

func (e *serveEnv) observeAcks(ctx context.Context) (*ackObserver, error) {
	o := &ackObserver{acks: map[uint64]time.Time{}, pending: map[uint64]string{}, handlers: map[string]func(time.Time){}}
	var err error
	o.sub, err = e.nc.Subscribe("_INBOX.>", func(m *nats.Msg) {
		at := time.Now()
		if len(m.Data) == 0 || m.Data[0] != '{' {
			return
		}
		var a struct {
			Stream string `json:"stream"`
			Seq    uint64 `json:"seq"`
		}
		if json.Unmarshal(m.Data, &a) != nil || a.Stream != service.StreamEvents || a.Seq == 0 {
			return
		}
		o.mu.Lock()
		account, ok := o.pending[a.Seq]
		if !ok {
			o.acks[a.Seq] = at
			o.mu.Unlock()
			return
		}
		delete(o.pending, a.Seq)
		h := o.handlers[account]
		o.mu.Unlock()
		if h != nil {
			h(at)
		}
	})
	if err != nil {
		return nil, err
	}
	if err := e.nc.Flush(); err != nil {
		o.sub.Unsubscribe()
		return nil, err
	}
	cons, err := e.js.OrderedConsumer(ctx, service.StreamEvents, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		o.sub.Unsubscribe()
		return nil, err
	}
	o.cc, err = cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		// imapkit.events.ACCOUNT.KIND
		rest, ok := strings.CutPrefix(m.Subject(), service.SubjectEvents+".")
		account, kind, ok2 := strings.Cut(rest, ".")
		if !ok || !ok2 || kind != "new" {
			return
		}
		seq := md.Sequence.Stream
		o.mu.Lock()
		at, ok := o.acks[seq]
		if !ok {
			o.pending[seq] = account
			o.mu.Unlock()
			return
		}
		delete(o.acks, seq)
		h := o.handlers[account]
		o.mu.Unlock()
		if h != nil {
			h(at)
		}
	})
	if err != nil {
		o.sub.Unsubscribe()
		return nil, err
	}
	return o, nil
}

// handle has h called with the time of the PubAck of each New event of
// account.
func (o *ackObserver) handle(account string, h func(time.Time)) {
	o.mu.Lock()
	o.handlers[account] = h
	o.mu.Unlock()
}

func (o *ackObserver) stop() {
	o.cc.Stop()
	o.sub.Unsubscribe()
}

// nodeAccount is the serve node as a contender of runWatchLatency: an
// account added through the accounts bucket, with the proxy as its
// server, watched by the env's node; a push reaches the application when
// the publish of its New event is acknowledged.
func (e *serveEnv) nodeAccount(obs *ackObserver) accountFunc {
	rounds := 0
	return func(ctx context.Context, addr string, u dovecot.User, ready chan struct{}, on func(watchSignal, time.Time)) (closer, error) {
		// An account of its own each round: the proxy, its server, is new,
		// and a position saved for another server is refused.
		rounds++
		name := fmt.Sprintf("%s-r%d", u.Name, rounds)
		obs.handle(name, func(at time.Time) { on(signalPush, at) })
		store := service.NewAccountStore(e.infra.Accounts, e.sealer)
		t0 := time.Now()
		if _, err := store.Create(ctx, service.Account{Name: name, Server: addr, Mode: service.ModePlaintext, User: u.Name, Password: u.Password}); err != nil {
			return nil, err
		}
		if _, err := e.waitAllIdle([]string{name}, e.liveNodes(), t0, time.Minute); err != nil {
			return nil, e.withLogs(err)
		}
		return &nodeAccount{e: e, store: store, name: name}, nil
	}
}

type nodeAccount struct {
	e     *serveEnv
	store *service.AccountStore
	name  string
}

// Close removes the account, which has its node close the connection.
func (a *nodeAccount) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.store.Delete(ctx, a.name); err != nil {
		return err
	}
	return waitFor(10*time.Second, func() (bool, string, error) {
		_, ok := a.e.status.snapshot()[a.name]
		return !ok, "the account's status is still there", nil
	})
}
