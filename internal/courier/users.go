package courier

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// mailUID and mailGID own every user's mail (nobody and nogroup on
// Debian): imapd switches to them after login.
const mailUID, mailGID = 65534, 65534

// NewUser adds a fresh user ("u1", "u2", ...) with a random password and
// an empty Maildir, so that tests sharing a server stay isolated. The user
// can log in as soon as NewUser returns, also while the server runs:
// authdaemond reopens the userdb database when it changes.
func (s *Server) NewUser() (name, password string, err error) {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	s.lastUser++
	name = "u" + strconv.Itoa(s.lastUser)
	buf := make([]byte, 8)
	if _, err := rand.Read(buf); err != nil {
		return "", "", fmt.Errorf("courier: generating a password: %w", err)
	}
	password = hex.EncodeToString(buf)

	home := filepath.Join(s.Dir, "home", name)
	maildir := filepath.Join(home, "Maildir")
	for _, d := range []string{home, maildir, maildir + "/cur", maildir + "/new", maildir + "/tmp"} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return "", "", fmt.Errorf("courier: creating the Maildir of %s: %w", name, err)
		}
		if err := os.Chown(d, mailUID, mailGID); err != nil {
			return "", "", fmt.Errorf("courier: %w", err)
		}
	}
	// One userdb line: fields ending in "pw" go to userdbshadow.dat.
	// {SHA} is base64(SHA-1(password)), which authlib checks.
	sum := sha1.Sum([]byte(password))
	line := fmt.Sprintf("%s\tuid=%d|gid=%d|home=%s|mail=%s|systempw={SHA}%s\n",
		name, mailUID, mailGID, home, maildir, base64.StdEncoding.EncodeToString(sum[:]))
	if err := s.appendUserdb(line); err != nil {
		return "", "", err
	}
	return name, password, nil
}

// appendUserdb appends lines to the userdb source file and rebuilds the
// databases (userdb.dat, userdbshadow.dat) that authuserdb reads. The caller
// holds usersMu.
func (s *Server) appendUserdb(lines string) error {
	userdb := filepath.Join(s.Dir, "etc", "userdb")
	f, err := os.OpenFile(userdb, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	_, err = f.WriteString(lines)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("courier: writing %s: %w", userdb, err)
	}
	// makeuserdb writes each database to a temporary file and renames it.
	cmd := exec.Command(makeuserdb, "-f", userdb)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("courier: %s -f %s: %w: %s", makeuserdb, userdb, err, strings.TrimSpace(string(out)))
	}
	return nil
}
