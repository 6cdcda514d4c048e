package mox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// PinnedVersion is the mox release this package is written for and
// scripts/deps-mox.sh builds.
const PinnedVersion = "v0.0.15"

// binaryPath returns where scripts/deps-mox.sh puts the mox binary:
// $IMAPKIT_INTEROP_DIR/mox/mox, by default /opt/imapkit-interop/mox/mox.
func binaryPath() string {
	dir := os.Getenv("IMAPKIT_INTEROP_DIR")
	if dir == "" {
		dir = "/opt/imapkit-interop"
	}
	return filepath.Join(dir, "mox", "mox")
}

// findBinary returns the absolute path of the mox binary and the version
// it reports, failing unless the binary is there and is the pinned
// version. Either failure is fixed by running scripts/deps-mox.sh.
func findBinary() (path, version string, err error) {
	path, err = filepath.Abs(binaryPath())
	if err != nil {
		return "", "", fmt.Errorf("mox: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		if err == nil {
			err = errors.New("not an executable file")
		}
		return "", "", fmt.Errorf("mox: no mox binary at %s (%v): run scripts/deps-mox.sh to build mox %s there (set IMAPKIT_INTEROP_DIR to use another directory than /opt/imapkit-interop)", path, err, PinnedVersion)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "version").Output()
	if err != nil {
		return "", "", fmt.Errorf("mox: running %s version: %v: run scripts/deps-mox.sh to rebuild it", path, err)
	}
	version = parseVersion(string(out))
	if version != PinnedVersion {
		return "", "", fmt.Errorf("mox: %s is version %q, want %s: run scripts/deps-mox.sh to rebuild it", path, version, PinnedVersion)
	}
	return path, version, nil
}

// parseVersion takes the first line of "mox version" ("v0.0.15-go1.26.8",
// the module version and the Go toolchain that built it) and returns the
// module version.
func parseVersion(out string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	line = strings.TrimSpace(line)
	if i := strings.Index(line, "-go"); i >= 0 {
		line = line[:i]
	}
	return line
}

// Version returns the server's name and version as its binary reports
// them, without the Go toolchain: "mox v0.0.15".
func (s *Server) Version() string {
	return "mox " + s.version
}
