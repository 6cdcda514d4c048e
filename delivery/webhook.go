package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// maxReplyInError is how much of a failed webhook's reply body its error
// quotes.
const maxReplyInError = 200

// WebhookSink is a Sink that POSTs each event to a URL, its body the
// event's JSON (the bytes of a JSON stream's line, without the newline),
// with headers Content-Type: application/json, User-Agent: imapkit,
// X-Imapkit-Event-Id (the event's ID, to recognise a repeat) and, with a
// Secret, X-Imapkit-Signature: sha256=HEX, the HMAC-SHA256 of the body
// keyed with the secret, in lowercase hexadecimal.
//
// A 2xx reply means the receiver has the event. Any other status —
// redirects included, which are not followed: the event must reach the URL
// configured, not wherever a reply points — or a transport error fails the
// try. A batch of several events is posted one event at a time, in order.
type WebhookSink struct {
	// URL is where to POST. Userinfo in it is sent as basic
	// authentication, and left out of String and of errors, as is the
	// query.
	URL string

	// Secret is the HMAC key signing each body; nil sends no signature.
	Secret []byte

	// Client makes the requests; nil means a client with
	// http.DefaultTransport. Its CheckRedirect is ignored.
	Client *http.Client
}

// String returns "webhook " and the URL without userinfo and query, which
// may hold secrets.
func (s *WebhookSink) String() string { return "webhook " + redactURL(s.URL) }

// redactURL returns rawURL without userinfo, query and fragment.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(invalid URL)"
	}
	u.User = nil
	u.RawQuery, u.ForceQuery = "", false
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// Deliver posts each event of batch in turn, returning at the first
// failure.
func (s *WebhookSink) Deliver(ctx context.Context, batch []Event) error {
	client := http.Client{}
	if s.Client != nil {
		client = *s.Client
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, ev := range batch {
		if err := s.post(ctx, &client, ev); err != nil {
			return err
		}
	}
	return nil
}

func (s *WebhookSink) post(ctx context.Context, client *http.Client, ev Event) error {
	body, err := marshal(ev)
	if err != nil {
		return fmt.Errorf("webhook: encode event %s: %w", ev.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", unwrapURLError(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "imapkit")
	req.Header.Set("X-Imapkit-Event-Id", ev.ID)
	if s.Secret != nil {
		mac := hmac.New(sha256.New, s.Secret)
		mac.Write(body)
		req.Header.Set("X-Imapkit-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("webhook: %w", context.Cause(ctx))
		}
		return fmt.Errorf("webhook: %w", unwrapURLError(err))
	}
	defer func() {
		// Drained (a little) so that the connection can be reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyInError))
	msg := fmt.Sprintf("webhook: server answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		msg += " (redirects are not followed)"
	}
	if r := strings.Join(strings.Fields(printable(string(reply))), " "); r != "" {
		msg += ": " + r
	}
	return errors.New(msg)
}

// unwrapURLError returns the cause of a *url.Error, whose message quotes
// the whole URL, secrets included.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// LoadSecret reads a webhook's secret from the file at path: its content
// less one trailing newline ("\n" or "\r\n"), which editors add. An empty
// secret is an error: it would sign nothing.
func LoadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	if bytes.HasSuffix(b, []byte("\r\n")) {
		b = b[:len(b)-2]
	} else if bytes.HasSuffix(b, []byte("\n")) {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("webhook secret: %s is empty", path)
	}
	return b, nil
}
