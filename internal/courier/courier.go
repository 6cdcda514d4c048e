// Package courier runs private, throwaway Courier-IMAP servers for tests.
//
// Debian's courier-imap conflicts with dovecot-imapd, which the other tests
// use, so scripts/deps-courier.sh installs only Courier's libraries, its
// authentication daemon and gamin, and unpacks the server packages into a
// cache, ${IMAPKIT_INTEROP_DIR:-/opt/imapkit-interop}/courier. Courier's
// configuration and socket directories are compiled in (/etc/courier,
// /run/courier): each [Server] runs in mount and PID namespaces of its own,
// where its private directories are mounted over those two, so several
// servers (for example from test packages running in parallel) never
// collide, and stopping one kills all its processes at once. The package
// must run as root.
//
// What a server offers (Courier-IMAP 5.0.13 on Debian bookworm, with
// Debian's imapd settings):
//   - plaintext IMAP on Addr, with STARTTLS and also LOGIN without TLS,
//     and implicit TLS on TLSAddr (couriertls, GnuTLS), both on loopback;
//   - users from a userdb ([Server.NewUser]), each with a Maildir of its
//     own, checked by authdaemond;
//   - after login over TLS: IMAP4rev1 UIDPLUS CHILDREN NAMESPACE
//     THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE AUTH=PLAIN
//     ACL ACL2=UNION ENABLE UTF8=ACCEPT (without TLS the same but
//     AUTH=PLAIN); QUOTA with no limits set (GETQUOTAROOT INBOX gives root
//     "ROOT" and no resources);
//   - IDLE that pushes changes at once (IMAP_ENHANCEDIDLE=1 with gamin;
//     Debian's default reports them only every 60 s);
//   - the processes' output in Dir/courier.log ([Server.Logs]).
//
// What it lacks, compared with Dovecot: MOVE, UNSELECT, CONDSTORE (ENABLE
// CONDSTORE enables nothing), QRESYNC, ESEARCH, LITERAL+, ID, SPECIAL-USE,
// LIST-EXTENDED; SELECT sends no UIDNEXT (STATUS does); all mailboxes are
// under "INBOX." (separator "."; CREATE Foo is refused), with shared
// folders in the "#shared." and "shared." namespaces (empty here). Unknown
// or unsupported commands and arguments are answered NO "Error in IMAP
// command received by server." (not BAD). It advertises UTF8=ACCEPT but
// refuses APPEND's UTF8 data item. A failed LOGIN takes 5 s.
package courier

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/testserver"
)

// startTimeout bounds how long Start waits for both listeners to greet.
const startTimeout = 15 * time.Second

// Server is a running private Courier-IMAP instance. Create one with
// [Start] or [StartT] and release it with [Server.Stop].
type Server struct {
	// Dir is the temporary directory holding the configuration (mounted
	// over /etc/courier), the runtime directory (over /run/courier), the
	// certificate, the log and all mail (Dir/home/USER/Maildir).
	Dir string
	// Addr is the plaintext IMAP listener, "127.0.0.1:PORT". It advertises
	// STARTTLS and allows LOGIN without it.
	Addr string
	// TLSAddr is the implicit-TLS IMAP listener, "127.0.0.1:PORT".
	TLSAddr string
	// CertPEM is the server's self-signed certificate in PEM form. It is
	// valid for the DNS name "localhost" and the IP address 127.0.0.1.
	CertPEM []byte
	// CertPool is a pool that trusts CertPEM, for tls.Config.RootCAs.
	CertPool *x509.CertPool

	cache   string // the unpacked packages
	version string // "Courier-IMAP 5.0.13"
	logFile string // what the server's processes print

	proc *testserver.Process // the start script, process 1 of the namespace

	usersMu  sync.Mutex // guards lastUser and the userdb
	lastUser int        // N of the last "uN" created

	mu      sync.Mutex // guards the fields below
	stopped bool
	stopErr error
}

// StartT starts a server, failing the test (never skipping it, except
// with -short) if that is impossible, and stops the server when the test
// and its subtests finish.
func StartT(t testing.TB) *Server {
	t.Helper()
	return testserver.StartT(t, "Courier-IMAP", Start)
}

// Start starts a private Courier-IMAP instance and waits until both of its
// listeners greet. The caller must call [Server.Stop]. Should the calling
// process die without doing so, the kernel kills the server's processes.
func Start() (*Server, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("courier: Start must run as root (it mounts over /etc/courier and /run/courier in a namespace of its own)")
	}
	s := &Server{cache: cacheDir()}
	if err := checkInstall(s.cache); err != nil {
		return nil, err
	}
	var err error
	if s.version, err = imapdVersion(s.cache); err != nil {
		return nil, err
	}
	if err := s.prepare(); err != nil {
		if s.Dir != "" {
			os.RemoveAll(s.Dir)
		}
		return nil, err
	}
	if err := testserver.Launch(s.launch); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	return s, nil
}

// prepare creates the directory tree, the authdaemon configuration, the
// empty userdb and the certificate.
func (s *Server) prepare() error {
	u, err := user.Lookup("courier")
	if err != nil {
		return fmt.Errorf("courier: looking up the courier system user: %w: %s", err, setupHint)
	}
	cuid, err1 := strconv.Atoi(u.Uid)
	cgid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("courier: courier user has uid %q, gid %q", u.Uid, u.Gid)
	}
	// Traversable by the courier user and uid 65534.
	dir, err := testserver.MakeDir("courier")
	if err != nil {
		return err
	}
	s.Dir = dir
	s.logFile = filepath.Join(dir, "courier.log")
	etc := filepath.Join(dir, "etc")
	for _, d := range []string{etc, filepath.Join(dir, "run"), filepath.Join(dir, "home")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("courier: %w", err)
		}
	}
	// authdaemond creates its socket as root; the directory is Debian's.
	authdir := filepath.Join(dir, "run", "authdaemon")
	if err := os.Mkdir(authdir, 0o750); err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	if err := os.Chown(authdir, cuid, cgid); err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	rc := filepath.Join(etc, "authdaemonrc")
	conf := "# Generated by github.com/imapkit/imap/internal/courier; private test instance.\n" +
		"authmodulelist=\"authuserdb\"\n" +
		"daemons=5\n" +
		"authdaemonvar=/run/courier/authdaemon\n" +
		"DEBUG_LOGIN=0\n" +
		"DEFAULTOPTIONS=\"\"\n" +
		"LOGGEROPTS=\"\"\n"
	if err := os.WriteFile(rc, []byte(conf), 0o640); err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	if err := os.Chown(rc, 0, cgid); err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	// An empty userdb, so that userdb.dat exists before the first user.
	s.usersMu.Lock()
	err = s.appendUserdb("")
	s.usersMu.Unlock()
	if err != nil {
		return err
	}
	return s.writeCert(etc, cuid, cgid)
}

// launch picks ports, writes the start script and runs it.
func (s *Server) launch() error {
	var ports [2]int
	for i := range ports {
		for ports[i] == 0 || (i == 1 && ports[1] == ports[0]) {
			p, err := testserver.FreePort()
			if err != nil {
				return fmt.Errorf("courier: %w", err)
			}
			ports[i] = p
		}
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	script, err := s.writeStartScript(ports[0], ports[1])
	if err != nil {
		return fmt.Errorf("courier: writing the start script: %w", err)
	}
	// Start each attempt with an empty log so errors show only this attempt.
	out, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	defer out.Close()
	cmd := s.namespaceCommand(script)
	cmd.Stdout = out
	cmd.Stderr = out
	if s.proc, err = testserver.StartProcess(cmd); err != nil {
		return fmt.Errorf("courier: starting %s in new namespaces: %w", script, err)
	}
	err = s.proc.WaitReady([]string{s.Addr, s.TLSAddr}, startTimeout, func(i int, addr string, deadline time.Time) error {
		if err := s.probe(addr, i == 1, deadline); err != nil {
			return err
		}
		// A greeting alone could come from another Courier.
		ours, err := s.listening(ports[i])
		switch {
		case err != nil:
			return testserver.Fatal(err)
		case !ours:
			return testserver.Fatal(fmt.Errorf("%w: another program answers on %s", testserver.ErrAddrInUse, addr))
		}
		return nil
	})
	if err == nil {
		return nil
	}
	// Killing process 1 of the server's namespace kills every other
	// process there; the kernel reaps it once they are gone.
	s.proc.Kill()
	logs := s.Logs()
	if strings.Contains(logs, "Address already in use") || errors.Is(err, testserver.ErrAddrInUse) {
		err = fmt.Errorf("%w: %w", testserver.ErrAddrInUse, err)
	}
	return fmt.Errorf("courier: the server (%s) did not come up: %w\n%s", script, err, logs)
}

// probe connects to addr and checks the greeting.
func (s *Server) probe(addr string, useTLS bool, deadline time.Time) error {
	var cfg *tls.Config
	if useTLS {
		cfg = &tls.Config{RootCAs: s.CertPool, ServerName: "localhost"}
	}
	line, err := testserver.Greeting(addr, cfg, deadline, "z LOGOUT\r\n")
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "* OK") || !strings.Contains(line, "Courier-IMAP ready") {
		return fmt.Errorf("unexpected greeting from %s (want * OK ... Courier-IMAP ready): %q", addr, line)
	}
	return nil
}

// Version returns the server's name and version, as its imapd reports
// them, for example "Courier-IMAP 5.0.13".
func (s *Server) Version() string { return s.version }

// Logs returns what the server's processes (authdaemond, couriertcpd,
// couriertls, imaplogin, imapd) have printed, the last 64 KiB of it, for
// failure messages. It includes a line per login and logout.
func (s *Server) Logs() string {
	data, err := os.ReadFile(s.logFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const maxLog = 64 << 10
	if len(data) > maxLog {
		data = append([]byte("...\n"), data[len(data)-maxLog:]...)
	}
	return fmt.Sprintf("--- %s ---\n%s", s.logFile, data)
}

// Stop shuts the server down, kills every process it started and removes
// Dir. It is safe to call more than once; later calls return the first
// call's result.
//
// Courier's processes ignore SIGTERM there (process 1 of a PID namespace
// gets no signal it does not handle), and none holds state worth a
// graceful end: Stop kills the namespace's process 1 with SIGKILL, which
// ends the whole namespace.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.stopErr
	}
	s.stopped = true
	var errs []error
	if exited, err := s.proc.ExitErr(); exited {
		errs = append(errs, fmt.Errorf("courier: the server in %s had stopped before Stop: %v\n%s", s.Dir, err, s.Logs()))
	}
	s.proc.Kill() // process 1 of the namespace: every process there dies with it
	if err := os.RemoveAll(s.Dir); err != nil {
		errs = append(errs, fmt.Errorf("courier: removing %s: %w", s.Dir, err))
	}
	s.stopErr = errors.Join(errs...)
	return s.stopErr
}
