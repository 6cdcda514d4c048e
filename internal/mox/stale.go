package mox

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// dirPrefix starts the name of every server's temporary directory.
const dirPrefix = "imapkit-mox-"

// ownerFile, in a server's directory, holds the pid of the process that
// started the server.
const ownerFile = "owner.pid"

// removeStale removes the directories of servers whose owning process has
// died without stopping them (a crashed or killed test binary; the kernel
// has then killed mox, see Pdeathsig in launch). Directories without an
// owner file may be in the middle of being created and are left alone.
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
