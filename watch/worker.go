package watch

import (
	"fmt"
	"runtime/debug"
)

// work runs fn on a goroutine of its own and waits for it.
//
// A watcher spends its life parked in IDLE, on Run's goroutine, and Go
// keeps a parked goroutine's stack at the size its deepest call needed
// (it shrinks one only when the frames in use take under a quarter of
// it). The commands — connecting, syncing, fetching, even parsing a push —
// need 8 to 16 KiB of stack; the wait needs under 4. So Run's goroutine
// only waits (Idler.Next, timers) and hands everything else to a worker
// that ends with the work, taking its stack with it: the parked account
// keeps a 4 KiB stack instead of 8–16 KiB, and has no goroutine more than
// Run's (bench: "memory per watched account", ≤ 16 KiB with Run's and the
// consumer's goroutines; it measured 19 KiB before).
//
// A panic in fn is raised again on the caller's goroutine, with the
// worker's stack in its value.
func work(fn func() error) error {
	done := make(chan workResult, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- workResult{panicked: true, value: fmt.Sprintf("%v\n\nworker goroutine:\n%s", p, debug.Stack())}
			}
		}()
		done <- workResult{err: fn()}
	}()
	r := <-done
	if r.panicked {
		panic(r.value)
	}
	return r.err
}

type workResult struct {
	err      error
	panicked bool
	value    string
}
