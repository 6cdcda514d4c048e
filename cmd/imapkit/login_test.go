package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap/internal/oauthtest"
	"github.com/imapkit/imap/oauth"
)

// checkTokenFile checks that login wrote a private token file whose
// refresh token works.
func checkTokenFile(t *testing.T, srv *oauthtest.Server, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	f, err := oauth.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Provider != "custom" || f.TokenURL != srv.TokenURL() || f.ClientID != "imapkit" {
		t.Errorf("token file: provider %q, token URL %q, client %q", f.Provider, f.TokenURL, f.ClientID)
	}
	src, err := oauth.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.RenewToken(context.Background(), nil); err != nil {
		t.Errorf("the refresh token does not work: %v", err)
	}
	if srv.Refreshes() != 1 {
		t.Errorf("%d refreshes at the server, want 1", srv.Refreshes())
	}
}

// TestLoginDevice runs the device flow against a test server, which the
// test approves or denies as the user would.
func TestLoginDevice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		approve bool
		code    int
		stderr  string
	}{
		{"approved", true, 0, "enter the code"},
		{"denied", false, 1, "imapkit login: oauth: the authorization was denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.Start(t, oauthtest.Config{ClientID: "imapkit", ClientSecret: "CLIENT-SECRET"})
			dir := t.TempDir()
			secret := filepath.Join(dir, "secret")
			if err := os.WriteFile(secret, []byte("CLIENT-SECRET\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tokens := filepath.Join(dir, "config", "tokens.json") // the directory is made
			inv := start("login", "--provider", "custom", "--client-id", "imapkit", "--client-secret-file", secret,
				"--scope", "imap offline", "--device-url", srv.DeviceURL(), "--token-url", srv.TokenURL(), "--token-file", tokens)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			userCode, err := srv.WaitPending(ctx)
			if err != nil {
				t.Fatal(err)
			}
			decide := srv.Deny
			if tc.approve {
				decide = srv.Approve
			}
			if err := decide(userCode); err != nil {
				t.Fatal(err)
			}
			code := inv.wait(t, 10*time.Second)
			stdout, stderr := inv.stdout.String(), inv.stderr.String()
			if code != tc.code || !strings.Contains(stderr, tc.stderr) || !strings.Contains(stderr, userCode) {
				t.Errorf("exit %d, want %d with %q and the user code in stderr:\n%s", code, tc.code, tc.stderr, stderr)
			}
			if strings.Contains(stdout+stderr, "SECRET") {
				t.Errorf("the output shows the client secret:\n%s\n%s", stdout, stderr)
			}
			if !tc.approve {
				if _, err := os.Stat(tokens); !os.IsNotExist(err) {
					t.Errorf("a denied login wrote the token file (%v)", err)
				}
				if stdout != "" {
					t.Errorf("stdout on error: %q", stdout)
				}
				return
			}
			if want := "--oauth2-token-file " + tokens; !strings.Contains(stdout, want) {
				t.Errorf("stdout %q does not say what to run next (%q)", stdout, want)
			}
			f, err := oauth.ReadFile(tokens)
			if err != nil {
				t.Fatal(err)
			}
			if f.ClientSecret != "CLIENT-SECRET" || strings.Join(f.Scopes, ",") != "imap,offline" {
				t.Errorf("token file: secret from the file %v, scopes %q", f.ClientSecret == "CLIENT-SECRET", f.Scopes)
			}
			for _, token := range []string{f.AccessToken, f.RefreshToken} {
				if strings.Contains(stdout+stderr, token) {
					t.Errorf("the output shows a token:\n%s\n%s", stdout, stderr)
				}
			}
			checkTokenFile(t, srv, tokens)
		})
	}
}

// TestLoginBrowser follows the URL the command prints, as a browser
// would: the server redirects to the command's loopback listener.
func TestLoginBrowser(t *testing.T) {
	t.Parallel()
	srv := oauthtest.Start(t, oauthtest.Config{ClientID: "imapkit"})
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	inv := start("login", "--provider", "custom", "--flow", "browser", "--client-id", "imapkit",
		"--auth-url", srv.AuthURL(), "--token-url", srv.TokenURL(), "--token-file", tokens)
	defer inv.cancel()
	waitOutput(t, "stderr", &inv.stderr, "Waiting for the browser")
	authURL := regexp.MustCompile(regexp.QuoteMeta(srv.AuthURL()) + `\?\S+`).FindString(inv.stderr.String())
	if authURL == "" {
		t.Fatalf("no authorization URL in stderr:\n%s", inv.stderr.String())
	}
	resp, err := http.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "You may close this window") {
		t.Errorf("the browser got %d %q", resp.StatusCode, page)
	}
	if code := inv.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, inv.stderr.String())
	}
	checkTokenFile(t, srv, tokens)
}

func TestLoginUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"-h"}, 0, "example", ""},
		{"no provider", []string{"--client-id", "c", "--token-file", tokens}, 2, "", "--provider is required"},
		{"unknown provider", []string{"--provider", "yahoo", "--client-id", "c", "--token-file", tokens}, 2, "", `unknown provider "yahoo"`},
		{"no client", []string{"--provider", "google", "--token-file", tokens}, 2, "", "--client-id is required"},
		{"no token file", []string{"--provider", "google", "--client-id", "c"}, 2, "", "--token-file is required"},
		{"custom without URLs", []string{"--provider", "custom", "--client-id", "c", "--token-file", tokens}, 2, "", "needs --device-url and --token-url"},
		{"custom browser without URLs", []string{"--provider", "custom", "--flow", "browser", "--client-id", "c", "--token-url", "http://x", "--token-file", tokens}, 2, "", "needs --auth-url and --token-url"},
		{"bad flow", []string{"--provider", "microsoft", "--flow", "pigeon", "--client-id", "c", "--token-file", tokens}, 2, "", `not "pigeon"`},
		{"bad flag", []string{"--client-secret", "s"}, 2, "", "flag provided but not defined"},
		{"auth URL for the device flow", []string{"--provider", "microsoft", "--flow", "device", "--auth-url", "http://x", "--client-id", "c", "--token-file", tokens}, 2, "", "--auth-url is for the browser flow"},
		{"device URL for the browser flow", []string{"--provider", "google", "--device-url", "http://x", "--client-id", "c", "--token-file", tokens}, 2, "", "--device-url is for the device flow"},
		{"missing secret file", []string{"--provider", "microsoft", "--client-id", "c", "--client-secret-file", filepath.Join(dir, "none"), "--token-file", tokens}, 1, "", "client secret file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, append([]string{"login"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d (want %d)\nstdout (want %q):\n%s\nstderr (want %q):\n%s", code, tc.code, tc.stdout, stdout, tc.stderr, stderr)
			}
			if tc.code != 0 && stdout != "" {
				t.Errorf("stdout on error: %q", stdout)
			}
		})
	}
	if _, err := os.Stat(tokens); !os.IsNotExist(err) {
		t.Errorf("a failed login wrote the token file (%v)", err)
	}
}
