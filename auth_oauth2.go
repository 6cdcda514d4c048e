package imap

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"golang.org/x/oauth2"
)

// A TokenRenewer is an oauth2.TokenSource that can replace a token before
// it expires. [Client.AuthenticateOAuth2] calls RenewToken when the server
// refused a token the source still considers valid (revoked, or expired
// early at the provider), and tries once more with the new one. refused
// is the token that was refused: a source shared by many connections
// returns a newer token it already holds instead of refreshing again.
type TokenRenewer interface {
	oauth2.TokenSource
	RenewToken(ctx context.Context, refused *oauth2.Token) (*oauth2.Token, error)
}

// OAuth2Error is the server's JSON error status for a refused OAuth 2.0
// token (RFC 7628 section 3.2.2; XOAUTH2 sends the same shape). A refused
// AuthenticateOAuth2 returns an *Error whose Err is an *OAuth2Error, so
// errors.As finds it.
type OAuth2Error struct {
	Mechanism           string `json:"-"`      // OAUTHBEARER or XOAUTH2
	Status              string `json:"status"` // "invalid_token", "401", …
	Schemes             string `json:"schemes,omitempty"`
	Scope               string `json:"scope,omitempty"`
	OpenIDConfiguration string `json:"openid-configuration,omitempty"`
}

// Error returns "MECHANISM token refused: status S[, scope S]".
func (e *OAuth2Error) Error() string {
	msg := e.Mechanism + " token refused: status " + e.Status
	if e.Scope != "" {
		msg += ", scope " + e.Scope
	}
	return msg
}

// AuthenticateOAuth2 authenticates user with an OAuth 2.0 access token
// from ts: with OAUTHBEARER (RFC 7628) when the server advertises it, else
// with XOAUTH2 (Gmail, Microsoft 365), sending the token with the command
// when the server advertises SASL-IR.
//
// When ts also has a method TokenContext(ctx context.Context)
// (*oauth2.Token, error), as the oauth package's FileSource does, it is used instead of
// Token, so that ctx bounds the request to the token endpoint.
//
// A refused token is replaced once — by RenewToken when ts is a
// [TokenRenewer], else by asking ts again — and tried once more. A final
// refusal is an *Error of kind ErrCommand whose Err is the server's
// decoded *OAuth2Error (when it sent one). An error from ts is returned
// wrapped in an *Error of kind ErrCommand; the connection stays usable.
// The token never appears in traces or errors.
func (c *Client) AuthenticateOAuth2(ctx context.Context, user string, ts oauth2.TokenSource) (Result, error) {
	mech := ""
	switch {
	case c.Has("AUTH=OAUTHBEARER"):
		mech = "OAUTHBEARER"
	case c.Has("AUTH=XOAUTH2"):
		mech = "XOAUTH2"
	default:
		return Result{}, cmdError("AUTHENTICATE", "server advertises neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2")
	}
	var tok *oauth2.Token
	var err error
	if cts, ok := ts.(contextTokenSource); ok {
		tok, err = cts.TokenContext(ctx)
	} else {
		tok, err = ts.Token()
	}
	if err != nil {
		return Result{}, &Error{Command: "AUTHENTICATE", Kind: ErrCommand, Text: "obtaining an OAuth2 token", Err: err}
	}
	res, err := c.authenticateToken(ctx, mech, user, tok)
	var refused *OAuth2Error
	if err == nil || !errors.Is(err, ErrCommand) || !errors.As(err, &refused) {
		return res, err
	}
	var fresh *oauth2.Token
	var renewErr error
	if r, ok := ts.(TokenRenewer); ok {
		fresh, renewErr = r.RenewToken(ctx, tok)
	} else {
		fresh, renewErr = ts.Token()
	}
	switch {
	case renewErr != nil:
		err.(*Error).Text += " (renewing the token failed: " + renewErr.Error() + ")"
		return res, err
	case fresh.AccessToken == tok.AccessToken:
		return res, err // nothing new to try
	}
	return c.authenticateToken(ctx, mech, user, fresh)
}

// contextTokenSource is a token source whose requests honour a context.
type contextTokenSource interface {
	TokenContext(ctx context.Context) (*oauth2.Token, error)
}

// authenticateToken runs one AUTHENTICATE exchange with tok.
func (c *Client) authenticateToken(ctx context.Context, mech, user string, tok *oauth2.Token) (Result, error) {
	if tok == nil || tok.AccessToken == "" {
		return Result{}, cmdError("AUTHENTICATE", "the token source returned no access token")
	}
	cl := &oauth2SASL{mech: mech, user: user, token: tok.AccessToken}
	res, err := c.AuthenticateSASL(ctx, cl)
	var e *Error
	if errors.As(err, &e) && e.Kind == ErrCommand && e.Err == nil && cl.refused != nil {
		e.Err = cl.refused
	}
	return res, err
}

// oauth2SASL is the client side of OAUTHBEARER and XOAUTH2: the initial
// response carries the token; a challenge is the server's JSON error, which
// is kept and answered with the response that ends the exchange (%x01 for
// OAUTHBEARER, RFC 7628 section 3.2.3; an empty one for XOAUTH2).
type oauth2SASL struct {
	mech, user, token string
	refused           *OAuth2Error
}

func (s *oauth2SASL) Start() (string, []byte, error) {
	if s.mech == "XOAUTH2" {
		return s.mech, []byte("user=" + s.user + "\x01auth=Bearer " + s.token + "\x01\x01"), nil
	}
	// The GS2 header names the authorization identity, with "," and "="
	// escaped (RFC 5801 section 4).
	authzid := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	return s.mech, []byte("n,a=" + authzid + ",\x01auth=Bearer " + s.token + "\x01\x01"), nil
}

func (s *oauth2SASL) Next(challenge []byte) ([]byte, error) {
	e := &OAuth2Error{Mechanism: s.mech}
	if json.Unmarshal(challenge, e) != nil || e.Status == "" {
		e.Status = strings.TrimSpace(string(challenge))
	}
	s.refused = e
	if s.mech == "OAUTHBEARER" {
		return []byte{1}, nil
	}
	return []byte{}, nil
}
