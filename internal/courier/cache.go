package courier

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// setupHint ends every error about missing pieces.
const setupHint = "run scripts/deps-courier.sh as root"

// cacheDir is where scripts/deps-courier.sh unpacks the server packages.
func cacheDir() string {
	root := os.Getenv("IMAPKIT_INTEROP_DIR")
	if root == "" {
		root = "/opt/imapkit-interop"
	}
	return filepath.Join(root, "courier")
}

// Paths inside the cache.
const (
	imapdBin      = "usr/bin/imapd"
	imaploginBin  = "usr/lib/courier/courier/imaplogin"
	couriertcpd   = "usr/sbin/couriertcpd"
	couriertlsBin = "usr/bin/couriertls"
	imapdConfig   = "etc/courier/imapd"
	imapdSSLConf  = "etc/courier/imapd-ssl"
	completeMark  = ".complete" // written last by deps-courier.sh
)

// Installed on the host (packages courier-authdaemon, courier-authlib-userdb
// and gamin): they do not conflict with dovecot-imapd.
const (
	authdaemond = "/usr/lib/courier/courier-authlib/authdaemond"
	authuserdb  = "/usr/lib/courier-authlib/libauthuserdb.so.0"
	makeuserdb  = "/usr/sbin/makeuserdb"
	gamServer   = "/usr/libexec/gam_server"
)

// checkInstall reports what is missing of the cache and of the helpers
// installed on the host, saying how to get it.
func checkInstall(cache string) error {
	if _, err := os.Stat(filepath.Join(cache, completeMark)); err != nil {
		return fmt.Errorf("courier: Courier-IMAP is not unpacked in %s (no %s): %s", cache, completeMark, setupHint)
	}
	var missing []string
	for _, p := range []string{imapdBin, imaploginBin, couriertcpd, couriertlsBin, imapdConfig, imapdSSLConf} {
		if _, err := os.Stat(filepath.Join(cache, p)); err != nil {
			missing = append(missing, filepath.Join(cache, p))
		}
	}
	for _, p := range []string{authdaemond, authuserdb, makeuserdb, gamServer} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("courier: Courier-IMAP is not set up (missing %s): %s", strings.Join(missing, ", "), setupHint)
	}
	return nil
}

// versionRE finds the IMAP server's version in "imapd --version", which
// prints e.g. "Courier 1.0.16 (Courier-IMAP 5.0.13)/x86_64-pc-linux-gnu/...".
var versionRE = regexp.MustCompile(`Courier-IMAP [0-9][0-9A-Za-z.]*`)

// imapdVersion asks the unpacked imapd for its version. Running it also
// shows that its libraries are installed.
func imapdVersion(cache string) (string, error) {
	bin := filepath.Join(cache, imapdBin)
	cmd := exec.Command(bin, "--version")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("courier: %s --version: %w (%s): %s", bin, err, strings.TrimSpace(string(out)), setupHint)
	}
	v := versionRE.Find(out)
	if v == nil {
		return "", errors.New("courier: no Courier-IMAP version in the output of " + bin + " --version: " + strings.TrimSpace(string(out)))
	}
	return string(v), nil
}
