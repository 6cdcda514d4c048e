// Package oauthtest runs an OAuth2 authorization server for tests, on a
// loopback port: the device flow (RFC 8628), the authorization code flow
// with PKCE (RFC 7636), refresh with rotation, and token introspection
// (RFC 7662) as Dovecot's oauth2 passdb uses it. Its access tokens live
// for seconds, so that tests see them expire.
//
// Dovecot 2.3's oauth2 passdb checks its tokens (XOAUTH2, OAUTHBEARER)
// when configured with
//
//	auth_mechanisms = $auth_mechanisms xoauth2 oauthbearer
//	passdb {
//	  driver = oauth2
//	  mechanisms = xoauth2 oauthbearer
//	  args = /path/to/dovecot-oauth2.conf.ext
//	}
//
// and in that file (the URL is Server.IntrospectURL):
//
//	introspection_mode = post
//	introspection_url = http://127.0.0.1:PORT/introspect
//	username_attribute = username
//	active_attribute = active
//	active_value = true
//	force_introspection = yes
//
// A test that starts from tokens rather than a login writes a token file
// from Server.Issue with oauth.WriteFile.
package oauthtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Config shapes a Server.
type Config struct {
	// User is whom the tokens belong to: introspection's "username".
	User string
	// Lifetime of access tokens, in whole seconds (default 3 s): the
	// token answers report it as expires_in, and introspection answers
	// {"active": false} for a token that old.
	Lifetime time.Duration
	// ClientID is the only client accepted; "" accepts any.
	ClientID string
	// ClientSecret, if set, is required from the client at the token
	// endpoint (in the form or with HTTP Basic).
	ClientSecret string
	// Interval is the device flow's polling interval, in whole seconds
	// (default 1 s). A poll sooner than that after the previous one is
	// answered slow_down, and the interval grows by 5 s.
	Interval time.Duration
	// CodeLifetime is how long device codes and authorization codes are
	// good for, in whole seconds (default 60 s).
	CodeLifetime time.Duration
}

// Server is a running authorization server.
type Server struct {
	cfg  Config
	http *httptest.Server

	mu      sync.Mutex
	devices map[string]*device   // by device code
	users   map[string]*device   // by user code
	queue   []string             // user codes not yet returned by WaitPending
	queued  chan struct{}        // closed when queue grows
	codes   map[string]*authCode // authorization codes
	access  map[string]time.Time // access token → when issued
	refresh map[string]string    // valid refresh tokens → their scope

	issued, refreshes, introspections int
}

// device is a device authorization.
type device struct {
	userCode string
	scope    string
	expires  time.Time
	interval time.Duration
	lastPoll time.Time
	state    string // "pending", "approved", "denied"
}

// authCode is an authorization code of the browser flow.
type authCode struct {
	clientID    string
	redirectURI string
	challenge   string
	scope       string
	expires     time.Time
}

// Start runs a server until the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	cfg.Lifetime = wholeSeconds(cfg.Lifetime, 3*time.Second)
	cfg.Interval = wholeSeconds(cfg.Interval, time.Second)
	cfg.CodeLifetime = wholeSeconds(cfg.CodeLifetime, time.Minute)
	s := &Server{
		cfg:     cfg,
		devices: make(map[string]*device),
		users:   make(map[string]*device),
		queued:  make(chan struct{}),
		codes:   make(map[string]*authCode),
		access:  make(map[string]time.Time),
		refresh: make(map[string]string),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /device", s.deviceAuthorization)
	mux.HandleFunc("GET /device/verify", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "oauthtest: the test approves codes with Server.Approve")
	})
	mux.HandleFunc("GET /authorize", s.authorize)
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /introspect", s.introspect)
	mux.HandleFunc("GET /introspect", s.introspect)
	s.http = httptest.NewServer(mux)
	t.Cleanup(s.http.Close)
	return s
}

// wholeSeconds rounds d down to whole seconds (endpoints speak in
// seconds), with def for zero and at least one second.
func wholeSeconds(d, def time.Duration) time.Duration {
	if d == 0 {
		d = def
	}
	return max(d.Truncate(time.Second), time.Second)
}

// DeviceURL is the device authorization endpoint.
func (s *Server) DeviceURL() string { return s.http.URL + "/device" }

// TokenURL is the token endpoint.
func (s *Server) TokenURL() string { return s.http.URL + "/token" }

// AuthURL is the authorization endpoint, which approves every valid
// request at once (no page) and redirects to the client's redirect_uri.
func (s *Server) AuthURL() string { return s.http.URL + "/authorize" }

// IntrospectURL is the token introspection endpoint.
func (s *Server) IntrospectURL() string { return s.http.URL + "/introspect" }

// Lifetime is the access tokens' lifetime (Config.Lifetime, rounded).
func (s *Server) Lifetime() time.Duration { return s.cfg.Lifetime }

// WaitPending returns the user code of the next device authorization
// request, waiting for one if none came yet. Each code is returned once.
func (s *Server) WaitPending(ctx context.Context) (userCode string, err error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			code := s.queue[0]
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return code, nil
		}
		queued := s.queued
		s.mu.Unlock()
		select {
		case <-queued:
		case <-ctx.Done():
			return "", fmt.Errorf("oauthtest: waiting for a device authorization request: %w", ctx.Err())
		}
	}
}

// Approve approves the pending device authorization with userCode: the
// next poll gets tokens.
func (s *Server) Approve(userCode string) error { return s.decide(userCode, "approved") }

// Deny denies the pending device authorization with userCode: the next
// poll gets access_denied.
func (s *Server) Deny(userCode string) error { return s.decide(userCode, "denied") }

func (s *Server) decide(userCode, state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.users[userCode]
	if !ok || d.state != "pending" || time.Now().After(d.expires) {
		return fmt.Errorf("oauthtest: no pending device authorization has user code %q", userCode)
	}
	d.state = state
	return nil
}

// Tokens are tokens the server issued.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	Expiry       time.Time
}

// Issue issues tokens without a flow, as a login would have: for tests
// that start from a token file.
func (s *Server) Issue() Tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issueLocked("")
}

// RevokeRefreshTokens makes every refresh token issued so far answer
// invalid_grant, as after the user revoked the application's access.
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.refresh)
}

// RevokeAccessTokens makes introspection answer {"active": false} for
// every access token issued so far, before they expire.
func (s *Server) RevokeAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
}

// Issued is the number of access tokens issued, by every grant.
func (s *Server) Issued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

// Refreshes is the number of successful refresh_token grants.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// Introspections is the number of introspection requests.
func (s *Server) Introspections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.introspections
}

// deviceAuthorization is the device authorization endpoint (RFC 8628
// section 3.1).
func (s *Server) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if id := r.PostForm.Get("client_id"); id == "" || s.cfg.ClientID != "" && id != s.cfg.ClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	now := time.Now()
	d := &device{
		userCode: userCode(),
		scope:    r.PostForm.Get("scope"),
		expires:  now.Add(s.cfg.CodeLifetime),
		interval: s.cfg.Interval,
		lastPoll: now, // the first poll, too, waits for the interval
		state:    "pending",
	}
	deviceCode := random("dc-")
	verify := s.http.URL + "/device/verify"
	s.mu.Lock()
	s.devices[deviceCode] = d
	s.users[d.userCode] = d
	s.queue = append(s.queue, d.userCode)
	close(s.queued)
	s.queued = make(chan struct{})
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               deviceCode,
		"user_code":                 d.userCode,
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?user_code=" + url.QueryEscape(d.userCode),
		"expires_in":                int(s.cfg.CodeLifetime / time.Second),
		"interval":                  int(s.cfg.Interval / time.Second),
	})
}

// authorize is the authorization endpoint: it approves a valid request
// at once.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	// An invalid redirect URI is reported here, never redirected to
	// (RFC 6749 section 4.1.2.1).
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme != "http" || !loopback(u.Hostname()) {
		http.Error(w, "oauthtest: redirect_uri must be an http URL on a loopback address", http.StatusBadRequest)
		return
	}
	if id := q.Get("client_id"); id == "" || s.cfg.ClientID != "" && id != s.cfg.ClientID {
		http.Error(w, "oauthtest: unknown client_id", http.StatusBadRequest)
		return
	}
	back := u.Query()
	back.Set("state", q.Get("state"))
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		back.Set("error", "invalid_request")
		back.Set("error_description", "PKCE with S256 is required")
	default:
		code := random("ac-")
		s.mu.Lock()
		s.codes[code] = &authCode{
			clientID:    q.Get("client_id"),
			redirectURI: redirect,
			challenge:   q.Get("code_challenge"),
			scope:       q.Get("scope"),
			expires:     time.Now().Add(s.cfg.CodeLifetime),
		}
		s.mu.Unlock()
		back.Set("code", code)
	}
	u.RawQuery = back.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// token is the token endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f := r.PostForm
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if user, pass, ok := r.BasicAuth(); ok { // RFC 6749 section 2.3.1
		clientID, _ = url.QueryUnescape(user)
		secret, _ = url.QueryUnescape(pass)
	}
	if clientID == "" || s.cfg.ClientID != "" && clientID != s.cfg.ClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	if s.cfg.ClientSecret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(s.cfg.ClientSecret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "wrong or missing client_secret")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch f.Get("grant_type") {
	case "urn:ietf:params:oauth:grant-type:device_code":
		s.deviceGrant(w, f.Get("device_code"))
	case "authorization_code":
		s.codeGrant(w, clientID, f)
	case "refresh_token":
		scope, ok := s.refresh[f.Get("refresh_token")]
		if !ok {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, revoked or used")
			return
		}
		// Rotation: a refresh token is good for one refresh.
		delete(s.refresh, f.Get("refresh_token"))
		s.refreshes++
		s.answerTokens(w, scope)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// deviceGrant answers a device flow poll (RFC 8628 section 3.5).
func (s *Server) deviceGrant(w http.ResponseWriter, deviceCode string) {
	d, ok := s.devices[deviceCode]
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown device_code")
		return
	}
	now := time.Now()
	if now.After(d.expires) {
		s.forget(deviceCode, d)
		oauthError(w, http.StatusBadRequest, "expired_token", "")
		return
	}
	// A little slack for the time a request takes to arrive.
	tooSoon := now.Sub(d.lastPoll) < d.interval*9/10
	d.lastPoll = now
	switch {
	case d.state == "denied":
		s.forget(deviceCode, d)
		oauthError(w, http.StatusBadRequest, "access_denied", "")
	case tooSoon:
		d.interval += 5 * time.Second
		oauthError(w, http.StatusBadRequest, "slow_down", "")
	case d.state == "pending":
		oauthError(w, http.StatusBadRequest, "authorization_pending", "")
	default:
		s.forget(deviceCode, d)
		s.answerTokens(w, d.scope)
	}
}

func (s *Server) forget(deviceCode string, d *device) {
	delete(s.devices, deviceCode)
	delete(s.users, d.userCode)
}

// codeGrant redeems an authorization code, checking the PKCE verifier.
func (s *Server) codeGrant(w http.ResponseWriter, clientID string, f url.Values) {
	code, ok := s.codes[f.Get("code")]
	delete(s.codes, f.Get("code")) // good for one attempt
	switch {
	case !ok || time.Now().After(code.expires):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or expired code")
	case code.clientID != clientID || code.redirectURI != f.Get("redirect_uri"):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "client_id or redirect_uri differ from the authorization request")
	case s256(f.Get("code_verifier")) != code.challenge:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the code_verifier does not match the code_challenge")
	default:
		s.answerTokens(w, code.scope)
	}
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// answerTokens issues new tokens and answers with them (RFC 6749 section
// 5.1).
func (s *Server) answerTokens(w http.ResponseWriter, scope string) {
	t := s.issueLocked(scope)
	answer := map[string]any{
		"access_token":  t.AccessToken,
		"token_type":    "Bearer",
		"expires_in":    int(s.cfg.Lifetime / time.Second),
		"refresh_token": t.RefreshToken,
	}
	if scope != "" {
		answer["scope"] = scope
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) issueLocked(scope string) Tokens {
	now := time.Now()
	t := Tokens{AccessToken: random("at-"), RefreshToken: random("rt-"), Expiry: now.Add(s.cfg.Lifetime)}
	s.access[t.AccessToken] = now
	s.refresh[t.RefreshToken] = scope
	s.issued++
	return t
}

// introspect is the introspection endpoint (RFC 7662): the token comes
// in a POST form (Dovecot's introspection_mode = post) or, for
// introspection_mode = auth, as a bearer token.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	token := ""
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		token = r.PostForm.Get("token")
	}
	if token == "" {
		token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	s.mu.Lock()
	s.introspections++
	issued, ok := s.access[token]
	s.mu.Unlock()
	if !ok || time.Since(issued) >= s.cfg.Lifetime {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"active":     true,
		"username":   s.cfg.User,
		"token_type": "Bearer",
		"iat":        issued.Unix(),
		"exp":        issued.Add(s.cfg.Lifetime).Unix(),
	})
}

func oauthError(w http.ResponseWriter, status int, code, description string) {
	answer := map[string]string{"error": code}
	if description != "" {
		answer["error_description"] = description
	}
	writeJSON(w, status, answer)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// random returns a unique random token with a prefix saying what it is.
func random(prefix string) string {
	return prefix + rand.Text()
}

// userCode returns a code as users type them: eight letters without
// vowels (no words) in two groups.
func userCode() string {
	const letters = "BCDFGHJKLMNPQRSTVWXZ"
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b[:4]) + "-" + string(b[4:])
}
