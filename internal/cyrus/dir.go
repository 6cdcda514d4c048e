package cyrus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirPrefix starts the name of every server's temporary directory.
const dirPrefix = "imapkit-cyrus-"

// ownerFile, in a server's directory, holds the pid of the process that
// started the server.
const ownerFile = "owner.pid"

// makeDir creates a server's directory, traversable by nobody, and
// records who owns it.
func makeDir() (string, error) {
	// Unix socket paths (Cyrus's idle sockets in Dir/config/socket) are
	// limited to 108 bytes, so keep the directory short even when TMPDIR
	// is long; and nobody must be able to reach it.
	parent := os.TempDir()
	if len(parent) > 40 || othersCanTraverse(parent) != nil {
		parent = "/tmp"
	}
	removeStale(parent)
	dir, err := os.MkdirTemp(parent, dirPrefix)
	if err != nil {
		return "", fmt.Errorf("cyrus: creating temp dir: %w", err)
	}
	// Record who owns the directory, so that a later Start can remove it
	// should this process die without calling Stop.
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return dir, fmt.Errorf("cyrus: %w", err)
	}
	// MkdirTemp makes 0700; nobody must traverse.
	if err := os.Chmod(dir, 0o755); err != nil {
		return dir, fmt.Errorf("cyrus: %w", err)
	}
	return dir, nil
}

// removeStale removes the directories of servers whose owning process has
// died without stopping them (a crashed or killed test binary; the kernel
// has then killed the server's processes, see sandbox.go). Directories
// without an owner file may be in the middle of being created and are
// left alone.
func removeStale(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, dirPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, ownerFile))
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
