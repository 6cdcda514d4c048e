// Package cyrus runs private, throwaway Cyrus IMAP servers for tests.
//
// Each [Server] lives entirely in its own temporary directory, listens on
// loopback ports chosen at start and runs in PID and mount namespaces of
// its own, so several servers (for example from test packages running in
// parallel) never collide, and none outlives the test binary. Cyrus is
// not installed on the machine, because Debian's cyrus-imapd conflicts
// with dovecot-imapd: scripts/deps-cyrus.sh, run once as root, installs
// the libraries Cyrus needs and unpacks Debian 12's cyrus-common and
// cyrus-imapd packages into ${IMAPKIT_INTEROP_DIR:-/opt/imapkit-interop}/cyrus,
// where the servers run from. Start must run as root: Cyrus switches to
// the nobody user, and the namespaces need CAP_SYS_ADMIN.
//
// What a server offers (Cyrus IMAP 3.6.1 on Debian bookworm):
//   - plaintext IMAP with STARTTLS on Addr and implicit TLS on TLSAddr;
//     LOGIN and AUTHENTICATE PLAIN, LOGIN and CRAM-MD5, also without TLS;
//     SCRAM-SHA-1 and SCRAM-SHA-256 are advertised too (and their -PLUS
//     variants over TLS);
//   - throwaway users ([Server.NewUser]) in a sasldb; INBOX is created,
//     without quota, at a user's first login; no delay after a failed
//     login (Cyrus normally waits 3 s);
//   - Cyrus 3's alternate namespace: hierarchy separator "/", personal
//     folders beside INBOX, other users' under "Other Users/" and shared
//     ones under "Shared Folders/" (ACLs keep users apart);
//   - IDLE pushed by idled (a change reaches an idling session within
//     about 50 ms), CONDSTORE, QRESYNC, MOVE, UIDPLUS, QUOTA, METADATA,
//     SPECIAL-USE, LIST-EXTENDED, LIST-STATUS, ESEARCH, SORT, THREAD,
//     BINARY, CATENATE, URLAUTH, COMPRESS=DEFLATE, OBJECTID and Cyrus's
//     other defaults; after login the CAPABILITY list also holds
//     LOGINDISABLED (and, over TLS, the AUTH= mechanisms);
//   - Cyrus's syslog messages in Dir/cyrus.log, and what its processes
//     print in Dir/master.out ([Server.Logs]).
package cyrus

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
	"syscall"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/testserver"
)

// startTimeout bounds how long Start waits for both listeners to greet.
const startTimeout = 15 * time.Second

// stopTimeout bounds how long Stop waits for master to shut down after
// SIGTERM before killing what is left.
const stopTimeout = 5 * time.Second

// Server is a running private Cyrus instance. Create one with [Start] or
// [StartT] and release it with [Server.Stop].
type Server struct {
	// Dir is the temporary directory holding the configuration, the
	// certificate, the users, the logs and all mail.
	Dir string
	// Addr is the plaintext IMAP listener, "127.0.0.1:PORT". It advertises
	// STARTTLS and allows plaintext LOGIN.
	Addr string
	// TLSAddr is the implicit-TLS IMAP listener, "127.0.0.1:PORT".
	TLSAddr string
	// CertPEM is the server's self-signed certificate in PEM form. It is
	// valid for the DNS name "localhost" and the IP address 127.0.0.1.
	CertPEM []byte
	// CertPool is a pool that trusts CertPEM, for tls.Config.RootCAs.
	CertPool *x509.CertPool

	in          *install
	saslpasswd2 string
	uid, gid    int // nobody, nogroup
	syslog      *syslogReceiver

	proc   *testserver.Process // the sandbox shell (see sandbox.go)
	master int                 // master's pid

	usersMu  sync.Mutex // guards lastUser and sasldb2
	lastUser int

	mu      sync.Mutex // guards the fields below
	stopped bool
	stopErr error
}

// StartT starts a server, failing the test (never skipping it, except with
// -short) if that is impossible, and stops the server when the test and
// its subtests finish.
func StartT(t testing.TB) *Server {
	t.Helper()
	return testserver.StartT(t, "Cyrus IMAP", Start)
}

// Start starts a private Cyrus instance and waits until both of its
// listeners greet. The caller must call [Server.Stop]. Should the calling
// process die without doing so, the kernel kills the server's processes.
func Start() (*Server, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("cyrus: Start must run as root (Cyrus switches to the nobody user; the server runs in namespaces of its own)")
	}
	in, err := findInstall()
	if err != nil {
		return nil, err
	}
	s := &Server{in: in}
	if s.saslpasswd2, err = findSaslpasswd2(); err != nil {
		return nil, err
	}
	if s.uid, s.gid, err = nobody(); err != nil {
		return nil, err
	}
	if err := s.prepare(); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	if err := s.startSyslog(); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	if err := testserver.Launch(s.launch); err != nil {
		s.syslog.close()
		os.RemoveAll(s.Dir)
		return nil, err
	}
	return s, nil
}

// nobody returns the ids of the user and group Cyrus runs as.
func nobody() (uid, gid int, err error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0, fmt.Errorf("cyrus: looking up user nobody: %w", err)
	}
	g, err := user.LookupGroup("nogroup")
	if err != nil {
		return 0, 0, fmt.Errorf("cyrus: looking up group nogroup: %w", err)
	}
	if uid, err = strconv.Atoi(u.Uid); err != nil {
		return 0, 0, fmt.Errorf("cyrus: uid %q of nobody: %w", u.Uid, err)
	}
	if gid, err = strconv.Atoi(g.Gid); err != nil {
		return 0, 0, fmt.Errorf("cyrus: gid %q of nogroup: %w", g.Gid, err)
	}
	return uid, gid, nil
}

// prepare creates the directory tree, the certificate and imapd.conf.
func (s *Server) prepare() error {
	// Short (Dir/config/socket holds Unix sockets) and traversable by
	// nobody.
	dir, err := testserver.MakeDir("cyrus")
	s.Dir = dir // for Start to remove, even on error
	if err != nil {
		return err
	}
	// Cyrus, as nobody, writes below these.
	for _, d := range []string{
		configSub, configSub + "/db", configSub + "/socket", configSub + "/proc", configSub + "/lock",
		spoolSub, sieveSub,
	} {
		p := filepath.Join(dir, d)
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("cyrus: %w", err)
		}
		if err := os.Chown(p, s.uid, s.gid); err != nil {
			return fmt.Errorf("cyrus: %w", err)
		}
	}
	// The mount point of the private /dev (see sandbox.go).
	if err := os.Mkdir(filepath.Join(dir, "dev"), 0o755); err != nil {
		return fmt.Errorf("cyrus: %w", err)
	}
	certPEM, keyPEM, err := testserver.SelfSignedCert("imapkit test Cyrus")
	if err != nil {
		return fmt.Errorf("cyrus: generating certificate: %w", err)
	}
	s.CertPEM = certPEM
	s.CertPool = x509.NewCertPool()
	if !s.CertPool.AppendCertsFromPEM(certPEM) {
		return errors.New("cyrus: generated certificate does not parse")
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644); err != nil {
		return fmt.Errorf("cyrus: %w", err)
	}
	key := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		return fmt.Errorf("cyrus: %w", err)
	}
	if err := os.Chown(key, s.uid, s.gid); err != nil {
		return fmt.Errorf("cyrus: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, imapdConf), []byte(s.imapdConfig()), 0o644); err != nil {
		return fmt.Errorf("cyrus: writing config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, sandboxFile), []byte(sandboxScript), 0o644); err != nil {
		return fmt.Errorf("cyrus: %w", err)
	}
	return nil
}

// launch picks ports, writes cyrus.conf and starts master.
func (s *Server) launch() error {
	port, err := testserver.FreePort()
	if err != nil {
		return fmt.Errorf("cyrus: %w", err)
	}
	tlsPort := port
	for tlsPort == port {
		if tlsPort, err = testserver.FreePort(); err != nil {
			return fmt.Errorf("cyrus: %w", err)
		}
	}
	conf := filepath.Join(s.Dir, cyrusConf)
	if err := os.WriteFile(conf, []byte(s.cyrusConfig(port, tlsPort)), 0o644); err != nil {
		return fmt.Errorf("cyrus: writing config: %w", err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	// Start each attempt with empty logs so errors show only this attempt.
	_ = os.Truncate(filepath.Join(s.Dir, logName), 0)
	outName := filepath.Join(s.Dir, masterOut)
	out, err := os.OpenFile(outName, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cyrus: %w", err)
	}
	defer out.Close()
	if err := out.Chown(s.uid, s.gid); err != nil {
		return fmt.Errorf("cyrus: %w", err)
	}

	cmd := s.sandboxCommand(filepath.Join(s.in.bin, "master"),
		"-C", filepath.Join(s.Dir, imapdConf),
		"-M", conf,
		"-p", filepath.Join(s.Dir, configSub, "master.pid"),
		"-L", outName)
	cmd.Stdout = out
	cmd.Stderr = out
	s.master = 0
	if s.proc, err = testserver.StartProcess(cmd); err != nil {
		return fmt.Errorf("cyrus: starting %s (needs root and CAP_SYS_ADMIN for its PID and mount namespaces): %w", s.in.bin+"/master", err)
	}
	err = s.proc.WaitReady([]string{s.Addr, s.TLSAddr}, startTimeout, func(i int, addr string, deadline time.Time) error {
		err := s.probe(addr, i == 1, deadline)
		if log, rerr := os.ReadFile(filepath.Join(s.Dir, logName)); err != nil && rerr == nil && strings.Contains(string(log), "unable to bind") {
			return testserver.Fatal(fmt.Errorf("a listener could not bind: %w", err))
		}
		return err
	})
	if err == nil {
		if s.master = s.masterPID(); s.master != 0 {
			return nil
		}
		err = errors.New("master process not found")
	}
	s.proc.Kill()
	logs := s.Logs()
	if strings.Contains(logs, "unable to bind") {
		err = fmt.Errorf("%w: %w", testserver.ErrAddrInUse, err)
	}
	return fmt.Errorf("cyrus: master (%s) did not come up: %w\n%s", conf, err, logs)
}

// probe connects to addr and checks the greeting, which names this
// instance's servername.
func (s *Server) probe(addr string, useTLS bool, deadline time.Time) error {
	var cfg *tls.Config
	if useTLS {
		cfg = &tls.Config{RootCAs: s.CertPool, ServerName: "localhost"}
	}
	line, err := testserver.Greeting(addr, cfg, deadline, "z LOGOUT\r\n")
	if err != nil {
		return err
	}
	want := " " + s.servername() + " Cyrus IMAP"
	if !strings.HasPrefix(line, "* OK") || !strings.Contains(line, want) {
		return fmt.Errorf("unexpected greeting from %s (want * OK ...%s...): %q", addr, want, line)
	}
	return nil
}

// Version returns the version of Cyrus the server runs, such as
// "Cyrus IMAP 3.6.1", as the master binary reports it.
func (s *Server) Version() string { return s.in.version }

// Stop shuts the server down: SIGTERM to master, which ends its services
// and exits, then SIGKILL to whatever is left after a few seconds. It
// removes Dir. It is safe to call more than once; later calls return the
// first call's result.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.stopErr
	}
	s.stopped = true
	var errs []error
	if exited, err := s.proc.ExitErr(); exited {
		errs = append(errs, fmt.Errorf("cyrus: master (config %s) had exited before Stop: %v\n%s", s.Dir, err, s.Logs()))
	} else if s.proc != nil {
		_ = syscall.Kill(s.master, syscall.SIGTERM)
		select {
		case <-s.proc.Exited():
		case <-time.After(stopTimeout):
		}
		// Killing the sandbox shell, the init of the server's PID
		// namespace, has the kernel kill every process of the server.
		s.proc.Kill()
	}
	// The kernel has killed what was left in the PID namespace when its
	// init exited; check.
	if left := s.processes(); len(left) > 0 {
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		errs = append(errs, fmt.Errorf("cyrus: processes %v of the server in %s outlived it", left, s.Dir))
	}
	s.syslog.close()
	if err := os.RemoveAll(s.Dir); err != nil {
		errs = append(errs, fmt.Errorf("cyrus: removing %s: %w", s.Dir, err))
	}
	s.stopErr = errors.Join(errs...)
	return s.stopErr
}
