package watch_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/watch"
)

const costChildEnv = "IMAPKIT_WATCH_COST_CHILD"

// TestWatcherParkedCost watches 200 Dovecot accounts with default options
// and a consumer goroutine each, in a child process of its own (so that no
// other test's goroutines or freed stacks count), and checks what a parked
// account costs: at most 2 goroutines (Run's and the consumer's) and about
// 7 KiB of stack: Run's goroutine only waits, and the commands' deep stacks
// go with their workers (see work); when Run's goroutine ran them, each
// account kept 12 KiB of stack. The bounds leave room for the noise of a
// test process (measured: 7.0–8.4 KiB of stack, 8.3–8.8 KiB of heap); the
// target of 16 KiB in all is judged by the benchmark suite at 1,000 and
// 5,000 accounts (go run ./bench -only watch), where the fixed costs of a
// test process weigh less.
func TestWatcherParkedCost(t *testing.T) {
	if testing.Short() && os.Getenv(costChildEnv) == "" {
		t.Skip("a cost measurement of thousands of sessions: skipped with -short")
	}
	if os.Getenv(costChildEnv) != "" {
		watcherCostChild(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := os.Args[0]
	if raceEnabled {
		// The measurement needs frames of their real size.
		bin = filepath.Join(t.TempDir(), "watch.test")
		if out, err := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("building the test without -race: %v\n%s", err, out)
		}
	}
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestWatcherParkedCost$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), costChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	i := strings.Index(string(out), "COST ")
	if i < 0 {
		t.Fatalf("child printed no measurement:\n%s", out)
	}
	var heap, stack, goroutines float64
	if _, err := fmt.Sscanf(string(out[i:]), "COST heap=%g stack=%g goroutines=%g", &heap, &stack, &goroutines); err != nil {
		t.Fatalf("child output: %v\n%s", err, out)
	}
	t.Logf("per parked account: heap %.0f B, stack %.0f B, %.2f goroutines", heap, stack, goroutines)
	if goroutines > 2.01 {
		t.Errorf("%.2f goroutines per account, want at most 2", goroutines)
	}
	if stack > 9<<10 {
		t.Errorf("%.0f B of stack per account, want at most 9 KiB", stack)
	}
	if heap+stack > 18<<10 {
		t.Errorf("%.0f B of heap and stack per account, want at most 18 KiB", heap+stack)
	}
}

func watcherCostChild(t *testing.T) {
	const k = 200
	srv := dovecot.StartTConfig(t, dovecot.Config{MaxSessions: 2 * k, IdleCheckInterval: 30 * time.Second})
	users, err := srv.NewUsers(k)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	synced := make(chan struct{}, k)
	runtime.GC()
	runtime.GC()
	heap0, stack0 := memInUse()
	g0 := runtime.NumGoroutine()
	opts := &imap.Options{InsecureAuth: true, Timeout: 30 * time.Second}
	for i, u := range users {
		if i%16 == 0 && i > 0 {
			// Sixteen at a time, as a service brings accounts up: many
			// syncs at once would leave the freed stacks of their workers
			// scattered over the stack spans.
			for range 16 {
				<-synced
			}
		}
		dial := func(ctx context.Context) (*imap.Client, error) {
			c, err := imap.Dial(ctx, srv.Addr, opts)
			if err != nil {
				return nil, err
			}
			if _, err := c.Login(ctx, u.Name, u.Password); err != nil {
				c.Shutdown()
				return nil, err
			}
			return c, nil
		}
		w, err := watch.New(dial, &watch.Options{Account: u.Name})
		if err != nil {
			t.Fatal(err)
		}
		go w.Run(ctx)
		go func() {
			first := true
			for ev := range w.Events() {
				ev.Ack()
				if first {
					first = false
					synced <- struct{}{}
				}
			}
		}()
	}
	for range k - (k-1)/16*16 {
		select {
		case <-synced:
		case <-time.After(time.Minute):
			t.Fatal("the watchers did not all sync within a minute")
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, idling, err := srv.IMAPSessions()
		if err != nil {
			t.Fatal(err)
		}
		if idling >= k {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sessions in IDLE after a minute", idling, k)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the last workers end
	runtime.GC()
	runtime.GC()
	heap, stack := memInUse()
	g := runtime.NumGoroutine()
	fmt.Printf("COST heap=%g stack=%g goroutines=%g\n", float64(heap-heap0)/k, float64(stack-stack0)/k, float64(g-g0)/k)
}

func memInUse() (heap, stack int64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse), int64(ms.StackInuse)
}
