// Command bench runs every IMAP client contender on the same recorded
// server bytes, in one run, and writes docs/benchmarks.md and
// docs/benchmarks.svg.
//
// Usage (from the repository root):
//
//	go run ./bench                 # full suite, about a few minutes on 2 cores
//	go run ./bench -quick          # small smoke run, report on stdout only
//	go run -tags nokit ./bench     # without our client (if it does not build)
//
// The responses come from a real Dovecot: the first run generates the
// corpus (bench/corpus), loads it into a private Dovecot (internal/dovecot)
// and records the raw server bytes of each workload (bench/record) into a
// cache directory (-recordings, by default in the user cache directory,
// keyed by corpus seed and sizes); later runs reuse the cache. Without
// Dovecot, or with -synthetic, the responses are synthesized in Dovecot's
// format instead (bench/synth), and the report says so.
//
// The recordings are served by a replay server (bench/replay) running in a
// child process, from memory with large writes, so that only the client
// cost is measured. Contenders: the floor (a framing-only reader), imapkit
// through its raw and typed APIs, go-imap v2's imapclient, and Python's
// imaplib when python3 is installed.
//
// The watch section (-only watch; bench/watch*.go) needs neither: it starts
// its own private Dovecot (so it needs dovecot-imapd and root) and measures
// what watching thousands of accounts with the watch package costs per
// account, and the latency it adds from an EXISTS on the wire to the event,
// side by side with a raw imapkit Idler.
//
// The serve section (-only serve; bench/serve*.go) measures imapkit serve
// the same way, against its own private Dovecot, with NATS in a child
// process and each node in a child process of its own: memory per idle
// account on one node, the first sync of many accounts, the takeover of a
// SIGKILLed node's accounts, and the latency from an EXISTS on the wire to
// the publish of its event acknowledged by JetStream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imapkit/imap/bench/corpus"
	"github.com/imapkit/imap/bench/record"
	"github.com/imapkit/imap/bench/replay"
	"github.com/imapkit/imap/bench/synth"
)

// formatVersion changes whenever recordings must be made again.
const formatVersion = 1

// Contender names.
const (
	nameFloor        = "floor (framing only)"
	nameKitRaw       = "imapkit raw"
	nameKitEach      = "imapkit FetchEach"
	nameKitTyped     = "imapkit typed"
	nameKitTypedEach = "imapkit FetchEachMessage"
	nameKitParse     = "imapkit Fetch+ParseFetch"
	nameKitStream    = "imapkit FetchTo"
	nameKitIdler     = "imapkit Idler"
	nameGoimap       = "go-imap v2"
	namePython       = "Python imaplib"
)

// config holds the command-line settings.
type config struct {
	n            int
	messages     int
	seed         uint64
	bigSize      int
	searchN      int
	expungeN     int
	pushes       int
	pushInterval time.Duration
	pushRounds   int
	idlers       []int
	out          string
	recordings   string
	rerecord     bool
	synthetic    bool
	python       bool
	quick        bool
	only         map[string]bool
	strict       bool   // exit with an error if any measurement failed
	contenders   string // if set, run only contenders whose name contains one of these comma-separated words

	// The watch section: accounts watched at once (one cost measurement
	// per count) and pushes measured per contender for the latency.
	watchAccounts []int
	watchSamples  int

	// The serve section: accounts on one node for the memory measurement,
	// accounts of the first sync and of the takeover, the lease TTLs,
	// and pushes per contender for the latency.
	serveAccounts    int
	serveSync        int
	serveTakeover    int
	serveTTL         time.Duration
	serveTakeoverTTL time.Duration
	serveSamples     int
	serveProfile     string // directory for the node's heap profile and goroutines
	latencyRounds    int    // rounds of the watch and serve push latency (median of each figure)
}

// runsContender reports whether the -contenders filter lets name run.
func (c *config) runsContender(name string) bool {
	if c.contenders == "" {
		return true
	}
	for _, w := range strings.Split(c.contenders, ",") {
		if w = strings.TrimSpace(w); w != "" && strings.Contains(name, w) {
			return true
		}
	}
	return false
}

func (c *config) runs(section string) bool { return len(c.only) == 0 || c.only[section] }

// kitSuite holds our client's contenders; nil when built with -tags nokit.
type kitSuite struct {
	fetch      func(items string) sessionFunc
	fetchEach  func(items string) sessionFunc
	fetchTyped func(items string) sessionFunc
	typedEach  func(items string) sessionFunc
	fetchParse func(items string) sessionFunc
	stream     func(items string) sessionFunc
	search     sessionFunc
	burst      func(want int, interval time.Duration) sessionFunc
	push       pushFunc
	openIdler  openFunc
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("bench: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	var cfg config
	var serve, idlers, only, watchAccounts string
	flag.StringVar(&serve, "serve-replay", "", "internal: serve the recordings in `dir` (child process mode)")
	flag.IntVar(&cfg.n, "n", 10, "measured runs per contender (after one warm-up); the median is reported")
	flag.IntVar(&cfg.messages, "messages", 10000, "messages in the corpus")
	flag.Uint64Var(&cfg.seed, "seed", 1, "corpus seed")
	flag.IntVar(&cfg.bigSize, "big", 50<<20, "size in bytes of the large message's attachment")
	flag.IntVar(&cfg.searchN, "search", 100000, "UIDs returned by the SEARCH workload")
	flag.IntVar(&cfg.expungeN, "expunges", 10000, "EXPUNGE responses pushed during IDLE")
	flag.IntVar(&cfg.pushes, "pushes", 1000, "EXISTS pushes for the latency measurement")
	flag.DurationVar(&cfg.pushInterval, "push-interval", time.Millisecond, "interval between pushes")
	flag.IntVar(&cfg.pushRounds, "push-rounds", 3, "rounds of the push-latency measurement (the median of each percentile is reported)")
	flag.StringVar(&idlers, "idlers", "2000,10000", "comma-separated counts of concurrent Idlers for the memory measurement")
	flag.StringVar(&watchAccounts, "watch-accounts", "1000,5000", "comma-separated counts of accounts watched at once on Dovecot for the watch section's cost per account")
	flag.IntVar(&cfg.watchSamples, "watch-samples", 200, "pushes per contender for the watch section's latency (Dovecot sends each EXISTS about 0.5 s after the APPEND)")
	flag.StringVar(&cfg.out, "out", "", "report path (default docs/benchmarks.md in the module root; -quick prints to stdout unless set); the chart goes next to it as benchmarks.svg")
	flag.StringVar(&cfg.recordings, "recordings", "", "directory caching the recordings (default: <user cache dir>/imapkit-bench)")
	flag.BoolVar(&cfg.rerecord, "rerecord", false, "record again even if cached")
	flag.BoolVar(&cfg.synthetic, "synthetic", false, "use synthesized Dovecot-like responses instead of recording a real Dovecot")
	flag.BoolVar(&cfg.python, "python", true, "include Python imaplib when python3 is installed")
	flag.BoolVar(&cfg.quick, "quick", false, "small smoke run: 1,000 messages, smaller workloads, 2 runs")
	flag.StringVar(&only, "only", "", "comma-separated sections to run: memory,fetch-meta,fetch-body,big,search,burst,push,watch,serve (default all)")
	flag.BoolVar(&cfg.strict, "strict", false, "exit with an error if any measurement failed (for CI smoke runs)")
	flag.StringVar(&cfg.contenders, "contenders", "", "comma-separated words: run only the FETCH, SEARCH and burst contenders whose name contains one (for profiling; the report then lacks rows)")
	var memChild, memAddr string
	var memK int
	flag.StringVar(&memChild, "memory-child", "", "internal: measure memory per Idler of this contender (child process mode)")
	flag.IntVar(&memK, "memory-k", 0, "internal: connections for -memory-child")
	flag.StringVar(&memAddr, "memory-addr", "", "internal: replay server address for -memory-child")
	var watchChildName, watchAddr, watchUsers string
	var watchK int
	flag.StringVar(&watchChildName, "watch-child", "", "internal: measure the cost per account of this watch contender (child process mode)")
	flag.IntVar(&watchK, "watch-k", 0, "internal: accounts for -watch-child")
	flag.StringVar(&watchAddr, "watch-addr", "", "internal: Dovecot address for -watch-child")
	flag.StringVar(&watchUsers, "watch-users", "", "internal: file of \"user password\" lines for -watch-child")
	flag.IntVar(&cfg.serveAccounts, "serve-accounts", 1000, "accounts on one imapkit serve node for the serve section's memory per account, beside a raw Idler's at the same count (the issue's target is for 10000, which takes Dovecot on 2 cores about 10 minutes per contender to open)")
	flag.IntVar(&cfg.serveSync, "serve-sync", 1000, "accounts of the serve section's first-sync measurement")
	flag.IntVar(&cfg.serveTakeover, "serve-takeover", 1000, "accounts over three nodes for the serve section's takeover measurement")
	flag.DurationVar(&cfg.serveTTL, "serve-ttl", serveDefaultTTL, "lease TTL of the serve section's single-node runs (imapkit serve's default)")
	flag.DurationVar(&cfg.serveTakeoverTTL, "serve-takeover-ttl", serveTakeoverTTL, "lease TTL of the serve section's takeover measurement")
	flag.IntVar(&cfg.serveSamples, "serve-samples", 200, "pushes per contender for the serve section's latency")
	flag.IntVar(&cfg.latencyRounds, "latency-rounds", latencyRounds, "rounds of the watch and serve sections' push latency; the report gives the median of each figure")
	flag.StringVar(&cfg.serveProfile, "serve-profile", "", "write the serve section's node's heap profile (sampling every 64 bytes allocated, which slows the node) and goroutines, once its accounts idle, to `dir`")
	var natsChild, nodeChild, nodeNATS, nodeKey, nodeLog string
	var nodeTTL time.Duration
	var nodeProfileRate int
	flag.StringVar(&natsChild, "serve-nats-child", "", "internal: run imapkit serve's embedded NATS server storing in `dir` (child process mode)")
	flag.StringVar(&nodeChild, "serve-node-child", "", "internal: run an imapkit serve node with this `ID` (child process mode)")
	flag.StringVar(&nodeNATS, "serve-nats-url", "", "internal: NATS URL for -serve-node-child")
	flag.StringVar(&nodeKey, "serve-key", "", "internal: key file for -serve-node-child")
	flag.StringVar(&nodeLog, "serve-node-log", "", "internal: log file for -serve-node-child")
	flag.DurationVar(&nodeTTL, "serve-node-ttl", serveDefaultTTL, "internal: lease TTL for -serve-node-child")
	flag.IntVar(&nodeProfileRate, "serve-node-memprofilerate", 0, "internal: runtime.MemProfileRate for -serve-node-child (0: Go's default)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the benchmark process to `file`")
	flag.Parse()

	if serve != "" {
		return serveReplay(serve)
	}
	if memChild != "" {
		return memoryChild(memChild, memK, memAddr, kitContenders())
	}
	if watchChildName != "" {
		return watchChild(watchChildName, watchK, watchAddr, watchUsers)
	}
	if natsChild != "" {
		return serveNATSChild(natsChild)
	}
	if nodeChild != "" {
		return serveNodeChild(nodeChild, nodeNATS, nodeKey, nodeLog, nodeTTL, nodeProfileRate)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		defaults := map[string]func(){
			"n":              func() { cfg.n = 2 },
			"messages":       func() { cfg.messages = 1000 },
			"big":            func() { cfg.bigSize = 4 << 20 },
			"search":         func() { cfg.searchN = 10000 },
			"expunges":       func() { cfg.expungeN = 1000 },
			"pushes":         func() { cfg.pushes = 200 },
			"push-rounds":    func() { cfg.pushRounds = 1 },
			"idlers":         func() { idlers = "200,1000" },
			"watch-accounts": func() { watchAccounts = "50" },
			"watch-samples":  func() { cfg.watchSamples = 30 },
			// The serve section's quick form takes about 40 s.
			"serve-accounts":     func() { cfg.serveAccounts = 100 },
			"serve-sync":         func() { cfg.serveSync = 100 },
			"serve-takeover":     func() { cfg.serveTakeover = 60 },
			"serve-ttl":          func() { cfg.serveTTL = 2 * time.Second },
			"serve-takeover-ttl": func() { cfg.serveTakeoverTTL = 2 * time.Second },
			"serve-samples":      func() { cfg.serveSamples = 15 },
			"latency-rounds":     func() { cfg.latencyRounds = 1 },
		}
		for name, apply := range defaults {
			if !set[name] {
				apply()
			}
		}
	}
	if cfg.out == "" && !cfg.quick {
		cfg.out = filepath.Join(moduleRoot(), "docs", "benchmarks.md")
	}
	for _, f := range strings.Split(idlers, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, err := strconv.Atoi(f)
		if err != nil || k <= 0 {
			return fmt.Errorf("-idlers: bad count %q", f)
		}
		cfg.idlers = append(cfg.idlers, k)
	}
	for _, f := range strings.Split(watchAccounts, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, err := strconv.Atoi(f)
		if err != nil || k <= 0 {
			return fmt.Errorf("-watch-accounts: bad count %q", f)
		}
		cfg.watchAccounts = append(cfg.watchAccounts, k)
	}
	if only != "" {
		cfg.only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			cfg.only[strings.TrimSpace(s)] = true
		}
	}
	if cfg.n < 1 || cfg.pushRounds < 1 || cfg.pushes < 10 || cfg.watchSamples < 1 || cfg.serveSamples < 1 {
		return errors.New("-n, -push-rounds, -watch-samples and -serve-samples must be at least 1, -pushes at least 10")
	}
	if cfg.serveAccounts < 1 || cfg.serveSync < 1 || cfg.serveTakeover < 3 || cfg.serveTTL < time.Second || cfg.serveTakeoverTTL < time.Second {
		return errors.New("-serve-accounts and -serve-sync must be at least 1, -serve-takeover at least 3, the -serve TTLs at least 1s")
	}

	busyStart := cpuBusy(time.Second) // before recording, which loads the machine itself
	if busy(busyStart) {
		log.Printf("warning: the CPUs are %s busy with other work; it will disturb the measurements", fmtBusy(busyStart))
	}
	limit, err := raiseFileLimit()
	if err != nil {
		log.Printf("raising the open-file limit: %v", err)
	}
	ctx := context.Background()

	// The recordings and their replay server serve the memory section and
	// the workloads; the push and watch sections bring their own servers.
	var info *replay.Info
	var proc *replayProc
	if cfg.runs("memory") || slices.ContainsFunc(workloads(&cfg, nil, false), func(w *workload) bool { return cfg.runs(w.id) }) {
		var dir string
		dir, info, err = prepareRecordings(ctx, &cfg)
		if err != nil {
			return err
		}
		proc, err = startReplay(dir)
		if err != nil {
			return err
		}
		defer proc.stop()
		log.Printf("replay server (child process) on %s serving %s", proc.addr, dir)
	}

	rep := &report{cfg: &cfg, info: info, started: time.Now(), fileLimit: limit, busyStart: busyStart}
	rep.python = ""
	if cfg.python {
		rep.python = pythonVersion()
	}
	kit := kitContenders()
	if kit == nil {
		rep.notes = append(rep.notes, "Built with `-tags nokit`: the imapkit contenders were left out of this run.")
	}

	if cfg.runs("memory") {
		rep.memory = runMemory(ctx, &cfg, proc, kit, limit)
	}
	for _, w := range workloads(&cfg, kit, rep.python != "") {
		if !cfg.runs(w.id) {
			continue
		}
		rep.workloads = append(rep.workloads, runWorkload(ctx, &cfg, proc.addr, w))
	}
	if cfg.runs("push") {
		// The push measurement uses its own in-process server. Stop the
		// replay child and return freed memory to the OS first, so that
		// neither process's background scavenging competes for the CPUs.
		if proc != nil {
			proc.stop()
		}
		debug.FreeOSMemory()
		time.Sleep(time.Second)
		rep.latency = runPush(ctx, &cfg, kit)
	}
	if cfg.runs("watch") {
		// Its own Dovecot, with thousands of sessions: nothing else runs.
		if proc != nil {
			proc.stop()
		}
		debug.FreeOSMemory()
		rep.watch = runWatch(ctx, &cfg, limit)
	}
	if cfg.runs("serve") {
		// Its own Dovecot and NATS, with thousands of sessions: nothing
		// else runs.
		if proc != nil {
			proc.stop()
		}
		debug.FreeOSMemory()
		rep.serve = runServe(ctx, &cfg, limit)
	}
	rep.finished = time.Now()
	rep.busyEnd = cpuBusy(time.Second)

	md, svg := rep.markdown(), rep.svg()
	// -strict judges the measurements whether the report goes to a file or
	// to stdout.
	var strictErr error
	if n := rep.failures(); cfg.strict && n > 0 {
		strictErr = fmt.Errorf("-strict: %d measurements failed (see the report)", n)
	}
	if cfg.out == "" {
		fmt.Print(md)
		return strictErr
	}
	if err := os.MkdirAll(filepath.Dir(cfg.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
		return err
	}
	svgPath := filepath.Join(filepath.Dir(cfg.out), chartName)
	if err := os.WriteFile(svgPath, []byte(svg), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s and %s in %v", cfg.out, svgPath, time.Since(rep.started).Round(time.Second))
	return strictErr
}

// prepareRecordings returns the directory holding the recordings for cfg,
// recording (or synthesizing) them first when they are not cached.
func prepareRecordings(ctx context.Context, cfg *config) (string, *replay.Info, error) {
	base := cfg.recordings
	if base == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		base = filepath.Join(cache, "imapkit-bench")
	}
	source := "dovecot"
	if cfg.synthetic {
		source = "synthetic"
	} else if !haveDovecot() {
		log.Printf("Dovecot is not installed: using synthesized responses (install dovecot-imapd to record a real server)")
		source = "synthetic"
	}
	dir := filepath.Join(base, fmt.Sprintf("%s-v%d-seed%d-m%d-big%d-s%d-e%d",
		source, formatVersion, cfg.seed, cfg.messages, cfg.bigSize, cfg.searchN, cfg.expungeN))
	if !cfg.rerecord {
		info, err := replay.Stat(dir)
		if err == nil {
			log.Printf("using cached recordings in %s", dir)
			return dir, info, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", nil, err
		}
	}
	log.Printf("generating corpus: %d messages, seed %d", cfg.messages, cfg.seed)
	msgs := corpus.Generate(cfg.seed, cfg.messages)
	var set *replay.Set
	var err error
	if source == "dovecot" {
		set, err = record.Record(ctx, record.Config{
			Seed: cfg.seed, Messages: cfg.messages, Corpus: msgs,
			BigSize: cfg.bigSize, SearchN: cfg.searchN, ExpungeN: cfg.expungeN,
			Logf: log.Printf,
		})
		if err != nil {
			return "", nil, fmt.Errorf("recording Dovecot (use -synthetic to skip): %w", err)
		}
	} else {
		set = synth.Set(synth.Config{
			Seed: cfg.seed, Corpus: msgs, BigSize: cfg.bigSize, SearchN: cfg.searchN, ExpungeN: cfg.expungeN,
		})
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", nil, err
	}
	if err := set.Save(dir); err != nil {
		return "", nil, err
	}
	log.Printf("saved recordings in %s", dir)
	info, err := replay.Stat(dir)
	return dir, info, err
}

// moduleRoot returns the nearest directory at or above the working
// directory that holds a go.mod, or "." if there is none.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "."
		}
		d = parent
	}
}

func haveDovecot() bool {
	for _, p := range []string{"dovecot", "/usr/sbin/dovecot"} {
		if _, err := exec.LookPath(p); err == nil {
			return true
		}
	}
	return false
}

// contender is one client measured on a workload.
type contender struct {
	name   string
	fn     sessionFunc // nil for Python
	python bool
	expect int    // what it must consume
	note   string // shown under the table
}

// workload is one throughput workload.
type workload struct {
	id, title  string
	mailbox    string
	kind       replay.Kind
	items      int // FETCH items parsed per run, for allocations per item
	contenders []contender
}

const metaItems = "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)"

func workloads(cfg *config, kit *kitSuite, python bool) []*workload {
	m := cfg.messages
	add := func(w *workload, cs ...contender) *workload {
		for _, c := range cs {
			if c.python && !python {
				continue
			}
			if c.fn == nil && !c.python {
				continue
			}
			w.contenders = append(w.contenders, c)
		}
		return w
	}
	var kitFetchRaw, kitFetchEach, kitFetchTyped, kitTypedEach, kitFetchParse, kitFetchBody, kitStream, kitSearch, kitBurst0, kitBurst1 sessionFunc
	if kit != nil {
		kitStream = kit.stream("BODY.PEEK[]")
		kitFetchRaw = kit.fetch(metaItems)
		kitFetchEach = kit.fetchEach(metaItems)
		kitFetchTyped = kit.fetchTyped(metaItems)
		kitTypedEach = kit.typedEach(metaItems)
		kitFetchParse = kit.fetchParse(metaItems)
		kitFetchBody = kit.fetch("BODY.PEEK[]")
		kitSearch = kit.search
		kitBurst0 = kit.burst(cfg.expungeN, 0)
		kitBurst1 = kit.burst(cfg.expungeN, time.Millisecond)
	}
	return []*workload{
		add(&workload{id: "fetch-meta", title: fmt.Sprintf("FETCH 1:* %s, %d messages", metaItems, m),
			mailbox: record.MailboxMain, kind: replay.KindFetchMeta, items: 5 * m},
			contender{name: nameFloor, fn: floorSession(record.CmdFetchMeta), expect: m},
			contender{name: nameKitRaw, fn: kitFetchRaw, expect: m, note: "Fetch: every response kept in memory in imaplib's shape, as imaplib does"},
			contender{name: nameKitEach, fn: kitFetchEach, expect: m, note: "FetchEach: each response handed to a function as it is read, in imaplib's shape, then forgotten"},
			contender{name: nameKitTyped, fn: kitFetchTyped, expect: m, note: "FetchMessages: each response parsed into an *imap.Message as it is read; the raw bytes are not kept"},
			contender{name: nameKitTypedEach, fn: kitTypedEach, expect: m, note: "FetchEachMessage: each response parsed into an *imap.Message as it is read and handed to a function; nothing is collected"},
			contender{name: nameKitParse, fn: kitFetchParse, expect: m, note: "Fetch, then imap.ParseFetch over the whole raw result: both forms held at once"},
			contender{name: nameGoimap, fn: goimapFetchMeta, expect: m, note: "Fetch(...).Collect() with Flags, InternalDate, RFC822Size, Envelope, BodyStructure{Extended: true}. In v2.0.0-beta.8 its decoder reads every string literal with io.Copy into a strings.Builder, which allocates a 32 KiB copy buffer per literal; Dovecot sends 8-bit ENVELOPE strings (raw UTF-8 names and subjects) as literals"},
			contender{name: namePython, python: true, expect: m},
		),
		add(&workload{id: "fetch-body", title: fmt.Sprintf("FETCH 1:* BODY.PEEK[], %d messages", m),
			mailbox: record.MailboxMain, kind: replay.KindFetchBody},
			contender{name: nameFloor, fn: floorSession(record.CmdFetchBody), expect: m},
			contender{name: nameKitRaw, fn: kitFetchBody, expect: m, note: "Fetch: every body kept in memory, as imaplib does"},
			contender{name: nameKitStream, fn: kitStream, expect: m, note: "FetchTo: each body streamed to io.Discard through a 64 KiB chunk: bounded memory"},
			contender{name: nameGoimap, fn: goimapFetchBody, expect: m, note: "Fetch(...).Collect(): every body read into memory"},
			contender{name: namePython, python: true, expect: m},
		),
		add(&workload{id: "big", title: "FETCH BODY.PEEK[] of one large message (a single literal)",
			mailbox: record.MailboxBig, kind: replay.KindFetchBody},
			contender{name: nameFloor, fn: floorSession(record.CmdFetchBody), expect: 1},
			contender{name: nameKitRaw, fn: kitFetchBody, expect: 1},
			contender{name: nameKitStream, fn: kitStream, expect: 1},
			contender{name: nameGoimap, fn: goimapFetchBody, expect: 1},
			contender{name: namePython, python: true, expect: 1},
		),
		add(&workload{id: "search", title: fmt.Sprintf("UID SEARCH ALL returning %d UIDs", cfg.searchN),
			mailbox: record.MailboxSearch, kind: replay.KindSearch},
			contender{name: nameFloor, fn: floorSession(record.CmdSearch), expect: 1, note: "one response framed, the numbers not parsed"},
			contender{name: nameKitRaw, fn: kitSearch, expect: cfg.searchN, note: "UID(\"SEARCH\", \"ALL\") plus imap.ParseSearch"},
			contender{name: nameGoimap, fn: goimapSearch, expect: cfg.searchN, note: "UIDSearch(...).Wait() plus AllUIDs()"},
			contender{name: namePython, python: true, expect: cfg.searchN, note: "uid('search', None, 'ALL') plus int() of each"},
		),
		add(&workload{id: "burst", title: fmt.Sprintf("%d EXPUNGE responses pushed during IDLE", cfg.expungeN),
			mailbox: record.MailboxExpunge, kind: replay.KindIdle},
			contender{name: nameFloor, fn: floorBurst(cfg.expungeN), expect: cfg.expungeN},
			contender{name: "imapkit Burst(0)", fn: kitBurst0, expect: cfg.expungeN, note: "batches of what is already buffered, so no quiet window ends the last batch"},
			contender{name: "imapkit Burst(1ms)", fn: kitBurst1, expect: cfg.expungeN, note: "the last batch ends after 1 ms without a new response; that wait is included in its time"},
			contender{name: nameGoimap, fn: goimapBurst(cfg.expungeN), expect: cfg.expungeN, note: "UnilateralDataHandler.Expunge counting on the reader goroutine"},
		),
	}
}

// rowResult is one contender's outcome on a workload.
type rowResult struct {
	name string
	sum  summary
	err  error
	note string
}

// workloadResult gathers a workload's rows.
type workloadResult struct {
	w    *workload
	size int // bytes of untagged response data
	rows []rowResult
}

func (wr *workloadResult) row(name string) *rowResult {
	for i := range wr.rows {
		if wr.rows[i].name == name && wr.rows[i].err == nil {
			return &wr.rows[i]
		}
	}
	return nil
}

func runWorkload(ctx context.Context, cfg *config, addr string, w *workload) *workloadResult {
	wr := &workloadResult{w: w}
	for _, c := range w.contenders {
		if !cfg.runsContender(c.name) {
			continue
		}
		log.Printf("%-10s %-22s %d runs", w.id, c.name, cfg.n)
		var ss []sample
		var err error
		if c.python {
			ss, err = measurePython(ctx, cfg.n, addr, w.id, w.mailbox)
		} else {
			ss, err = measureGo(ctx, cfg.n, addr, w.mailbox, c.fn)
		}
		r := rowResult{name: c.name, note: c.note, err: err}
		if err == nil {
			r.sum = summarize(ss)
			if r.sum.count != c.expect {
				r.err = fmt.Errorf("consumed %d, want %d", r.sum.count, c.expect)
			}
		}
		if r.err != nil {
			log.Printf("%-10s %-22s FAILED: %v", w.id, c.name, r.err)
		} else {
			log.Printf("%-10s %-22s median %v", w.id, c.name, r.sum.median.Round(time.Microsecond))
		}
		wr.rows = append(wr.rows, r)
	}
	return wr
}

// latencyResult is one contender's push latency.
type latencyResult struct {
	name string
	lat  latency
	err  error
}

func runPush(ctx context.Context, cfg *config, kit *kitSuite) []latencyResult {
	cs := []struct {
		name string
		fn   pushFunc
	}{
		{nameFloor, floorPush},
		{"imapkit Idler.Next", nil},
		{nameGoimap, goimapPush},
	}
	if kit != nil {
		cs[1].fn = kit.push
	}
	// Tail latencies on a small machine are noisy: run several rounds,
	// alternating the contenders, and keep the median of each percentile.
	rounds := make([][]latency, len(cs))
	errs := make([]error, len(cs))
	for round := range cfg.pushRounds {
		for j := range cs {
			i := (j + round) % len(cs) // rotate who goes first
			c := cs[i]
			if c.fn == nil || errs[i] != nil {
				continue
			}
			lat, err := measurePush(ctx, cfg.pushes, cfg.pushInterval, c.fn)
			if err != nil {
				log.Printf("push       %-22s FAILED: %v", c.name, err)
				errs[i] = err
				continue
			}
			log.Printf("push       %-22s round %d: %d pushes every %v: p50 %v p99 %v", c.name, round+1, cfg.pushes, cfg.pushInterval, lat.p50, lat.p99)
			rounds[i] = append(rounds[i], lat)
		}
	}
	var out []latencyResult
	for i, c := range cs {
		if c.fn == nil {
			continue
		}
		if errs[i] != nil {
			out = append(out, latencyResult{name: c.name, err: errs[i]})
			continue
		}
		out = append(out, latencyResult{name: c.name, lat: medianLatency(rounds[i])})
	}
	return out
}

// medianLatency combines rounds: the median of each percentile, the
// largest maximum and the total count.
func medianLatency(ls []latency) latency {
	var p50, p99 []time.Duration
	var out latency
	for _, l := range ls {
		p50, p99 = append(p50, l.p50), append(p99, l.p99)
		out.max = max(out.max, l.max)
		out.n += l.n
	}
	slices.Sort(p50)
	slices.Sort(p99)
	out.p50, out.p99 = medianDur(p50), medianDur(p99)
	return out
}

// memoryResult is one contender's memory per Idler at one K.
type memoryResult struct {
	name string
	mem  memory
	err  error
}

func runMemory(ctx context.Context, cfg *config, proc *replayProc, kit *kitSuite, limit uint64) []memoryResult {
	cs := []struct {
		name string
		fn   openFunc
	}{
		{nameFloor, floorOpenIdler},
		{nameKitIdler, nil},
		{nameGoimap, goimapOpenIdler},
	}
	if kit != nil {
		cs[1].fn = kit.openIdler
	}
	var out []memoryResult
	for _, k := range cfg.idlers {
		for _, c := range cs {
			if c.fn == nil {
				continue
			}
			if uint64(k)+64 > limit {
				out = append(out, memoryResult{name: c.name, mem: memory{k: k},
					err: fmt.Errorf("open-file limit %d is too low for %d connections", limit, k)})
				continue
			}
			log.Printf("memory     %-22s %d idling connections", c.name, k)
			m, err := measureIdlersInChild(proc, c.name, k)
			m.k = k
			if err != nil {
				log.Printf("memory     %-22s FAILED: %v", c.name, err)
			} else {
				log.Printf("memory     %-22s %.0f B per connection (heap %.0f, stack %.0f); after a push %.0f B (heap %.0f, stack %.0f)", c.name, m.perConn, m.heap, m.stack, m.pushedPerConn, m.pushedHeap, m.pushedStack)
			}
			out = append(out, memoryResult{name: c.name, mem: m, err: err})
		}
	}
	return out
}

func goVersion() string { return runtime.Version() }
