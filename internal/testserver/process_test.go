package testserver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessWaitReady: WaitReady ends when every address answered once,
// at once on a Fatal error, when the process exits, or at the timeout;
// Kill ends the process and its group.
func TestProcessWaitReady(t *testing.T) {
	errNotYet := errors.New("not yet")
	errTaken := errors.New("port taken")
	for _, tc := range []struct {
		name    string
		command string
		probe   func(tries []int) func(i int, addr string, deadline time.Time) error
		want    string // "" is success
	}{
		{name: "ready after tries", command: "sleep 60", probe: func(tries []int) func(int, string, time.Time) error {
			return func(i int, _ string, _ time.Time) error {
				if tries[i]++; tries[i] < 3+i {
					return errNotYet
				}
				return nil
			}
		}},
		{name: "fatal", command: "sleep 60", probe: func([]int) func(int, string, time.Time) error {
			return func(int, string, time.Time) error { return Fatal(errTaken) }
		}, want: "port taken"},
		{name: "exited", command: "exit 3", probe: func([]int) func(int, string, time.Time) error {
			return func(int, string, time.Time) error { return errNotYet }
		}, want: "exited: exit status 3"},
		{name: "timeout", command: "sleep 60", probe: func([]int) func(int, string, time.Time) error {
			return func(int, string, time.Time) error { return errNotYet }
		}, want: "timed out after 300ms: not yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", "sleep 60 & "+tc.command)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			p, err := StartProcess(cmd)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Kill()
			err = p.WaitReady([]string{"a", "b"}, 300*time.Millisecond, tc.probe(make([]int, 2)))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("WaitReady: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("WaitReady: %v, want an error with %q", err, tc.want)
			}
			pid := p.Pid()
			p.Kill()
			if exited, _ := p.ExitErr(); !exited {
				t.Fatal("the process runs after Kill")
			}
			// The background sleep of its group is gone too (perhaps a
			// zombie, until its new parent reaps it).
			if left := liveInGroup(t, pid); len(left) > 0 {
				t.Errorf("processes %v of the group outlived Kill", left)
			}
		})
	}
}

// liveInGroup returns the processes of process group pgid that are not
// zombies, reading /proc.
func liveInGroup(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var live []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces.
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			live = append(live, pid)
		}
	}
	return live
}

// TestLaunch: Launch tries again with fresh ports while a port was taken,
// five times at most, and not after another failure.
func TestLaunch(t *testing.T) {
	errOther := errors.New("bad config")
	for _, tc := range []struct {
		name  string
		fails []error // the results of the tries, then success
		tries int
		want  error
	}{
		{name: "first try", tries: 1},
		{name: "port taken twice", fails: []error{ErrAddrInUse, fmt.Errorf("dovecot: %w", ErrAddrInUse)}, tries: 3},
		{name: "port always taken", fails: slices.Repeat([]error{ErrAddrInUse}, 9), tries: 5, want: ErrAddrInUse},
		{name: "another error", fails: []error{ErrAddrInUse, errOther}, tries: 2, want: errOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			err := Launch(func() error {
				tries++
				if tries <= len(tc.fails) {
					return tc.fails[tries-1]
				}
				return nil
			})
			if tries != tc.tries || !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("%d tries, %v; want %d, %v", tries, err, tc.tries, tc.want)
			}
		})
	}
}
