package testserver

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// Process is the first process of a server a harness started (its master,
// or the init of its namespaces). Its exit is watched, so that a wait for
// the listeners notices a server that died, and Kill ends it with its
// process group.
type Process struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returns
	waitErr error         // cmd.Wait's result, valid after exited is closed
}

// StartProcess starts cmd and watches for its exit.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr reports whether the process has exited and, if so, what
// cmd.Wait returned. A nil Process has not.
func (p *Process) ExitErr() (exited bool, err error) {
	if p == nil {
		return false, nil
	}
	select {
	case <-p.exited:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Signal sends sig to the process alone.
func (p *Process) Signal(sig syscall.Signal) { _ = syscall.Kill(p.Pid(), sig) }

// Kill sends SIGKILL to the process's group (a server started with
// Setpgid: all of it), also when the process itself has exited and left
// others behind, and to the process, and waits for it to exit.
func (p *Process) Kill() {
	if p == nil {
		return
	}
	pid := p.Pid()
	_ = syscall.Kill(-pid, syscall.SIGKILL) // the group outlives its leader: its ID is not reused meanwhile
	if exited, _ := p.ExitErr(); !exited {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-p.exited
}

// Fatal marks an error of a probe that no further try would mend (another
// program holds the port, say): WaitReady returns it at once.
func Fatal(err error) error { return fatalError{err} }

type fatalError struct{ error }

func (e fatalError) Unwrap() error { return e.error }

// WaitReady calls probe for each of addrs, every 20 ms, until each has
// succeeded once. It fails when a probe returns a Fatal error, when the
// process exits, or after timeout, with the last probe's error.
func (p *Process) WaitReady(addrs []string, timeout time.Duration, probe func(i int, addr string, deadline time.Time) error) error {
	deadline := time.Now().Add(timeout)
	ready := make([]bool, len(addrs))
	left := len(addrs)
	var last error
	for {
		for i, addr := range addrs {
			if ready[i] {
				continue
			}
			err := probe(i, addr, deadline)
			var fatal fatalError
			switch {
			case errors.As(err, &fatal):
				return fatal.error
			case err != nil:
				last = err
			default:
				ready[i] = true
				left--
			}
		}
		if left == 0 {
			return nil
		}
		if exited, err := p.ExitErr(); exited {
			return fmt.Errorf("%s exited: %v", p.cmd.Path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v: %w", timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ErrAddrInUse marks a launch that failed because a port it was given was
// taken.
var ErrAddrInUse = errors.New("address already in use")

// launchAttempts bounds Launch's tries.
const launchAttempts = 5

// Launch calls launch, which picks ports and starts the server, until it
// succeeds or fails with an error that is not ErrAddrInUse, at most five
// times. Ports are picked by binding to port 0 and closing again, so
// another process may take one before the server binds it: the next try
// picks fresh ones.
func Launch(launch func() error) error {
	for i := 1; ; i++ {
		err := launch()
		if err == nil || i == launchAttempts || !errors.Is(err, ErrAddrInUse) {
			return err
		}
	}
}
