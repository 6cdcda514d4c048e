package main

import (
	"fmt"
	"time"
)

// The serve section (-only serve; bench/serve*.go): what imapkit serve
// costs against a real Dovecot, side by side with a raw Idler, with NATS in
// a process of its own (this binary with -serve-nats-child, running
// service.StartEmbedded) and every node in a fresh process of its own
// (this binary with -serve-node-child, running service.Node as imapkit
// serve does). The harness adds the accounts to the bucket
// IMAPKIT_ACCOUNTS and follows the buckets IMAPKIT_STATUS (what each
// account's owner says of it) and IMAPKIT_LEASES (who owns it) with KV
// watchers of its own.
//
//   - Memory: one node with N accounts, once each account's owner says it
//     is idle and Dovecot shows N sessions in IDLE: heap in use + stack in
//     use after two GCs minus the same before the accounts were added,
//     divided by N; and the raw Idler of the watch section at the same N
//     (measureWatchCostInChild).
//   - First sync: from the first account added to the last one idle, the
//     rate and the node process's CPU time (utime + stime from /proc).
//   - Takeover: three nodes, one SIGKILLed once the accounts are spread;
//     the time until every account is leased to a live node which says it
//     is idle.
//   - Latency: one node watching one account through the watch section's
//     timestamping proxy, side by side with a raw Idler (runWatchLatency):
//     from the EXISTS forwarded to the PubAck of the New event's publish,
//     as seen by a subscriber on _INBOX.> in this process.

// nameServeNode names imapkit serve's node in the tables.
const nameServeNode = "imapkit serve node"

// serveDefaultTTL is imapkit serve's default lease TTL
// (service.DefaultLeaseTTL; serve_test.go checks), here so that a build
// with -tags nokit need not import service.
const serveDefaultTTL = 15 * time.Second

// Targets of the serve section, from the issue.
const (
	serveMemTarget     = 24 << 10 // heap + stack per idle account, the node process all-in
	serveTakeoverTTL   = 10 * time.Second
	serveTakeoverLimit = 30 * time.Second // with serveTakeoverTTL
	serveLatencyTarget = 10 * time.Millisecond
)

// serveMemory is one contender's memory per idle account.
type serveMemory struct {
	name          string
	n             int
	parked        costSample
	pushed        costSample // raw Idler only: after one push each
	baselineHeap  uint64     // node: heap in use before the accounts were added
	baselineStack uint64
	err           error
}

// serveSync is one first sync of n accounts by one node.
type serveSync struct {
	run  string // what the run was for
	n    int
	took time.Duration // first account added → last one idle
	cpu  time.Duration // the node process's user + system time meanwhile
	// The NATS process's and Dovecot's CPU time meanwhile (-1: unknown).
	natsCPU, dovecotCPU time.Duration
	busy                float64 // fraction of the machine's CPU time busy meanwhile (-1: unknown)
	// What the node's log says of its leases meanwhile.
	leases leaseTrouble
	err    error
}

// leaseTrouble is what the nodes' logs say went wrong with their leases.
type leaseTrouble struct {
	lapsed      int // not renewed in time: the node stopped the account
	lost        int // found expired or taken by another node at renewal
	renewFailed int // renewals that got no answer in time (retried)
}

func (t leaseTrouble) String() string {
	return fmt.Sprintf("leases lapsed %d, found lost %d, renewals failed %d", t.lapsed, t.lost, t.renewFailed)
}

func (t leaseTrouble) none() bool { return t == leaseTrouble{} }

func (s *serveSync) rate() float64 { return float64(s.n) / s.took.Seconds() }

// rest is the fraction of the machine's CPU time, over the span, that
// neither the node, NATS nor Dovecot took (this benchmark process, and
// other work), or -1 if unknown.
func (s *serveSync) rest(cpus int) float64 {
	if s.busy < 0 || s.natsCPU < 0 || s.dovecotCPU < 0 {
		return -1
	}
	all := s.took.Seconds() * float64(cpus)
	return max(0, s.busy-(s.cpu+s.natsCPU+s.dovecotCPU).Seconds()/all)
}

// serveIdleCPU is the CPU time the node and NATS processes take while
// every account idles.
type serveIdleCPU struct {
	n          int
	over       time.Duration
	node, nats time.Duration
}

// serveTakeover is the outcome of the takeover measurement.
type serveTakeover struct {
	nodes, n int
	ttl      time.Duration
	held     int // accounts the killed node held
	moved    int // accounts whose lease changed hands after the kill
	// Since the SIGKILL: the first and the last lease taken by another
	// node, and every account idle again with a live owner.
	firstLease, lastLease, allIdle time.Duration
	// What the nodes' logs say of their leases before the kill, and in
	// all.
	before, leases leaseTrouble
	err            error
}

// serveResult is the outcome of the serve section.
type serveResult struct {
	server      string // Dovecot's version
	natsVersion string // nats-server's
	skipped     string // why the section did not run, when it did not
	err         error  // setting up failed
	ttl         time.Duration
	memory      []serveMemory
	syncs       []serveSync
	idleCPU     *serveIdleCPU
	takeover    *serveTakeover
	latency     []watchLatency
	notes       []string
	took        time.Duration
	// Fraction of CPU time the machine was busy during the latency
	// measurement (-1: unknown).
	busyLatency float64
}

// failures counts the measurements of the section that failed.
func (s *serveResult) failures() int {
	if s == nil {
		return 0
	}
	n := 0
	if s.err != nil {
		n++
	}
	for _, m := range s.memory {
		if m.err != nil {
			n++
		}
	}
	for _, y := range s.syncs {
		if y.err != nil {
			n++
		}
	}
	if s.takeover != nil && s.takeover.err != nil {
		n++
	}
	for _, l := range s.latency {
		if l.err != nil {
			n++
		}
	}
	return n
}

// leaseTrouble reports whether a node's log tells of leases lapsed, lost
// or not renewed in time.
func (s *serveResult) leaseTrouble() bool {
	for _, y := range s.syncs {
		if !y.leases.none() {
			return true
		}
	}
	return s.takeover != nil && !s.takeover.leases.none()
}

func (s *serveResult) mem(name string) *serveMemory {
	for i := range s.memory {
		if m := &s.memory[i]; m.name == name && m.err == nil {
			return m
		}
	}
	return nil
}

func (s *serveResult) lat(name string) *watchLatency {
	for i := range s.latency {
		if l := &s.latency[i]; l.name == name && l.err == nil {
			return l
		}
	}
	return nil
}
