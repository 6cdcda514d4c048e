package imap

import (
	"context"
	"crypto/tls"
	"net"
)

// Default ports.
const (
	IMAP4Port    = 143
	IMAP4SSLPort = 993
)

// Dial connects to addr ("host:port"; the port defaults to 143) over plain
// TCP, like imaplib's IMAP4. Credentials cannot be sent on such a connection
// unless Options.InsecureAuth is set; use StartTLS or DialStartTLS.
func Dial(ctx context.Context, addr string, opts *Options) (*Client, error) {
	addr, host := withPort(addr, IMAP4Port)
	conn, err := dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	return newClient(ctx, conn, opts, host, false, nil)
}

// DialTLS connects to addr (port defaulting to 993) over implicit TLS, like
// imaplib's IMAP4_SSL. The server certificate is verified against the host
// name unless Options.TLSConfig says otherwise.
func DialTLS(ctx context.Context, addr string, opts *Options) (*Client, error) {
	addr, host := withPort(addr, IMAP4SSLPort)
	conn, err := dialTCP(ctx, addr)
	if err != nil {
		return nil, err
	}
	tconn := tls.Client(conn, tlsConfig(opts, host))
	if err := handshake(ctx, tconn, opts); err != nil {
		conn.Close()
		return nil, &Error{Kind: ErrAbort, Text: "TLS handshake with " + addr + " failed", Err: err}
	}
	return newClient(ctx, tconn, opts, host, false, nil)
}

// DialStartTLS connects to addr over plain TCP and upgrades with STARTTLS
// before anything else is said. It refuses a server that greets with
// PREAUTH (the session would start unencrypted) or does not offer STARTTLS.
func DialStartTLS(ctx context.Context, addr string, opts *Options) (*Client, error) {
	c, err := Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	if c.State() != StateNonAuth {
		c.Shutdown()
		return nil, &Error{Command: "STARTTLS", Kind: ErrAbort, Text: "server greeted with PREAUTH on a plaintext connection; refusing to continue"}
	}
	var cfg *tls.Config
	if opts != nil {
		cfg = opts.TLSConfig
	}
	if err := c.StartTLS(ctx, cfg); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &Error{Kind: ErrAbort, Text: "cannot connect to " + addr, Err: err}
	}
	return conn, nil
}

func withPort(addr string, port int) (full, host string) {
	if addr == "" {
		addr = "localhost"
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return addr, h
	}
	return net.JoinHostPort(addr, itoa(port)), addr
}

func tlsConfig(opts *Options, host string) *tls.Config {
	var cfg *tls.Config
	if opts != nil && opts.TLSConfig != nil {
		cfg = opts.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{"imap"}
	}
	return cfg
}

func handshake(ctx context.Context, conn *tls.Conn, opts *Options) error {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o.setDefaults()
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	return conn.HandshakeContext(ctx)
}
