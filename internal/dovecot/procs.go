package dovecot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// IMAPPIDs returns the process ids of the imap processes of this server
// that currently serve user over the network listeners (sessions from
// [Server.StreamCommand] are not included). With verbose_proctitle each
// such process is titled "dovecot/imap [USER IP STATE]"; processes still
// logging in have no user in their title yet.
func (s *Server) IMAPPIDs(user string) ([]int, error) {
	var pids []int
	err := s.eachIMAP("IMAPPIDs", func(pid int, title string) {
		if titleUser(title) == user {
			pids = append(pids, pid)
		}
	})
	return pids, err
}

// eachIMAP calls fn with the pid and title of every live imap process of
// this server (a child of its master), reading /proc.
func (s *Server) eachIMAP(caller string, fn func(pid int, title string)) error {
	if s.proc == nil {
		return errors.New("dovecot: " + caller + ": server not started")
	}
	master := s.proc.Pid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("dovecot: listing /proc: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); !ok || st.ppid != master || st.state == "Z" {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || !strings.HasSuffix(exe, "/dovecot/imap") {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		fn(pid, string(cmdline))
	}
	return nil
}

// titleUser extracts USER from an imap process title
// "dovecot/imap [USER IP STATE]", or returns "".
func titleUser(cmdline string) string {
	cmdline = strings.TrimRight(cmdline, "\x00 ")
	_, rest, ok := strings.Cut(cmdline, "[")
	if !ok {
		return ""
	}
	user, _, ok := strings.Cut(rest, " ")
	if !ok {
		return ""
	}
	return user
}

// procStat holds the fields of /proc/PID/stat that this package uses.
type procStat struct {
	comm  string // executable name, truncated to 15 bytes
	state string // R, S, D, Z, ...
	ppid  int
	pgrp  int
}

// readStat parses /proc/PID/stat.
func readStat(pid int) (procStat, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// "PID (COMM) STATE PPID PGRP ..."; COMM may contain spaces and
	// parentheses, so split at the first '(' and the last ')'.
	s := string(data)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return procStat{}, false
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 3 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{comm: s[i+1 : j], state: f[0], ppid: ppid, pgrp: pgrp}, true
}

// KillIMAP kills (SIGKILL) the imap processes serving user, as listed by
// [Server.IMAPPIDs], to simulate the server side of a session dying. Their
// clients see the connection close. KillIMAP returns once the processes
// are dead. It fails if there is no such process.
func (s *Server) KillIMAP(user string) error {
	pids, err := s.IMAPPIDs(user)
	if err != nil {
		return err
	}
	if len(pids) == 0 {
		return fmt.Errorf("dovecot: KillIMAP: no imap process serves user %q (config %s)", user, s.ConfigFile)
	}
	var errs []error
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("dovecot: killing imap process %d of user %q: %w", pid, user, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for {
			st, ok := readStat(pid)
			if !ok || st.state == "Z" || st.ppid != s.proc.Pid() {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("dovecot: imap process %d of user %q still alive 5s after SIGKILL", pid, user)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// IMAPSessions counts the imap processes of this server that serve a
// logged-in user over the network listeners, and among them those whose
// title says they are running IDLE ("dovecot/imap [USER IP IDLE]"; Dovecot
// shows the command in progress there, and IDLE lasts until DONE). It reads
// /proc, about a millisecond per thousand processes.
func (s *Server) IMAPSessions() (total, idling int, err error) {
	err = s.eachIMAP("IMAPSessions", func(_ int, title string) {
		if titleUser(title) == "" {
			return
		}
		total++
		if titleState(title) == "IDLE" {
			idling++
		}
	})
	return total, idling, err
}

// titleState extracts STATE from an imap process title
// "dovecot/imap [USER IP STATE]", or returns "".
func titleState(cmdline string) string {
	cmdline = strings.TrimRight(cmdline, "\x00 ")
	_, rest, ok := strings.Cut(cmdline, "[")
	if !ok {
		return ""
	}
	rest, _, _ = strings.Cut(rest, "]")
	f := strings.Fields(rest)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}
