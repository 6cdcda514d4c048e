package oauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File is the token file: everything needed to get new access tokens
// without the user, written by `imapkit login` and kept up to date by
// FileSource. It holds secrets, so it is only ever written with mode 0600.
type File struct {
	Provider     string    `json:"provider"`                // "google", "microsoft" or "custom"
	TokenURL     string    `json:"token_url"`               // where the refresh token is redeemed
	ClientID     string    `json:"client_id"`               // the client the tokens were issued to
	ClientSecret string    `json:"client_secret,omitempty"` // for clients that have one
	Scopes       []string  `json:"scopes"`                  // sent again with every refresh
	AccessToken  string    `json:"access_token"`            // the current access token
	RefreshToken string    `json:"refresh_token"`           // the long-lived grant
	Expiry       time.Time `json:"expiry"`                  // of AccessToken; zero if the provider did not say
}

// ReadFile reads and checks a token file. A missing file and one that
// lacks what a refresh needs give errors that match ErrReauthorize.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &reauthError{
			msg: fmt.Sprintf("oauth: there is no token file %s: run imapkit login --token-file %s to create it", path, path),
			err: err,
		}
	}
	if err != nil {
		return nil, fmt.Errorf("oauth: reading the token file: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("oauth: token file %s is not valid: %s", path, jsonError(b, err))
	}
	var missing []string
	for _, field := range []struct{ name, value string }{
		{"token_url", f.TokenURL},
		{"client_id", f.ClientID},
		{"refresh_token", f.RefreshToken},
	} {
		if field.value == "" {
			missing = append(missing, field.name)
		}
	}
	if len(missing) > 0 {
		return nil, &reauthError{msg: fmt.Sprintf("oauth: token file %s has no %s: run imapkit login again to write a complete one", path, strings.Join(missing, ", "))}
	}
	return &f, nil
}

// jsonError describes a decoding error by line and column when the
// decoder says where it happened. The decoder's own words never quote the
// values, which here are secrets.
func jsonError(b []byte, err error) string {
	var offset int64 = -1
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		offset = syntax.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	}
	if offset < 0 || offset > int64(len(b)) {
		return err.Error()
	}
	before := b[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col == 0 {
		col = 1 // the offset is past the offending byte, except at a line's start
	}
	return fmt.Sprintf("line %d, column %d: %v", line, col, err)
}

// WriteFile writes f to path atomically: readers see the old file or the
// new one, never a part, and a crash leaves one of them on disk. The file
// has mode 0600, also when it replaces one with another mode.
func WriteFile(path string, f *File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("oauth: encoding the token file: %w", err)
	}
	b = append(b, '\n')
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The temporary file is created with mode 0600 and renamed over the
	// old one, so no reader ever sees a wider mode or a partial file.
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("oauth: writing the token file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("oauth: writing the token file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("oauth: writing the token file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("oauth: writing the token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("oauth: writing the token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("oauth: replacing the token file: %w", err)
	}
	done = true
	// The rename is durable once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("oauth: syncing the token file's directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("oauth: syncing the token file's directory: %w", err)
	}
	return nil
}
