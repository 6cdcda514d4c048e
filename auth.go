package imap

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
)

// ErrAuthCanceled is returned by an AuthFunc to cancel an AUTHENTICATE
// exchange; the client then sends "*".
var ErrAuthCanceled = errors.New("authentication canceled by the client")

// AuthFunc answers one server challenge of AUTHENTICATE, like imaplib's
// authobject: it receives the decoded challenge and returns the response,
// which the client base64-encodes. Returning an error cancels the exchange
// (the client sends "*").
type AuthFunc func(challenge []byte) ([]byte, error)

// checkAuth refuses to send credentials in plaintext.
func (c *Client) checkAuth(name string) error {
	if !c.secure && !c.opts.InsecureAuth {
		return cmdError(name, "refusing to send credentials over an unencrypted connection (use TLS or STARTTLS, or set Options.InsecureAuth)")
	}
	return nil
}

// Login identifies the client with user and password. The password never
// appears in traces or errors. A NO is an error whose Text is the server's.
func (c *Client) Login(ctx context.Context, user, password string) (Result, error) {
	var l argList
	l.add(c.strArg("LOGIN", user, false))
	l.add(c.strArg("LOGIN", password, true))
	if l.err != nil {
		return Result{}, l.err
	}
	// The password as given and as sent (escaped inside a quoted string).
	secrets := [][]byte{[]byte(password)}
	if q := l.args[1].text; len(q) >= 2 && q != password {
		secrets = append(secrets, []byte(q[1:len(q)-1]))
	}
	return c.authCmd(ctx, &command{name: "LOGIN", args: l.args}, func() error {
		if c.has("LOGINDISABLED") {
			return cmdError("LOGIN", "server advertises LOGINDISABLED")
		}
		return nil
	}, secrets...)
}

// authCmd runs an authentication command: it checks the state and the
// transport, and on success moves to AUTH and refreshes the capabilities.
// secrets (and whatever the command adds with addSecret while it runs) are
// scrubbed from everything the server sends meanwhile.
func (c *Client) authCmd(ctx context.Context, cmd *command, precheck func() error, secrets ...[]byte) (Result, error) {
	if err := c.begin(cmd.name); err != nil {
		return Result{}, err
	}
	defer c.mu.Unlock()
	if err := c.checkAuth(cmd.name); err != nil {
		return Result{}, err
	}
	if precheck != nil {
		if err := precheck(); err != nil {
			return Result{}, err
		}
	}
	c.pop("CAPABILITY")
	c.secrets = new([][]byte)
	c.addSecret(secrets...)
	res, err := c.run(ctx, cmd)
	c.secrets = nil
	if err != nil {
		return res, err
	}
	c.setState(StateAuth)
	// Servers report more capabilities once authenticated.
	if codes := c.pop("CAPABILITY"); len(codes) > 0 {
		c.setCaps(codes[len(codes)-1].Text)
	} else if err := c.refreshCaps(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// Authenticate runs AUTHENTICATE mechanism, answering each challenge with
// fn. The server decides whether it supports the mechanism.
func (c *Client) Authenticate(ctx context.Context, mechanism string, fn AuthFunc) (Result, error) {
	mech, err := rawArg("AUTHENTICATE", strings.ToUpper(mechanism))
	if err != nil {
		return Result{}, err
	}
	var fnErr error
	cmd := &command{name: "AUTHENTICATE", args: []arg{mech},
		auth: func(ctx context.Context, challenge []byte) ([]byte, error) {
			dec, err := decodeChallenge(challenge)
			if err != nil {
				return nil, c.abort("AUTHENTICATE", err, "undecodable challenge")
			}
			resp, err := fn(dec)
			if err != nil {
				fnErr = err
				return []byte("*"), nil
			}
			enc := encodeResponse(resp)
			c.addSecret(resp, enc)
			return enc, nil
		}}
	res, err := c.authCmd(ctx, cmd, nil)
	if err != nil {
		if e, ok := err.(*Error); ok && fnErr != nil && e.Err == nil && e.Kind == ErrCommand {
			e.Err = fnErr
		}
	}
	return res, err
}

// AuthenticateSASL authenticates with a go-sasl client (PLAIN, LOGIN,
// OAUTHBEARER, or NewXOAuth2Client), sending the initial response with the
// command when the server advertises SASL-IR.
func (c *Client) AuthenticateSASL(ctx context.Context, client sasl.Client) (Result, error) {
	mech, ir, err := client.Start()
	if err != nil {
		return Result{}, &Error{Command: "AUTHENTICATE", Kind: ErrCommand, Text: "SASL start failed", Err: err}
	}
	mechArg, err := rawArg("AUTHENTICATE", strings.ToUpper(mech))
	if err != nil {
		return Result{}, err
	}
	args := []arg{mechArg}
	saslIR := c.has("SASL-IR")
	pendingIR := ir
	secrets := saslSecrets(ir)
	if ir != nil && saslIR {
		text := string(encodeResponse(ir))
		if text == "" {
			text = "=" // an empty initial response (RFC 4959)
		}
		args = append(args, arg{text: text, secret: true})
		pendingIR = nil
	}
	var saslErr error
	cmd := &command{name: "AUTHENTICATE", args: args,
		auth: func(ctx context.Context, challenge []byte) ([]byte, error) {
			if pendingIR != nil && len(challenge) == 0 {
				resp := pendingIR
				pendingIR = nil
				return encodeResponse(resp), nil
			}
			dec, err := decodeChallenge(challenge)
			if err != nil {
				return nil, c.abort("AUTHENTICATE", err, "undecodable challenge")
			}
			resp, err := client.Next(dec)
			if err != nil {
				saslErr = err
				return []byte("*"), nil
			}
			c.addSecret(saslSecrets(resp)...)
			return encodeResponse(resp), nil
		}}
	res, err := c.authCmd(ctx, cmd, nil, secrets...)
	if err != nil {
		if e, ok := err.(*Error); ok && saslErr != nil && e.Err == nil && e.Kind == ErrCommand {
			e.Err = saslErr
		}
	}
	return res, err
}

// LoginCRAMMD5 authenticates with CRAM-MD5 (RFC 2195).
func (c *Client) LoginCRAMMD5(ctx context.Context, user, password string) (Result, error) {
	return c.Authenticate(ctx, "CRAM-MD5", func(challenge []byte) ([]byte, error) {
		mac := hmac.New(md5.New, []byte(password))
		mac.Write(challenge)
		return []byte(user + " " + hex.EncodeToString(mac.Sum(nil))), nil
	})
}

// ProxyAuth assumes the authorization identity user.
func (c *Client) ProxyAuth(ctx context.Context, user string) (Result, error) {
	a, err := c.strArg("PROXYAUTH", user, false)
	if err != nil {
		return Result{}, err
	}
	return c.exec(ctx, &command{name: "PROXYAUTH", args: []arg{a}})
}

func decodeChallenge(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(string(b))
}

// encodeResponse base64-encodes a response; an empty one is "=" (RFC 4959)
// only in the initial-response position, otherwise an empty line, which
// base64 of nothing gives.
func encodeResponse(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	return []byte(base64.StdEncoding.EncodeToString(b))
}

// xoauth2 implements the XOAUTH2 mechanism Gmail and Microsoft use.
type xoauth2 struct{ user, token string }

// NewXOAuth2Client returns a sasl.Client for XOAUTH2 with an OAuth 2.0
// access token. The token never appears in traces.
func NewXOAuth2Client(user, token string) sasl.Client { return &xoauth2{user, token} }

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

// Next answers the server's error challenge with an empty response, which
// makes the server finish with NO.
func (x *xoauth2) Next(challenge []byte) ([]byte, error) { return []byte{}, nil }

// minSecret is the shortest credential scrubbed from server responses:
// hiding every occurrence of a shorter one would mangle the text, and such
// a credential hides nothing anyway.
const minSecret = 4

// redacted replaces a credential in what the server sent.
var redacted = []byte("<redacted>")

// addSecret adds credentials to scrub until the authentication command
// ends. c.mu must be held.
func (c *Client) addSecret(secrets ...[]byte) {
	for _, s := range secrets {
		if len(s) >= minSecret {
			*c.secrets = append(*c.secrets, s)
		}
	}
}

// scrub replaces the credentials of the running authentication command in
// line, a line the server sent, before it is traced, logged, parsed, cached
// or quoted in an error: a server may echo a password or a SASL payload
// back (in a NO, a BAD, a BYE or garbage). line is returned as is when it
// holds none, which is always the case outside authentication.
func (c *Client) scrub(line []byte) []byte {
	if c.secrets == nil {
		return line
	}
	for _, s := range *c.secrets {
		if bytes.Contains(line, s) {
			line = bytes.ReplaceAll(line, s, redacted)
		}
	}
	return line
}

// saslSecrets returns the credentials in a SASL response: the response,
// its base64 form, and the parts that carry the secret alone — the
// password of PLAIN ("authzid NUL authcid NUL passwd") and the token of
// XOAUTH2 and OAUTHBEARER ("...^Aauth=Bearer TOKEN^A^A").
func saslSecrets(resp []byte) [][]byte {
	if len(resp) == 0 {
		return nil
	}
	out := [][]byte{resp, encodeResponse(resp)}
	if f := bytes.Split(resp, []byte{0}); len(f) == 3 {
		out = append(out, f[2])
	}
	for _, f := range bytes.Split(resp, []byte{1}) {
		if v, ok := bytes.CutPrefix(f, []byte("auth=")); ok {
			out = append(out, v)
			if tok, ok := bytes.CutPrefix(v, []byte("Bearer ")); ok {
				out = append(out, tok)
			}
		}
	}
	return out
}
