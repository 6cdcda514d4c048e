// Package mox runs private, throwaway mox mail servers
// (github.com/mjl-/mox, release v0.0.15) for tests.
//
// mox is a complete mail server written in Go, with an IMAP implementation
// of its own, independent of Dovecot's, Cyrus's and Courier's. Each
// [Server] is one "mox localserve" process that lives entirely in its own
// temporary directory and listens on 127.0.0.1 only, on ports chosen at
// start. mox is not a dependency of this module: scripts/deps-mox.sh
// builds the pinned release into /opt/imapkit-interop/mox/mox (or
// $IMAPKIT_INTEROP_DIR/mox/mox), where [Start] looks for it. Root is not
// needed.
//
// What a server offers (mox v0.0.15):
//   - plaintext IMAP with STARTTLS on Addr, where LOGIN and AUTHENTICATE
//     PLAIN are allowed without TLS too, and implicit TLS on TLSAddr;
//     SASL PLAIN, CRAM-MD5, SCRAM-SHA-1 and SCRAM-SHA-256 (with -PLUS
//     variants over TLS);
//   - IMAP4rev2 as well as IMAP4rev1, with IDLE (a change made on another
//     connection is pushed within milliseconds), NOTIFY, CONDSTORE,
//     QRESYNC, MOVE, UIDPLUS, UIDONLY, ESEARCH, MULTISEARCH, SEARCHRES,
//     LIST-EXTENDED, LIST-STATUS, SPECIAL-USE, CREATE-SPECIAL-USE,
//     METADATA, QUOTA (no limit is set), UTF8=ACCEPT, BINARY, PREVIEW,
//     REPLACE, MULTIAPPEND, SAVEDATE, STATUS=SIZE, INPROGRESS, ID and more;
//     no COMPRESS, SORT, THREAD or ACL;
//   - accounts made by [Server.NewUser], each with its own Inbox, Archive,
//     Drafts, Junk, Sent and Trash; one personal namespace, hierarchy
//     separator "/"; logins name the email address ("u1@localhost");
//   - mox's log at trace level (the protocol lines, without
//     authentication data or message contents) in [Server.Logs].
//
// Where mox differs from Dovecot in ways tests meet:
//   - The inbox is called "Inbox": LIST shows it so, and STATUS INBOX,
//     GETQUOTAROOT INBOX and the like answer with "Inbox".
//   - SELECT and EXAMINE send an untagged LIST of the mailbox (as
//     IMAP4rev2 allows), CREATE an untagged LIST with \Subscribed. Status
//     texts are terse ("* OK [UIDNEXT 4] x", "OK [READ-WRITE] x").
//   - Keywords are lowercased: STORE +FLAGS (MyKeyword) gives mykeyword.
//     FLAGS and PERMANENTFLAGS always list $Forwarded $Junk $NotJunk
//     $Phishing $MDNSent. The account mox@localhost (localserve's own,
//     password moxmoxmox) has automatic junk flags: APPEND to Junk adds
//     $Junk, a MOVE out of Junk removes it; NewUser accounts have none.
//   - ENVELOPE's date is the parsed Date header formatted anew, not the
//     header's text: "1 Jun 2026 10:00 +0200" comes back as "Mon, 1 Jun
//     2026 10:00:00 +0200", comments go, GMT and -0000 become +0000, an
//     unparsable date is NIL.
//   - ENVELOPE fields have RFC 2047 encoded words decoded, sent as UTF-8
//     literals even when UTF8=ACCEPT is not enabled; SEARCH SUBJECT does
//     not decode them (the encoded word itself matches, the decoded text
//     does not).
//   - A message with bare LF line ends is stored with CRLF (RFC822.SIZE
//     counts the CRs).
//   - HIGHESTMODSEQ is in the SELECT response only once CONDSTORE is
//     enabled (by ENABLE or a CONDSTORE command such as STATUS
//     HIGHESTMODSEQ).
//   - The capabilities after login still list the AUTH= mechanisms.
//   - The server runs with mox's Pedantic setting, as localserve does:
//     protocol violations seen in the wild are errors.
//
// mox's limits are built in and count per client IP address, so all of a
// test's connections from 127.0.0.1 together: at most 30 connections at
// once, 300 new connections a minute, and 10 failed authentications a
// minute, after which every new connection gets "* BYE too many auth
// failures". A connection that fails to authenticate more than 3 times
// is also delayed a second more for each further failure.
//
// mox's SMTP listener runs too (on a private port), but mail from an
// unknown sender to a NewUser account is rejected by the account's junk
// filter (451): tests put messages in place with APPEND.
package mox

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/testserver"
)

const (
	// startTimeout bounds how long Start waits for the listeners to greet.
	startTimeout = 20 * time.Second
	// stopTimeout bounds how long Stop waits after SIGTERM before it kills
	// mox. mox waits up to 3 s for connections to end, then up to 1 s more.
	stopTimeout = 8 * time.Second
	// maxLogs bounds what Logs returns: its last bytes.
	maxLogs = 64 << 10
)

// Server is a running private mox instance. Create one with [Start] or
// [StartT] and release it with [Server.Stop].
type Server struct {
	// Dir is the temporary directory holding the configuration (mox.conf,
	// domains.conf), the certificate, the log, the control socket and all
	// mail. Stop removes it.
	Dir string
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

	bin        string // absolute path of the mox binary
	version    string // what it reports, "v0.0.15"
	configFile string // Dir/mox.conf
	smtpAddr   string // mox's SMTP listener, see the package documentation
	logFile    string // mox's standard output and error

	proc *testserver.Process // mox

	usersMu  sync.Mutex // serialises NewUser
	lastUser int        // N of the last account "uN"

	mu        sync.Mutex // guards the fields below
	stopped   bool
	stopErr   error
	finalLogs string // the log as Stop found it, before removing Dir
}

// StartT starts a server, failing the test (never skipping it, except with
// -short) if that is impossible, and stops the server when the test and
// its subtests finish.
func StartT(t testing.TB) *Server {
	t.Helper()
	return testserver.StartT(t, "mox", Start)
}

// Start starts a private mox instance and waits until its IMAP, IMAPS and
// SMTP listeners greet. The caller must call [Server.Stop]. Should the
// calling process die without doing so, the kernel kills mox, and a later
// Start removes the directory left behind.
func Start() (*Server, error) {
	s := &Server{}
	var err error
	if s.bin, s.version, err = findBinary(); err != nil {
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

// prepare creates Dir, the certificate and the initial configuration.
func (s *Server) prepare() error {
	// Short: the control socket Dir/ctl is a Unix socket.
	dir, err := testserver.MakeDir("mox")
	if err != nil {
		return err
	}
	s.Dir = dir
	s.configFile = filepath.Join(dir, "mox.conf")
	s.logFile = filepath.Join(dir, "mox.log")
	certPEM, keyPEM, err := testserver.SelfSignedCert("imapkit mox test server")
	if err != nil {
		return fmt.Errorf("mox: generating certificate: %w", err)
	}
	s.CertPEM = certPEM
	s.CertPool = x509.NewCertPool()
	if !s.CertPool.AppendCertsFromPEM(certPEM) {
		return errors.New("mox: generated certificate does not parse")
	}
	return s.initConfig(certPEM, keyPEM)
}

// launch picks ports, writes mox.conf and starts mox.
func (s *Server) launch() error {
	var ports [3]int
	for i := 0; i < len(ports); {
		p, err := testserver.FreePort()
		if err != nil {
			return fmt.Errorf("mox: %w", err)
		}
		if p != ports[0] && p != ports[1] {
			ports[i] = p
			i++
		}
	}
	if err := s.writeMoxConf(ports[0], ports[1], ports[2]); err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	s.smtpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2]))
	// Each attempt starts with an empty log, so errors show only its own.
	out, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("mox: %w", err)
	}
	defer out.Close()

	cmd := exec.Command(s.bin, "localserve", "-dir", s.Dir)
	cmd.Dir = s.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Die with the test binary, and run in a process group of its own
		// that Stop can kill as a whole.
		Pdeathsig: syscall.SIGKILL,
		Setpgid:   true,
	}
	if s.proc, err = testserver.StartProcess(cmd); err != nil {
		return fmt.Errorf("mox: starting %s: %w", strings.Join(cmd.Args, " "), err)
	}
	kinds := []string{"imap", "imaps", "smtp"}
	err = s.proc.WaitReady([]string{s.Addr, s.TLSAddr, s.smtpAddr}, startTimeout, func(i int, addr string, deadline time.Time) error {
		return s.probe(addr, kinds[i], deadline)
	})
	if err == nil {
		return nil
	}
	s.proc.Kill()
	logs := s.readLogs()
	if strings.Contains(logs, "address already in use") {
		err = fmt.Errorf("%w: %w", testserver.ErrAddrInUse, err)
	}
	return fmt.Errorf("mox: %s did not come up: %w\n%s", strings.Join(cmd.Args, " "), err, logs)
}

// probe connects to addr and checks the greeting: "* OK ... mox imap" for
// IMAP (over verified TLS for imaps), "220 localhost ..." for SMTP.
func (s *Server) probe(addr, kind string, deadline time.Time) error {
	var cfg *tls.Config
	if kind == "imaps" {
		cfg = &tls.Config{RootCAs: s.CertPool, ServerName: "localhost"}
	}
	bye := "z LOGOUT\r\n"
	if kind == "smtp" {
		bye = "QUIT\r\n"
	}
	line, err := testserver.Greeting(addr, cfg, deadline, bye)
	if err != nil {
		return err
	}
	if kind == "smtp" {
		if !strings.HasPrefix(line, "220 ") {
			return fmt.Errorf("unexpected SMTP greeting from %s: %q", addr, line)
		}
		return nil
	}
	if !strings.HasPrefix(line, "* OK ") || !strings.HasSuffix(line, " mox imap") {
		return fmt.Errorf("unexpected greeting from %s (want * OK ... mox imap): %q", addr, line)
	}
	return nil
}

// Logs returns what mox has printed so far (its last 64 KiB), for failure
// messages. After Stop it returns the log as Stop found it.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.finalLogs
	}
	return s.readLogs()
}

// readLogs reads the tail of the log file.
func (s *Server) readLogs() string {
	data, err := os.ReadFile(s.logFile)
	if err != nil {
		return fmt.Sprintf("(reading mox's log: %v)", err)
	}
	if len(data) > maxLogs {
		cut := len(data) - maxLogs
		data = data[cut:]
		if i := strings.IndexByte(string(data), '\n'); i >= 0 {
			data = data[i+1:]
		}
		return fmt.Sprintf("--- %s, last %d bytes ---\n%s", s.logFile, len(data), data)
	}
	return fmt.Sprintf("--- %s ---\n%s", s.logFile, data)
}

// Stop shuts the server down, makes sure its process is gone and removes
// Dir. It sends mox SIGTERM, on which mox stops accepting connections,
// waits up to 3 s for open sessions to end, closes those that remain and
// exits a second later: Stop takes about a second, or 4 s while clients
// are still connected. Should mox still run 8 s after SIGTERM, Stop kills
// it and reports so. It is safe to call more than once; later calls return
// the first call's result.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.stopErr
	}
	s.stopped = true
	var errs []error
	if exited, err := s.proc.ExitErr(); exited {
		errs = append(errs, fmt.Errorf("mox: mox had exited before Stop: %v\n%s", err, s.readLogs()))
	} else if s.proc != nil {
		s.proc.Signal(syscall.SIGTERM)
		select {
		case <-s.proc.Exited():
		case <-time.After(stopTimeout):
			errs = append(errs, fmt.Errorf("mox: still running %v after SIGTERM, killed\n%s", stopTimeout, s.readLogs()))
		}
	}
	// mox runs no other processes, but make sure of it.
	s.proc.Kill()
	s.finalLogs = s.readLogs()
	if err := os.RemoveAll(s.Dir); err != nil {
		errs = append(errs, fmt.Errorf("mox: removing %s: %w", s.Dir, err))
	}
	s.stopErr = errors.Join(errs...)
	return s.stopErr
}
