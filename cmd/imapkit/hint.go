package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/watch"
)

// hint returns advice for a failure whose fix is likely, or "".
func hint(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var dns *net.DNSError
	var refused *imap.Error
	var badState *watch.StateError
	var badToken *imap.OAuth2Error
	msg := err.Error()
	switch {
	case errors.As(err, &badState):
		return "if the mailbox was really replaced, pass --rebaseline to start from the mail there now (what arrived meanwhile is not reported)"
	case errors.As(err, &unknownCA) || errors.As(err, &verify) && strings.Contains(msg, "unknown authority"):
		return "the server's certificate is signed by an authority this machine does not know: if the server uses a private CA, pass its certificate with --ca-file"
	case errors.As(err, &hostname):
		return "the server's certificate is for another name: connect by a name it was issued for"
	case errors.As(err, &record) || strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "that port does not speak TLS: try --starttls (usually port 143), or --plaintext on a trusted network"
	case strings.Contains(msg, "STARTTLS") && strings.Contains(strings.ToLower(msg), "not support"):
		return "the server offers no STARTTLS there: try --tls (usually port 993)"
	case errors.As(err, &dns) && dns.IsNotFound:
		return "the host name does not resolve: check --server"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens there: check the port (993 for --tls, 143 for --starttls)"
	case strings.Contains(msg, "unencrypted connection"):
		return "credentials are not sent in clear: use --tls or --starttls, or --plaintext to allow it on a trusted network"
	case errors.As(err, &badToken):
		return "the server refused the OAuth2 token: check that --user is the account the token was issued for and that the token file's scopes include IMAP access (imapkit login --scope)"
	case errors.As(err, &refused) && refused.Status == "NO" && (refused.Command == "LOGIN" || refused.Command == "AUTHENTICATE"):
		return "the server refused the credentials: check --user and the password source"
	}
	return ""
}

// withHint appends the hint for err, if any.
func withHint(err error) string {
	if h := hint(err); h != "" {
		return err.Error() + " (hint: " + h + ")"
	}
	return err.Error()
}
