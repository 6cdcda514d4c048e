package main

import (
	"os"
	"strings"
	"syscall"
)

// stacksSetting turns off the runtime's adaptive starting stack size.
//
// The goroutines of the accounts imapkit serve watches wait for hours, a
// few hundred bytes of frames each. Go starts new goroutines with a stack
// the size of the average stack in use at the last GC (adaptivestackstart),
// which in serve is 4 KiB (nats.go and the HTTP server run deep), and never
// shrinks a waiting stack below four times what its frames use plus 800
// bytes: each account would keep two 4 KiB stacks for good. Measured by
// the serve benchmark (go run ./bench -only serve, whose node runs with this
// setting; 1,000 idle accounts on Dovecot): stack 12.1 KiB per account
// without it, 8.7 KiB with it; heap and stack 21 KiB in all.
const stacksSetting = "adaptivestackstart=0"

// smallStacks starts this program again, in place (the process keeps its
// ID), with stacksSetting added to GODEBUG: the runtime reads that setting
// only at start, and //go:debug does not accept it. It returns, changing
// nothing, when GODEBUG already sets adaptivestackstart (the operator's
// choice wins) or the program cannot be found.
func smallStacks() {
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "adaptivestackstart=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if godebug != "" {
		godebug += ","
	}
	env := []string{"GODEBUG=" + godebug + stacksSetting}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	syscall.Exec(exe, os.Args, env) // returns only on failure: go on as we are
}
