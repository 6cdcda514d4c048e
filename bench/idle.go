package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imapkit/imap/bench/replay"
)

// pushFunc idles in mailbox on the server at addr and stores in deliver[i]
// the time the i-th pushed EXISTS reached the application.
type pushFunc func(ctx context.Context, addr, mailbox string, count int, deliver []time.Time) error

// latency is the outcome of a push-latency run.
type latency struct {
	p50, p99, max time.Duration
	n             int
}

// measurePush runs fn against an in-process replay server that pushes
// count EXISTS lines, one every interval, and returns the distribution of
// (delivery - write) over the pushes after the first tenth (warm-up).
func measurePush(ctx context.Context, count int, interval time.Duration, fn pushFunc) (latency, error) {
	written := make([]time.Time, count)
	srv, err := replay.Listen("127.0.0.1:0", replay.Config{Push: &replay.Push{
		Mailbox:  "push",
		Count:    count,
		Interval: interval,
		Written:  func(i int, t time.Time) { written[i] = t },
	}})
	if err != nil {
		return latency{}, err
	}
	deliver := make([]time.Time, count)
	err = fn(ctx, srv.Addr(), "push", count, deliver)
	srv.Close() // waits for the handler: written is complete
	if err != nil {
		return latency{}, err
	}
	var lat []time.Duration
	for i := count / 10; i < count; i++ {
		if written[i].IsZero() || deliver[i].IsZero() {
			return latency{}, fmt.Errorf("push %d not recorded", i)
		}
		lat = append(lat, deliver[i].Sub(written[i]))
	}
	slices.Sort(lat)
	return latency{p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[len(lat)-1], n: len(lat)}, nil
}

// closer is one open, idling connection of the memory measurement.
type closer interface{ Close() error }

// openFunc logs in on conn, selects mailbox, starts IDLE and leaves the
// connection parked the way an application waiting for pushes would; it
// adds one to pushed for each untagged response that reaches the
// application.
type openFunc func(ctx context.Context, conn net.Conn, mailbox string, pushed *atomic.Int64) (closer, error)

// memory is the outcome of a memory-per-Idler run.
type memory struct {
	k          int
	perConn    float64 // heap in use + stack in use, bytes per connection
	heap       float64
	stack      float64
	goroutines float64
	// The same after every connection got one push and went back to
	// waiting; zero when not measured.
	pushedPerConn, pushedHeap, pushedStack float64
}

// memStat returns heap and stack in use after two full collections.
func memStat() (heap, stack uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

// measureIdlers opens k idling connections with open against addr,
// measures the process's heap and stack growth per connection, and closes
// them again. closeAll is called after the measurement to make the server
// drop its side first (so that the client side does not pile up
// TIME_WAIT ports across runs).
//
// If pushAll is set, the server then pushes one EXISTS to every connection
// and, once each reached its application, the measurement is repeated:
// handling a response takes more stack than waiting, and a goroutine's
// stack, once grown, stays grown.
func measureIdlers(ctx context.Context, addr string, k int, open openFunc, closeAll func() error, pushAll func() (int, error)) (memory, error) {
	h0, s0 := memStat()
	g0 := runtime.NumGoroutine()

	idlers := make([]closer, k)
	var pushed atomic.Int64
	var d net.Dialer
	firstErr := openAll(k, func(i int) error {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			idlers[i], err = open(ctx, conn, "INBOX", &pushed)
			if err != nil {
				conn.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		return nil
	})

	var res memory
	if firstErr == nil {
		// Let every parked goroutine reach its blocking read.
		time.Sleep(200 * time.Millisecond)
		h1, s1 := memStat()
		g1 := runtime.NumGoroutine()
		res = memory{
			k:          k,
			heap:       float64(int64(h1)-int64(h0)) / float64(k),
			stack:      float64(int64(s1)-int64(s0)) / float64(k),
			goroutines: float64(g1-g0) / float64(k),
		}
		res.perConn = res.heap + res.stack
		if pushAll != nil {
			if err := pushOnce(k, &pushed, pushAll); err != nil {
				firstErr = err
			} else {
				time.Sleep(200 * time.Millisecond)
				h2, s2 := memStat()
				res.pushedHeap = float64(int64(h2)-int64(h0)) / float64(k)
				res.pushedStack = float64(int64(s2)-int64(s0)) / float64(k)
				res.pushedPerConn = res.pushedHeap + res.pushedStack
			}
		}
	}

	var errs []error
	if closeAll != nil {
		errs = append(errs, closeAll())
	}
	for _, c := range idlers {
		if c != nil {
			c.Close() // errors expected: the server has gone
		}
	}
	// Wait for the goroutines of the closed connections to exit, so that
	// the next measurement starts from a clean baseline.
	for t := time.Now(); runtime.NumGoroutine() > g0 && time.Since(t) < 10*time.Second; {
		time.Sleep(5 * time.Millisecond)
	}
	runtime.GC()
	if firstErr != nil {
		return memory{}, firstErr
	}
	return res, errors.Join(errs...)
}

// pushOnce has the server push to every idling connection and waits until
// all k pushes reached their applications.
func pushOnce(k int, pushed *atomic.Int64, pushAll func() (int, error)) error {
	before := pushed.Load()
	n, err := pushAll()
	if err != nil {
		return err
	}
	if n != k {
		return fmt.Errorf("server pushed to %d idling connections, want %d", n, k)
	}
	for t := time.Now(); pushed.Load()-before < int64(k); {
		if time.Since(t) > 30*time.Second {
			return fmt.Errorf("%d of %d pushes reached the application", pushed.Load()-before, k)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// floorIdler is the floor of the memory measurement: a connection in IDLE
// with a 512-byte bufio.Reader and one goroutine parked in Read.
type floorIdler struct {
	c    *rawClient
	done chan struct{}
}

func floorOpenIdler(ctx context.Context, conn net.Conn, mailbox string, pushed *atomic.Int64) (closer, error) {
	c, err := newRawClient(conn, 512)
	if err != nil {
		return nil, err
	}
	if err := c.login(mailbox); err != nil {
		return nil, err
	}
	if _, err := c.send("IDLE"); err != nil {
		return nil, err
	}
	if err := c.expectContinuation(); err != nil {
		return nil, err
	}
	f := &floorIdler{c: c, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			if _, err := c.r.ReadSlice('\n'); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return
			} else if err == nil {
				pushed.Add(1)
			}
		}
	}()
	return f, nil
}

// Close drops the connection, which ends the parked Read.
func (f *floorIdler) Close() error {
	err := f.c.conn.Close()
	<-f.done
	return err
}

// openAll calls open(i) for i in [0, k), 16 at a time, as a service would
// bring up many connections; the first error stops the rest and is
// returned.
func openAll(k int, open func(i int) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= k {
					return
				}
				if err := open(i); err != nil {
					once.Do(func() { firstErr = err })
					next.Store(int64(k)) // stop the other workers
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}
