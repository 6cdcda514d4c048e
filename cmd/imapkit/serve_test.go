package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap"
	"github.com/imapkit/imap/internal/dovecot"
)

// TestServe runs imapkit serve with its embedded NATS: an account added
// with imapkit accounts is watched, its new mail is published to
// IMAPKIT_EVENTS (Nats-Msg-Id = the event's ID) and delivered to a webhook
// by a durable consumer; the status, health, readiness and metrics
// endpoints answer; an interrupt ends it cleanly.
func TestServe(t *testing.T) {
	srv := dovecot.StartT(t)
	user, pass, err := srv.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	other, err := imap.DialStream(context.Background(), srv.StreamCommand(user), &imap.Options{Timeout: 20 * time.Second, StreamStderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Shutdown()
	dir := t.TempDir()
	key, token := filepath.Join(dir, "secret.key"), filepath.Join(dir, "api.token")
	if code, _, stderr := runCmd(t, "keygen", "--out", key); code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	os.WriteFile(token, []byte("t0ken\n"), 0o600)
	var mu sync.Mutex
	var hooked []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		hooked = append(hooked, ev)
		mu.Unlock()
	}))
	defer hook.Close()
	httpAddr := freeAddr(t)
	inv := start("serve", "--data-dir", filepath.Join(dir, "data"), "--nats-listen", "127.0.0.1:0", "--http", httpAddr,
		"--secret-key-file", key, "--api-token-file", token, "--lease-ttl", "2s", "--node-id", "n1",
		"--webhook", hook.URL, "--retry-backoff", "100ms")
	waitOutput(t, "stdout", &inv.stdout, "ready")
	natsURL := regexp.MustCompile(`nats://[0-9.:]+`).FindString(inv.stdout.String())
	api := "http://" + httpAddr

	t.Setenv("IMAPKIT_TEST_PASSWORD", pass)
	if code, stdout, stderr := runCmd(t, "accounts", "add", "--api", api, "--api-token-file", token, "--name", "work",
		"--server", srv.Addr, "--plaintext", "--user", user, "--password-env", "IMAPKIT_TEST_PASSWORD"); code != 0 {
		t.Fatalf("accounts add: exit %d\n%s\n%s", code, stdout, stderr)
	}
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", api+path, nil)
		req.Header.Set("Authorization", "Bearer t0ken")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 30 s\nstderr:\n%s", what, inv.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("the account idle", func() bool {
		code, body := get("/v1/accounts/work/status")
		return code == 200 && strings.Contains(body, `"state":"idle"`) && strings.Contains(body, `"owner":"n1"`)
	})
	appendMsg(t, other, "served")
	waitFor("the webhook delivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(hooked) == 1
	})
	if hooked[0]["event"] != "new" || hooked[0]["subject"] != "served" || hooked[0]["account"] != "work" {
		t.Errorf("webhook got %v", hooked[0])
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	events, err := js.Stream(t.Context(), "IMAPKIT_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	m, err := events.GetLastMsgForSubject(t.Context(), "imapkit.events.work.new")
	if err != nil {
		t.Fatal(err)
	}
	if id := m.Header.Get("Nats-Msg-Id"); id == "" || id != hooked[0]["id"] {
		t.Errorf("Nats-Msg-Id %q, event id %v", id, hooked[0]["id"])
	}
	waitFor("the delivery counted", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `imapkit_sink_deliveries_total{sink="webhook-1"} 1`)
	})
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ok", "/metrics": `imapkit_events_published_total{kind="new"} 1`} {
		if code, body := get(path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %q, want 200 with %q", path, code, body, want)
		}
	}
	if code, body := get("/v1/accounts/work"); code != 200 || strings.Contains(body, pass) || strings.Contains(body, "password") {
		t.Errorf("GET /v1/accounts/work: %d %s", code, body)
	}
	if strings.Contains(inv.stdout.String()+inv.stderr.String(), pass) {
		t.Error("the password appears in serve's output")
	}
	inv.cancel()
	if code := inv.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit %d after interrupt:\n%s", code, inv.stderr.String())
	}
}
