package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
)

// errInjected is the abort for plaintext that follows the server's OK to
// STARTTLS where the TLS handshake should begin.
const errInjected = "data after STARTTLS response: possible injection"

// StartTLS upgrades the connection to TLS (RFC 3501 §6.2.1). It fails
// unless the server advertises STARTTLS. Plaintext after the server's OK
// (where the handshake must begin) is an abort, "data after STARTTLS
// response: possible injection"; what arrived before the OK is discarded
// after the handshake, so nothing a network attacker injected in plaintext
// can be taken for a response, and the capabilities are read again. If STARTTLS fails for any reason the connection is closed: it
// never continues in plaintext. cfg may be nil; its ServerName defaults to
// the dialed host, and verification is on unless cfg turns it off.
func (c *Client) StartTLS(ctx context.Context, cfg *tls.Config) error {
	if err := c.begin("STARTTLS"); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if c.isTLS.Load() {
		return cmdError("STARTTLS", "TLS session already established")
	}
	if !c.has("STARTTLS") {
		return c.abort("STARTTLS", nil, "TLS not supported by server")
	}
	if cfg == nil {
		cfg = c.opts.TLSConfig
	}
	o := c.opts
	o.TLSConfig = cfg
	if _, err := c.run(ctx, &command{name: "STARTTLS"}); err != nil {
		if e, ok := err.(*Error); ok && e.Kind == ErrAbort {
			return err
		}
		return c.abort("STARTTLS", err, "Couldn't establish TLS session")
	}
	// Bytes after the OK, whether they came with it or after it, are
	// plaintext someone may have injected: one abort, whichever way the
	// reads happened to split them.
	if c.rd.Buffered() > 0 {
		return c.abort("STARTTLS", nil, errInjected)
	}
	tconn := tls.Client(c.conn, tlsConfig(&o, c.host))
	if err := handshake(ctx, tconn, &o); err != nil {
		var notTLS tls.RecordHeaderError
		if errors.As(err, &notTLS) {
			return c.abort("STARTTLS", nil, errInjected)
		}
		return c.abort("STARTTLS", err, "TLS handshake failed")
	}
	c.conn = tconn
	var shown net.Conn = tconn
	c.shown.Store(&shown)
	c.readDLSet = false // the handshake set its own deadlines
	c.rd.Reset(tconn)   // drop any plaintext buffered before the handshake
	c.isTLS.Store(true)
	c.secure = true
	c.clearCache()
	return c.refreshCaps(ctx)
}
