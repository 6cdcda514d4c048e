package oauthtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// call posts form to endpoint and decodes the JSON answer.
func call(t *testing.T, endpoint string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(endpoint, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, m
}

func TestOAuthIntrospection(t *testing.T) {
	t.Parallel()
	s := Start(t, Config{User: "alice", Lifetime: time.Second})
	s.Issue() // counted, never asked about
	revoked := s.Issue()
	s.RevokeAccessTokens()
	fresh := s.Issue()
	for _, tc := range []struct {
		name   string
		token  string
		active bool
	}{
		{"fresh", fresh.AccessToken, true},
		{"unknown", "at-nonsense", false},
		{"revoked", revoked.AccessToken, false},
		{"refresh token", fresh.RefreshToken, false},
	} {
		_, m := call(t, s.IntrospectURL(), url.Values{"token": {tc.token}})
		if m["active"] != tc.active || tc.active && m["username"] != "alice" {
			t.Errorf("%s: introspection %v, want active %v for alice", tc.name, m, tc.active)
		}
	}
	time.Sleep(time.Until(fresh.Expiry))
	if _, m := call(t, s.IntrospectURL(), url.Values{"token": {fresh.AccessToken}}); m["active"] != false {
		t.Errorf("introspection of an expired token: %v", m)
	}
	if s.Introspections() != 5 || s.Issued() != 3 {
		t.Errorf("%d introspections, %d issued; want 5 and 3", s.Introspections(), s.Issued())
	}
}

// TestOAuthRefreshGrant: each refresh token is good once; revoked ones and
// wrong client credentials are refused.
func TestOAuthRefreshGrant(t *testing.T) {
	t.Parallel()
	s := Start(t, Config{ClientID: "c", ClientSecret: "pw"})
	first := s.Issue()
	refresh := func(rt, secret string) (int, map[string]any) {
		return call(t, s.TokenURL(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"c"}, "client_secret": {secret}})
	}
	if code, m := refresh(first.RefreshToken, "wrong"); code != 401 || m["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v", code, m)
	}
	code, m := refresh(first.RefreshToken, "pw")
	if code != 200 || m["access_token"] == first.AccessToken || m["refresh_token"] == first.RefreshToken || m["expires_in"] != 3.0 {
		t.Fatalf("refresh: %d %v", code, m)
	}
	if code, m := refresh(first.RefreshToken, "pw"); code != 400 || m["error"] != "invalid_grant" {
		t.Errorf("second use of a refresh token: %d %v", code, m)
	}
	s.RevokeRefreshTokens()
	if code, m := refresh(m["refresh_token"].(string), "pw"); code != 400 || m["error"] != "invalid_grant" {
		t.Errorf("revoked refresh token: %d %v", code, m)
	}
	if s.Refreshes() != 1 {
		t.Errorf("%d refreshes, want 1", s.Refreshes())
	}
}

// TestOAuthDevicePolling: pending, slow_down when too fast, tokens once
// approved, and the device code is good once.
func TestOAuthDevicePolling(t *testing.T) {
	t.Parallel()
	s := Start(t, Config{ClientID: "c"})
	_, da := call(t, s.DeviceURL(), url.Values{"client_id": {"c"}, "scope": {"imap"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	userCode, err := s.WaitPending(ctx)
	if err != nil || userCode != da["user_code"] || da["interval"] != 1.0 {
		t.Fatalf("WaitPending = %q, %v; device answer %v", userCode, err, da)
	}
	poll := func() map[string]any {
		_, m := call(t, s.TokenURL(), url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da["device_code"].(string)}, "client_id": {"c"}})
		return m
	}
	if m := poll(); m["error"] != "slow_down" {
		t.Errorf("poll at once: %v, want slow_down", m)
	}
	s.mu.Lock()
	for _, d := range s.devices {
		d.interval = time.Second // forgive the test
		d.lastPoll = time.Now().Add(-time.Second)
	}
	s.mu.Unlock()
	if m := poll(); m["error"] != "authorization_pending" {
		t.Errorf("poll before approval: %v, want authorization_pending", m)
	}
	if err := s.Approve(userCode); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	for _, d := range s.devices {
		d.lastPoll = time.Now().Add(-time.Second)
	}
	s.mu.Unlock()
	if m := poll(); m["access_token"] == nil || m["refresh_token"] == nil || m["scope"] != "imap" {
		t.Errorf("poll after approval: %v", m)
	}
	if m := poll(); m["error"] != "invalid_grant" {
		t.Errorf("poll after the tokens: %v, want invalid_grant", m)
	}
	if err := s.Deny(userCode); err == nil {
		t.Error("Deny of a used code succeeded")
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.WaitPending(ctx); err == nil {
		t.Error("WaitPending returned a code twice")
	}
}

// TestOAuthAuthorizationCode: the code redeems only with the PKCE verifier.
func TestOAuthAuthorizationCode(t *testing.T) {
	t.Parallel()
	s := Start(t, Config{ClientID: "c"})
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	const challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" // RFC 7636 appendix B
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func() string {
		q := url.Values{"response_type": {"code"}, "client_id": {"c"}, "redirect_uri": {"http://127.0.0.1:9/"}, "state": {"st"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		resp, err := noRedirect.Get(s.AuthURL() + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode != http.StatusFound || loc.Host != "127.0.0.1:9" || loc.Query().Get("state") != "st" {
			t.Fatalf("authorize: %d to %v", resp.StatusCode, loc)
		}
		return loc.Query().Get("code")
	}
	exchange := func(code, verifier string) (int, map[string]any) {
		return call(t, s.TokenURL(), url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"c"},
			"redirect_uri": {"http://127.0.0.1:9/"}, "code_verifier": {verifier}})
	}
	if code, m := exchange(authorize(), "wrong-verifier"); code != 400 || m["error"] != "invalid_grant" {
		t.Errorf("wrong verifier: %d %v", code, m)
	}
	if code, m := exchange(authorize(), verifier); code != 200 || m["refresh_token"] == nil {
		t.Errorf("right verifier: %d %v", code, m)
	}
	resp, err := noRedirect.Get(s.AuthURL() + "?response_type=code&client_id=c&redirect_uri=https%3A%2F%2Fevil.example%2F")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a redirect_uri off loopback: %d, want 400 without a redirect", resp.StatusCode)
	}
}
