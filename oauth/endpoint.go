package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// maxAnswer bounds what is read of an endpoint's answer: they are small
// JSON objects.
const maxAnswer = 1 << 20

// tokenAnswer is a token endpoint's successful answer (RFC 6749 section
// 5.1).
type tokenAnswer struct {
	AccessToken  string
	RefreshToken string // "" when the server keeps the old one
	Expiry       time.Time
	Obtained     time.Time // when the request was sent: Expiry - Obtained is the lifetime
}

// endpointError is an endpoint's error answer (RFC 6749 section 5.2).
type endpointError struct {
	URL         string
	Status      int    // HTTP status
	Code        string // "error", as invalid_grant; "" if the answer had none
	Description string // "error_description", shortened, secrets taken out
}

func (e *endpointError) Error() string {
	return fmt.Sprintf("%s answered %s", e.URL, e.brief())
}

// brief is the status and the error's code and description.
func (e *endpointError) brief() string {
	s := strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
	if e.Code != "" {
		s += ": " + e.Code
	}
	if e.Description != "" {
		s += " (" + e.Description + ")"
	}
	return s
}

// needsLogin tells whether the grant itself was refused (revoked,
// expired, or issued to a client no longer accepted), as opposed to a
// failure that may pass.
func (e *endpointError) needsLogin() bool {
	switch e.Code {
	case "invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope":
		return true
	}
	return e.Status == http.StatusUnauthorized
}

// Temporary reports whether the failure may pass by itself: the endpoint
// failing or rate limiting. Callers that retry (the watcher) ask.
func (e *endpointError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// answerFields is the union of the fields read from token and device
// endpoints.
type answerFields struct {
	AccessToken      string  `json:"access_token"`
	RefreshToken     string  `json:"refresh_token"`
	ExpiresIn        seconds `json:"expires_in"`
	Error            string  `json:"error"`
	ErrorDescription string  `json:"error_description"`

	DeviceCode              string  `json:"device_code"`
	UserCode                string  `json:"user_code"`
	VerificationURI         string  `json:"verification_uri"`
	VerificationURL         string  `json:"verification_url"` // Google's spelling
	VerificationURIComplete string  `json:"verification_uri_complete"`
	Interval                seconds `json:"interval"`
}

// seconds is a count of seconds sent as a number or, by some servers, as
// a string.
type seconds int64

func (s *seconds) UnmarshalJSON(b []byte) error {
	str := strings.Trim(string(b), `"`)
	if str == "" || str == "null" {
		*s = 0
		return nil
	}
	n, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return fmt.Errorf("not a number of seconds: %q", str)
	}
	*s = seconds(n)
	return nil
}

func (s seconds) duration() time.Duration { return time.Duration(s) * time.Second }

// post sends form to endpoint and decodes the answer. A non-2xx answer,
// or one with an "error" field, is an *endpointError. The values of the
// fields named in secret are taken out of any error description the
// server echoes.
func post(ctx context.Context, client *http.Client, endpoint string, form url.Values, secret ...string) (*answerFields, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("oauth: bad endpoint URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err // *url.Error names the method and URL; the form is not in it
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("oauth: reading the answer of %s: %w", endpoint, err)
	}
	var a answerFields
	decodeErr := decodeAnswer(resp.Header.Get("Content-Type"), body, &a)
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if !ok || a.Error != "" {
		return nil, &endpointError{
			URL:         endpoint,
			Status:      resp.StatusCode,
			Code:        clean(a.Error, nil),
			Description: clean(a.ErrorDescription, secretValues(form, secret)),
		}
	}
	if decodeErr != nil {
		return nil, fmt.Errorf("oauth: %s answered %d with no JSON object: %w", endpoint, resp.StatusCode, decodeErr)
	}
	return &a, nil
}

// decodeAnswer reads JSON, or the form encoding some servers answer with.
func decodeAnswer(contentType string, body []byte, a *answerFields) error {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return err
		}
		n, _ := strconv.ParseInt(v.Get("expires_in"), 10, 64)
		*a = answerFields{
			AccessToken:      v.Get("access_token"),
			RefreshToken:     v.Get("refresh_token"),
			ExpiresIn:        seconds(n),
			Error:            v.Get("error"),
			ErrorDescription: v.Get("error_description"),
		}
		return nil
	}
	return json.Unmarshal(body, a)
}

// secretValues returns the values of the form's secret fields.
func secretValues(form url.Values, names []string) []string {
	var out []string
	for _, n := range names {
		if v := form.Get(n); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// clean makes a server's text fit for an error message: one line, not
// too long, and without the request's secrets should the server echo
// them.
func clean(s string, secrets []string) string {
	for _, v := range secrets {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// requestToken posts a token request (any grant type) and returns the
// tokens. The client authenticates in the form (client_id and, if it has
// one, client_secret), which Google, Microsoft and public clients all
// accept.
func requestToken(ctx context.Context, client *http.Client, tokenURL string, form url.Values) (*tokenAnswer, error) {
	obtained := time.Now()
	a, err := post(ctx, client, tokenURL, form, "client_secret", "refresh_token", "code", "code_verifier", "device_code")
	if err != nil {
		return nil, err
	}
	if a.AccessToken == "" {
		return nil, fmt.Errorf("oauth: %s answered with no access_token", tokenURL)
	}
	t := &tokenAnswer{AccessToken: a.AccessToken, RefreshToken: a.RefreshToken, Obtained: obtained}
	if a.ExpiresIn > 0 {
		t.Expiry = obtained.Add(a.ExpiresIn.duration())
	}
	return t, nil
}

// clientForm is a form with the client's credentials.
func clientForm(clientID, clientSecret string) url.Values {
	v := url.Values{"client_id": {clientID}}
	if clientSecret != "" {
		v.Set("client_secret", clientSecret)
	}
	return v
}

// errNoRefreshToken is the error of a login whose answer lacks the
// refresh token, without which nothing lasts beyond the first access
// token.
var errNoRefreshToken = errors.New("oauth: the provider returned no refresh token; for Microsoft include offline_access in --scope")
