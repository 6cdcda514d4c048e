package cyrus

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Users live in Dir/sasldb2, a Berkeley DB that imapd reads through the
// SASL sasldb auxprop plugin, in the realm named by servername. saslpasswd2
// (Debian package sasl2-bin) writes it.

// NewUser creates a fresh user ("u1", "u2", ...) with a random password, so
// that tests sharing a server stay isolated. The user can log in as soon as
// NewUser returns; INBOX is created at the first login.
func (s *Server) NewUser() (name, password string, err error) {
	var buf [8]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", "", fmt.Errorf("cyrus: generating a password: %w", err)
	}
	password = hex.EncodeToString(buf[:])
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	s.lastUser++
	name = "u" + strconv.Itoa(s.lastUser)
	if err := s.addUser(name, password); err != nil {
		return "", "", err
	}
	return name, password, nil
}

// addUser adds a user to sasldb2. imapd opens the database at every
// login, so saslpasswd2 writes a copy that then replaces it at once: a
// login never reads a half-written database. The caller holds usersMu.
func (s *Server) addUser(name, password string) error {
	db := filepath.Join(s.Dir, sasldb)
	tmp := db + ".new"
	os.Remove(tmp)
	if err := copyFile(db, tmp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("cyrus: adding user %s: %w", name, err)
	}
	cmd := exec.Command(s.saslpasswd2, "-p", "-c", "-f", tmp, "-u", s.servername(), name)
	cmd.Stdin = strings.NewReader(password)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cyrus: %s: %v: %s", strings.Join(cmd.Args, " "), err, out)
	}
	// imapd runs as nobody; the passwords are throwaway.
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("cyrus: adding user %s: %w", name, err)
	}
	if err := os.Rename(tmp, db); err != nil {
		return fmt.Errorf("cyrus: adding user %s: %w", name, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// findSaslpasswd2 finds saslpasswd2, which lives in /usr/sbin.
func findSaslpasswd2() (string, error) {
	if p, err := exec.LookPath("saslpasswd2"); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
		p := filepath.Join(dir, "saslpasswd2")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("cyrus: saslpasswd2 not found (Debian package sasl2-bin): %s", setupHint)
}
