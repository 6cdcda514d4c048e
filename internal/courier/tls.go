package courier

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/imapkit/imap/internal/testserver"
)

// ffdhe2048 is the RFC 7919 Diffie-Hellman group, as "openssl genpkey
// -genparam -algorithm DH -pkeyopt group:ffdhe2048" writes it. couriertls
// refuses to start without a TLS_DHPARAMS file.
const ffdhe2048 = `-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
`

// Files in the server's etc directory, which is /etc/courier inside its
// namespace.
const (
	keyCertFile = "imapd.pem"    // TLS_CERTFILE: key and certificate
	dhFile      = "dhparams.pem" // TLS_DHPARAMS
	trustFile   = "cert.pem"     // TLS_TRUSTCERTS: the certificate alone
)

// writeCert generates the server's certificate and writes it to etc with
// its key and the DH parameters. couriertls reads the key after switching
// to the courier user, so that user owns the file, mode 0600.
func (s *Server) writeCert(etc string, courierUID, courierGID int) error {
	certPEM, keyPEM, err := testserver.SelfSignedCert("imapkit test Courier")
	if err != nil {
		return fmt.Errorf("courier: generating certificate: %w", err)
	}
	s.CertPEM = certPEM
	s.CertPool = x509.NewCertPool()
	if !s.CertPool.AppendCertsFromPEM(certPEM) {
		return errors.New("courier: generated certificate does not parse")
	}
	keyCert := filepath.Join(etc, keyCertFile)
	if err := os.WriteFile(keyCert, append(keyPEM, certPEM...), 0o600); err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	if err := os.Chown(keyCert, courierUID, courierGID); err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	if err := os.WriteFile(filepath.Join(etc, dhFile), []byte(ffdhe2048), 0o644); err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	if err := os.WriteFile(filepath.Join(etc, trustFile), certPEM, 0o644); err != nil {
		return fmt.Errorf("courier: %w", err)
	}
	return nil
}
