package delivery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hookServer is a webhook receiver recording the events it acknowledged,
// in order. answer decides each reply: the status, or 0 to hang until the
// client gives up.
type hookServer struct {
	*httptest.Server
	answer func(n int, ev Event) int // n counts requests from 1

	mu       sync.Mutex
	n        int
	acked    []string
	requests []*http.Request
	bodies   [][]byte
}

func newHookServer(t *testing.T, answer func(n int, ev Event) int) *hookServer {
	h := &hookServer{answer: answer}
	h.Server = httptest.NewUnstartedServer(h)
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev Event
	json.Unmarshal(body, &ev)
	h.mu.Lock()
	h.n++
	n := h.n
	h.requests = append(h.requests, r.Clone(context.Background()))
	h.bodies = append(h.bodies, body)
	h.mu.Unlock()
	status := h.answer(n, ev)
	if status == 0 {
		<-r.Context().Done() // slower than any client
		return
	}
	if status/100 == 2 {
		h.mu.Lock()
		h.acked = append(h.acked, ev.ID)
		h.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (h *hookServer) ackedIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.acked)
}

// testClient returns a client of its own, its idle connections closed when
// the test ends, so that no goroutine outlives the test.
func testClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestWebhookRequest(t *testing.T) {
	h := newHookServer(t, func(int, Event) int { return http.StatusNoContent })
	h.Start()
	secret := []byte("s3cret")
	s := &WebhookSink{URL: strings.Replace(h.URL, "://", "://u:p@", 1) + "/hook?token=t", Secret: secret, Client: testClient(t)}
	e1, e2 := ev("work", "INBOX", 1), ev("work", "INBOX", 2)
	e1.MessageID, e1.Subject = "<m@x>", "Ünïcode & <tags>"
	if err := s.Deliver(context.Background(), []Event{e1, e2}); err != nil {
		t.Fatal(err)
	}
	if got := h.ackedIDs(); !slices.Equal(got, []string{e1.ID, e2.ID}) {
		t.Fatalf("server got %v, want both events in order", got)
	}
	h.mu.Lock()
	r, body := h.requests[0], h.bodies[0]
	h.mu.Unlock()
	line, _ := e1.line()
	if string(body)+"\n" != string(line) {
		t.Errorf("body\n%s\nis not the JSON line\n%s", body, line)
	}
	var back map[string]any
	if err := json.Unmarshal(body, &back); err != nil || r.Header.Get("X-Imapkit-Event-Id") != back["id"] {
		t.Errorf("X-Imapkit-Event-Id %q, JSON id %v (%v)", r.Header.Get("X-Imapkit-Event-Id"), back["id"], err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	sig, _ := strings.CutPrefix(r.Header.Get("X-Imapkit-Signature"), "sha256=")
	if got, err := hex.DecodeString(sig); err != nil || !hmac.Equal(got, mac.Sum(nil)) || sig != strings.ToLower(sig) {
		t.Errorf("signature %q does not verify", r.Header.Get("X-Imapkit-Signature"))
	}
	user, pass, _ := r.BasicAuth()
	for _, c := range []struct{ name, got, want string }{
		{"method", r.Method, "POST"},
		{"path", r.URL.Path, "/hook"},
		{"query", r.URL.RawQuery, "token=t"},
		{"Content-Type", r.Header.Get("Content-Type"), "application/json"},
		{"User-Agent", r.Header.Get("User-Agent"), "imapkit"},
		{"basic auth", user + ":" + pass, "u:p"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}

	// Without a secret, no signature.
	s.Secret = nil
	if err := s.Deliver(context.Background(), []Event{e1}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	r = h.requests[2]
	h.mu.Unlock()
	if sig := r.Header.Get("X-Imapkit-Signature"); sig != "" {
		t.Errorf("signature %q without a secret", sig)
	}
}

func TestWebhookFailures(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		io.WriteString(w, "\x1b[31mboom\r\n\tbad  things "+strings.Repeat("x", 500))
	})
	mux.HandleFunc("/302", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { followed.Add(1) })
	mux.HandleFunc("/404", http.NotFound)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	closed := httptest.NewServer(mux)
	closed.Close()

	tests := []struct {
		url      string
		want     string
		maxBytes int
	}{
		{srv.URL + "/500", "webhook: server answered 500 Internal Server Error: [31mboom bad things xxx", 300},
		{srv.URL + "/302", "webhook: server answered 302 Found (redirects are not followed)", 200},
		{srv.URL + "/404", "webhook: server answered 404 Not Found: 404 page not found", 200},
		{"http://u:pw@" + strings.TrimPrefix(closed.URL, "http://") + "/x?token=tok", "connection refused", 200},
		{"ftp://u:pw@host/?token=tok", "unsupported protocol scheme", 200},
	}
	for _, tt := range tests {
		s := &WebhookSink{URL: tt.url, Client: testClient(t)}
		err := s.Deliver(context.Background(), []Event{ev("a", "b", 1)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Deliver = %v, want %q", tt.url, err, tt.want)
			continue
		}
		if msg := err.Error(); len(msg) > tt.maxBytes || strings.ContainsAny(msg, "\x1b\r\n") ||
			strings.Contains(msg, "pw") || strings.Contains(msg, "tok") {
			t.Errorf("%s: error too long, unprintable or with a secret: %q", tt.url, msg)
		}
	}
	if followed.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestWebhookString(t *testing.T) {
	tests := []struct{ url, want string }{
		{"https://host/path", "webhook https://host/path"},
		{"https://user:pass@host:8443/path?token=abc#frag", "webhook https://host:8443/path"},
		{"https://user@host/p?", "webhook https://host/p"},
		{"http://[::1]:80/x?a=b", "webhook http://[::1]:80/x"},
		{"https://user:pa ss@host/%zz", "webhook (invalid URL)"},
	}
	for _, tt := range tests {
		if got := (&WebhookSink{URL: tt.url}).String(); got != tt.want {
			t.Errorf("String of %q = %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestLoadSecret(t *testing.T) {
	tests := []struct {
		content string
		want    string
		wantErr bool
	}{
		{"abc", "abc", false},
		{"abc\n", "abc", false},
		{"abc\r\n", "abc", false},
		{"abc\n\n", "abc\n", false},
		{" a b \n", " a b ", false},
		{"", "", true},
		{"\n", "", true},
		{"\r\n", "", true},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		path := filepath.Join(dir, "secret")
		if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadSecret(path)
		if (err != nil) != tt.wantErr || string(got) != tt.want {
			t.Errorf("LoadSecret(%q) = %q, %v; want %q, error %v", tt.content, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := LoadSecret(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("LoadSecret of a missing file: %v", err)
	}
}

func TestWebhookServerErrorsThenRecovers(t *testing.T) {
	checkNoLeak(t)
	h := newHookServer(t, func(n int, _ Event) int {
		if n <= 4 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	h.Start()
	dl := &memDeadLetter{}
	s := &WebhookSink{URL: h.URL, Client: testClient(t)}
	d := NewDispatcher(Config{DeadLetter: dl, Routes: []Route{{Sink: s, Retry: Retry{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}}}})
	done := newDoneSet()
	var want []string
	for uid := uint32(1); uid <= 5; uid++ {
		e := ev("work", "INBOX", uid)
		want = append(want, e.ID)
		d.Submit(e, done.fn(e.ID))
	}
	waitFor(t, 10*time.Second, "every event done", func() bool { return done.total() == 5 })
	d.Shutdown(context.Background())
	if got := h.ackedIDs(); !slices.Equal(got, want) {
		t.Errorf("server acknowledged %v, want %v", got, want)
	}
	if recs := dl.records(); len(recs) != 0 {
		t.Errorf("dead records: %+v", recs)
	}
}

func TestWebhookServerDownAtStart(t *testing.T) {
	checkNoLeak(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var tries atomic.Int32
	hook := &WebhookSink{URL: "http://" + addr + "/hook", Client: testClient(t)}
	counting := &funcSink{name: hook.String(), f: func(ctx context.Context, batch []Event) error {
		tries.Add(1)
		return hook.Deliver(ctx, batch)
	}}
	var logBuf syncBuffer
	dl := &memDeadLetter{}
	d := NewDispatcher(Config{DeadLetter: dl, Log: slog.New(slog.NewTextHandler(&logBuf, nil)),
		Routes: []Route{{Sink: counting, Retry: Retry{Retries: 1000, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}}})
	done := newDoneSet()
	var want []string
	for uid := uint32(1); uid <= 3; uid++ {
		e := ev("work", "INBOX", uid)
		want = append(want, e.ID)
		d.Submit(e, done.fn(e.ID))
	}
	waitFor(t, 5*time.Second, "two refused tries", func() bool { return tries.Load() >= 2 })
	if done.total() != 0 {
		t.Fatal("events done while the server was down")
	}

	h := newHookServer(t, func(int, Event) int { return http.StatusOK })
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	h.Listener.Close()
	h.Listener = l
	h.Start()
	waitFor(t, 10*time.Second, "every event done", func() bool { return done.total() == 3 })
	d.Shutdown(context.Background())
	if got := h.ackedIDs(); !slices.Equal(got, want) {
		t.Errorf("server acknowledged %v, want %v", got, want)
	}
	if recs := dl.records(); len(recs) != 0 {
		t.Errorf("dead records: %+v", recs)
	}
	if log := logBuf.String(); !strings.Contains(log, "connection refused") {
		t.Errorf("log does not say the connection was refused:\n%s", log)
	}
}

func TestWebhookSlowServer(t *testing.T) {
	checkNoLeak(t)
	var mu sync.Mutex
	seen := map[uint32]int{}
	h := newHookServer(t, func(_ int, e Event) int {
		mu.Lock()
		defer mu.Unlock()
		seen[e.UID]++
		switch {
		case e.UID == 1: // always too slow: dead-lettered
			return 0
		case e.UID == 2 && seen[2] == 1: // too slow once: delivered on the retry
			return 0
		}
		return http.StatusOK
	})
	h.Start()
	dl := &memDeadLetter{}
	s := &WebhookSink{URL: h.URL, Client: testClient(t)}
	retry := Retry{Retries: 1, Backoff: time.Millisecond, Timeout: 100 * time.Millisecond}
	d := NewDispatcher(Config{DeadLetter: dl, Routes: []Route{{Sink: s, Retry: retry}}})
	done := newDoneSet()
	for uid := uint32(1); uid <= 3; uid++ {
		e := ev("work", "INBOX", uid)
		d.Submit(e, done.fn(e.ID))
	}
	waitFor(t, 10*time.Second, "every event done", func() bool { return done.total() == 3 })
	d.Shutdown(context.Background())
	if got, want := h.ackedIDs(), []string{ev("work", "INBOX", 2).ID, ev("work", "INBOX", 3).ID}; !slices.Equal(got, want) {
		t.Errorf("server acknowledged %v, want %v", got, want)
	}
	recs := dl.records()
	if len(recs) != 1 || recs[0].Event.UID != 1 || recs[0].Attempts != 2 ||
		recs[0].Err != "webhook: try timed out after 100ms" || recs[0].Sink != "webhook "+h.URL {
		t.Errorf("dead records %+v", recs)
	}
}
