package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/oauthtest"
	"github.com/imapkit/imap/oauth"
	"golang.org/x/oauth2"
)

// tokenFile writes a token file holding fresh tokens of srv, as a login
// would, and returns its path and the tokens.
func tokenFile(t *testing.T, srv *oauthtest.Server, secret string) (string, oauthtest.Tokens) {
	t.Helper()
	tok := srv.Issue()
	path := filepath.Join(t.TempDir(), "tokens.json")
	err := oauth.WriteFile(path, &oauth.File{
		Provider:     "custom",
		TokenURL:     srv.TokenURL(),
		ClientID:     "imapkit",
		ClientSecret: secret,
		Scopes:       []string{"imap"},
		AccessToken:  tok.AccessToken,
		RefreshToken: tok.RefreshToken,
		Expiry:       tok.Expiry,
	})
	if err != nil {
		t.Fatal(err)
	}
	return path, tok
}

func openFile(t *testing.T, path string) *oauth.FileSource {
	t.Helper()
	src, err := oauth.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestOAuthFileSourceShortLifetime calls Token every 10 ms for 3 s with tokens
// that live 3 s: the first token is used for most of its life, renewed
// once before it expires, and the server sees one refresh, not hundreds.
func TestOAuthFileSourceShortLifetime(t *testing.T) {
	t.Parallel()
	srv := oauthtest.Start(t, oauthtest.Config{ClientID: "imapkit", Lifetime: 3 * time.Second})
	path, first := tokenFile(t, srv, "")
	src := openFile(t, path)
	start := time.Now()
	var renewedAt time.Time
	current := first.AccessToken
	for time.Since(start) < 3*time.Second {
		tok, err := src.Token()
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken != current {
			if !renewedAt.IsZero() {
				t.Fatalf("a second renewal %v after the start", time.Since(start))
			}
			renewedAt, current = time.Now(), tok.AccessToken
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.Refreshes(); n != 1 {
		t.Errorf("%d refreshes in 3 s, want 1", n)
	}
	switch {
	case renewedAt.IsZero():
		t.Error("the token was not renewed")
	case renewedAt.Before(start.Add(1500 * time.Millisecond)):
		t.Errorf("renewed %v after the start: too early for a token of 3 s", renewedAt.Sub(start))
	case !renewedAt.Before(first.Expiry):
		t.Errorf("renewed %v after the token expired", renewedAt.Sub(first.Expiry))
	}
}

// TestOAuthFileSourceWritesBack forces refreshes: the new tokens are in the
// file (mode 0600), with the rotated refresh token, or the old one when
// the server sends none.
func TestOAuthFileSourceWritesBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		rotate bool
	}{
		{"rotated", true},
		{"kept", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n int
			var mu sync.Mutex
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n++
				access, refresh := "access-"+string(rune('0'+n)), ""
				if tc.rotate {
					refresh = `, "refresh_token": "refresh-` + string(rune('0'+n)) + `"`
				}
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(`{"access_token": "` + access + `", "token_type": "Bearer", "expires_in": 3600` + refresh + `}`))
			}))
			defer ts.Close()
			path := filepath.Join(t.TempDir(), "tokens.json")
			f := &oauth.File{Provider: "custom", TokenURL: ts.URL, ClientID: "c", RefreshToken: "refresh-0", AccessToken: "access-0", Expiry: time.Now().Add(time.Hour)}
			if err := oauth.WriteFile(path, f); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
			src := openFile(t, path)
			tok, err := src.RenewToken(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tok.AccessToken != "access-1" {
				t.Errorf("access token %q, want access-1", tok.AccessToken)
			}
			got, err := oauth.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			wantRefresh := "refresh-0"
			if tc.rotate {
				wantRefresh = "refresh-1"
			}
			if got.AccessToken != "access-1" || got.RefreshToken != wantRefresh {
				t.Errorf("file has access %q refresh %q, want access-1 and %s", got.AccessToken, got.RefreshToken, wantRefresh)
			}
			if d := time.Until(got.Expiry); d < 59*time.Minute || d > time.Hour {
				t.Errorf("file's expiry is in %v, want an hour", d)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v after the refresh, want 0600", fi.Mode().Perm())
			}
		})
	}
}

// TestOAuthRenewTokenConcurrent has eight callers renew the same refused
// token at once: one refresh, and all get its token.
func TestOAuthRenewTokenConcurrent(t *testing.T) {
	t.Parallel()
	srv := oauthtest.Start(t, oauthtest.Config{ClientID: "imapkit", Lifetime: time.Hour})
	path, first := tokenFile(t, srv, "")
	src := openFile(t, path)
	refused, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if refused.AccessToken != first.AccessToken {
		t.Fatalf("Token() = %q, want the file's token", refused.AccessToken)
	}
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Go(func() {
			tok, err := src.RenewToken(context.Background(), refused)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = tok.AccessToken
		})
	}
	wg.Wait()
	if n := srv.Refreshes(); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	for i, a := range got {
		if a == refused.AccessToken || a != got[0] {
			t.Errorf("caller %d got %q; want one new token for all (first caller %q)", i, a, got[0])
		}
	}
	if tok, err := src.Token(); err != nil || tok.AccessToken != got[0] {
		t.Errorf("Token() after the renewal = %v, %v; want the renewed token", tok, err)
	}
}

// TestOAuthRefreshErrors: a refused grant matches ErrReauthorize and says to
// log in again, without any secret; other failures are ordinary errors.
func TestOAuthRefreshErrors(t *testing.T) {
	t.Parallel()
	answer := func(status int, body string) string {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write([]byte(body))
		}))
		t.Cleanup(ts.Close)
		return ts.URL
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	revoked := oauthtest.Start(t, oauthtest.Config{ClientID: "imapkit", ClientSecret: "CLIENT-SECRET"})
	revoked.RevokeRefreshTokens()
	for _, tc := range []struct {
		name     string
		tokenURL string
		reauth   bool
		want     string
	}{
		{"revoked", revoked.TokenURL(), true, "invalid_grant"},
		{"client refused", answer(401, `{"error": "invalid_client"}`), true, "invalid_client"},
		{"echoing server", answer(400, `{"error": "invalid_grant", "error_description": "bad token REFRESH-SECRET"}`), true, "invalid_grant"},
		{"server error", answer(503, `<html>busy</html>`), false, "503"},
		{"bad request", answer(400, `{"error": "invalid_request"}`), false, "invalid_request"},
		{"unreachable", closed.URL, false, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "tokens.json")
			f := &oauth.File{Provider: "custom", TokenURL: tc.tokenURL, ClientID: "imapkit", ClientSecret: "CLIENT-SECRET",
				AccessToken: "ACCESS-SECRET", RefreshToken: "REFRESH-SECRET", Expiry: time.Now().Add(-time.Minute)}
			if err := oauth.WriteFile(path, f); err != nil {
				t.Fatal(err)
			}
			_, err := openFile(t, path).Token()
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if got := errors.Is(err, oauth.ErrReauthorize); got != tc.reauth {
				t.Errorf("errors.Is(%q, ErrReauthorize) = %v, want %v", msg, got, tc.reauth)
			}
			want := []string{tc.want, path}
			if tc.reauth {
				want = append(want, "imapkit login")
			}
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error %q contains a secret", msg)
			}
		})
	}
}

// TestOAuthFileSourceRereads: a file replaced by another process (here
// another FileSource, which rotates the refresh token) is read again, so
// that its tokens are used instead of the void refresh token held here.
func TestOAuthFileSourceRereads(t *testing.T) {
	t.Parallel()
	srv := oauthtest.Start(t, oauthtest.Config{ClientID: "imapkit", Lifetime: time.Hour})
	path, _ := tokenFile(t, srv, "")
	a, b := openFile(t, path), openFile(t, path)
	ctx := context.Background()
	old, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	fromB, err := b.RenewToken(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// a's token was refused: b's newer one is in the file.
	got, err := a.RenewToken(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != fromB.AccessToken || srv.Refreshes() != 1 {
		t.Errorf("a renewed to %q with %d refreshes; want b's %q and no other refresh", got.AccessToken, srv.Refreshes(), fromB.AccessToken)
	}
	// That one refused too: a refreshes with the refresh token b rotated.
	again, err := a.RenewToken(ctx, got)
	if err != nil {
		t.Fatalf("refresh after the file was replaced: %v", err)
	}
	if again.AccessToken == got.AccessToken || srv.Refreshes() != 2 {
		t.Errorf("a renewed to %q with %d refreshes; want a new token and 2 refreshes", again.AccessToken, srv.Refreshes())
	}

	// A login replaces the file with tokens of its own.
	login := srv.Issue()
	f, err := oauth.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.AccessToken, f.RefreshToken, f.Expiry = login.AccessToken, login.RefreshToken, login.Expiry
	if err := oauth.WriteFile(path, f); err != nil {
		t.Fatal(err)
	}
	got, err = a.RenewToken(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != login.AccessToken || srv.Refreshes() != 2 {
		t.Errorf("after the login, a renewed to %q with %d refreshes; want the login's %q and no refresh", got.AccessToken, srv.Refreshes(), login.AccessToken)
	}
}

// The refresh honours the context.
func TestOAuthRenewTokenContext(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer ts.Close()
	defer close(block)
	path := filepath.Join(t.TempDir(), "tokens.json")
	if err := oauth.WriteFile(path, &oauth.File{TokenURL: ts.URL, ClientID: "c", RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := openFile(t, path).RenewToken(ctx, &oauth2.Token{AccessToken: "x"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RenewToken = %v, want the context's deadline", err)
	}
}
