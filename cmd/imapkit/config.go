package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// accountConfig is one account of a --config file.
type accountConfig struct {
	Name         string   `json:"name"`
	Server       string   `json:"server"`
	TLS          bool     `json:"tls"`
	StartTLS     bool     `json:"starttls"`
	Plaintext    bool     `json:"plaintext"`
	Stream       string   `json:"stream"`
	User         string   `json:"user"`
	PasswordEnv  string   `json:"password_env"`
	PasswordFile string   `json:"password_file"`
	PasswordCmd  string   `json:"password_cmd"`
	TokenFile    string   `json:"oauth2_token_file"`
	CAFile       string   `json:"ca_file"`
	Mailboxes    []string `json:"mailboxes"`
}

type fileConfig struct {
	Accounts []accountConfig `json:"accounts"`
}

// account is an account to watch: its name and how to connect.
type account struct {
	name      string
	conn      connFlags
	mailboxes []string
}

// server names what the account connects to, for the saved state: an
// entry saved for another server is refused.
func (a *account) server() string {
	if a.conn.stream != "" {
		return "stream:" + a.conn.stream
	}
	return a.conn.server
}

// loadConfig reads a --config file. Account names must be unique: they key
// the saved positions.
func loadConfig(path string, base connFlags) ([]account, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var fc fileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(fc.Accounts) == 0 {
		return nil, fmt.Errorf("config %s: no accounts", path)
	}
	seen := map[string]int{}
	var out []account
	for i, ac := range fc.Accounts {
		f := connFlags{server: ac.Server, tls: ac.TLS, startTLS: ac.StartTLS, plaintext: ac.Plaintext,
			stream: ac.Stream, user: ac.User, passwordEnv: ac.PasswordEnv, passFile: ac.PasswordFile,
			passCmd: ac.PasswordCmd, tokenFile: ac.TokenFile, caFile: ac.CAFile, debug: base.debug, timeout: base.timeout}
		if err := f.check(); err != nil {
			return nil, fmt.Errorf("config %s: account %d (%s): %w", path, i+1, ac.Name, err)
		}
		a := account{name: accountName(ac.Name, f), conn: f, mailboxes: ac.Mailboxes}
		if j, dup := seen[a.name]; dup {
			return nil, fmt.Errorf("config %s: accounts %d and %d are both named %q: names must differ (they key the saved positions)", path, j+1, i+1, a.name)
		}
		seen[a.name] = i
		out = append(out, a)
	}
	return out, nil
}

// accountName is the name given, else the user, the server, or "local" (a
// --stream session with no --user).
func accountName(name string, f connFlags) string {
	for _, n := range []string{name, f.user, f.server} {
		if n = strings.TrimSpace(n); n != "" {
			return n
		}
	}
	return "local"
}
