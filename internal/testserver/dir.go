package testserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// OwnerFile, in a server's directory, holds the pid of the process that
// started the server.
const OwnerFile = "owner.pid"

// MakeDir creates a server's private directory, "imapkit-NAME-*", and
// records the calling process as its owner. It is created under
// os.TempDir() when that path is short (Unix socket paths under it are
// limited to 108 bytes) and every user can traverse it (the servers drop
// privileges), else under /tmp; mode 0755. Directories that earlier,
// dead owners left there are removed first (see RemoveStale).
func MakeDir(name string) (string, error) {
	parent := os.TempDir()
	if len(parent) > 40 || !othersTraverse(parent) {
		parent = "/tmp"
	}
	prefix := "imapkit-" + name + "-"
	RemoveStale(parent, prefix)
	dir, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return "", fmt.Errorf("%s: creating its directory: %w", name, err)
	}
	// Record who owns the directory, so that a later start can remove it
	// should this process die without stopping the server.
	if err := os.WriteFile(filepath.Join(dir, OwnerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("%s: %w", name, err)
	}
	// MkdirTemp makes 0700; the server's own users must traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return dir, nil
}

// othersTraverse reports whether every user can reach dir.
func othersTraverse(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// RemoveStale removes the directories named prefix* in parent whose
// owning process has died without stopping its server (a crashed or
// killed test binary; the kernel has then killed the server, which every
// harness starts with a parent-death signal). Directories without an
// owner file may be in the middle of being created and are left alone.
func RemoveStale(parent, prefix string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, prefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, OwnerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}
