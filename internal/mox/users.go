package mox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// localserve writes a single account, but the running server adds more
// through its control socket (Dir/ctl), which the mox command line talks
// to: "mox -config Dir/mox.conf config account add" declares the account
// in domains.conf (mox reloads it), and "mox setaccountpassword" stores the
// password's derived secrets in the account's database. Both take effect
// at once, without a restart.

// NewUser adds a fresh account to the running server and returns the name
// to log in with and its random password. Each account ("uN", with the
// single address uN@localhost) has its own mailboxes (Inbox, Archive,
// Drafts, Junk, Sent, Trash), so tests sharing a server stay isolated.
//
// mox logs in by email address, not account name: name is
// "uN@localhost". NewUser takes about 0.3 s (two runs of the mox command,
// and mox derives bcrypt and SCRAM secrets from the password).
func (s *Server) NewUser() (name, password string, err error) {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return "", "", errors.New("mox: NewUser: server stopped")
	}
	buf := make([]byte, 12)
	if _, err := rand.Read(buf); err != nil {
		return "", "", fmt.Errorf("mox: generating a password: %w", err)
	}
	password = hex.EncodeToString(buf)
	s.lastUser++
	account := "u" + strconv.Itoa(s.lastUser)
	name = account + "@localhost"
	if err := s.ctl("", "config", "account", "add", account, name); err != nil {
		return "", "", err
	}
	if err := s.ctl(password+"\n", "setaccountpassword", account); err != nil {
		return "", "", err
	}
	return name, password, nil
}

// ctl runs a mox subcommand against the running server, with stdin as its
// standard input.
func (s *Server) ctl(stdin string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"-config", s.configFile}, args...)...)
	cmd.Dir = s.Dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mox: %s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}
