package courier

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// pids returns the (host) process ids of every process in the server's
// PID namespace, process 1 (the start script) included, reading /proc.
func (s *Server) pids() ([]int, error) {
	if s.proc == nil {
		return nil, errors.New("courier: server not started")
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", s.proc.Pid()))
	if err != nil {
		return nil, fmt.Errorf("courier: the server's PID namespace: %w", err)
	}
	return pidsIn(ns)
}

// pidsIn returns the processes whose PID namespace is ns ("pid:[INODE]").
func pidsIn(ns string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("courier: listing /proc: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && l == ns {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// listening reports whether a process of the server listens on the
// loopback TCP port: a port chosen free may have been taken by another
// program before couriertcpd bound it, and then that program answers.
func (s *Server) listening(port int) (bool, error) {
	pids, err := s.pids()
	if err != nil {
		return false, err
	}
	inodes := map[string]bool{}
	for _, pid := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if ino, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
				inodes[strings.TrimSuffix(ino, "]")] = true
			}
		}
	}
	hexPort := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		// "sl local_address rem_address st ... uid timeout inode"
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !strings.HasSuffix(f[1], hexPort) {
				continue
			}
			if inodes[f[9]] {
				return true, nil
			}
		}
	}
	return false, nil
}
