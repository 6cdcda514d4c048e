package oauth_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap/oauth"
)

func sampleFile() *oauth.File {
	return &oauth.File{
		Provider:     "custom",
		TokenURL:     "https://auth.example/token",
		ClientID:     "client",
		ClientSecret: "CLIENT-SECRET",
		Scopes:       []string{"imap", "offline_access"},
		AccessToken:  "ACCESS-SECRET",
		RefreshToken: "REFRESH-SECRET",
		Expiry:       time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// TestOAuthWriteFile replaces a world-readable file: the new one has mode
// 0600, reads back equal, and no temporary file is left.
func TestOAuthWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := sampleFile()
	if err := oauth.WriteFile(path, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := oauth.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the token file", len(entries))
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"provider"`, `"token_url"`, `"client_id"`, `"client_secret"`, `"scopes"`, `"access_token"`, `"refresh_token"`, `"expiry": "2030-01-02T03:04:05Z"`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("the file lacks %s:\n%s", field, raw)
		}
	}
}

func TestOAuthReadFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		content  string // "" for no file
		want     []string
		reauth   bool
		notExist bool
	}{
		{name: "missing", want: []string{"no token file", "imapkit login"}, reauth: true, notExist: true},
		{name: "bad JSON", content: "{\n  \"provider\": \"custom\",\n  \"access_token\": ACCESS-SECRET\n}", want: []string{"line 3, column 19", "invalid character"}},
		{name: "wrong type", content: "{\n\"scopes\": \"imap\",\n\"access_token\": \"ACCESS-SECRET\"}", want: []string{"line 2", "scopes"}},
		{name: "no refresh token", content: `{"provider": "custom", "token_url": "https://a/token", "client_id": "c", "access_token": "ACCESS-SECRET"}`, want: []string{"refresh_token", "imapkit login"}, reauth: true},
		{name: "no client or token URL", content: `{"refresh_token": "REFRESH-SECRET", "access_token": "ACCESS-SECRET"}`, want: []string{"token_url, client_id", "imapkit login"}, reauth: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tokens.json")
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := oauth.ReadFile(path)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range append(tc.want, path) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error %q quotes a token", msg)
			}
			if got := errors.Is(err, oauth.ErrReauthorize); got != tc.reauth {
				t.Errorf("errors.Is(err, ErrReauthorize) = %v, want %v", got, tc.reauth)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tc.notExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tc.notExist)
			}
		})
	}
}
