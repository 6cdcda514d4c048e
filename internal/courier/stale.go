package courier

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirPrefix starts the name of every server's temporary directory.
const dirPrefix = "imapkit-courier-"

// ownerFile, in a server's directory, holds the pid of the process that
// started the server.
const ownerFile = "owner.pid"

// removeStale removes the directories of servers whose owning process has
// died without stopping them (a crashed or killed test binary; the kernel
// has then killed the server's namespace). Directories without an owner
// file may be in the middle of being created and are left alone.
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

// tempParent returns the directory to create server directories in:
// os.TempDir() if every user can traverse it (Courier's processes run as
// the courier user and as uid 65534), else /tmp.
func tempParent() string {
	dir := os.TempDir()
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}
