// Package dovecot runs private, throwaway Dovecot IMAP servers for tests and
// benchmarks.
//
// Each [Server] lives entirely in its own temporary directory, listens on
// loopback ports chosen at start, and has its own base_dir, state_dir and
// instance_name, so several servers (for example from test packages running
// in parallel) never collide. The package needs Dovecot 2.3's dovecot,
// doveadm and imap binaries (Debian package dovecot-imapd) and must run as root, because
// Dovecot's services switch to the dovecot and dovenull users.
//
// What a server offers (Dovecot 2.3.19 on Debian bookworm):
//   - plaintext IMAP with STARTTLS on Addr and implicit TLS on TLSAddr;
//     LOGIN and AUTHENTICATE PLAIN, LOGIN and CRAM-MD5, also without TLS;
//   - users from a passwd-file ([Server.NewUser], [Server.AddUser]), each
//     with a Maildir++ store; one namespace, hierarchy separator "/";
//   - NOTIFY (mailbox_list_index), QUOTA (GETQUOTAROOT INBOX reports
//     quota root "User quota", 1 GiB of storage), CONDSTORE, QRESYNC,
//     MOVE, IDLE and Dovecot's other defaults;
//   - no login penalty after failed logins (Dovecot normally delays the
//     next login from that IP by up to 15 s), although a failed login
//     still takes about 0.5 s;
//   - Dovecot's log in Dir/dovecot.log.
package dovecot

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/testserver"
)

// startTimeout bounds how long Start waits for both listeners to greet.
const startTimeout = 15 * time.Second

// Config holds optional settings for a server. The zero value is valid.
type Config struct {
	// MaxUserIPConnections is Dovecot's mail_max_userip_connections, the
	// number of simultaneous connections one user may have from one IP
	// address. Zero means 1000 (Dovecot's own default is 10).
	MaxUserIPConnections int

	// IdleNotifyInterval is Dovecot's imap_idle_notify_interval, how often
	// an idling client gets "* OK Still here". Zero keeps Dovecot's default
	// (2 minutes). Dovecot works in whole seconds; the value is rounded up.
	IdleNotifyInterval time.Duration

	// DisableIDLE removes IDLE from the advertised capabilities, both before
	// and after login, to exercise clients' polling fallbacks. It does so
	// with an explicit imap_capability, which imap-login advertises too, so
	// the pre-login list is then the full post-login one (without IDLE).
	// Dovecot still accepts the IDLE command if a client sends it anyway.
	DisableIDLE bool

	// MaxSessions is how many IMAP sessions, all users together, the
	// server must hold at once. Zero means about 1000. Every session is one
	// imap process, and Dovecot's imap service has its own process_limit
	// (1024 by default), which default_process_limit does not override:
	// MaxSessions sets that limit, and raises default_process_limit and
	// default_client_limit (which size the login, auth, anvil, stats and
	// log services) to match. A session costs Dovecot about 0.9 MB of
	// memory, and its log process a file descriptor per process: Dovecot
	// inherits the caller's open-file limit, which must allow about twice
	// MaxSessions (see [Server.IMAPSessions] to count the sessions).
	MaxSessions int

	// LoginProcesses, when positive, runs imap-login in Dovecot's
	// high-performance mode: that many long-lived login processes
	// (process_min_avail, service_count = 0) each serve many connections,
	// instead of a new process for every connection, which about halves
	// the cost of a plaintext login (a new session then costs mostly its
	// imap process). Zero keeps Dovecot's default. TLS sessions are then
	// proxied by the shared processes.
	LoginProcesses int

	// IdleCheckInterval is Dovecot's mailbox_idle_check_interval: how often
	// an idling session looks at its mailbox when inotify cannot wake it.
	// Zero keeps Dovecot's default (30 s); Dovecot works in whole seconds,
	// and the value is rounded up. Every imap process of the machine runs
	// as the dovecot user, and fs.inotify.max_user_instances (128 by
	// default) bounds the inotify instances of a user: past about 128
	// idling sessions, on all Dovecot instances together, new ones fall
	// back to this polling, so that with the default a pushed EXISTS may
	// take up to 30 s. Many-session tests set it to a second.
	IdleCheckInterval time.Duration

	// OAuth2, when set, adds Dovecot's oauth2 passdb: OAuth 2.0 access
	// tokens are checked at an introspection endpoint (RFC 7662).
	OAuth2 *OAuth2
}

// OAuth2 configures Dovecot's oauth2 passdb.
type OAuth2 struct {
	// IntrospectionURL is where Dovecot POSTs "token=…"; the reply must be
	// JSON with "active": true and "username" equal to the SASL user.
	// Dovecot ignores expiry: a token is refused only once the endpoint
	// answers "active": false (no auth cache is configured).
	IntrospectionURL string
	// Mechanisms are the SASL mechanisms offered for tokens: "xoauth2",
	// "oauthbearer" or both (the default).
	Mechanisms []string
}

// Server is a running private Dovecot instance. Create one with [Start],
// [StartT] or [StartTConfig] and release it with [Server.Stop].
type Server struct {
	// Dir is the temporary directory holding the configuration, the
	// certificate, the logs, the runtime directories and all mail.
	Dir string
	// ConfigFile is the absolute path of the instance's dovecot.conf.
	ConfigFile string
	// Addr is the plaintext IMAP listener, "127.0.0.1:PORT". It advertises
	// STARTTLS and allows plaintext authentication.
	Addr string
	// TLSAddr is the implicit-TLS IMAP listener, "127.0.0.1:PORT".
	TLSAddr string
	// CertPEM is the server's self-signed certificate in PEM form. It is
	// valid for the DNS name "localhost" and the IP address 127.0.0.1.
	CertPEM []byte
	// CertPool is a pool that trusts CertPEM, for tls.Config.RootCAs.
	CertPool *x509.CertPool

	cfg        Config
	dovecot    string // absolute path of the dovecot binary
	imap       string // absolute path of Dovecot's imap binary
	doveadmBin string // absolute path of the doveadm binary
	mailDir    string // Dir/mail: one Maildir per user
	passwd     string // passwd-file path
	logFile    string // Dovecot's log_path
	outFile    string // the master's stdout and stderr
	uid, gid   int    // the dovecot user

	proc *testserver.Process // the master

	seq atomic.Uint64 // makes Maildir file names unique

	boxMu  sync.Mutex           // guards boxes and stamps
	boxes  map[[2]string]string // {user, mailbox} -> Maildir folder
	stamps map[string]time.Time // Maildir folder -> last mtime delivered

	usersMu  sync.Mutex      // guards the fields below and passwd-file appends
	started  bool            // Dovecot is running: appends must wait for it
	names    map[string]bool // every user in the passwd-file
	pool     []userPass      // users created ahead of time for NewUser
	lastUser int             // N of the last "uN" created

	mu      sync.Mutex // guards the fields below
	stopped bool
	stopErr error
}

// StartT starts a server with the zero Config (but see StartTConfig),
// failing the test (never skipping it, except with -short) if that is
// impossible, and stops the server when the test and its subtests finish.
func StartT(t testing.TB) *Server {
	t.Helper()
	return StartTConfig(t, Config{})
}

// StartTConfig is like [StartT] but with the given configuration, except
// that a zero IdleCheckInterval is 2 s (see below). With -short it skips
// the test instead: the quick loop runs what needs no Dovecot.
func StartTConfig(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.IdleCheckInterval == 0 {
		// Test packages run at once, each with servers of its own, and
		// may together use up the dovecot user's inotify instances: then
		// a push would take Dovecot's default 30 s. Two seconds keeps the
		// tests' waits meaningful either way.
		cfg.IdleCheckInterval = 2 * time.Second
	}
	return testserver.StartT(t, "Dovecot", func() (*Server, error) { return Start(cfg) })
}

// Start starts a private Dovecot instance and waits until both of its
// listeners greet. The caller must call [Server.Stop]. Should the calling
// process die without doing so, the kernel kills the Dovecot master.
func Start(cfg Config) (*Server, error) {
	if cfg.MaxUserIPConnections < 0 {
		return nil, fmt.Errorf("dovecot: negative MaxUserIPConnections %d", cfg.MaxUserIPConnections)
	}
	if cfg.MaxUserIPConnections == 0 {
		cfg.MaxUserIPConnections = 1000
	}
	if cfg.IdleNotifyInterval < 0 {
		return nil, fmt.Errorf("dovecot: negative IdleNotifyInterval %v", cfg.IdleNotifyInterval)
	}
	if cfg.LoginProcesses < 0 {
		return nil, fmt.Errorf("dovecot: negative LoginProcesses %d", cfg.LoginProcesses)
	}
	if cfg.MaxSessions < 0 {
		return nil, fmt.Errorf("dovecot: negative MaxSessions %d", cfg.MaxSessions)
	}
	if cfg.IdleCheckInterval < 0 {
		return nil, fmt.Errorf("dovecot: negative IdleCheckInterval %v", cfg.IdleCheckInterval)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("dovecot: Start must run as root (Dovecot switches to the dovecot and dovenull users)")
	}
	s := &Server{cfg: cfg, names: map[string]bool{}}
	var err error
	if s.dovecot, err = lookPath("dovecot"); err != nil {
		return nil, err
	}
	if s.imap, err = imapBinary(s.dovecot); err != nil {
		return nil, err
	}
	if s.doveadmBin, err = lookPath("doveadm"); err != nil {
		return nil, err
	}
	u, err := user.Lookup("dovecot")
	if err != nil {
		return nil, fmt.Errorf("dovecot: looking up the dovecot system user (is dovecot-imapd installed?): %w", err)
	}
	if s.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("dovecot: uid %q of user dovecot: %w", u.Uid, err)
	}
	if s.gid, err = strconv.Atoi(u.Gid); err != nil {
		return nil, fmt.Errorf("dovecot: gid %q of user dovecot: %w", u.Gid, err)
	}
	if err := s.prepare(); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	if err := testserver.Launch(s.launch); err != nil {
		os.RemoveAll(s.Dir)
		return nil, err
	}
	s.usersMu.Lock()
	s.started = true
	s.usersMu.Unlock()
	return s, nil
}

// lookPath finds a Dovecot binary in PATH or, as dovecot lives in sbin,
// which is not on every PATH, in the usual binary directories.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("dovecot: %s binary not found in PATH or sbin (install Debian package dovecot-imapd): %w", name, err)
}

// imapBinary finds Dovecot's imap executable, which lives in Dovecot's
// libexec directory (/usr/lib/dovecot on Debian).
func imapBinary(dovecot string) (string, error) {
	prefix := filepath.Dir(filepath.Dir(dovecot)) // /usr/sbin/dovecot -> /usr
	var tried []string
	for _, dir := range []string{"lib/dovecot", "libexec/dovecot"} {
		p := filepath.Join(prefix, dir, "imap")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("dovecot: imap binary not found (tried %s); is dovecot-imapd installed?", strings.Join(tried, ", "))
}

// prepare creates the directory tree, certificate and passwd-file.
func (s *Server) prepare() error {
	// Short (base_dir holds Unix sockets) and traversable by the dovecot
	// and dovenull users.
	dir, err := testserver.MakeDir("dovecot")
	if err != nil {
		return err
	}
	s.Dir = dir
	s.ConfigFile = filepath.Join(dir, "dovecot.conf")
	s.mailDir = filepath.Join(dir, "mail")
	s.passwd = filepath.Join(dir, "passwd")
	s.logFile = filepath.Join(dir, "dovecot.log")
	s.outFile = filepath.Join(dir, "master.out")
	for _, d := range []string{"run", "state"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
	}
	if err := os.Mkdir(s.mailDir, 0o755); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	if err := os.Chown(s.mailDir, s.uid, s.gid); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	// The auth process runs as the dovecot user and reads the passwd-file.
	if err := os.WriteFile(s.passwd, nil, 0o644); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	s.usersMu.Lock()
	err = s.createUsers(userChunk)
	s.usersMu.Unlock()
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := testserver.SelfSignedCert("imapkit test Dovecot")
	if err != nil {
		return fmt.Errorf("dovecot: generating certificate: %w", err)
	}
	s.CertPEM = certPEM
	s.CertPool = x509.NewCertPool()
	if !s.CertPool.AppendCertsFromPEM(certPEM) {
		return errors.New("dovecot: generated certificate does not parse")
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	if o := s.cfg.OAuth2; o != nil {
		conf := "introspection_url = " + o.IntrospectionURL + "\n" +
			"introspection_mode = post\n" +
			"username_attribute = username\n" +
			"active_attribute = active\n" +
			"active_value = true\n"
		if err := os.WriteFile(filepath.Join(dir, "oauth2.conf"), []byte(conf), 0o644); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
	}
	return nil
}

// freePort returns a free loopback port, the error naming who asked.
func freePort(who string) (int, error) {
	p, err := testserver.FreePort()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", who, err)
	}
	return p, nil
}

// defaultCapability is Dovecot 2.3's post-login capability list with this
// configuration, minus IDLE, for DisableIDLE. An explicit imap_capability
// also stops the quota plugin from adding QUOTA, so it is listed here.
const defaultCapability = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY " +
	"THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE " +
	"UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH " +
	"ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY " +
	"PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE QUOTA"

// greeting is the instance's login_greeting.
func (s *Server) greeting() string {
	return "Dovecot ready (" + filepath.Base(s.Dir) + ")"
}

// config renders dovecot.conf for the given ports.
func (s *Server) config(port, tlsPort int) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	dir := s.Dir
	w("# Generated by github.com/imapkit/imap/internal/dovecot; private test instance.")
	w("instance_name = %s", filepath.Base(dir))
	w("base_dir = %s/run", dir)
	w("state_dir = %s/state", dir)
	w("log_path = %s", s.logFile)
	w("info_log_path = %s", s.logFile)
	w("protocols = imap")
	// A greeting unique to this instance lets Start tell it from whatever
	// else might have grabbed one of the ports.
	w("login_greeting = %s", s.greeting())
	w("listen = 127.0.0.1")
	w("default_login_user = dovenull")
	w("default_internal_user = dovecot")
	w("first_valid_uid = %d", s.uid)
	// IMAPPIDs finds a user's imap processes by their titles,
	// "dovecot/imap [USER IP STATE]".
	w("verbose_proctitle = yes")
	// Defaults (100 processes per service) are too low for many-connection tests.
	limit := max(1000, s.cfg.MaxUserIPConnections+100, s.cfg.MaxSessions+100)
	w("default_process_limit = %d", limit)
	w("default_client_limit = %d", 2*limit)
	w("")
	w("ssl = yes")
	w("ssl_cert = <%s/cert.pem", dir)
	w("ssl_key = <%s/key.pem", dir)
	if _, err := os.Stat("/usr/share/dovecot/dh.pem"); err == nil {
		w("ssl_dh = </usr/share/dovecot/dh.pem")
	}
	w("")
	w("disable_plaintext_auth = no")
	if o := s.cfg.OAuth2; o != nil {
		mechs := strings.Join(o.Mechanisms, " ")
		if mechs == "" {
			mechs = "xoauth2 oauthbearer"
		}
		w("auth_mechanisms = plain login cram-md5 %s", mechs)
		w("passdb {")
		w("  driver = oauth2")
		w("  mechanisms = %s", mechs)
		w("  args = %s/oauth2.conf", dir)
		w("}")
	} else {
		w("auth_mechanisms = plain login cram-md5")
	}
	// Failed logins still take about 0.5 s: Dovecot flushes delayed
	// failures on a 500 ms timer.
	w("auth_failure_delay = 0")
	w("auth_verbose = yes")
	w("passdb {")
	w("  driver = passwd-file")
	if s.cfg.OAuth2 != nil {
		w("  mechanisms = plain login cram-md5")
	}
	w("  args = scheme=PLAIN username_format=%%u %s", s.passwd)
	w("}")
	w("userdb {")
	w("  driver = static")
	if s.cfg.OAuth2 != nil {
		// Both passdbs are limited to their mechanisms, so a userdb
		// lookup (doveadm, the stream command) finds no passdb to confirm
		// the user: let the static userdb serve every user.
		w("  args = uid=%d gid=%d home=%s/%%u allow_all_users=yes", s.uid, s.gid, s.mailDir)
	} else {
		w("  args = uid=%d gid=%d home=%s/%%u", s.uid, s.gid, s.mailDir)
	}
	w("}")
	w("")
	w("mail_location = maildir:%s/%%u", s.mailDir)
	w("mailbox_list_index = yes")
	w("mail_max_userip_connections = %d", s.cfg.MaxUserIPConnections)
	if s.cfg.IdleNotifyInterval > 0 {
		secs := int((s.cfg.IdleNotifyInterval + time.Second - 1) / time.Second)
		w("imap_idle_notify_interval = %d secs", secs)
	}
	if s.cfg.IdleCheckInterval > 0 {
		secs := int((s.cfg.IdleCheckInterval + time.Second - 1) / time.Second)
		w("mailbox_idle_check_interval = %d secs", secs)
	}
	if s.cfg.DisableIDLE {
		// imap-login shows this list before login too (plus STARTTLS
		// and AUTH=), so IDLE is absent throughout.
		w("imap_capability = %s", defaultCapability)
	}
	w("mail_plugins = $mail_plugins quota")
	w("plugin {")
	w("  quota = maildir:User quota")
	w("  quota_rule = *:storage=1G")
	w("}")
	w("namespace inbox {")
	w("  inbox = yes")
	w("  separator = /")
	w("  mailbox Drafts {")
	w("    special_use = \\Drafts")
	w("  }")
	w("  mailbox Junk {")
	w("    special_use = \\Junk")
	w("  }")
	w("  mailbox Trash {")
	w("    special_use = \\Trash")
	w("  }")
	w("  mailbox Sent {")
	w("    special_use = \\Sent")
	w("  }")
	w("}")
	w("protocol imap {")
	w("  mail_plugins = $mail_plugins imap_quota")
	w("}")
	w("")
	w("service imap-login {")
	w("  chroot =")
	if n := s.cfg.LoginProcesses; n > 0 {
		w("  service_count = 0")
		w("  process_min_avail = %d", n)
		w("  client_limit = %d", limit/n+100)
	}
	w("  inet_listener imap {")
	w("    address = 127.0.0.1")
	w("    port = %d", port)
	w("  }")
	w("  inet_listener imaps {")
	w("    address = 127.0.0.1")
	w("    port = %d", tlsPort)
	w("    ssl = yes")
	w("  }")
	w("}")
	if s.cfg.MaxSessions > 0 {
		// The imap service's own process_limit (1024) is not raised by
		// default_process_limit.
		w("service imap {")
		w("  process_limit = %d", limit)
		w("}")
	}
	w("service anvil {")
	w("  chroot =")
	w("  client_limit = %d", 4*limit)
	// Without the anvil-auth-penalty socket, auth silently skips the
	// per-IP penalty that delays logins after a failed one by up to 15 s.
	w("  unix_listener anvil-auth-penalty {")
	w("    path = anvil-auth-penalty-disabled")
	w("  }")
	w("}")
	return b.String()
}

// launch picks ports, writes the configuration and starts the master.
func (s *Server) launch() error {
	port, err := freePort("dovecot")
	if err != nil {
		return err
	}
	tlsPort, err := freePort("dovecot")
	if err != nil {
		return err
	}
	for tlsPort == port {
		if tlsPort, err = freePort("dovecot"); err != nil {
			return err
		}
	}
	if err := os.WriteFile(s.ConfigFile, []byte(s.config(port, tlsPort)), 0o644); err != nil {
		return fmt.Errorf("dovecot: writing config: %w", err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	// Start each attempt with empty logs so errors show only this attempt.
	_ = os.Remove(s.logFile)
	out, err := os.OpenFile(s.outFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	defer out.Close()

	cmd := exec.Command(s.dovecot, "-F", "-c", s.ConfigFile)
	cmd.Dir = s.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Die with the test binary, and keep all of Dovecot's processes in
		// one process group that Stop can kill as a whole.
		Pdeathsig: syscall.SIGKILL,
		Setpgid:   true,
	}
	if s.proc, err = testserver.StartProcess(cmd); err != nil {
		return fmt.Errorf("dovecot: starting %s: %w", strings.Join(cmd.Args, " "), err)
	}
	err = s.proc.WaitReady([]string{s.Addr, s.TLSAddr}, startTimeout, func(i int, addr string, deadline time.Time) error {
		return s.probe(addr, i == 1, deadline)
	})
	if err == nil {
		return nil
	}
	s.proc.Kill()
	logs := s.logs()
	if strings.Contains(logs, "Address already in use") {
		err = fmt.Errorf("%w: %w", testserver.ErrAddrInUse, err)
	}
	return fmt.Errorf("dovecot: %s did not come up: %w\n%s", strings.Join(cmd.Args, " "), err, logs)
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
	if !strings.HasPrefix(line, "* OK") || !strings.Contains(line, s.greeting()) {
		return fmt.Errorf("unexpected greeting from %s (want * OK ... %s): %q", addr, s.greeting(), line)
	}
	return nil
}

// Logs returns the tail of the master's output and of Dovecot's log, for
// test failure messages.
func (s *Server) Logs() string { return s.logs() }

// Version returns what "dovecot --version" prints, e.g. "2.3.19.1
// (9b53102964)", or "unknown" if it cannot be run.
func (s *Server) Version() string {
	out, err := exec.Command(s.dovecot, "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// logs returns the master's output and Dovecot's log for error messages.
func (s *Server) logs() string {
	var b strings.Builder
	for _, f := range []string{s.outFile, s.logFile} {
		data, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		const maxLog = 8 << 10
		if len(data) > maxLog {
			data = append([]byte("...\n"), data[len(data)-maxLog:]...)
		}
		fmt.Fprintf(&b, "--- %s ---\n%s", f, data)
	}
	return b.String()
}

// Stop shuts the server down, kills every process it started and removes
// Dir. It is safe to call more than once; later calls return the first
// call's result.
//
// Stop kills the master and all its processes at once with SIGKILL. A
// graceful "doveadm stop" (SIGTERM to the master) would take more than a
// second, mostly waiting for the log process, and would not even end
// sessions politely: imap processes serving clients outlive the master.
// Sessions started with [Server.StreamCommand] are not children of the
// master and are not killed.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.stopErr
	}
	s.stopped = true
	var errs []error
	if exited, err := s.proc.ExitErr(); exited {
		errs = append(errs, fmt.Errorf("dovecot: master (config %s) had exited before Stop: %v\n%s", s.ConfigFile, err, s.logs()))
	}
	s.proc.Kill()
	if err := os.RemoveAll(s.Dir); err != nil {
		errs = append(errs, fmt.Errorf("dovecot: removing %s: %w", s.Dir, err))
	}
	s.stopErr = errors.Join(errs...)
	return s.stopErr
}

// userChunk is how many users NewUser creates ahead of time at once.
const userChunk = 1000

// AddUser adds a user with the given password to the passwd-file. The name
// must be new and must not contain ':', '/', whitespace or control
// characters; the password must not contain ':' or line breaks.
//
// Dovecot checks the passwd-file for changes at most once a second, so
// AddUser returns only once the next check is due, up to a second later.
// [Server.NewUser] is usually instant.
func (s *Server) AddUser(name, password string) error {
	if name == "" || strings.HasPrefix(name, ".") ||
		strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r == ':' || r == '/' || r == 0x7f }) >= 0 {
		return fmt.Errorf("dovecot: invalid user name %q", name)
	}
	if strings.ContainsAny(password, ":\r\n\x00") {
		return fmt.Errorf("dovecot: invalid password for user %q: contains ':', NUL or a line break", name)
	}
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if s.names[name] {
		return fmt.Errorf("dovecot: user %q already exists in %s", name, s.passwd)
	}
	return s.appendUsers([]userPass{{name, password}})
}

// SetPassword changes the password of an existing user, as an
// administrator would: sessions already logged in stay, and the next login
// needs the new password. Like AddUser, it returns once Dovecot is sure to
// read the change.
func (s *Server) SetPassword(name, password string) error {
	if strings.ContainsAny(password, ":\r\n\x00") {
		return fmt.Errorf("dovecot: invalid password for user %q: contains ':', NUL or a line break", name)
	}
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	b, err := os.ReadFile(s.passwd)
	if err != nil {
		return fmt.Errorf("dovecot: changing a password: %w", err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(l, name+":") {
			lines[i] = fmt.Sprintf("%s:{PLAIN}%s::::::\n", name, password)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("dovecot: no user %q in %s", name, s.passwd)
	}
	// A new file renamed over the old one: the auth process never reads
	// half a file.
	tmp := s.passwd + ".new"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "")), 0o644); err != nil {
		return fmt.Errorf("dovecot: changing a password: %w", err)
	}
	if err := os.Rename(tmp, s.passwd); err != nil {
		return fmt.Errorf("dovecot: changing a password: %w", err)
	}
	if s.started {
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	}
	return nil
}

// userPass is one passwd-file entry.
type userPass struct{ name, password string }

// appendUsers appends users to the passwd-file and waits until Dovecot is
// sure to notice. The caller holds usersMu.
func (s *Server) appendUsers(users []userPass) error {
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "%s:{PLAIN}%s::::::\n", u.name, u.password)
	}
	f, err := os.OpenFile(s.passwd, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("dovecot: adding users: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dovecot: adding users to %s: %w", s.passwd, err)
	}
	for _, u := range users {
		s.names[u.name] = true
	}
	// Dovecot's auth process stats the passwd-file at most once per
	// second of its clock (time(2)), so a lookup in the second of the
	// write may still use the old contents. Wait for the next second.
	if s.started {
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	}
	return nil
}

// createUsers generates n users ("uN" with random passwords) and appends
// them to the passwd-file (in one write, so with one wait for Dovecot to
// notice) and to the pool. The caller holds usersMu.
func (s *Server) createUsers(n int) error {
	buf := make([]byte, 8*n)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("dovecot: generating passwords: %w", err)
	}
	users := make([]userPass, 0, n)
	for len(users) < n {
		s.lastUser++
		name := "u" + strconv.Itoa(s.lastUser)
		if s.names[name] {
			continue // taken by AddUser
		}
		users = append(users, userPass{name, hex.EncodeToString(buf[8*len(users) : 8*len(users)+8])})
	}
	if err := s.appendUsers(users); err != nil {
		return err
	}
	s.pool = append(s.pool, users...)
	return nil
}

// NewUser returns a fresh user ("u1", "u2", ...) with a random password, so
// that tests sharing a server stay isolated. Users are written to the
// passwd-file ahead of time, so NewUser is normally instant.
func (s *Server) NewUser() (name, password string, err error) {
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if len(s.pool) == 0 {
		if err := s.createUsers(userChunk); err != nil {
			return "", "", err
		}
	}
	u := s.pool[0]
	s.pool = s.pool[1:]
	return u.name, u.password, nil
}

// User is a user's name and password.
type User struct{ Name, Password string }

// NewUsers returns n fresh users, as n calls of [Server.NewUser] would,
// but writes the ones missing from the pool to the passwd-file at once:
// thousands of users take one wait of up to a second for Dovecot to
// notice, not one per thousand.
func (s *Server) NewUsers(n int) ([]User, error) {
	if n < 0 {
		return nil, fmt.Errorf("dovecot: NewUsers(%d)", n)
	}
	s.usersMu.Lock()
	defer s.usersMu.Unlock()
	if len(s.pool) < n {
		if err := s.createUsers(n - len(s.pool)); err != nil {
			return nil, err
		}
	}
	users := make([]User, n)
	for i, u := range s.pool[:n] {
		users[i] = User{u.name, u.password}
	}
	s.pool = s.pool[n:]
	return users, nil
}

// StreamCommand returns a shell command line that gives a pre-authenticated
// IMAP session for user on its standard input and output; the session
// greets with "* PREAUTH". Run it with "sh -c". Dovecot writes its log lines
// (such as "Info: Disconnected") to standard error.
//
// The command runs Dovecot's imap binary directly with "-c CONFIG -u USER".
// "doveadm exec imap -u USER" would do the same, but the imap process would
// then inherit doveadm's settings, without the "protocol imap" section, so
// that the session would lack the QUOTA extension.
func (s *Server) StreamCommand(user string) string {
	return shellQuote(s.imap) + " -c " + shellQuote(s.ConfigFile) + " -u " + shellQuote(user)
}

// shellQuote quotes s for sh unless it is made of safe characters only.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=@+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
