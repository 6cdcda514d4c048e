// Package oauth is OAuth2 for IMAP: provider presets, the token file, and
// the login flows behind `imapkit login`.
//
// `imapkit login` runs [DeviceLogin] or [BrowserLogin] once and saves the
// result with [WriteFile]; from then on a [FileSource] hands out access
// tokens, refreshing them with the file's refresh token and writing what
// it gets back to the file, so that the authorization outlives restarts.
package oauth

import "errors"

// Provider is what imapkit knows about a provider's OAuth2 and IMAP
// endpoints, so that a user needs to name only the provider and a client
// ID.
type Provider struct {
	Name        string   // as given to `imapkit login --provider`
	AuthURL     string   // authorization endpoint (browser flow)
	DeviceURL   string   // device authorization endpoint (RFC 8628)
	TokenURL    string   // token endpoint
	Scopes      []string // the scopes IMAP access needs
	IMAPServer  string   // HOST:PORT of the provider's IMAP server (implicit TLS)
	DefaultFlow string   // "device" or "browser": the flow that works with Scopes
}

// LookupProvider returns the preset named name ("google" or "microsoft").
func LookupProvider(name string) (Provider, bool) {
	switch name {
	case "google":
		return Provider{
			Name:       "google",
			AuthURL:    "https://accounts.google.com/o/oauth2/v2/auth",
			DeviceURL:  "https://oauth2.googleapis.com/device/code",
			TokenURL:   "https://oauth2.googleapis.com/token",
			Scopes:     []string{"https://mail.google.com/"},
			IMAPServer: "imap.gmail.com:993",
			// Google's device flow grants only a short list of scopes
			// (profile, Drive files, YouTube...), and the Gmail scope
			// is not on it: IMAP access needs the browser flow.
			DefaultFlow: "browser",
		}, true
	case "microsoft":
		return Provider{
			Name:      "microsoft",
			AuthURL:   "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
			DeviceURL: "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
			TokenURL:  "https://login.microsoftonline.com/common/oauth2/v2.0/token",
			// offline_access is what makes Microsoft return a refresh
			// token.
			Scopes:      []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"},
			IMAPServer:  "outlook.office365.com:993",
			DefaultFlow: "device",
		}, true
	}
	return Provider{}, false
}

// ProviderNames lists the names LookupProvider knows, for usage texts.
func ProviderNames() []string { return []string{"google", "microsoft"} }

// ErrReauthorize is matched (errors.Is) by the errors whose only remedy
// is to run `imapkit login` again: the refresh token was revoked or has
// expired, the client is no longer accepted, or the token file is missing
// or incomplete. Retrying does not help with these; it does with other
// errors (network, a server error).
var ErrReauthorize = errors.New("oauth: the authorization must be renewed: run imapkit login again")

// reauthError is an error that matches ErrReauthorize.
type reauthError struct {
	msg string
	err error // the cause, if any, for errors.Is (fs.ErrNotExist, say)
}

func (e *reauthError) Error() string        { return e.msg }
func (e *reauthError) Unwrap() error        { return e.err }
func (e *reauthError) Is(target error) bool { return target == ErrReauthorize }
