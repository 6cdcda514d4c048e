package service

import (
	"errors"
	"fmt"
	"net"
	"slices"
)

// Account is one account to watch, as the API takes it and as the bucket
// IMAPKIT_ACCOUNTS keeps it (one JSON object per key, the key its Name).
//
// Password travels only in API requests, in clear over the API's
// connection; what is stored is PasswordSealed, and neither ever appears in
// an API reply, a log line or a trace.
type Account struct {
	Name string `json:"name"`
	// Server is HOST:PORT.
	Server string `json:"server"`
	// Mode is how to connect: "tls" (implicit TLS, the default),
	// "starttls", or "plaintext" (an explicit opt-in: credentials in clear).
	Mode string `json:"mode,omitempty"`
	User string `json:"user"`
	// Password, in a request: the password in clear, to be sealed.
	Password string `json:"password,omitempty"`
	// PasswordSealed, in the bucket: the password sealed with the node's key
	// (Sealer). Never in a reply.
	PasswordSealed string `json:"password_sealed,omitempty"`
	// CAPEM, if set, are the PEM certificates to trust instead of the
	// system roots.
	CAPEM string `json:"ca_pem,omitempty"`
	// Mailboxes to watch (default INBOX).
	Mailboxes []string `json:"mailboxes,omitempty"`
}

// Modes of connecting.
const (
	ModeTLS       = "tls"
	ModeStartTLS  = "starttls"
	ModePlaintext = "plaintext"
)

// Validate reports what is wrong with a, or nil. It does not look at the
// password fields.
func (a *Account) Validate() error {
	if err := ValidName(a.Name); err != nil {
		return err
	}
	var errs []error
	if _, _, err := net.SplitHostPort(a.Server); err != nil {
		errs = append(errs, fmt.Errorf("server %q: want HOST:PORT", a.Server))
	}
	if !slices.Contains([]string{"", ModeTLS, ModeStartTLS, ModePlaintext}, a.Mode) {
		errs = append(errs, fmt.Errorf("mode %q: want tls, starttls or plaintext", a.Mode))
	}
	if a.User == "" {
		errs = append(errs, errors.New("user is required"))
	}
	for _, m := range a.Mailboxes {
		if m == "" {
			errs = append(errs, errors.New("a mailbox name is empty"))
		}
	}
	return errors.Join(errs...)
}

// Public returns a copy of a fit for a reply or a log: no password, sealed
// or not.
func (a Account) Public() Account {
	a.Password, a.PasswordSealed = "", ""
	a.Mailboxes = slices.Clone(a.Mailboxes)
	return a
}
