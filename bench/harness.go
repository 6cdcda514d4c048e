package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"time"
)

// Credentials sent to the replay server, which accepts anything.
const (
	benchUser = "bench"
	benchPass = "bench"
)

// span times the workload part of a session and counts what the process
// allocated meanwhile. Contenders call Start right before sending the
// workload command and Stop once they have consumed the whole result;
// connecting, logging in, selecting and logging out are not measured.
type span struct {
	t0, t1 time.Time
	m0, m1 runtime.MemStats
}

// Start marks the beginning of the measured part.
func (s *span) Start() {
	runtime.ReadMemStats(&s.m0)
	s.t0 = time.Now()
}

// Stop marks its end.
func (s *span) Stop() {
	s.t1 = time.Now()
	runtime.ReadMemStats(&s.m1)
}

func (s *span) sample(count int) sample {
	return sample{
		dur:     s.t1.Sub(s.t0),
		mallocs: s.m1.Mallocs - s.m0.Mallocs,
		bytes:   s.m1.TotalAlloc - s.m0.TotalAlloc,
		count:   count,
		hasMem:  true,
	}
}

// sample is one measured run.
type sample struct {
	dur     time.Duration
	mallocs uint64
	bytes   uint64
	count   int  // what the contender consumed (messages, UIDs, responses)
	hasMem  bool // mallocs and bytes are meaningful
}

// sessionFunc runs one workload session against the replay server at addr:
// it connects, logs in, selects mailbox, runs the workload between
// sp.Start and sp.Stop, logs out, and returns what it consumed.
type sessionFunc func(ctx context.Context, addr, mailbox string, sp *span) (int, error)

// measureGo runs fn once to warm up and then n times, each after a full
// garbage collection.
func measureGo(ctx context.Context, n int, addr, mailbox string, fn sessionFunc) ([]sample, error) {
	var out []sample
	for i := range n + 1 {
		runtime.GC()
		var sp span
		count, err := fn(ctx, addr, mailbox, &sp)
		if err != nil {
			return nil, err
		}
		if sp.t1.IsZero() {
			return nil, fmt.Errorf("contender did not call span.Stop")
		}
		if i > 0 {
			out = append(out, sp.sample(count))
		}
	}
	return out, nil
}

// summary condenses samples: medians of time and allocations.
type summary struct {
	median  time.Duration
	min     time.Duration
	mallocs float64 // median per run
	bytes   float64
	count   int
	hasMem  bool
	runs    int
}

func summarize(ss []sample) summary {
	if len(ss) == 0 {
		return summary{}
	}
	durs := make([]time.Duration, len(ss))
	mal := make([]uint64, len(ss))
	byt := make([]uint64, len(ss))
	for i, s := range ss {
		durs[i], mal[i], byt[i] = s.dur, s.mallocs, s.bytes
	}
	slices.Sort(durs)
	slices.Sort(mal)
	slices.Sort(byt)
	return summary{
		median:  medianDur(durs),
		min:     durs[0],
		mallocs: medianU(mal),
		bytes:   medianU(byt),
		count:   ss[len(ss)-1].count,
		hasMem:  ss[0].hasMem,
		runs:    len(ss),
	}
}

func medianDur(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func medianU(sorted []uint64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return float64(sorted[n/2])
	}
	return float64(sorted[n/2-1]+sorted[n/2]) / 2
}

// percentile returns the p-th percentile (0..100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)-1))
	return sorted[i]
}
