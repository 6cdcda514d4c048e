package interop

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/imapkit/imap/internal/courier"
	"github.com/imapkit/imap/internal/cyrus"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/internal/mox"
)

// server is what the checks need of a running server, whichever harness
// started it.
type server struct {
	name    string // "Dovecot", as in the differences table and the docs
	version string // what the server's binary says it is
	addr    string // plaintext with STARTTLS, plaintext LOGIN allowed
	tlsAddr string // implicit TLS
	pool    *x509.CertPool
	newUser func() (name, password string, err error)
	logs    func() string
}

// tlsConfig trusts the server's certificate, and only it.
func (s *server) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool, ServerName: "localhost"}
}

// harness starts one kind of server for a test.
type harness struct {
	name  string
	start func(t *testing.T) *server
}

// harnesses lists the servers every check runs against, in the order of
// the compatibility table's columns.
var harnesses = []harness{
	{"Dovecot", startDovecot},
	{"Cyrus", startCyrus},
	{"Courier", startCourier},
	{"mox", startMox},
}

func startDovecot(t *testing.T) *server {
	s := dovecot.StartT(t)
	return &server{
		name: "Dovecot", version: "Dovecot " + strings.Fields(s.Version())[0],
		addr: s.Addr, tlsAddr: s.TLSAddr, pool: s.CertPool,
		newUser: s.NewUser,
		logs:    func() string { return s.Logs() },
	}
}

func startCourier(t *testing.T) *server {
	s := courier.StartT(t)
	return &server{
		name: "Courier", version: s.Version(),
		addr: s.Addr, tlsAddr: s.TLSAddr, pool: s.CertPool,
		newUser: s.NewUser, logs: s.Logs,
	}
}

func startCyrus(t *testing.T) *server {
	s := cyrus.StartT(t)
	return &server{
		name: "Cyrus", version: s.Version(),
		addr: s.Addr, tlsAddr: s.TLSAddr, pool: s.CertPool,
		newUser: s.NewUser, logs: s.Logs,
	}
}

func startMox(t *testing.T) *server {
	s := mox.StartT(t)
	return &server{
		name: "mox", version: s.Version(),
		addr: s.Addr, tlsAddr: s.TLSAddr, pool: s.CertPool,
		newUser: s.NewUser, logs: s.Logs,
	}
}
