package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"unicode/utf8"
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
	AllMailboxes bool     `json:"all_mailboxes"`
}

type fileConfig struct {
	Accounts []accountConfig `json:"accounts"`
}

// account is an account to watch: its name, how to connect, and what to
// watch: mailboxes, or every mailbox.
type account struct {
	name         string
	conn         connFlags
	mailboxes    []string
	allMailboxes bool
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
	if err := decodeStrict(b, &fc); err != nil {
		return nil, fmt.Errorf("config %w", inFile(path, err))
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
		if ac.AllMailboxes && len(ac.Mailboxes) > 0 {
			return nil, fmt.Errorf("config %s: account %d (%s): all_mailboxes with mailboxes: it follows every mailbox, or give the ones to watch", path, i+1, ac.Name)
		}
		a := account{name: accountName(ac.Name, f), conn: f, mailboxes: ac.Mailboxes, allMailboxes: ac.AllMailboxes}
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

// decodeStrict decodes the one JSON value in b into v, refusing fields v
// does not have and anything after the value. Its error is a
// *jsonPosError where the place of the mistake is known.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// A second value, or stray text, is a mistake the first one hides.
		if off := skipSpace(b, dec.InputOffset()); off < int64(len(b)) {
			return jsonErrorAt(b, off, "unexpected text after the JSON value")
		}
		return nil
	}
	if errors.Is(err, io.EOF) {
		return errors.New("the file is empty")
	}
	if strings.HasPrefix(err.Error(), "json: unknown field ") {
		if off, ok := unknownFieldOffset(b, reflect.TypeOf(v)); ok {
			return jsonErrorAt(b, off, strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	return jsonError(b, err)
}

// jsonError places err, from decoding b, at its line and column when it
// says where it is.
func jsonError(b []byte, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		// Offset is just past the byte that made no sense.
		return jsonErrorAt(b, max(syntax.Offset-1, 0), syntax.Error())
	case errors.As(err, &typ):
		// Offset is just past the value (or the opening bracket of an
		// array or object): point at the start of it.
		return jsonErrorAt(b, tokenStart(b, typ.Offset), fmt.Sprintf("%s: want %s, not %s", typ.Field, jsonKind(typ.Type), typ.Value))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return jsonErrorAt(b, int64(len(b)), "unexpected end of the file: a bracket or quote is not closed")
	}
	return err
}

// jsonPosError is a mistake in a JSON file and where it is.
type jsonPosError struct {
	line, col int // from 1; columns count characters
	msg       string
}

func (e *jsonPosError) Error() string { return fmt.Sprintf("%d:%d: %s", e.line, e.col, e.msg) }

// inFile says that err is about the file at path: "PATH:LINE:COLUMN: …"
// when err is a *jsonPosError, as editors read it, else "PATH: …".
func inFile(path string, err error) error {
	var at *jsonPosError
	if errors.As(err, &at) {
		return fmt.Errorf("%s:%w", path, err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// jsonErrorAt is msg at byte offset off of b.
func jsonErrorAt(b []byte, off int64, msg string) error {
	before := b[:min(off, int64(len(b)))]
	return &jsonPosError{
		line: bytes.Count(before, []byte("\n")) + 1,
		col:  utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1,
		msg:  msg,
	}
}

// jsonKind names the JSON form of values of t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a number"
}

// skipSpace returns the offset of the first byte of b from off that is
// not white space or a separator (',' or ':'), which json.Decoder's
// InputOffset leaves before the next token.
func skipSpace(b []byte, off int64) int64 {
	for off < int64(len(b)) && strings.IndexByte(" \t\r\n,:", b[off]) >= 0 {
		off++
	}
	return off
}

// tokenStart returns the offset where the token of b that ends at end
// starts; end itself when no token ends there.
func tokenStart(b []byte, end int64) int64 {
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		start := skipSpace(b, dec.InputOffset())
		if _, err := dec.Token(); err != nil || dec.InputOffset() > end {
			return end
		}
		if dec.InputOffset() == end {
			return start
		}
	}
}

// unknownFieldOffset walks b as a value of type t and returns the offset
// of the first object key that no field of the struct there takes: where
// json.Decoder with DisallowUnknownFields stopped, which its error does
// not say.
func unknownFieldOffset(b []byte, t reflect.Type) (int64, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var walk func(t reflect.Type) (int64, bool)
	walk = func(t reflect.Type) (int64, bool) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		tok, err := dec.Token()
		if err != nil {
			return 0, false
		}
		open, ok := tok.(json.Delim)
		if !ok || open == '}' || open == ']' {
			return 0, false // a scalar: nothing inside
		}
		for dec.More() {
			inner := reflect.Type(nil) // nil: a value of no interest, skipped
			switch {
			case open == '[' && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
				inner = t.Elem()
			case open == '{':
				start := skipSpace(b, dec.InputOffset())
				key, err := dec.Token()
				if err != nil {
					return 0, false
				}
				if t.Kind() == reflect.Struct {
					f, found := jsonField(t, key.(string))
					if !found {
						return start, true
					}
					inner = f.Type
				}
			}
			if inner != nil {
				if off, found := walk(inner); found {
					return off, true
				}
			} else if err := dec.Decode(new(json.RawMessage)); err != nil {
				return 0, false
			}
		}
		dec.Token() // the closing bracket
		return 0, false
	}
	return walk(t)
}

// jsonField is the field of struct t that encoding/json decodes key into:
// the one named so by its tag (or, untagged, by its name), case aside.
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if strings.EqualFold(name, key) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
