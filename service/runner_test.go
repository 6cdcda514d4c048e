package service

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPacer: at most n connections are opened at once, and at most
// perServer to one server, however many accounts start together.
func TestPacer(t *testing.T) {
	p := newPacer(3, 2)
	var (
		wg        sync.WaitGroup
		now, peak atomic.Int32
		perHost   sync.Map // host → *atomic.Int32 (now)
		hostPeak  sync.Map // host → *atomic.Int32 (peak)
		servers   = []string{"a.example:993", "a.example:143", "b.example:993", "c.example:993"}
		counter   = func(m *sync.Map, k string) *atomic.Int32 {
			v, _ := m.LoadOrStore(k, new(atomic.Int32))
			return v.(*atomic.Int32)
		}
		raise = func(peak *atomic.Int32, n int32) {
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					return
				}
			}
		}
	)
	for i := range 40 {
		server := servers[i%len(servers)]
		host := server[:1]
		wg.Go(func() {
			release, err := p.acquire(context.Background(), server)
			if err != nil {
				t.Error(err)
				return
			}
			raise(&peak, now.Add(1))
			raise(counter(&hostPeak, host), counter(&perHost, host).Add(1))
			time.Sleep(2 * time.Millisecond)
			counter(&perHost, host).Add(-1)
			now.Add(-1)
			release()
		})
	}
	wg.Wait()
	if got := peak.Load(); got > 3 || got < 2 {
		t.Errorf("%d connections opened at once, want at most 3 (and some parallelism)", got)
	}
	hostPeak.Range(func(k, v any) bool {
		if n := v.(*atomic.Int32).Load(); n > 2 {
			t.Errorf("%d connections at once to %s, want at most 2", n, k)
		}
		return true
	})
	// A wait ends with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	r1, _ := p.acquire(context.Background(), "d.example:993")
	r2, _ := p.acquire(context.Background(), "d.example:993")
	if _, err := p.acquire(ctx, "d.example:993"); err == nil {
		t.Error("a third connection to one server while two are opening")
	}
	r1()
	r2()
}
