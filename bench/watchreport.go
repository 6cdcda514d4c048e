package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Targets of the watch section, from the issue.
const (
	watchMemTarget        = 16 << 10 // heap + stack per watched account
	watchGoroutinesTarget = 2        // goroutines per watched account
	watchLatencyTarget    = 5 * time.Millisecond
)

// watchTargets returns the target rows of the watch section.
func (r *report) watchTargets() []target {
	var ts []target
	w := r.watch
	why := "not measured"
	if w != nil && w.skipped != "" {
		why = "not measured: " + w.skipped
	}
	for _, k := range r.cfg.watchAccounts {
		var c *watchCost
		if w != nil {
			c = w.cost(nameWatcher, k)
		}
		for _, state := range []struct {
			name string
			of   func(c *watchCost) costSample
		}{
			{"parked", func(c *watchCost) costSample { return c.parked }},
			{"after one push each", func(c *watchCost) costSample { return c.pushed }},
		} {
			goal := fmt.Sprintf("memory per watched account ≤ 16 KiB (%d accounts, %s)", k, state.name)
			if c == nil {
				ts = append(ts, target{goal, why, "n/a"})
				continue
			}
			v := state.of(c).total()
			measured := fmtBytes(v)
			if raw := w.cost(nameWatchIdler, k); raw != nil && state.of(raw).total() > 0 {
				measured += fmt.Sprintf(" (raw Idler %s)", fmtBytes(state.of(raw).total()))
			}
			ts = append(ts, target{goal, measured, metStr(v <= watchMemTarget)})
		}
		goal := fmt.Sprintf("goroutines per watched account ≤ 2 (%d accounts)", k)
		if c == nil {
			ts = append(ts, target{goal, why, "n/a"})
			continue
		}
		g := max(c.parked.Goroutines, c.pushed.Goroutines)
		ts = append(ts, target{goal, fmt.Sprintf("%.2f parked, %.2f after one push", c.parked.Goroutines, c.pushed.Goroutines), metStr(g <= watchGoroutinesTarget)})
	}
	goal := "client-added latency EXISTS → event p99 ≤ 5 ms"
	var l, raw *watchLatency
	if w != nil {
		l, raw = w.lat(nameWatcher), w.lat(nameWatchIdler)
	}
	if l == nil {
		ts = append(ts, target{goal, why, "n/a"})
	} else {
		measured := fmt.Sprintf("Watcher p99 %s", fmtDur(l.p99))
		if raw != nil {
			measured += fmt.Sprintf(" (raw Idler p99 %s)", fmtDur(raw.p99))
		}
		ts = append(ts, target{goal, measured, metStr(l.p99 <= watchLatencyTarget)})
	}
	return ts
}

// watchMethod writes the method of the watch section.
func (r *report) watchMethod(p func(string, ...any)) {
	w := r.watch
	if w == nil {
		return
	}
	server := w.server
	if server == "" {
		server = "Dovecot"
	}
	maxK := 0
	for _, k := range r.cfg.watchAccounts {
		maxK = max(maxK, k)
	}
	p("- **Watching accounts (cost)**: one private %s (internal/dovecot) with one user per account, `service imap { process_limit }` and the other process and client limits raised for the sessions, imap-login in high-performance mode, and `mailbox_idle_check_interval` set to %v (past about 128 idling sessions on the machine Dovecot has no inotify instance left and polls instead, at that interval). Each contender runs in a fresh child process that opens K accounts, 16 at a time: **raw Idler**: dial, LOGIN, SELECT INBOX read-only (as the Watcher does), `Client.Idle`, and one goroutine parked in `Idler.Next` — the floor of what watching an account can cost; **Watcher**: `watch.New` with default Options (only Account and the dialer, which dials and logs in), `go w.Run(ctx)`, and a consumer goroutine `for ev := range w.Events() { ev.Ack() }`, set up once its baseline Resynced event was taken. Parked: once Dovecot shows all K sessions running IDLE (the command each imap process's title shows) and %v more have passed, heap in use plus stack in use after two GCs, minus the same before opening, divided by K; goroutines likewise. **After one push each**: one message is then delivered to every account's Maildir; once every push reached its application (raw Idler: `Next` returned the EXISTS; Watcher: the New event was taken and acknowledged) and Dovecot again shows K sessions in IDLE, the same is measured. Client timeouts are 30 s; the Dovecot processes are not counted (about 0.9 MB each).\n", server, watchIdleCheck(maxK), watchSettle)
	p("- **Watch latency**: on a second private Dovecot (`mailbox_idle_check_interval = 1 secs`) with no other session, each contender watches one account through a TCP proxy in the benchmark process, which notes (monotonic clock) the moment it forwards a `* N EXISTS` line to the client. Messages are appended one at a time per contender over a separate connection straight to Dovecot, each once the contender's previous push was handled and its connection is in IDLE again (%d pushes per contender after %d of warm-up). As Dovecot sends each EXISTS about 0.5 s after the APPEND, the two contenders run side by side, taking turns on a common %v clock (each appends only on its own every other tick) so that one's EXISTS arrives about halfway between the other's appends; a sample during which the other contender was appending or handling a push (within 1 ms) is not counted (the \"disturbed\" column). The whole measurement runs `-latency-rounds` times (3; 1 with -quick) and each figure is the median over the rounds (the counts are summed): on this machine one round's p99 moves by an order of magnitude from run to run when other work delays a few samples. Raw Idler: the time `Idler.Next` returned the EXISTS minus the time it was forwarded — the floor. Watcher: the time the consumer took the New event minus the time the EXISTS was forwarded: this includes the watcher leaving IDLE (DONE and its tagged OK) and fetching the new message (`FETCH n (UID FLAGS MODSEQ)`), two round trips to Dovecot through the proxy, which is what a watcher must do to name the message by UID. The proxy also notes, within each sample, the time from forwarding each of the client's lines to Dovecot until forwarding Dovecot's next line: \"waiting for Dovecot's answers\" is their sum, \"the rest\" is the sample minus it (the client's own work, the proxy's hops and the scheduling of both). Dovecot's own delay (it sends the EXISTS about 0.5 s after the APPEND) is not counted.\n", r.cfg.watchSamples, watchWarmup, watchTick)
}

// watchResults writes the results of the watch section.
func (r *report) watchResults(p func(string, ...any)) {
	w := r.watch
	if w == nil {
		return
	}
	p("### Watching accounts on Dovecot: cost per account and push latency\n\n")
	if w.skipped != "" {
		p("Not run: %s.\n\n", w.skipped)
		return
	}
	if w.err != nil {
		p("Failed: %s\n\n", mdEscape(w.err.Error()))
	}
	if len(w.costs) > 0 {
		p("| contender | accounts | heap+stack per account | heap | stack | goroutines per account | ÷ raw Idler | after one push: heap+stack | heap | stack | goroutines per account | ÷ raw Idler |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range w.costs {
			if c.err != nil {
				p("| %s | %d | failed: %s | | | | | | | | | |\n", c.name, c.k, mdEscape(c.err.Error()))
				continue
			}
			rel, relPushed := "–", "–"
			if raw := w.cost(nameWatchIdler, c.k); raw != nil && c.name != nameWatchIdler {
				if raw.parked.total() > 0 {
					rel = fmt.Sprintf("%.2f×", c.parked.total()/raw.parked.total())
				}
				if raw.pushed.total() > 0 {
					relPushed = fmt.Sprintf("%.2f×", c.pushed.total()/raw.pushed.total())
				}
			}
			p("| %s | %d | %s | %s | %s | %.2f | %s | %s | %s | %s | %.2f | %s |\n", c.name, c.k,
				fmtBytes(c.parked.total()), fmtBytes(c.parked.Heap), fmtBytes(c.parked.Stack), c.parked.Goroutines, rel,
				fmtBytes(c.pushed.total()), fmtBytes(c.pushed.Heap), fmtBytes(c.pushed.Stack), c.pushed.Goroutines, relPushed)
		}
		p("\n")
	}
	if len(w.latency) > 0 {
		p("| contender | pushes | disturbed | EXISTS → application p50 | p90 | p99 | max | of which waiting for Dovecot's answers p50 / p99 | the rest p50 / p99 | Dovecot's delay APPEND → EXISTS (median, not counted) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range w.latency {
			if l.err != nil {
				p("| %s | failed: %s | | | | | | | | |\n", l.name, mdEscape(l.err.Error()))
				continue
			}
			p("| %s | %d | %d | %s | %s | %s | %s | %s / %s | %s / %s | %s |\n", l.name, l.n, l.discarded, fmtDur(l.p50), fmtDur(l.p90), fmtDur(l.p99), fmtDur(l.max),
				fmtDur(l.inServer50), fmtDur(l.inServer99), fmtDur(l.rest50), fmtDur(l.rest99), fmtDur(l.server))
		}
		p("\n")
		if w.busyLatency >= 0 {
			p("CPUs busy during the latency measurement: %s (the measurement itself, Dovecot included, accounts for a few per cent).", fmtBusy(w.busyLatency))
			if busy(w.busyLatency) {
				p(" **Other processes competed for the CPUs**, which inflates the tail: re-run on an idle machine.")
			}
			p("\n\n")
		}
	}
	for _, n := range w.notes {
		p("- %s\n", n)
	}
	if len(w.notes) > 0 {
		p("\n")
	}
	p("Section took %v.\n\n", w.took.Round(time.Second))
}

// joinInts formats counts as "1,000 and 5,000".
func joinInts(ns []int) string {
	var parts []string
	for _, n := range ns {
		s := strconv.Itoa(n)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		parts = append(parts, s)
	}
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
