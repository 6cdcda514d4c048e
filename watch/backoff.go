package watch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/imapkit/imap"
)

// fatal reports whether a failure to connect is not worth retrying. The
// server answered and refused (a LOGIN rejected with NO, say) for a reason
// other than a temporary one such as too many connections — except for
// credentials refused on an account that connected before: the password or
// the token was changed, and the new one may come (see EventAuthFailed).
// Before the account ever connected, failures that no wait can mend are
// fatal too: a certificate from an unknown authority or for another name,
// a host name that does not resolve. (Once it has connected, the same
// failures are waited out: a DNS or certificate change is more likely
// passing then.)
func fatal(err error, everConnected bool) bool {
	if errors.Is(err, imap.ErrCommand) && !temporary(err) && !tokenUnavailable(err) {
		return !everConnected || !authRefused(err)
	}
	if everConnected {
		return false
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var verify *tls.CertificateVerificationError
	var dns *net.DNSError
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &verify):
		return true
	case errors.As(err, &dns) && dns.IsNotFound:
		return true
	}
	return false
}

// authRefused reports whether the server refused the credentials: a LOGIN
// or AUTHENTICATE answered with NO.
func authRefused(err error) bool {
	var e *imap.Error
	return errors.As(err, &e) && e.Status == "NO" && (e.Command == "LOGIN" || e.Command == "AUTHENTICATE")
}

// tokenUnavailable reports whether an OAuth2 token could not be obtained
// for a passing reason: the token endpoint unreachable, failing or rate
// limiting — an error that says so with a Temporary method (as the oauth
// package's do) or x/oauth2's RetrieveError with a 5xx or 429 status. (A
// refresh token it refused is not passing.)
func tokenUnavailable(err error) bool {
	var netErr net.Error
	var refresh *oauth2.RetrieveError
	var passing interface{ Temporary() bool }
	switch {
	case errors.As(err, &netErr):
		return true
	case errors.As(err, &refresh):
		r := refresh.Response
		return r != nil && (r.StatusCode >= 500 || r.StatusCode == http.StatusTooManyRequests)
	case errors.As(err, &passing):
		return passing.Temporary()
	}
	return false
}

// temporary reports whether err says the server is unavailable or
// overloaded for now: by its response code (RFC 5530), or, from a server
// that sends none, in words.
func temporary(err error) bool {
	var e *imap.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case "UNAVAILABLE", "LIMIT", "INUSE", "SERVERBUG":
		return true
	case "":
		msg := strings.ToUpper(e.Text)
		for _, s := range []string{"TOO MANY", "TRY AGAIN", "TEMPORAR"} {
			if strings.Contains(msg, s) {
				return true
			}
		}
	}
	return false
}

// backoff returns the delay before reconnect attempt n (0-based): doubling
// from MinBackoff up to MaxBackoff, at least hint, with ±25% jitter so that
// many watchers do not reconnect in step.
func (w *Watcher) backoff(n int, hint time.Duration) time.Duration {
	d := w.opts.MinBackoff
	for i := 0; i < n && d < w.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.opts.MaxBackoff)
	d = max(d, hint)
	return d - d/4 + rand.N(d/2+1)
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
