package service

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// KeySize is the size of a sealing key: AES-256.
const KeySize = 32

// sealedPrefix starts every sealed value, so that a value sealed otherwise
// later (another algorithm, a key ID) can be told apart.
const sealedPrefix = "sealed:v1:"

// Sealer seals account secrets (passwords, refresh tokens) with AES-256-GCM
// for storing in IMAPKIT_ACCOUNTS, and opens them again. The account's name
// is the additional data: a sealed value copied to another account does not
// open. A Sealer is safe for use by several goroutines at once.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a Sealer with key, which must be KeySize bytes.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("service: sealing key: %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("service: sealing key: %w", err)
	}
	// A random 96-bit nonce per seal: safe for far more seals than the
	// secrets of any set of accounts will ever need.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("service: sealing key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// LoadKeyFile reads a key file written by WriteKeyFile (the key, base64, on
// one line) and returns its Sealer. It refuses a file that its group or
// others may access: the key opens every secret.
func LoadKeyFile(path string) (*Sealer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("service: key file: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so that the mode checked is the
	// mode of what is read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("service: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("service: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("service: key file %s has mode %04o: its group or others may access it; run chmod 600 %s", path, perm, path)
	}
	// A key's line is 45 bytes: reading at most maxKeyFile refuses anything
	// else without reading a large file whole.
	const maxKeyFile = 1024
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("service: key file %s: %w", path, err)
	}
	// Neither the content nor base64's report of where it went wrong is
	// quoted: part of a damaged key is still part of the key.
	data = bytes.TrimSpace(data)
	if len(data) > maxKeyFile || bytes.ContainsAny(data, "\r\n") {
		return nil, fmt.Errorf("service: key file %s: want one line, the key in base64", path)
	}
	key := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
	n, err := base64.StdEncoding.Decode(key, data)
	if err != nil {
		return nil, fmt.Errorf("service: key file %s: not base64", path)
	}
	if n != KeySize {
		return nil, fmt.Errorf("service: key file %s: the key is %d bytes, want %d", path, n, KeySize)
	}
	return NewSealer(key[:n])
}

// WriteKeyFile writes a new random key to path, as LoadKeyFile reads it,
// with mode 0600. It refuses to replace an existing file: the secrets sealed
// with the key in it would not open again.
func WriteKeyFile(path string) error {
	key := make([]byte, KeySize)
	rand.Read(key) // never fails (crypto/rand)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("service: key file %s exists; refusing to replace it (the secrets sealed with it would not open again)", path)
	}
	if err != nil {
		return fmt.Errorf("service: key file: %w", err)
	}
	_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("service: key file %s: %w", path, err)
	}
	return nil
}

// Seal returns secret sealed for account: "sealed:v1:" and the base64 of
// the nonce and the ciphertext.
func (s *Sealer) Seal(account, secret string) string {
	ct := s.aead.Seal(nil, nil, []byte(secret), []byte(account))
	return sealedPrefix + base64.StdEncoding.EncodeToString(ct)
}

// Open returns the secret of account that Seal sealed. It fails, without
// telling which, if the value was sealed with another key, for another
// account, or was damaged; the error never holds the value or the secret.
func (s *Sealer) Open(account, sealed string) (string, error) {
	b64, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		// The value is not quoted: it might be a secret in clear.
		return "", fmt.Errorf("service: the sealed secret of account %q does not start with %q", account, sealedPrefix)
	}
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("service: the sealed secret of account %q is damaged (not base64)", account)
	}
	secret, err := s.aead.Open(nil, nil, ct, []byte(account))
	if err != nil {
		return "", fmt.Errorf("service: the sealed secret of account %q does not open: sealed with another key, for another account, or damaged", account)
	}
	return string(secret), nil
}
