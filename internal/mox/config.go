package mox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The configuration starts as the one "mox localserve -initonly" writes:
// its domain "localhost", its account "mox" (address mox@localhost,
// password moxmoxmox), DKIM key, admin password and databases. Then this
// package replaces three things:
//
//   - localhost.crt and localhost.key, with the certificate from
//     testserver.SelfSignedCert (localserve's own has no IP address);
//   - mox.conf, with one listener on 127.0.0.1 only (localserve's also
//     listens on ::1) serving IMAP (plaintext allowed), IMAPS and SMTP on
//     free ports, and nothing else: no submission, no web interfaces;
//   - domains.conf loses its WebHandlers section, which needs a web
//     listener.

// initConfig runs "mox localserve -dir Dir -initonly", writes the
// certificate over localserve's and removes the WebHandlers from
// domains.conf. mox.conf is written for each launch, by writeMoxConf.
func (s *Server) initConfig(certPEM, keyPEM []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, "localserve", "-dir", s.Dir, "-initonly")
	cmd.Dir = s.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mox: %s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "localhost.crt"), certPEM, 0o644); err != nil {
		return fmt.Errorf("mox: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "localhost.key"), keyPEM, 0o600); err != nil {
		return fmt.Errorf("mox: %w", err)
	}
	domains := filepath.Join(s.Dir, "domains.conf")
	b, err := os.ReadFile(domains)
	if err != nil {
		return fmt.Errorf("mox: %w", err)
	}
	if err := os.WriteFile(domains, []byte(dropSection(string(b), "WebHandlers")), 0o644); err != nil {
		return fmt.Errorf("mox: %w", err)
	}
	return nil
}

// dropSection removes the top-level key name and everything indented
// below it from an sconf file. Comment lines stay: sconf ignores them.
func dropSection(conf, name string) string {
	lines := strings.SplitAfter(conf, "\n")
	var b strings.Builder
	in := false
	for _, l := range lines {
		topLevel := l != "" && l[0] != '\t' && l[0] != ' ' && l[0] != '#' && strings.TrimSpace(l) != ""
		if topLevel {
			in = strings.HasPrefix(l, name+":")
		}
		if !in {
			b.WriteString(l)
		}
	}
	return b.String()
}

// writeMoxConf writes mox.conf for the given ports. sconf, mox's
// configuration format, nests with tabs.
func (s *Server) writeMoxConf(imapPort, imapsPort, smtpPort int) error {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by github.com/imapkit/imap/internal/mox: a private test instance.")
	w("DataDir: .")
	// trace: every IMAP and SMTP line, except authentication data and
	// message contents, goes to the log that Logs returns.
	w("LogLevel: trace")
	w("User: %d", os.Getuid())
	w("Hostname: localhost")
	// As localserve: protocol violations seen in the wild are errors.
	w("Pedantic: true")
	w("AdminPasswordFile: adminpasswd")
	w("Listeners:")
	w("\tlocal:")
	w("\t\tIPs:")
	w("\t\t\t- 127.0.0.1")
	w("\t\tTLS:")
	w("\t\t\tKeyCerts:")
	w("\t\t\t\t-")
	w("\t\t\t\t\tCertFile: localhost.crt")
	w("\t\t\t\t\tKeyFile: localhost.key")
	w("\t\tSMTP:")
	w("\t\t\tEnabled: true")
	w("\t\t\tPort: %d", smtpPort)
	w("\t\tIMAP:")
	w("\t\t\tEnabled: true")
	w("\t\t\tPort: %d", imapPort)
	w("\t\t\tNoRequireSTARTTLS: true")
	w("\t\tIMAPS:")
	w("\t\t\tEnabled: true")
	w("\t\t\tPort: %d", imapsPort)
	w("Postmaster:")
	w("\tAccount: mox")
	w("\tMailbox: Inbox")
	if err := os.WriteFile(s.configFile, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("mox: writing %s: %w", s.configFile, err)
	}
	return nil
}
