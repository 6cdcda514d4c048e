package oauth_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/oauthtest"
	"github.com/imapkit/imap/oauth"
)

// syncBuffer is a buffer that the login and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// checkRefresh checks that the file a login returned holds a refresh
// token that the server takes.
func checkRefresh(t *testing.T, srv *oauthtest.Server, f *oauth.File) {
	t.Helper()
	if f.AccessToken == "" || f.TokenURL != srv.TokenURL() || f.ClientID != "imapkit" {
		t.Errorf("login's file: %+v", f)
	}
	if time.Until(f.Expiry) <= 0 {
		t.Errorf("expiry %v is not in the future", f.Expiry)
	}
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := oauth.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	src, err := oauth.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Refreshes()
	if _, err := src.RenewToken(context.Background(), nil); err != nil {
		t.Errorf("the login's refresh token does not work: %v", err)
	}
	if srv.Refreshes() != before+1 {
		t.Errorf("no refresh at the server")
	}
}

// TestDeviceLogin approves, denies, or lets the code expire.
func TestDeviceLogin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		decide  func(*oauthtest.Server, string) error // nil: nobody answers
		expiry  time.Duration                         // of the code
		wantErr string
	}{
		{name: "approved", decide: (*oauthtest.Server).Approve, expiry: time.Minute},
		{name: "denied", decide: (*oauthtest.Server).Deny, expiry: time.Minute, wantErr: "denied"},
		{name: "expired", expiry: time.Second, wantErr: "expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.Start(t, oauthtest.Config{ClientID: "imapkit", ClientSecret: "s3cret", CodeLifetime: tc.expiry})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var prompt syncBuffer
			type result struct {
				f   *oauth.File
				err error
			}
			done := make(chan result, 1)
			go func() {
				f, err := oauth.DeviceLogin(ctx, oauth.LoginConfig{
					Provider: "custom", ClientID: "imapkit", ClientSecret: "s3cret", Scopes: []string{"imap", "offline"},
					DeviceURL: srv.DeviceURL(), TokenURL: srv.TokenURL(), Prompt: &prompt,
				})
				done <- result{f, err}
			}()
			code, err := srv.WaitPending(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.decide != nil {
				if err := tc.decide(srv, code); err != nil {
					t.Fatal(err)
				}
			}
			r := <-done
			for _, w := range []string{code, srv.DeviceURL() + "/verify"} {
				if !strings.Contains(prompt.String(), w) {
					t.Errorf("prompt %q lacks %q", prompt.String(), w)
				}
			}
			if tc.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr) {
					t.Fatalf("DeviceLogin = %v, want an error saying %q", r.err, tc.wantErr)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.f.Provider != "custom" || r.f.ClientSecret != "s3cret" || strings.Join(r.f.Scopes, " ") != "imap offline" {
				t.Errorf("file %+v", r.f)
			}
			checkRefresh(t, srv, r.f)
		})
	}
}

// TestDeviceLoginSlowDown answers the first poll with slow_down: the
// next poll comes the interval plus the increase later.
func TestDeviceLoginSlowDown(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var polls []time.Time
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/device" {
			io.WriteString(w, `{"device_code": "d", "user_code": "U", "verification_url": "https://x/device", "expires_in": 60, "interval": 1}`)
			return
		}
		mu.Lock()
		polls = append(polls, time.Now())
		n := len(polls)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error": "slow_down"}`)
			return
		}
		io.WriteString(w, `{"access_token": "a", "refresh_token": "r", "expires_in": 60}`)
	}))
	defer ts.Close()
	cfg := oauth.LoginConfig{ClientID: "c", DeviceURL: ts.URL + "/device", TokenURL: ts.URL + "/token"}
	oauth.SetSlowDown(&cfg, 400*time.Millisecond)
	f, err := oauth.DeviceLogin(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.RefreshToken != "r" {
		t.Errorf("refresh token %q", f.RefreshToken)
	}
	if len(polls) != 2 {
		t.Fatalf("%d polls, want 2", len(polls))
	}
	if gap := polls[1].Sub(polls[0]); gap < 1400*time.Millisecond {
		t.Errorf("the poll after slow_down came %v later, want at least 1.4 s", gap)
	}
}

// TestBrowserLogin has a "browser" follow the printed URL: the server
// redirects it to the login's loopback listener with a code.
func TestBrowserLogin(t *testing.T) {
	t.Parallel()
	srv := oauthtest.Start(t, oauthtest.Config{ClientID: "imapkit"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var prompt syncBuffer
	page := make(chan string, 1)
	f, err := oauth.BrowserLogin(ctx, oauth.LoginConfig{
		Provider: "custom", ClientID: "imapkit", Scopes: []string{"imap"},
		AuthURL: srv.AuthURL(), TokenURL: srv.TokenURL(), Prompt: &prompt,
		OpenBrowser: func(u string) error {
			go func() {
				resp, err := http.Get(u)
				if err != nil {
					page <- err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				page <- string(b)
			}()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := <-page; !strings.Contains(p, "You may close this window") {
		t.Errorf("the browser got %q", p)
	}
	if !strings.Contains(prompt.String(), srv.AuthURL()+"?") {
		t.Errorf("the prompt %q lacks the URL", prompt.String())
	}
	checkRefresh(t, srv, f)
}

// TestBrowserLoginAnswers sends the loopback listener answers by hand:
// a refusal ends the login, a foreign state is ignored.
func TestBrowserLoginAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		answers []url.Values // "STATE" stands for the login's state
		status  int          // of the last answer
		wantErr string
	}{
		{name: "refused", answers: []url.Values{{"state": {"STATE"}, "error": {"access_denied"}, "error_description": {"the user said no"}}},
			status: 200, wantErr: "refused: access_denied (the user said no)"},
		{name: "foreign state, then refused", answers: []url.Values{
			{"state": {"other"}, "code": {"c"}},
			{"state": {"STATE"}, "error": {"access_denied"}},
		}, status: 200, wantErr: "refused: access_denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			opened := make(chan string, 1)
			done := make(chan error, 1)
			go func() {
				_, err := oauth.BrowserLogin(ctx, oauth.LoginConfig{
					ClientID: "c", AuthURL: "https://auth.example/authorize", TokenURL: "https://auth.example/token",
					OpenBrowser: func(u string) error { opened <- u; return nil },
				})
				done <- err
			}()
			authURL, err := url.Parse(<-opened)
			if err != nil {
				t.Fatal(err)
			}
			q := authURL.Query()
			if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" {
				t.Errorf("the authorization URL lacks PKCE or state: %s", authURL)
			}
			for i, a := range tc.answers {
				if a.Get("state") == "STATE" {
					a.Set("state", q.Get("state"))
				}
				resp, err := http.Get(q.Get("redirect_uri") + "?" + a.Encode())
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if i < len(tc.answers)-1 {
					select {
					case err := <-done:
						t.Fatalf("the login ended after answer %d: %v", i, err)
					case <-time.After(50 * time.Millisecond):
					}
				} else if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
				}
			}
			err = <-done
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("BrowserLogin = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestLoginWithoutRefreshToken: a login that gets no refresh token
// fails, saying how to get one.
func TestLoginWithoutRefreshToken(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token": "a", "expires_in": 60}`)
	}))
	defer ts.Close()
	_, err := oauth.BrowserLogin(context.Background(), oauth.LoginConfig{ClientID: "c", AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token",
		OpenBrowser: func(u string) error {
			// The user approves: the browser comes back with a code.
			authURL, err := url.Parse(u)
			if err != nil {
				return err
			}
			q := authURL.Query()
			go http.Get(q.Get("redirect_uri") + "?" + url.Values{"state": {q.Get("state")}, "code": {"c"}}.Encode())
			return nil
		}})
	if err == nil || !strings.Contains(err.Error(), "no refresh token") || !strings.Contains(err.Error(), "offline_access") {
		t.Errorf("BrowserLogin = %v, want no refresh token", err)
	}
}

// TestLoginPresets: a preset fills the endpoints and scopes, and asks
// Google for offline access; without a preset the endpoints are required.
func TestLoginPresets(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"google", "microsoft"} {
		p, ok := oauth.LookupProvider(name)
		if !ok || p.TokenURL == "" || p.AuthURL == "" || p.DeviceURL == "" || len(p.Scopes) == 0 || p.IMAPServer == "" {
			t.Errorf("LookupProvider(%q) = %+v, %v", name, p, ok)
		}
	}
	if _, ok := oauth.LookupProvider("custom"); ok {
		t.Error("custom is not a preset")
	}
	for _, tc := range []struct {
		provider string
		want     url.Values
		absent   []string
	}{
		{"google", url.Values{"scope": {"https://mail.google.com/"}, "access_type": {"offline"}, "prompt": {"consent"}}, nil},
		{"microsoft", url.Values{"scope": {"https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}}, []string{"access_type", "prompt"}},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var opened string
		_, err := oauth.BrowserLogin(ctx, oauth.LoginConfig{Provider: tc.provider, ClientID: "c",
			OpenBrowser: func(u string) error { opened = u; cancel(); return nil }})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: BrowserLogin = %v, want it cancelled", tc.provider, err)
		}
		p, _ := oauth.LookupProvider(tc.provider)
		if !strings.HasPrefix(opened, p.AuthURL+"?") {
			t.Errorf("%s: opened %q, want the preset's authorization URL", tc.provider, opened)
		}
		u, _ := url.Parse(opened)
		for k, v := range tc.want {
			if got := u.Query().Get(k); got != v[0] {
				t.Errorf("%s: %s=%q, want %q", tc.provider, k, got, v[0])
			}
		}
		for _, k := range tc.absent {
			if u.Query().Has(k) {
				t.Errorf("%s: the URL has %s", tc.provider, k)
			}
		}
	}
	_, err := oauth.DeviceLogin(context.Background(), oauth.LoginConfig{Provider: "custom", ClientID: "c"})
	if err == nil || !strings.Contains(err.Error(), "no device authorization URL, token URL") {
		t.Errorf("DeviceLogin without URLs = %v", err)
	}
}
