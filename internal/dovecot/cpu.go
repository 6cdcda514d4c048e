package dovecot

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPUTime returns the CPU time (user plus system) that the server's
// processes have taken so far: those alive (the master, its services and
// the imap sessions, all in the master's process group) and, through the
// master's count of its waited-for children, those that have exited. It
// reads /proc (in USER_HZ, 100 per second), so its resolution is 10 ms a
// process. Compare two calls for the CPU time of a span.
func (s *Server) CPUTime() (time.Duration, error) {
	if s.proc == nil {
		return 0, errors.New("dovecot: CPUTime: server not started")
	}
	master := s.proc.Pid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("dovecot: listing /proc: %w", err)
	}
	var ticks uint64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		t, pgrp, ok := procTicks(pid)
		if ok && pgrp == master {
			ticks += t
		}
	}
	return time.Duration(ticks) * time.Second / 100, nil
}

// procTicks returns utime + stime + cutime + cstime of pid, in USER_HZ,
// and its process group.
func procTicks(pid int) (ticks uint64, pgrp int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(data)
	j := strings.LastIndexByte(s, ')')
	if j < 0 {
		return 0, 0, false
	}
	// After COMM: state ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime ...
	f := strings.Fields(s[j+1:])
	if len(f) < 15 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	for _, v := range f[11:15] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		ticks += n
	}
	return ticks, pgrp, true
}
