package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
	"github.com/imapkit/imap/internal/oauthtest"
)

// TestWatchOAuth2 runs the whole OAuth2 path against Dovecot's oauth2
// passdb, which asks a test authorization server whether a token is
// active; tokens die after 3 s. "imapkit login --provider custom"
// completes the device flow (the test approves the code); then "imapkit
// watch --oauth2-token-file" runs across six expiries, each followed by a
// server-side cut while mail is appended: every UID is reported exactly
// once and the token file on disk is refreshed. Finally the refresh
// token is revoked: at the next reconnect watch stops with an error that
// names "imapkit login", exit status 1. Once with XOAUTH2, once with
// OAUTHBEARER (the only mechanism the server offers each time).
func TestWatchOAuth2(t *testing.T) {
	for _, mech := range []string{"xoauth2", "oauthbearer"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			const user = "carol"
			as := oauthtest.Start(t, oauthtest.Config{User: user, ClientID: "imapkit-test"})
			srv := dovecot.StartTConfig(t, dovecot.Config{OAuth2: &dovecot.OAuth2{
				IntrospectionURL: as.IntrospectURL(), Mechanisms: []string{mech}}})
			other, err := imap.DialStream(context.Background(), srv.StreamCommand(user), &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Shutdown() })
			tokenFile := filepath.Join(t.TempDir(), "carol.token")

			login := start("login", "--provider", "custom", "--client-id", "imapkit-test",
				"--device-url", as.DeviceURL(), "--token-url", as.TokenURL(), "--scope", "mail",
				"--token-file", tokenFile)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			code, err := as.WaitPending(ctx)
			if err != nil {
				t.Fatalf("no device authorization: %v\n%s", err, login.stderr.String())
			}
			waitOutput(t, "login's stderr", &login.stderr, code)
			if err := as.Approve(code); err != nil {
				t.Fatal(err)
			}
			if c := login.wait(t, 20*time.Second); c != 0 {
				t.Fatalf("login: exit %d\n%s", c, login.stderr.String())
			}
			first := readTokenFile(t, tokenFile)

			w := start("watch", "--server", srv.Addr, "--plaintext", "--user", user,
				"--oauth2-token-file", tokenFile, "--json", "--timeout", "5s")
			stopped := false
			defer func() {
				if !stopped {
					w.cancel()
					w.wait(t, 10*time.Second)
				}
			}()
			waitOutput(t, "stdout", &w.stdout, `"resynced"`)

			const rounds = 6
			for i := 1; i <= rounds; i++ {
				time.Sleep(as.Lifetime() + 200*time.Millisecond) // the token in use is dead now
				appendMsg(t, other, "round "+string(rune('0'+i)))
				if err := srv.KillIMAP(user); err != nil {
					t.Fatal(err)
				}
				waitNew(t, w, i)
			}
			if got := uidsOf(events(jsonLines(t, w.stdout.String()), "new")); !slices.Equal(got, []int{1, 2, 3, 4, 5, 6}) {
				t.Errorf("new UIDs %v, want 1 to 6 exactly once", got)
			}
			now := readTokenFile(t, tokenFile)
			if now["access_token"] == first["access_token"] || now["refresh_token"] == first["refresh_token"] || as.Refreshes() < rounds-1 {
				t.Errorf("after %d expiries: %d refreshes, access token changed %v, refresh token rotated %v",
					rounds, as.Refreshes(), now["access_token"] != first["access_token"], now["refresh_token"] != first["refresh_token"])
			}
			if info, err := os.Stat(tokenFile); err != nil || info.Mode().Perm() != 0o600 {
				t.Errorf("token file: %v, mode %v, want 0600", err, info.Mode().Perm())
			}

			as.RevokeRefreshTokens()
			time.Sleep(as.Lifetime() + 200*time.Millisecond)
			if err := srv.KillIMAP(user); err != nil {
				t.Fatal(err)
			}
			stopped = true
			if c := w.wait(t, 30*time.Second); c != 1 {
				t.Errorf("watch after the refresh token was revoked: exit %d, want 1\n%s", c, w.stderr.String())
			}
			if !strings.Contains(w.stderr.String(), "imapkit login") {
				t.Errorf("stderr does not say to run imapkit login:\n%s", w.stderr.String())
			}
			for _, secret := range []string{now["access_token"], now["refresh_token"]} {
				if strings.Contains(w.stdout.String()+w.stderr.String()+login.stdout.String()+login.stderr.String(), secret) {
					t.Errorf("a token shows in the output")
				}
			}
		})
	}
}

// waitNew waits until watch reported n new messages.
func waitNew(t *testing.T, w *invocation, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(events(jsonLines(t, w.stdout.String()), "new")) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no new message %d within 20 s\nstdout:\n%s\nstderr:\n%s", n, w.stdout.String(), w.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readTokenFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("token file: %v", err)
	}
	out := map[string]string{}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	if out["access_token"] == "" || out["refresh_token"] == "" || out["token_url"] == "" || out["client_id"] == "" {
		t.Fatalf("token file %s lacks fields: %s", path, b)
	}
	return out
}
