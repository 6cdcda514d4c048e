package main

import (
	"fmt"
	"runtime"
	"time"
)

// serveTargets returns the target rows of the serve section.
func (r *report) serveTargets() []target {
	var ts []target
	s := r.serve
	why := "not measured"
	if s != nil && s.skipped != "" {
		why = "not measured: " + s.skipped
	}
	cfg := r.cfg

	goal := fmt.Sprintf("serve: memory per idle account ≤ 24 KiB (%s accounts on one node, the node process all-in)", joinInts([]int{cfg.serveAccounts}))
	var node, raw *serveMemory
	if s != nil {
		node, raw = s.mem(nameServeNode), s.mem(nameWatchIdler)
	}
	if node == nil {
		ts = append(ts, target{goal, why, "n/a"})
	} else {
		v := node.parked.total()
		measured := fmtBytes(v)
		if raw != nil {
			measured += fmt.Sprintf(" (raw Idler %s)", fmtBytes(raw.parked.total()))
		}
		ts = append(ts, target{goal, measured, metStr(v <= serveMemTarget)})
	}

	goal = fmt.Sprintf("serve: first sync of %s accounts, accounts/s and client CPU per account (no threshold: Dovecot sets the pace)", joinInts([]int{cfg.serveSync}))
	if y := s.syncOf(cfg.serveSync); y == nil {
		ts = append(ts, target{goal, why, "n/a"})
	} else {
		ts = append(ts, target{goal, fmt.Sprintf("%.0f accounts/s, %.2f ms of node CPU per account", y.rate(), msPer(y.cpu, y.n)), "–"})
	}

	ttl := cfg.serveTakeoverTTL
	limit := ttl * (serveTakeoverLimit / serveTakeoverTTL) // 3× the TTL
	goal = fmt.Sprintf("takeover ≤ 30 s with a 10 s TTL (%s accounts on 3 nodes, one SIGKILLed)", joinInts([]int{cfg.serveTakeover}))
	if ttl != serveTakeoverTTL {
		goal = fmt.Sprintf("takeover ≤ 3× the lease TTL — the issue's 30 s with a 10 s TTL; here a %v TTL: ≤ %v (%s accounts on 3 nodes, one SIGKILLed)", ttl, limit, joinInts([]int{cfg.serveTakeover}))
	}
	if s == nil || s.takeover == nil || s.takeover.err != nil {
		ts = append(ts, target{goal, why, "n/a"})
	} else {
		t := s.takeover
		measured := fmt.Sprintf("every account idle again after %s (the last lease taken after %s)", fmtDur(t.allIdle), fmtDur(t.lastLease))
		if !t.leases.none() {
			measured += fmt.Sprintf("; the nodes' logs: %s", t.leases)
		}
		ts = append(ts, target{goal, measured, metStr(t.allIdle <= limit)})
	}

	goal = "serve: EXISTS → publish acknowledged, client-added p99 ≤ 10 ms"
	var l, rl *watchLatency
	if s != nil {
		l, rl = s.lat(nameServeNode), s.lat(nameWatchIdler)
	}
	if l == nil {
		ts = append(ts, target{goal, why, "n/a"})
	} else {
		measured := fmt.Sprintf("node p99 %s (waiting for Dovecot's answers p99 %s, the rest p99 %s)", fmtDur(l.p99), fmtDur(l.inServer99), fmtDur(l.rest99))
		if rl != nil {
			measured += fmt.Sprintf("; raw Idler EXISTS → Next p99 %s", fmtDur(rl.p99))
		}
		ts = append(ts, target{goal, measured, metStr(l.p99 <= serveLatencyTarget)})
	}
	return ts
}

// syncOf returns the first sync of n accounts, the dedicated run's if
// there was one.
func (s *serveResult) syncOf(n int) *serveSync {
	if s == nil {
		return nil
	}
	var found *serveSync
	for i := range s.syncs {
		if y := &s.syncs[i]; y.n == n && y.err == nil && y.cpu > 0 && (found == nil || y.run == "first sync") {
			found = y
		}
	}
	return found
}

// cell is t for a table: "lapsed / lost / failed".
func (t leaseTrouble) cell() string {
	return fmt.Sprintf("%d / %d / %d", t.lapsed, t.lost, t.renewFailed)
}

func msPer(d time.Duration, n int) float64 { return float64(d) / 1e6 / float64(n) }

// serveSetup writes the serve section's line of the setup.
func (r *report) serveSetup(p func(string, ...any)) {
	s := r.serve
	if s == nil || s.skipped != "" {
		return
	}
	p("- Serve section: a private %s; NATS: imapkit serve's embedded server (nats-server %s) in a child process; one node for %s accounts (memory) and %s (first sync), lease TTL %v; three nodes for %s accounts (takeover), lease TTL %v\n",
		s.server, s.natsVersion, joinInts([]int{r.cfg.serveAccounts}), joinInts([]int{r.cfg.serveSync}), r.cfg.serveTTL,
		joinInts([]int{r.cfg.serveTakeover}), r.cfg.serveTakeoverTTL)
}

// serveMethod writes the method of the serve section.
func (r *report) serveMethod(p func(string, ...any)) {
	s := r.serve
	if s == nil || s.skipped != "" {
		return
	}
	cfg := r.cfg
	maxN := max(cfg.serveAccounts, cfg.serveSync, cfg.serveTakeover)
	p("- **imapkit serve (setup)**: one private Dovecot configured as for the watch section's cost (`mailbox_idle_check_interval` %v), one user per account. NATS runs in a child process of its own (imapkit serve's embedded server, `service.StartEmbedded`, JetStream on disk in a temporary directory), so that its memory and CPU are not the node's; a fresh one for each measurement. Each node runs in a fresh child process of its own, set up as `imapkit serve` sets up its node (`cmd/imapkit/serve.go`: its NATS connection options, `service.EnsureInfra`, `service.NewMetrics`, `service.NewNode` with serve's defaults — 32 connections opened at once, 8 to one server, 30 s timeout, default watch options — and `Node.Run`; with `GODEBUG=adaptivestackstart=0`, with which `imapkit serve` starts itself again: `cmd/imapkit/stacks.go`), without the HTTP API, which keeps nothing per account, and logging at info level to a file. The benchmark adds the accounts to the bucket IMAPKIT_ACCOUNTS (`service.AccountStore.Create`, 16 at a time, plaintext LOGIN) and follows the buckets IMAPKIT_STATUS (what an account's owner says of it) and IMAPKIT_LEASES (who holds its lease) with KV watchers, noting when each entry changes as the update arrives; an account is **idle** when the node holding its lease says so (the watcher's baseline Resynced event published and acknowledged). Before any account is added, every node has written five heartbeats (eight for the takeover; one every TTL/10), since a node balances from one period (TTL/3) after its first on.\n", watchIdleCheck(maxN))
	p("- **serve: memory per idle account**: one node with N accounts; heap in use plus stack in use after two GCs, in the node process, once every account is idle, Dovecot shows N sessions in IDLE and %v more have passed, minus the same after the node started with no account, divided by N; goroutines likewise. Beside it, in the same run on the same Dovecot and users, the watch section's raw Idler in a fresh child process at the same N (its parked figure). Then the CPU time (user + system, /proc) the node and the NATS processes take over two lease periods (TTL/3 each) with every account idle.\n", watchSettle)
	p("- **serve: first sync**: from the first account added to the bucket to the last one idle (the time its status changed, as seen by the watcher), a fresh node and a fresh NATS; accounts/s, and the CPU time over the same span, divided by the accounts, of the node process (user + system from /proc/PID/stat; it includes the node's NATS client: the account, lease, status and state entries and the events it publishes), of the NATS process, and of Dovecot (its process group, exited sessions included: `dovecot.Server.CPUTime`); the machine's CPUs busy over the span (/proc/stat), and the part of it none of the three took (this benchmark process following the buckets, and any other work on the machine). The last column counts, from the node's log, the leases that lapsed (the node's heartbeat not renewed within TTL − margin of the last one: the node stops the account, which starts again once the heartbeat is renewed), those found lost (taken by another node, or the heartbeat had expired), and the heartbeat renewals that failed (no answer from KV within a lease period, TTL/3); on an idle machine all three are 0. The memory run's numbers are a first sync of its N accounts too; beside them, the raw Idler's opening of its N accounts in the same run (16 at a time: dial, LOGIN, SELECT, IDLE; from the first dial to the last IDLE started, in its child process), a pace Dovecot allows. Dovecot forks an imap process per session and sets the pace on this machine: the machine's CPU busy over the span says how much of both cores was in use.\n")
	p("- **serve: takeover**: three nodes, a fresh NATS, the lease TTL given; once every account is idle on the node holding its lease and no lease has changed hands for a lease period (TTL/3), node-1 gets SIGKILL. Measured from the signal: when another node's lease on an account it held first and last appeared in IMAPKIT_LEASES (the next owner's compare-and-set of the lease, once the killed node's heartbeat has expired), and when every account was again idle on a live node holding its lease (the last status change).\n")
	p("- **serve: latency** (measured first, before the runs with many accounts disturb the machine): on a private Dovecot (`mailbox_idle_check_interval = 1 secs`), one node (fresh NATS, lease TTL %v) watches one account whose server is the watch section's timestamping proxy, side by side with a raw Idler watching another account through a proxy of its own, in the watch latency's harness (the same rounds and medians, the same turns on a %v clock, %d pushes per contender after %d of warm-up, samples disturbed by the other contender not counted, the same split of time waiting for Dovecot's answers). The node's sample ends when the server's acknowledgement of the publish of the New event (its PubAck) reaches a subscriber on `_INBOX.>` in the benchmark process: nats.go sends each JetStream publish as a request with a reply subject under `_INBOX.`, so this subscriber gets the acknowledgement when the node's connection does (the node then still reads it, hands it to `ev.Ack()` and saves the position, not counted); an ordered consumer of IMAPKIT_EVENTS names the event of each acknowledged stream sequence. The sample thus holds the watcher leaving IDLE, fetching the message (`UID FLAGS MODSEQ` and, as serve asks, `ENVELOPE`), two round trips to Dovecot through the proxy, and the publish to a JetStream stream on disk with its acknowledgement. The raw Idler's sample is EXISTS forwarded → `Idler.Next` returned it, the floor.\n", cfg.serveTTL, watchTick, cfg.serveSamples, watchWarmup)
}

// serveResults writes the results of the serve section.
func (r *report) serveResults(p func(string, ...any)) {
	s := r.serve
	if s == nil {
		return
	}
	p("### imapkit serve on Dovecot: memory per idle account, first sync, takeover, push latency\n\n")
	if s.skipped != "" {
		p("Not run: %s.\n\n", s.skipped)
		return
	}
	if s.err != nil {
		p("Failed: %s\n\n", mdEscape(s.err.Error()))
	}
	if len(s.memory) > 0 {
		p("| contender | accounts | heap+stack per idle account | heap | stack | goroutines per account | ÷ raw Idler |\n|---|---:|---:|---:|---:|---:|---:|\n")
		raw := s.mem(nameWatchIdler)
		for _, m := range s.memory {
			if m.err != nil {
				p("| %s | %d | failed: %s | | | | |\n", m.name, m.n, mdEscape(m.err.Error()))
				continue
			}
			rel := "–"
			if raw != nil && m.name != nameWatchIdler && raw.parked.total() > 0 {
				rel = fmt.Sprintf("%.2f×", m.parked.total()/raw.parked.total())
			}
			p("| %s | %d | %s | %s | %s | %.2f | %s |\n", m.name, m.n, fmtBytes(m.parked.total()), fmtBytes(m.parked.Heap), fmtBytes(m.parked.Stack), m.parked.Goroutines, rel)
		}
		p("\n")
		if n := s.mem(nameServeNode); n != nil {
			p("The node process with no account (its NATS connection, the buckets' watchers, metrics): heap %s, stack %s, not counted above.", fmtBytes(float64(n.baselineHeap)), fmtBytes(float64(n.baselineStack)))
			if raw != nil && raw.pushed.total() > 0 {
				p(" The raw Idler after one push each: %s per account.", fmtBytes(raw.pushed.total()))
			}
			p("\n\n")
		}
	}
	if c := s.idleCPU; c != nil {
		secs := c.over.Seconds()
		p("With %d accounts idle, over %s (two lease periods of TTL/3): the node took %v of CPU (%.1f%% of a core), NATS %v (%.1f%% of a core). The node renews one key, its heartbeat, every TTL/10, however many leases it holds; the leases are written only when they change hands.\n\n",
			c.n, fmtDur(c.over), c.node.Round(time.Millisecond), 100*c.node.Seconds()/secs, c.nats.Round(time.Millisecond), 100*c.nats.Seconds()/secs)
	}
	if len(s.syncs) > 0 {
		p("| first sync | accounts | first added → last idle | accounts/s | CPU per account: node | NATS | Dovecot | machine CPUs busy | of which the rest (this benchmark, other work) | leases lapsed / found lost / renewals failed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		perAccount := func(d time.Duration, n int) string {
			if d < 0 {
				return "–"
			}
			return fmt.Sprintf("%.2f ms", msPer(d, n))
		}
		for _, y := range s.syncs {
			if y.err != nil {
				p("| %s | %d | failed: %s | | | | | | | %s |\n", y.run, y.n, mdEscape(y.err.Error()), y.leases.cell())
				continue
			}
			if y.cpu == 0 {
				// The raw Idler's opening: CPU times not measured.
				p("| %s | %d | %s | %.0f | – | – | – | – | – | – |\n", y.run, y.n, fmtDur(y.took), y.rate())
				continue
			}
			p("| %s | %d | %s | %.0f | %s | %s | %s | %s | %s | %s |\n", y.run, y.n, fmtDur(y.took), y.rate(), perAccount(y.cpu, y.n), perAccount(y.natsCPU, y.n), perAccount(y.dovecotCPU, y.n),
				fmtBusy(y.busy), fmtBusy(y.rest(runtime.NumCPU())), y.leases.cell())
		}
		p("\n")
	}
	if t := s.takeover; t != nil {
		p("| takeover | accounts | lease TTL | held by the killed node | leases changed hands | first lease taken | last lease taken | every account idle again | leases lapsed / found lost / renewals failed: before the kill | in all |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		if t.err != nil {
			p("| %d nodes, one SIGKILLed | %d | %v | failed: %s | | | | | | %s |\n", t.nodes, t.n, t.ttl, mdEscape(t.err.Error()), t.leases.cell())
		} else {
			p("| %d nodes, one SIGKILLed | %d | %v | %d | %d | %s | %s | %s | %s | %s |\n", t.nodes, t.n, t.ttl, t.held, t.moved, fmtDur(t.firstLease), fmtDur(t.lastLease), fmtDur(t.allIdle), t.before.cell(), t.leases.cell())
		}
		p("\n")
	}
	if len(s.latency) > 0 {
		p("| contender | pushes | disturbed | EXISTS → application p50 | p90 | p99 | max | of which waiting for Dovecot's answers p50 / p99 | the rest p50 / p99 | Dovecot's delay APPEND → EXISTS (median, not counted) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range s.latency {
			name := l.name
			if name == nameServeNode {
				name += " (→ publish acknowledged)"
			} else if name == nameWatchIdler {
				name += " (→ Next)"
			}
			if l.err != nil {
				p("| %s | failed: %s | | | | | | | | |\n", name, mdEscape(l.err.Error()))
				continue
			}
			p("| %s | %d | %d | %s | %s | %s | %s | %s / %s | %s / %s | %s |\n", name, l.n, l.discarded, fmtDur(l.p50), fmtDur(l.p90), fmtDur(l.p99), fmtDur(l.max),
				fmtDur(l.inServer50), fmtDur(l.inServer99), fmtDur(l.rest50), fmtDur(l.rest99), fmtDur(l.server))
		}
		p("\n")
		if s.busyLatency >= 0 {
			p("CPUs busy during the latency measurement: %s.", fmtBusy(s.busyLatency))
			if busy(s.busyLatency) {
				p(" **Other processes competed for the CPUs**, which inflates the tail: re-run on an idle machine.")
			}
			p("\n\n")
		}
	}
	for _, n := range s.notes {
		p("- %s\n", n)
	}
	if len(s.notes) > 0 {
		p("\n")
	}
	p("Section took %v.\n\n", s.took.Round(time.Second))
}
