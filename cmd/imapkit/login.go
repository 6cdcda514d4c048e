package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/imapkit/imap/oauth"
)

// scopeFlag collects --scope: repeated, or several in one separated by
// spaces, as OAuth2 writes them.
type scopeFlag []string

func (s *scopeFlag) String() string { return strings.Join(*s, " ") }

func (s *scopeFlag) Set(v string) error {
	*s = append(*s, strings.Fields(v)...)
	return nil
}

// runLogin authorizes imapkit with an OAuth2 provider and writes the
// token file that watch and idle read.
func runLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	provider := fs.String("provider", "", "`NAME` of the provider: google, microsoft, or custom (give the URLs)")
	clientID := fs.String("client-id", "", "the OAuth2 client `ID` of the application registered with the provider")
	secretFile := fs.String("client-secret-file", "", "read the client secret from the first line of `PATH` (for clients that have one)")
	var scopes scopeFlag
	fs.Var(&scopes, "scope", "a `SCOPE` to ask for (repeat, or separate with spaces; default: the provider's IMAP scopes)")
	flow := fs.String("flow", "", "`FLOW`: device (enter a code on any device) or browser (on this machine); default: the provider's, device for custom")
	deviceURL := fs.String("device-url", "", "device authorization endpoint `URL` (custom provider, device flow)")
	authURL := fs.String("auth-url", "", "authorization endpoint `URL` (custom provider, browser flow)")
	tokenURL := fs.String("token-url", "", "token endpoint `URL` (custom provider)")
	tokenFile := fs.String("token-file", "", "write the tokens to `PATH` (mode 0600; replaced if it exists)")
	if err := loginUsage.parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	usageError := func(format string, a ...any) error {
		return loginUsage.fail(stderr, format, a...)
	}
	preset, isPreset := oauth.LookupProvider(*provider)
	switch {
	case *provider == "":
		return usageError("--provider is required (%s or custom)", strings.Join(oauth.ProviderNames(), ", "))
	case !isPreset && *provider != "custom":
		return usageError("unknown provider %q: choose %s, or custom and give the URLs", *provider, strings.Join(oauth.ProviderNames(), ", "))
	case *clientID == "":
		return usageError("--client-id is required: register an application with the provider to get one")
	case *tokenFile == "":
		return usageError("--token-file is required")
	}
	if *flow == "" {
		*flow = preset.DefaultFlow
		if !isPreset {
			*flow = "device"
		}
	}
	cfg := oauth.LoginConfig{
		Provider:  *provider,
		ClientID:  *clientID,
		Scopes:    scopes,
		AuthURL:   *authURL,
		DeviceURL: *deviceURL,
		TokenURL:  *tokenURL,
		Prompt:    stderr,
	}
	var login func(context.Context, oauth.LoginConfig) (*oauth.File, error)
	switch *flow {
	case "device":
		login = oauth.DeviceLogin
		if !isPreset && (*deviceURL == "" || *tokenURL == "") {
			return usageError("a custom provider's device flow needs --device-url and --token-url")
		}
		if *authURL != "" {
			return usageError("--auth-url is for the browser flow, and the flow is device (choose with --flow)")
		}
	case "browser":
		login = oauth.BrowserLogin
		if !isPreset && (*authURL == "" || *tokenURL == "") {
			return usageError("a custom provider's browser flow needs --auth-url and --token-url")
		}
		if *deviceURL != "" {
			return usageError("--device-url is for the device flow, and the flow is browser (choose with --flow)")
		}
	default:
		return usageError("--flow is device or browser, not %q", *flow)
	}
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("client secret file: %w", err)
		}
		if cfg.ClientSecret = strings.TrimSpace(firstLine(b)); cfg.ClientSecret == "" {
			return fmt.Errorf("client secret file %s: the first line is empty", *secretFile)
		}
	}
	if *provider == "google" && *flow == "device" {
		fmt.Fprintln(stderr, "imapkit login: note: Google's device flow does not grant the Gmail scope; if it is refused, use --flow browser")
	}
	// The directory is made before the user is asked, so that the answer
	// is not lost for want of it.
	if err := os.MkdirAll(filepath.Dir(*tokenFile), 0o700); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	f, err := login(ctx, cfg)
	if err != nil {
		return err
	}
	if err := oauth.WriteFile(*tokenFile, f); err != nil {
		return err
	}
	server, user := "HOST:993", "USER"
	switch *provider {
	case "google":
		user = "you@gmail.com"
	case "microsoft":
		user = "you@example.com"
	}
	if isPreset {
		server = preset.IMAPServer
	}
	fmt.Fprintf(stdout, "imapkit is authorized: the tokens are in %s (mode 0600; keep it private). Next, for example:\n\n  imapkit watch --server %s --user %s --oauth2-token-file %s\n", *tokenFile, server, user, shellWord(*tokenFile))
	return nil
}

var loginUsage = cmdUsage{
	command:  "login",
	synopsis: "--provider NAME --client-id ID --token-file PATH [flags]",
	about: `Authorize imapkit to read mail with OAuth2, and write the tokens to a file
for imapkit watch --oauth2-token-file. The device flow prints a code to
enter on any device; the browser flow prints a URL to open on this machine.
Google needs the browser flow (its device flow does not grant mail access).`,
	examples: []string{
		"imapkit login --provider microsoft --client-id 0f1e2d3c-... --token-file ~/.config/imapkit/outlook.json",
		"imapkit login --provider google --client-id 1234-abc.apps.googleusercontent.com \\",
		"    --client-secret-file ~/.config/imapkit/google-secret --token-file ~/.config/imapkit/gmail.json",
		"imapkit login --provider custom --client-id imapkit --device-url https://sso.example.org/device \\",
		"    --token-url https://sso.example.org/token --scope imap --token-file token.json",
	},
}

// shellWord quotes s for a shell command line when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~+=:@,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
