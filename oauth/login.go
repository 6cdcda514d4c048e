package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// LoginConfig says whom to ask for tokens and where to talk to the user.
type LoginConfig struct {
	// Provider is recorded in the file. A preset's name ("google",
	// "microsoft") also fills the URLs and Scopes left empty.
	Provider string
	// ClientID and ClientSecret identify the application registered with
	// the provider; many clients have no secret.
	ClientID, ClientSecret string
	// Scopes are the scopes asked for.
	Scopes []string
	// AuthURL (browser flow), DeviceURL (device flow) and TokenURL (both)
	// are the provider's endpoints.
	AuthURL, DeviceURL, TokenURL string
	// Prompt receives what the user has to do; nil discards it.
	Prompt io.Writer
	// HTTPClient talks to the endpoints; nil is http.DefaultClient.
	HTTPClient *http.Client
	// OpenBrowser, if set, opens the browser flow's URL (the URL is
	// printed to Prompt anyway).
	OpenBrowser func(url string) error

	// slowDown is how much a device flow's slow_down answer adds to the
	// polling interval: 5 s (RFC 8628 section 3.5), shorter in tests.
	slowDown time.Duration
}

// withPreset fills what the preset named Provider knows and checks what
// the flow needs.
func (c LoginConfig) withPreset(flow string) (LoginConfig, error) {
	if p, ok := LookupProvider(c.Provider); ok {
		if c.AuthURL == "" {
			c.AuthURL = p.AuthURL
		}
		if c.DeviceURL == "" {
			c.DeviceURL = p.DeviceURL
		}
		if c.TokenURL == "" {
			c.TokenURL = p.TokenURL
		}
		if len(c.Scopes) == 0 {
			c.Scopes = p.Scopes
		}
	}
	if c.Prompt == nil {
		c.Prompt = io.Discard
	}
	if c.slowDown == 0 {
		c.slowDown = 5 * time.Second
	}
	var missing []string
	if c.ClientID == "" {
		missing = append(missing, "client ID")
	}
	if flow == "device" && c.DeviceURL == "" {
		missing = append(missing, "device authorization URL")
	}
	if flow == "browser" && c.AuthURL == "" {
		missing = append(missing, "authorization URL")
	}
	if c.TokenURL == "" {
		missing = append(missing, "token URL")
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("oauth: %s login: no %s", flow, strings.Join(missing, ", "))
	}
	return c, nil
}

// file is the token file for the tokens a login obtained.
func (c LoginConfig) file(t *tokenAnswer) (*File, error) {
	if t.RefreshToken == "" {
		return nil, errNoRefreshToken
	}
	provider := c.Provider
	if provider == "" {
		provider = "custom"
	}
	return &File{
		Provider:     provider,
		TokenURL:     c.TokenURL,
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		Scopes:       c.Scopes,
		AccessToken:  t.AccessToken,
		RefreshToken: t.RefreshToken,
		Expiry:       t.Expiry,
	}, nil
}

// DeviceLogin runs the device authorization grant (RFC 8628): it prints a
// URL and a code for the user to enter there, on any device, and polls
// the token endpoint until the user approves or denies, the code expires,
// or ctx is done. The File it returns is not written yet.
func DeviceLogin(ctx context.Context, cfg LoginConfig) (*File, error) {
	c, err := cfg.withPreset("device")
	if err != nil {
		return nil, err
	}
	form := url.Values{"client_id": {c.ClientID}}
	if len(c.Scopes) > 0 {
		form.Set("scope", strings.Join(c.Scopes, " "))
	}
	da, err := post(ctx, c.HTTPClient, c.DeviceURL, form)
	if err != nil {
		return nil, fmt.Errorf("oauth: device authorization request: %w", err)
	}
	verify := da.VerificationURI
	if verify == "" {
		verify = da.VerificationURL
	}
	if da.DeviceCode == "" || da.UserCode == "" || verify == "" {
		return nil, fmt.Errorf("oauth: %s answered without device_code, user_code or verification_uri", c.DeviceURL)
	}
	fmt.Fprintf(c.Prompt, "To authorize imapkit, open\n\n  %s\n\nand enter the code  %s\n\n", verify, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(c.Prompt, "(or open %s, which fills in the code)\n\n", da.VerificationURIComplete)
	}
	// "If no value is provided, clients MUST use 5 as the default."
	interval := 5 * time.Second
	if da.Interval > 0 {
		interval = da.Interval.duration()
	}
	pollCtx := ctx
	if da.ExpiresIn > 0 {
		var cancel context.CancelFunc
		pollCtx, cancel = context.WithTimeout(ctx, da.ExpiresIn.duration())
		defer cancel()
		fmt.Fprintf(c.Prompt, "Waiting for the approval (the code expires in %v)...\n", da.ExpiresIn.duration())
	} else {
		fmt.Fprintln(c.Prompt, "Waiting for the approval...")
	}
	poll := clientForm(c.ClientID, c.ClientSecret)
	poll.Set("grant_type", "urn:ietf:params:oauth:grant-type:device_code")
	poll.Set("device_code", da.DeviceCode)
	expired := errors.New("oauth: the code expired before it was approved: run the login again")
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		// The wait is between an answer and the next request, so that
		// the server never sees two requests closer than interval.
		select {
		case <-pollCtx.Done():
			if ctx.Err() != nil {
				return nil, fmt.Errorf("oauth: waiting for the approval: %w", context.Cause(ctx))
			}
			return nil, expired
		case <-timer.C:
		}
		t, err := requestToken(pollCtx, c.HTTPClient, c.TokenURL, poll)
		var e *endpointError
		switch {
		case err == nil:
			return c.file(t)
		case errors.As(err, &e) && e.Code == "authorization_pending":
		case errors.As(err, &e) && e.Code == "slow_down":
			interval += c.slowDown
		case errors.As(err, &e) && e.Code == "access_denied":
			return nil, errors.New("oauth: the authorization was denied")
		case errors.As(err, &e) && e.Code == "expired_token":
			return nil, expired
		case pollCtx.Err() != nil && ctx.Err() == nil:
			return nil, expired
		default:
			return nil, fmt.Errorf("oauth: polling for the approval: %w", err)
		}
		timer.Reset(interval)
	}
}

// BrowserLogin runs the authorization code grant with PKCE (RFC 7636,
// S256) for a native application (RFC 8252): it listens on a loopback
// port, prints the URL to open (and calls OpenBrowser), and exchanges the
// code that the browser brings back for tokens. The File it returns is
// not written yet.
func BrowserLogin(ctx context.Context, cfg LoginConfig) (*File, error) {
	c, err := cfg.withPreset("browser")
	if err != nil {
		return nil, err
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("oauth: listening for the browser's answer: %w", err)
	}
	redirect := fmt.Sprintf("http://127.0.0.1:%d/", ln.Addr().(*net.TCPAddr).Port)
	state := rand.Text()
	verifier := oauth2.GenerateVerifier()
	oc := oauth2.Config{
		ClientID:    c.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: c.AuthURL, TokenURL: c.TokenURL},
		RedirectURL: redirect,
		Scopes:      c.Scopes,
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if c.Provider == "google" {
		// Google returns a refresh token only for offline access, and
		// only at the first consent unless asked to show it again.
		opts = append(opts, oauth2.AccessTypeOffline, oauth2.ApprovalForce)
	}
	authURL := oc.AuthCodeURL(state, opts...)

	answers := make(chan callback, 1)
	srv := &http.Server{
		Handler:           &callbackHandler{state: state, answers: answers},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln)
	defer func() {
		// The page has been served: a short wait lets it reach the
		// browser before the listener goes.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()

	fmt.Fprintf(c.Prompt, "To authorize imapkit, open this URL in a browser on this machine:\n\n  %s\n\n", authURL)
	if c.OpenBrowser != nil {
		if err := c.OpenBrowser(authURL); err != nil {
			fmt.Fprintf(c.Prompt, "(could not open a browser: %v)\n", err)
		}
	}
	fmt.Fprintf(c.Prompt, "Waiting for the browser to come back to %s...\n", redirect)
	var answer callback
	select {
	case answer = <-answers:
	case <-ctx.Done():
		return nil, fmt.Errorf("oauth: waiting for the browser: %w", context.Cause(ctx))
	}
	if answer.err != nil {
		return nil, answer.err
	}
	form := clientForm(c.ClientID, c.ClientSecret)
	form.Set("grant_type", "authorization_code")
	form.Set("code", answer.code)
	form.Set("redirect_uri", redirect)
	form.Set("code_verifier", verifier)
	t, err := requestToken(ctx, c.HTTPClient, c.TokenURL, form)
	if err != nil {
		return nil, fmt.Errorf("oauth: exchanging the authorization code: %w", err)
	}
	return c.file(t)
}

// callback is what the browser brought back: a code, or the refusal.
type callback struct {
	code string
	err  error
}

// callbackHandler takes the browser's redirect to the loopback address.
type callbackHandler struct {
	state   string
	answers chan<- callback // buffered 1: the first answer counts
}

func (h *callbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	// A redirect without our state was not caused by this login (an old
	// browser tab, or a forged request): it is answered, and ignored.
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(h.state)) != 1 {
		page(w, http.StatusBadRequest, "This answer does not belong to the login under way (its state does not match). Start from the URL imapkit printed.")
		return
	}
	var a callback
	switch {
	case q.Get("error") != "":
		msg := "oauth: the authorization was refused: " + clean(q.Get("error"), nil)
		if d := clean(q.Get("error_description"), nil); d != "" {
			msg += " (" + d + ")"
		}
		a.err = errors.New(msg)
		page(w, http.StatusOK, "The authorization was refused. You may close this window.")
	case q.Get("code") == "":
		page(w, http.StatusBadRequest, "The answer has no authorization code.")
		return
	default:
		a.code = q.Get("code")
		page(w, http.StatusOK, "imapkit is authorized. You may close this window.")
	}
	select {
	case h.answers <- a:
	default: // a second answer (a reload): the first one counts
	}
}

// page answers with a short plain HTML page.
func page(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html>\n<title>imapkit login</title>\n<p>%s</p>\n", text)
}
