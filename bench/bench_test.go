package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/imapkit/imap/bench/record"
	"github.com/imapkit/imap/bench/replay"
	"github.com/imapkit/imap/bench/synth"
)

// Micro-benchmarks on synthetic Dovecot-like responses served in-process:
// no Dovecot, no child process, small sizes, so that
//
//	go test -run '^$' -bench . -benchtime 1x ./...
//
// stays fast. `go run ./bench` is the real measurement.

// Sizes of the micro-benchmark corpus.
const (
	microMessages = 300
	microBig      = 1 << 20
	microSearch   = 5000
	microExpunges = 1000
)

// startSynth serves a small synthetic set in-process.
func startSynth(tb testing.TB) *replay.Server {
	tb.Helper()
	set := synth.Set(synth.Config{Seed: 7, Messages: microMessages, BigSize: microBig, SearchN: microSearch, ExpungeN: microExpunges})
	srv, err := replay.Listen("127.0.0.1:0", replay.Config{Set: set})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	return srv
}

type microCase struct {
	name    string
	fn      sessionFunc
	mailbox string
	expect  int
	items   int // FETCH items per run, for allocs/item
}

func microCases() map[string][]microCase {
	kit := kitContenders()
	cases := map[string][]microCase{
		"FetchMeta": {
			{"floor", floorSession(record.CmdFetchMeta), "INBOX", microMessages, 5 * microMessages},
			{"go-imap-v2", goimapFetchMeta, "INBOX", microMessages, 5 * microMessages},
		},
		"FetchBody": {
			{"floor", floorSession(record.CmdFetchBody), "INBOX", microMessages, 0},
			{"go-imap-v2", goimapFetchBody, "INBOX", microMessages, 0},
		},
		"BigLiteral": {
			{"floor", floorSession(record.CmdFetchBody), "big", 1, 0},
			{"go-imap-v2", goimapFetchBody, "big", 1, 0},
		},
		"Search": {
			{"floor", floorSession(record.CmdSearch), "search", 1, 0},
			{"go-imap-v2", goimapSearch, "search", microSearch, 0},
		},
		"Burst": {
			{"floor", floorBurst(microExpunges), "expunge", microExpunges, 0},
			{"go-imap-v2", goimapBurst(microExpunges), "expunge", microExpunges, 0},
		},
	}
	if kit != nil {
		cases["FetchMeta"] = append(cases["FetchMeta"],
			microCase{"imapkit-raw", kit.fetch(metaItems), "INBOX", microMessages, 5 * microMessages},
			microCase{"imapkit-each", kit.fetchEach(metaItems), "INBOX", microMessages, 5 * microMessages},
			microCase{"imapkit-typed", kit.fetchTyped(metaItems), "INBOX", microMessages, 5 * microMessages},
			microCase{"imapkit-typed-each", kit.typedEach(metaItems), "INBOX", microMessages, 5 * microMessages},
			microCase{"imapkit-fetch+parse", kit.fetchParse(metaItems), "INBOX", microMessages, 5 * microMessages})
		cases["FetchBody"] = append(cases["FetchBody"], microCase{"imapkit-raw", kit.fetch("BODY.PEEK[]"), "INBOX", microMessages, 0})
		cases["BigLiteral"] = append(cases["BigLiteral"], microCase{"imapkit-raw", kit.fetch("BODY.PEEK[]"), "big", 1, 0})
		cases["Search"] = append(cases["Search"], microCase{"imapkit-raw", kit.search, "search", microSearch, 0})
		cases["Burst"] = append(cases["Burst"], microCase{"imapkit-burst0", kit.burst(microExpunges, 0), "expunge", microExpunges, 0})
	}
	return cases
}

func benchCases(b *testing.B, group string) {
	srv := startSynth(b)
	for _, c := range microCases()[group] {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			var total time.Duration
			var mallocs uint64
			for b.Loop() {
				var sp span
				n, err := c.fn(ctx, srv.Addr(), c.mailbox, &sp)
				if err != nil {
					b.Fatal(err)
				}
				if n != c.expect {
					b.Fatalf("consumed %d, want %d", n, c.expect)
				}
				s := sp.sample(n)
				total += s.dur
				mallocs += s.mallocs
			}
			// ns/op includes connecting and logging in; span-ns/op is the
			// workload command alone, as in the full suite.
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "span-ns/op")
			if c.items > 0 {
				b.ReportMetric(float64(mallocs)/float64(b.N)/float64(c.items), "allocs/item")
			}
		})
	}
}

func BenchmarkFetchMeta(b *testing.B)  { benchCases(b, "FetchMeta") }
func BenchmarkFetchBody(b *testing.B)  { benchCases(b, "FetchBody") }
func BenchmarkBigLiteral(b *testing.B) { benchCases(b, "BigLiteral") }
func BenchmarkSearch(b *testing.B)     { benchCases(b, "Search") }
func BenchmarkBurst(b *testing.B)      { benchCases(b, "Burst") }

// BenchmarkPush measures one push's latency through each client.
func BenchmarkPush(b *testing.B) {
	cs := []struct {
		name string
		fn   pushFunc
	}{{"floor", floorPush}, {"go-imap-v2", goimapPush}}
	if kit := kitContenders(); kit != nil {
		cs = append(cs, struct {
			name string
			fn   pushFunc
		}{"imapkit", kit.push})
	}
	for _, c := range cs {
		b.Run(c.name, func(b *testing.B) {
			var lat latency
			for b.Loop() {
				var err error
				if lat, err = measurePush(context.Background(), 50, 200*time.Microsecond, c.fn); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(lat.p50.Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat.p99.Nanoseconds()), "p99-ns")
		})
	}
}

// TestContenders checks that every contender consumes every synthetic
// workload completely.
func TestContenders(t *testing.T) {
	srv := startSynth(t)
	for group, cs := range microCases() {
		for _, c := range cs {
			t.Run(group+"/"+c.name, func(t *testing.T) {
				var sp span
				n, err := c.fn(context.Background(), srv.Addr(), c.mailbox, &sp)
				if err != nil {
					t.Fatal(err)
				}
				if n != c.expect {
					t.Fatalf("consumed %d, want %d", n, c.expect)
				}
				if sp.t1.Before(sp.t0) || sp.t0.IsZero() {
					t.Fatalf("span not measured: %v..%v", sp.t0, sp.t1)
				}
			})
		}
	}
}

// TestIdlers opens a few parked Idlers per contender against an
// in-process server.
func TestIdlers(t *testing.T) {
	srv := startSynth(t)
	opens := map[string]openFunc{"floor": floorOpenIdler, "go-imap-v2": goimapOpenIdler}
	if kit := kitContenders(); kit != nil {
		opens["imapkit"] = kit.openIdler
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			m, err := measureIdlers(context.Background(), srv.Addr(), 20, open, nil, func() (int, error) { return srv.PushAll("* 99 EXISTS"), nil })
			if err != nil {
				t.Fatal(err)
			}
			if m.pushedPerConn <= 0 {
				t.Errorf("memory after a push not measured: %+v", m)
			}
			if m.goroutines < 0.9 {
				t.Errorf("%.2f goroutines per Idler; want at least one", m.goroutines)
			}
		})
	}
}

func TestLiteralAtEnd(t *testing.T) {
	for _, tc := range []struct {
		line string
		n    int64
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {123}\r\n", 123, true},
		{"* 1 FETCH (BODY[] {0}\r\n", 0, true},
		{"A1 LOGIN {5+}\r\n", 5, true},
		{"* OK done\r\n", 0, false},
		{"* OK {x}\r\n", 0, false},
		{"}\r\n", 0, false},
		{"{12}\n", 12, true},
	} {
		n, ok := literalAtEnd([]byte(tc.line))
		if n != tc.n || ok != tc.ok {
			t.Errorf("literalAtEnd(%q) = %d, %v; want %d, %v", tc.line, n, ok, tc.n, tc.ok)
		}
	}
}

func TestRecordingsRoundTrip(t *testing.T) {
	set := synth.Set(synth.Config{Seed: 3, Messages: 20, SearchN: 10, ExpungeN: 5})
	dir := filepath.Join(t.TempDir(), "rec")
	if err := set.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := replay.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys() {
		a, b := set.Get(k.Mailbox, k.Kind), got.Get(k.Mailbox, k.Kind)
		if b == nil || string(a.Untagged) != string(b.Untagged) || a.Tagged != b.Tagged {
			t.Errorf("%v: recording changed by Save/Load", k)
		}
	}
	info, err := replay.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.Sizes[replay.Key{Mailbox: "INBOX", Kind: replay.KindFetchMeta}], len(set.Get("INBOX", replay.KindFetchMeta).Untagged); got != want {
		t.Errorf("Stat size %d, want %d", got, want)
	}
}

func TestReportRenders(t *testing.T) {
	cfg := &config{n: 1, messages: microMessages, idlers: []int{10}}
	rep := &report{cfg: cfg, started: time.Now(), finished: time.Now()}
	w := &workload{id: "fetch-meta", title: "FETCH", mailbox: "INBOX", kind: replay.KindFetchMeta, items: 5}
	rep.workloads = []*workloadResult{{w: w, rows: []rowResult{
		{name: nameFloor, sum: summary{median: time.Millisecond, hasMem: true}},
		{name: nameKitRaw, sum: summary{median: 2 * time.Millisecond, hasMem: true}},
		{name: nameGoimap, err: fmt.Errorf("boom | bang")},
	}}}
	rep.memory = []memoryResult{{name: "imapkit Idler", mem: memory{k: 10, perConn: 4000}}}
	md, svg := rep.markdown(), rep.svg()
	if len(md) == 0 || len(svg) == 0 {
		t.Fatal("empty report")
	}
}
