package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/oauth"
)

var errUsage = errors.New("usage")

// connFlags are the connection flags shared by idle and watch.
type connFlags struct {
	server      string
	tls         bool
	startTLS    bool
	plaintext   bool
	stream      string
	user        string
	passwordEnv string
	passFile    string
	passCmd     string
	tokenFile   string // --oauth2-token-file
	caFile      string
	debug       bool
	timeout     time.Duration
}

func (f *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", "", "IMAP server `HOST:PORT`")
	fs.BoolVar(&f.tls, "tls", false, "implicit TLS (the default unless --starttls, --plaintext or --stream)")
	fs.BoolVar(&f.startTLS, "starttls", false, "connect in plaintext and upgrade with STARTTLS (never falls back)")
	fs.BoolVar(&f.plaintext, "plaintext", false, "no TLS at all: explicit opt-in, credentials travel in clear")
	fs.StringVar(&f.stream, "stream", "", "run `CMD` and speak IMAP over its stdin/stdout (e.g. \"doveadm exec imap -u alice\")")
	fs.StringVar(&f.user, "user", "", "user name for LOGIN")
	fs.StringVar(&f.passwordEnv, "password-env", "", "read the password from environment variable `VAR`")
	fs.StringVar(&f.passFile, "password-file", "", "read the password from the first line of `PATH`")
	fs.StringVar(&f.passCmd, "password-cmd", "", "run `CMD` and use the first line of its output as the password")
	fs.StringVar(&f.tokenFile, "oauth2-token-file", "", "authenticate with OAuth2 (OAUTHBEARER or XOAUTH2) using the token file `PATH` written by imapkit login; refreshed tokens are written back")
	fs.StringVar(&f.caFile, "ca-file", "", "trust the PEM certificates in `PATH` instead of the system roots")
	fs.BoolVar(&f.debug, "debug", false, "print a protocol trace to stderr (secrets redacted)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on every wait for the server (commands, DONE)")
}

// check validates the combination of flags.
func (f *connFlags) check() error {
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout %v: want a positive duration", f.timeout)
	}
	modes := 0
	for _, b := range []bool{f.tls, f.startTLS, f.plaintext, f.stream != ""} {
		if b {
			modes++
		}
	}
	if modes > 1 {
		return errors.New("choose one of --tls, --starttls, --plaintext and --stream")
	}
	if f.stream == "" && f.server == "" {
		return errors.New("--server or --stream is required")
	}
	if f.stream == "" && f.user == "" {
		return errors.New("--user is required with --server")
	}
	sources := 0
	for _, v := range []string{f.passwordEnv, f.passFile, f.passCmd, f.tokenFile} {
		if v != "" {
			sources++
		}
	}
	if sources > 1 {
		return errors.New("choose one of --password-env, --password-file, --password-cmd and --oauth2-token-file")
	}
	if f.stream != "" && sources > 0 {
		return errors.New("--stream sessions are already authenticated: drop the password or token source")
	}
	return nil
}

// password reads the password from the configured source.
func (f *connFlags) password(ctx context.Context) (string, error) {
	switch {
	case f.passwordEnv != "":
		v, ok := os.LookupEnv(f.passwordEnv)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", f.passwordEnv)
		}
		return v, nil
	case f.passFile != "":
		b, err := os.ReadFile(f.passFile)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		return firstLine(b), nil
	case f.passCmd != "":
		var errOut bytes.Buffer
		cmd := exec.CommandContext(ctx, "sh", "-c", f.passCmd)
		cmd.Stderr = &errOut
		out, err := cmd.Output()
		if err != nil {
			// The command's own words say what went wrong (a locked
			// keyring, say); the command line itself may hold a secret.
			said := strings.TrimSpace(errOut.String())
			if len(said) > 500 {
				said = said[:500] + "…"
			}
			if said != "" {
				return "", fmt.Errorf("password command failed: %w: %s", err, said)
			}
			return "", fmt.Errorf("password command failed: %w", err)
		}
		return firstLine(out), nil
	}
	return "", errors.New("no password source: use --password-env, --password-file, --password-cmd or --oauth2-token-file")
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return strings.TrimRight(string(line), "\r")
}

// options builds the client options.
func (f *connFlags) options(stderr io.Writer) (*imap.Options, error) {
	// A --stream command's own diagnostics go where ours go.
	opts := &imap.Options{InsecureAuth: f.plaintext, Timeout: f.timeout, StreamStderr: stderr}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", f.caFile)
		}
		opts.TLSConfig = &tls.Config{RootCAs: pool}
	}
	if f.debug {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return opts, nil
}

// dialer returns a function that connects and authenticates. It reads the
// credentials once up front, so that a missing source (or a token file
// whose refresh token was revoked) fails at once, and then afresh for
// every connection: a password changed on the server and in its source is
// picked up at the next reconnect, and an expired access token is
// refreshed.
func (f *connFlags) dialer(ctx context.Context, stderr io.Writer) (func(context.Context) (*imap.Client, error), error) {
	opts, err := f.options(stderr)
	if err != nil {
		return nil, err
	}
	var tokens *oauth.FileSource
	switch {
	case f.stream != "":
	case f.tokenFile != "":
		if tokens, err = oauth.OpenFile(f.tokenFile); err != nil {
			return nil, err
		}
		if _, err = tokens.Token(); err != nil {
			return nil, err
		}
	default:
		if _, err = f.password(ctx); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context) (*imap.Client, error) {
		var c *imap.Client
		var err error
		switch {
		case f.stream != "":
			c, err = imap.DialStream(ctx, f.stream, opts)
		case f.startTLS:
			c, err = imap.DialStartTLS(ctx, f.server, opts)
		case f.plaintext:
			c, err = imap.Dial(ctx, f.server, opts)
		default:
			c, err = imap.DialTLS(ctx, f.server, opts)
		}
		if err != nil {
			return nil, err
		}
		if c.State() == imap.StateNonAuth && tokens != nil {
			if _, err := c.AuthenticateOAuth2(ctx, f.user, tokens); err != nil {
				c.Shutdown()
				return nil, err
			}
		} else if c.State() == imap.StateNonAuth {
			pass, err := f.password(ctx)
			if err != nil {
				c.Shutdown()
				return nil, err
			}
			if _, err := c.Login(ctx, f.user, pass); err != nil {
				c.Shutdown()
				return nil, err
			}
		}
		return c, nil
	}, nil
}
