package imap_test

// The stack of a goroutine that waits on an Idler: imapkit reads on the
// caller's goroutine, so the frames that handle a push are on it, and Go
// never shrinks a grown stack whose parked frames use more than a quarter of
// it. A push must therefore be handled within the 2 KiB a goroutine starts
// with, or every Idler that ever received one costs 2 KiB more for good
// (see Idler.nextLocked and docs/benchmarks.md, memory after one push).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/imaptest"
)

const stackChildEnv = "IMAPKIT_IDLE_STACK_CHILD"

// TestIdleStackAfterPush runs the measurement in a child process started
// with fresh 2 KiB goroutine stacks (GODEBUG=adaptivestackstart=0: by
// default the runtime starts goroutines with the average stack size it has
// seen, which in a test binary hides growth).
func TestIdleStackAfterPush(t *testing.T) {
	if os.Getenv(stackChildEnv) != "" {
		idleStackChild(t)
		return
	}
	for _, mode := range []string{"Next", "Responses", "Burst"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*testTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestIdleStackAfterPush$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), stackChildEnv+"="+mode, "GODEBUG=adaptivestackstart=0")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			i := strings.Index(string(out), "STACK ")
			if i < 0 {
				t.Fatalf("child printed no measurement:\n%s", out)
			}
			var grown float64
			if _, err := fmt.Sscanf(string(out[i:]), "STACK grown=%g", &grown); err != nil {
				t.Fatalf("child output: %v\n%s", err, out)
			}
			t.Logf("stack in use grew by %.0f B per Idler with one push", grown)
			if grown > 512 {
				t.Errorf("handling one push grew the stack of each waiting goroutine by %.0f B on average; want it to stay within its first 2 KiB (a grown stack would be 2 KiB more)", grown)
			}
		})
	}
}

// idleStackChild opens Idlers, each waited on by one goroutine the way an
// application would (mode: Next, Responses or Burst), measures the stack
// in use per Idler while they are parked, pushes one response to each, and
// measures again once every goroutine is parked again.
func idleStackChild(t *testing.T) {
	const n = 200
	mode := os.Getenv(stackChildEnv)
	push := make(chan struct{})
	var pushes = []string{"* 7 EXISTS", "* 3 FETCH (FLAGS (\\Seen))", "* 4 EXPUNGE"}
	var sessions sync.WaitGroup
	cmd := idleCmd(func(s *imaptest.Session, tag string) {
		_ = s.Send("+ idling")
		sessions.Done()
		<-push
		_ = s.Send(pushes[len(tag)%len(pushes)])
	})
	srv := fakeTransports[0].server(t, imaptest.Config{Capabilities: "IDLE", Commands: map[string]imaptest.CommandFunc{"IDLE": cmd}})
	delivered := make(chan string, n)
	idlers := make([]*imap.Idler, 0, n)
	clients := make([]*imap.Client, 0, n)
	sessions.Add(n)
	for range n {
		c := fakeTransports[0].connect(t, srv, nil)
		login(t, c)
		id, err := c.Idle(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		idlers = append(idlers, id)
		clients = append(clients, c)
	}
	sessions.Wait()
	// Each waiting goroutine is as small as an application's would be.
	for _, id := range idlers {
		switch mode {
		case "Next":
			go func() {
				for {
					r, ok, err := id.Next(time.Hour)
					if err != nil {
						return
					}
					if ok {
						delivered <- r.Type
					}
				}
			}()
		case "Responses":
			go func() {
				for r, err := range id.Responses() {
					if err != nil {
						return
					}
					delivered <- r.Type
				}
			}()
		case "Burst":
			go func() {
				for b, err := range id.Burst(0) {
					if err != nil {
						return
					}
					delivered <- b[0].Type
				}
			}()
		}
	}
	parked := settledStackInuse()
	close(push)
	for range n {
		select {
		case <-delivered:
		case <-time.After(testTimeout):
			t.Fatal("not every Idler delivered its push")
		}
	}
	pushed := settledStackInuse()
	fmt.Printf("STACK grown=%.0f\n", (float64(pushed)-float64(parked))/n)
	for _, c := range clients {
		c.Shutdown() // ends the waits; Close would wait for them
	}
}

// settledStackInuse waits until the goroutines have parked (the stack in
// use stops changing) and returns the stack in use.
func settledStackInuse() uint64 {
	var last uint64
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.StackInuse == last {
			break
		}
		last = ms.StackInuse
	}
	return last
}
