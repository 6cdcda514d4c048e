package service

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testSecret = "correct horse battery staple"

func newTestSealer(t *testing.T, fill byte) *Sealer {
	t.Helper()
	s, err := NewSealer(bytes.Repeat([]byte{fill}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealRoundTrip(t *testing.T) {
	s := newTestSealer(t, 1)
	for _, secret := range []string{testSecret, "", "ünïcödé\x00and a NUL", strings.Repeat("x", 10000)} {
		sealed := s.Seal("alice", secret)
		if !strings.HasPrefix(sealed, "sealed:v1:") {
			t.Errorf("sealed value %q lacks the prefix sealed:v1:", sealed)
		}
		if secret != "" && strings.Contains(sealed, secret) {
			t.Errorf("sealed value %q holds the secret", sealed)
		}
		got, err := s.Open("alice", sealed)
		if err != nil || got != secret {
			t.Errorf("Open(Seal(%.20q)) = %.20q, %v", secret, got, err)
		}
	}
}

func TestSealNoncesDiffer(t *testing.T) {
	s := newTestSealer(t, 1)
	a, b := s.Seal("alice", testSecret), s.Seal("alice", testSecret)
	if a == b {
		t.Fatal("two seals of the same secret are equal")
	}
	ra, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, sealedPrefix))
	rb, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(b, sealedPrefix))
	if bytes.Equal(ra[:12], rb[:12]) {
		t.Error("two seals share a nonce")
	}
}

func TestNewSealerKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewSealer(make([]byte, n)); err == nil {
			t.Errorf("NewSealer accepted a key of %d bytes", n)
		}
	}
}

// TestOpenFails checks every way a sealed value must not open, and that no
// error holds the secret or the sealed value.
func TestOpenFails(t *testing.T) {
	s := newTestSealer(t, 1)
	sealed := s.Seal("alice", testSecret)
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(sealed, sealedPrefix))
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return sealedPrefix + base64.StdEncoding.EncodeToString(b)
	}
	tests := []struct {
		name    string
		sealer  *Sealer
		account string
		value   string
	}{
		{"another key", newTestSealer(t, 2), "alice", sealed},
		{"another account", s, "bob", sealed},
		{"a flipped nonce bit", s, "alice", flip(0)},
		{"a flipped ciphertext bit", s, "alice", flip(14)},
		{"a flipped tag bit", s, "alice", flip(len(raw) - 1)},
		{"truncated", s, "alice", sealedPrefix + base64.StdEncoding.EncodeToString(raw[:len(raw)-1])},
		{"too short for a nonce", s, "alice", sealedPrefix + base64.StdEncoding.EncodeToString(raw[:5])},
		{"empty", s, "alice", sealedPrefix},
		{"not base64", s, "alice", sealedPrefix + "!!!" + testSecret},
		{"the secret in clear", s, "alice", testSecret},
		{"another version", s, "alice", "sealed:v2:" + strings.TrimPrefix(sealed, sealedPrefix)},
	}
	for _, tt := range tests {
		got, err := tt.sealer.Open(tt.account, tt.value)
		if err == nil {
			t.Errorf("%s: opened, to %q", tt.name, got)
			continue
		}
		if got != "" {
			t.Errorf("%s: returned %q with the error", tt.name, got)
		}
		msg := err.Error()
		payload := strings.TrimPrefix(tt.value, sealedPrefix)
		if strings.Contains(msg, testSecret) || (payload != "" && strings.Contains(msg, payload)) {
			t.Errorf("%s: error %q holds the secret or the value", tt.name, msg)
		}
		if !strings.Contains(msg, tt.account) {
			t.Errorf("%s: error %q does not name the account", tt.name, msg)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "imapkit.key")
	if err := WriteKeyFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o; want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if key, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(string(data), "\n")); err != nil || len(key) != KeySize {
		t.Errorf("key file holds %q: want %d bytes in base64 on one line", data, KeySize)
	}
	s, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s2.Open("alice", s.Seal("alice", testSecret)); err != nil || got != testSecret {
		t.Errorf("a secret sealed with the key file does not open with it again: %q, %v", got, err)
	}

	// keygen never replaces a key: the key and the file stay as they were.
	if err := WriteKeyFile(path); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("WriteKeyFile over an existing file: %v; want an error saying it exists", err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, data) {
		t.Error("WriteKeyFile changed an existing key file")
	}

	// Two keygens make two keys.
	other := filepath.Join(t.TempDir(), "other.key")
	if err := WriteKeyFile(other); err != nil {
		t.Fatal(err)
	}
	if data2, _ := os.ReadFile(other); bytes.Equal(data, data2) {
		t.Error("two key files hold the same key")
	}
}

func TestLoadKeyFileRefuses(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, KeySize)) + "\n"
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    []string // substrings of the error; nil: loads
	}{
		{"good", good, 0o600, nil},
		{"owner read only", good, 0o400, nil},
		{"no trailing newline", strings.TrimSpace(good), 0o600, nil},
		{"readable by others", good, 0o604, []string{"0604", "chmod 600"}},
		{"readable by group", good, 0o640, []string{"0640", "chmod 600"}},
		{"writable by group", good, 0o620, []string{"chmod 600"}},
		{"too short", base64.StdEncoding.EncodeToString(make([]byte, 16)), 0o600, []string{"16 bytes, want 32"}},
		{"not base64", "this is not a key, it is a secret!", 0o600, []string{"not base64"}},
		{"two lines", good + good, 0o600, []string{"one line"}},
		{"empty", "", 0o600, []string{"0 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			// Chmod, since WriteFile's mode is subject to the umask.
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyFile(path)
			checkErr(t, err, tt.want)
			if err != nil {
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name the file", err)
				}
				if tt.content != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.content)) {
					t.Errorf("error %q holds the file's content", err)
				}
			}
		})
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadKeyFile of a missing file: no error")
	}
	if _, err := LoadKeyFile(t.TempDir()); err == nil {
		t.Error("LoadKeyFile of a directory: no error")
	}
}
