package cyrus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// install is an unpacked copy of the Debian packages cyrus-common and
// cyrus-imapd, made by scripts/deps-cyrus.sh.
type install struct {
	root    string // the cache directory, holding usr/, etc/, ...
	bin     string // root/usr/lib/cyrus/bin: master, imapd, idled, ...
	libDir  string // root/usr/lib/x86_64-linux-gnu: libcyrus*.so, for LD_LIBRARY_PATH
	version string // "Cyrus IMAP 3.6.1"
	build   string // what master -V prints: "cyrus-imapd 3.6.1-Debian-3.6.1-4+deb12u5"
}

// markerFile, in the cache, is written last by scripts/deps-cyrus.sh.
const markerFile = ".imapkit-complete"

// cacheDir is where scripts/deps-cyrus.sh unpacks Cyrus.
func cacheDir() string {
	base := os.Getenv("IMAPKIT_INTEROP_DIR")
	if base == "" {
		base = "/opt/imapkit-interop"
	}
	return filepath.Join(base, "cyrus")
}

var (
	installOnce sync.Once
	installInfo *install
	installErr  error
)

// findInstall locates and checks the unpacked Cyrus once per process.
func findInstall() (*install, error) {
	installOnce.Do(func() { installInfo, installErr = loadInstall(cacheDir()) })
	return installInfo, installErr
}

// setupHint ends every error about a missing or broken cache.
const setupHint = "run scripts/deps-cyrus.sh as root (it unpacks Cyrus IMAP into ${IMAPKIT_INTEROP_DIR:-/opt/imapkit-interop}/cyrus)"

func loadInstall(root string) (*install, error) {
	if _, err := os.Stat(filepath.Join(root, markerFile)); err != nil {
		return nil, fmt.Errorf("cyrus: no complete Cyrus IMAP cache in %s (%v): %s", root, err, setupHint)
	}
	in := &install{
		root:   root,
		bin:    filepath.Join(root, "usr/lib/cyrus/bin"),
		libDir: filepath.Join(root, "usr/lib/x86_64-linux-gnu"),
	}
	// master's cyrus.conf splits command lines at white space.
	if strings.ContainsAny(root, " \t\"'") {
		return nil, fmt.Errorf("cyrus: the cache path %q contains white space or quotes, which cyrus.conf cannot hold; set IMAPKIT_INTEROP_DIR elsewhere", root)
	}
	for _, b := range []string{"master", "imapd", "idled", "ctl_cyrusdb"} {
		if _, err := os.Stat(filepath.Join(in.bin, b)); err != nil {
			return nil, fmt.Errorf("cyrus: %v: %s", err, setupHint)
		}
	}
	// The services run as nobody, which must reach the binaries.
	if err := othersCanTraverse(in.bin); err != nil {
		return nil, fmt.Errorf("cyrus: Cyrus drops privileges to nobody, which cannot reach %s: %w; set IMAPKIT_INTEROP_DIR to a traversable place and %s", in.bin, err, setupHint)
	}
	// master -V also proves that the shared libraries load.
	cmd := exec.Command(filepath.Join(in.bin, "master"), "-V")
	cmd.Env = append(os.Environ(), in.ldLibraryPath())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("cyrus: %s -V: %v: %s\n(libraries missing? %s)", filepath.Join(in.bin, "master"), err, strings.TrimSpace(string(out)), setupHint)
	}
	in.build = strings.TrimSpace(string(out))
	in.version, err = parseVersion(in.build)
	if err != nil {
		return nil, err
	}
	return in, nil
}

// parseVersion turns master -V's "cyrus-imapd 3.6.1-Debian-3.6.1-4+deb12u5"
// into "Cyrus IMAP 3.6.1".
func parseVersion(build string) (string, error) {
	f := strings.Fields(build)
	if len(f) < 2 || !strings.HasPrefix(f[0], "cyrus-imapd") {
		return "", fmt.Errorf("cyrus: unexpected version %q from master -V", build)
	}
	v, _, _ := strings.Cut(f[1], "-")
	return "Cyrus IMAP " + v, nil
}

// ldLibraryPath is the environment entry that lets Cyrus's binaries find
// libcyrus*.so in the cache.
func (in *install) ldLibraryPath() string {
	p := in.libDir
	if old := os.Getenv("LD_LIBRARY_PATH"); old != "" {
		p += ":" + old
	}
	return "LD_LIBRARY_PATH=" + p
}

// othersCanTraverse reports an error unless every directory from / to dir
// is searchable by users other than its owner and group (as nobody is).
func othersCanTraverse(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", d)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return &fs.PathError{Op: "traverse", Path: d, Err: errors.New("mode " + fi.Mode().Perm().String() + " lacks o+x")}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
