package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapkit/imap/delivery"
	"github.com/prometheus/client_golang/prometheus"
)

// apiClient sends requests to a test server of the API.
type apiClient struct {
	t     *testing.T
	url   string
	token string
}

// reply is a response, its body read.
type reply struct {
	code   int
	header http.Header
	body   string
}

func (c *apiClient) do(method, path, body string, header ...string) reply {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// errorOf is the message of a JSON error reply, failing the test if the
// reply is not one.
func (r reply) errorOf(t *testing.T) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("reply %d %q (%s) is not a JSON error", r.code, r.body, r.header.Get("Content-Type"))
	}
	return e.Error
}

// startAPI serves the API over a fresh store; opts.Accounts is filled in.
func startAPI(t *testing.T, opts APIOptions) (*apiClient, *AccountStore) {
	t.Helper()
	st, _ := newAccountStore(t)
	opts.Accounts = st
	srv := httptest.NewServer(NewAPI(opts))
	t.Cleanup(srv.Close)
	return &apiClient{t: t, url: srv.URL, token: opts.Token}, st
}

const (
	apiPassword  = "s3cret-Pa55word"
	apiPassword2 = "an0ther-Pa55word"
)

// noSecrets fails the test if a reply shows a password, sealed or not, or
// a password field.
func noSecrets(t *testing.T, r reply) {
	t.Helper()
	for _, s := range []string{`"password":`, `"password_sealed":`, apiPassword, apiPassword2, "sealed:"} {
		if strings.Contains(r.body, s) {
			t.Errorf("reply %d shows %q: %s", r.code, s, r.body)
		}
	}
}

func TestAPIAccountsRoundTrip(t *testing.T) {
	c, st := startAPI(t, APIOptions{})
	var replies []reply
	do := func(method, path, body string, header ...string) reply {
		r := c.do(method, path, body, header...)
		replies = append(replies, r)
		return r
	}

	r := do("PUT", "/v1/accounts/alice", `{"server":"imap.example.org:993","user":"alice","password":"`+apiPassword+`","mailboxes":["INBOX","Sent"]}`)
	if r.code != http.StatusCreated || r.header.Get("Location") != "/v1/accounts/alice" {
		t.Fatalf("create: %d %s (Location %q)", r.code, r.body, r.header.Get("Location"))
	}
	var got Account
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.Name != "alice" || got.User != "alice" || !slices.Equal(got.Mailboxes, []string{"INBOX", "Sent"}) {
		t.Errorf("create replied %s (%v)", r.body, err)
	}
	sealed, err := st.GetSealed(t.Context(), "alice")
	if err != nil || sealed.PasswordSealed != (fakeSealer{}).Seal("alice", apiPassword) {
		t.Fatalf("stored %+v, %v; want the password sealed", sealed, err)
	}

	r = do("GET", "/v1/accounts/alice", "")
	if r.code != http.StatusOK || !strings.Contains(r.body, `"server":"imap.example.org:993"`) {
		t.Errorf("get: %d %s", r.code, r.body)
	}

	// Update without a password: the sealed one stays.
	r = do("PUT", "/v1/accounts/alice", `{"name":"alice","server":"imap.example.org:143","mode":"starttls","user":"alice"}`)
	if r.code != http.StatusOK || !strings.Contains(r.body, `"mode":"starttls"`) {
		t.Errorf("update: %d %s", r.code, r.body)
	}
	if sealed, _ := st.GetSealed(t.Context(), "alice"); sealed.PasswordSealed != (fakeSealer{}).Seal("alice", apiPassword) || sealed.Server != "imap.example.org:143" {
		t.Errorf("after an update without a password: %+v", sealed)
	}
	r = do("PUT", "/v1/accounts/alice", `{"server":"imap.example.org:143","mode":"starttls","user":"alice","password":"`+apiPassword2+`"}`, "If-Match", "*")
	if r.code != http.StatusOK {
		t.Errorf("update with If-Match: %d %s", r.code, r.body)
	}
	if sealed, _ := st.GetSealed(t.Context(), "alice"); sealed.PasswordSealed != (fakeSealer{}).Seal("alice", apiPassword2) {
		t.Errorf("after an update with a password: %+v", sealed)
	}

	// Conditional requests.
	r = do("PUT", "/v1/accounts/alice", `{"server":"h:1","user":"u","password":"`+apiPassword+`"}`, "If-None-Match", "*")
	if r.code != http.StatusPreconditionFailed || !strings.Contains(r.errorOf(t), "already exists") {
		t.Errorf("create over an existing account: %d %s", r.code, r.body)
	}
	r = do("PUT", "/v1/accounts/bob", `{"server":"h:1","user":"u","password":"`+apiPassword+`"}`, "If-Match", "*")
	if r.code != http.StatusPreconditionFailed || !strings.Contains(r.errorOf(t), "no such account") {
		t.Errorf("update of a missing account: %d %s", r.code, r.body)
	}
	r = do("PUT", "/v1/accounts/bob", `{"server":"h:1","user":"u","password":"`+apiPassword+`"}`, "If-None-Match", "*")
	if r.code != http.StatusCreated {
		t.Errorf("create with If-None-Match: %d %s", r.code, r.body)
	}

	r = do("GET", "/v1/accounts", "")
	var list struct {
		Accounts []Account `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || r.code != http.StatusOK || len(list.Accounts) != 2 ||
		list.Accounts[0].Name != "alice" || list.Accounts[1].Name != "bob" {
		t.Errorf("list: %d %s", r.code, r.body)
	}

	r = do("DELETE", "/v1/accounts/alice", "")
	if r.code != http.StatusNoContent || r.body != "" {
		t.Errorf("delete: %d %q", r.code, r.body)
	}
	r = do("GET", "/v1/accounts/alice", "")
	if r.code != http.StatusNotFound || !strings.Contains(r.errorOf(t), "no such account: alice") {
		t.Errorf("get after delete: %d %s", r.code, r.body)
	}
	r = do("DELETE", "/v1/accounts/alice", "")
	if r.code != http.StatusNotFound {
		t.Errorf("second delete: %d %s", r.code, r.body)
	}
	r = do("GET", "/v1/accounts", "")
	if r.code != http.StatusOK || strings.Contains(r.body, "alice") {
		t.Errorf("list after delete: %d %s", r.code, r.body)
	}

	for _, r := range replies {
		noSecrets(t, r)
	}
}

func TestAPIAccountsRefused(t *testing.T) {
	c, st := startAPI(t, APIOptions{})
	if _, err := st.Create(t.Context(), testAccount("taken", apiPassword)); err != nil {
		t.Fatal(err)
	}
	valid := `{"server":"imap.example.org:993","user":"u","password":"` + apiPassword + `"}`
	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		code         int
		says         string
	}{
		{"bad name in path", "PUT", "/v1/accounts/a.b", valid, 400, `account name "a.b"`},
		{"bad name on get", "GET", "/v1/accounts/a.b", "", 400, `account name "a.b"`},
		{"bad name on delete", "DELETE", "/v1/accounts/a.b", "", 400, `account name "a.b"`},
		{"names differ", "PUT", "/v1/accounts/new", `{"name":"other","server":"h:1","user":"u","password":"x"}`, 400, `the body names account "other", the path "new"`},
		{"server without port", "PUT", "/v1/accounts/new", `{"server":"imap.example.org","user":"u","password":"` + apiPassword + `"}`, 400, "want HOST:PORT"},
		{"bad mode", "PUT", "/v1/accounts/new", `{"server":"h:1","mode":"ssl","user":"u","password":"x"}`, 400, `mode "ssl"`},
		{"no password for a new account", "PUT", "/v1/accounts/new", `{"server":"h:1","user":"u"}`, 400, "needs a password"},
		{"sealed password given", "PUT", "/v1/accounts/taken", `{"server":"h:1","user":"u","password_sealed":"sealed:forged"}`, 400, "password_sealed cannot be set"},
		{"unknown field", "PUT", "/v1/accounts/new", `{"server":"h:1","user":"u","password":"x","passwd":"y"}`, 400, `unknown field "passwd"`},
		{"not JSON", "PUT", "/v1/accounts/new", `{"server":"h:1","password":"` + apiPassword + `" oops}`, 400, "invalid JSON at byte"},
		{"wrong type", "PUT", "/v1/accounts/new", `{"server":"h:1","user":"u","password":` + `12345` + `}`, 400, "field password is not a string"},
		{"two objects", "PUT", "/v1/accounts/new", valid + valid, 400, "more than one JSON value"},
		{"empty body", "PUT", "/v1/accounts/new", "", 400, "empty"},
		{"body too large", "PUT", "/v1/accounts/new", `{"server":"h:1","user":"` + strings.Repeat("u", MaxRequestBody) + `"}`, 413, "larger than"},
		{"unknown route", "GET", "/v1/nothing", "", 404, "GET /v1/nothing: not found"},
		{"wrong method", "POST", "/v1/accounts/x", "", 405, "method not allowed (allowed: "},
		{"missing status", "GET", "/v1/accounts/missing/status", "", 404, "no such account: missing"},
		{"no status source", "GET", "/v1/accounts/taken/status", "", 503, "status is not available"},
		{"no dead letters", "GET", "/v1/dead", "", 503, "dead letters are not available"},
		{"no replay", "POST", "/v1/dead/1/replay", "", 503, "dead letters are not available"},
		{"no metrics", "GET", "/metrics", "", 404, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.do(tc.method, tc.path, tc.body)
			if r.code != tc.code {
				t.Errorf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if msg := r.errorOf(t); !strings.Contains(msg, tc.says) {
				t.Errorf("error %q does not say %q", msg, tc.says)
			}
			noSecrets(t, r)
		})
	}
	if list, err := st.List(t.Context()); err != nil || len(list) != 1 {
		t.Errorf("accounts after the refusals: %+v, %v; want only taken", list, err)
	}
	if a, _ := st.GetSealed(t.Context(), "taken"); a.PasswordSealed != (fakeSealer{}).Seal("taken", apiPassword) {
		t.Errorf("the refusals changed the stored password: %+v", a)
	}
}

func TestAPIToken(t *testing.T) {
	const token = "tok-0123456789"
	reg := prometheus.NewRegistry()
	c, st := startAPI(t, APIOptions{Token: token, Metrics: reg})
	if _, err := st.Create(t.Context(), testAccount("alice", apiPassword)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		method     string
		path       string
		authHeader string // "" for none
		code       int
	}{
		{"list without", "GET", "/v1/accounts", "", 401},
		{"list with a wrong token", "GET", "/v1/accounts", "Bearer tok-0123456788", 401},
		{"list with a longer token", "GET", "/v1/accounts", "Bearer " + token + "x", 401},
		{"list with basic auth", "GET", "/v1/accounts", "Basic " + token, 401},
		{"list with the token", "GET", "/v1/accounts", "Bearer " + token, 200},
		{"scheme in lower case", "GET", "/v1/accounts", "bearer " + token, 200},
		{"get without", "GET", "/v1/accounts/alice", "", 401},
		{"put without", "PUT", "/v1/accounts/alice", "", 401},
		{"delete without", "DELETE", "/v1/accounts/alice", "", 401},
		{"status without", "GET", "/v1/accounts/alice/status", "", 401},
		{"dead without", "GET", "/v1/dead", "", 401},
		{"replay without", "POST", "/v1/dead/1/replay", "", 401},
		{"unknown /v1 route without", "GET", "/v1/secret-route", "", 401},
		{"healthz open", "GET", "/healthz", "", 200},
		{"readyz open", "GET", "/readyz", "", 200},
		{"metrics open", "GET", "/metrics", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, c.url+tc.path, nil)
			if tc.authHeader != "" {
				req.Header.Set("Authorization", tc.authHeader)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := reply{resp.StatusCode, resp.Header, string(b)}
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if tc.code == 401 {
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
				if msg := r.errorOf(t); strings.Contains(msg, token) {
					t.Errorf("the error shows the token: %q", msg)
				}
			}
			if strings.Contains(r.body, token) {
				t.Errorf("the reply shows the token: %s", r.body)
			}
			noSecrets(t, r)
		})
	}
}

type fakeStatus struct{ err error }

func (f fakeStatus) Status(ctx context.Context, name string) (AccountStatus, error) {
	if f.err != nil {
		return AccountStatus{}, f.err
	}
	return AccountStatus{
		Owner: "node-7", State: StateIdle,
		Mailboxes: map[string]MailboxStatus{"INBOX": {LastUID: 42, UIDValidity: 7}, "Sent": {LastError: "SELECT failed"}},
	}, nil
}

func TestAPIStatus(t *testing.T) {
	c, st := startAPI(t, APIOptions{Status: fakeStatus{}})
	if _, err := st.Create(t.Context(), testAccount("alice", apiPassword)); err != nil {
		t.Fatal(err)
	}
	r := c.do("GET", "/v1/accounts/alice/status", "")
	if r.code != http.StatusOK {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	// The wire names, not just what decodes.
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.body), &raw); err != nil {
		t.Fatal(err)
	}
	inbox, _ := raw["mailboxes"].(map[string]any)["INBOX"].(map[string]any)
	sent, _ := raw["mailboxes"].(map[string]any)["Sent"].(map[string]any)
	if raw["name"] != "alice" || raw["owner"] != "node-7" || raw["state"] != "idle" || raw["last_error"] != "" ||
		inbox["last_uid"] != 42.0 || inbox["uid_validity"] != 7.0 || inbox["last_error"] != "" || sent["last_error"] != "SELECT failed" {
		t.Errorf("status replied %s", r.body)
	}

	c2, st2 := startAPI(t, APIOptions{Status: fakeStatus{err: errors.New("leases bucket: timeout")}})
	if _, err := st2.Create(t.Context(), testAccount("alice", apiPassword)); err != nil {
		t.Fatal(err)
	}
	r = c2.do("GET", "/v1/accounts/alice/status", "")
	if r.code != http.StatusInternalServerError || r.errorOf(t) != "status of account alice: leases bucket: timeout" {
		t.Errorf("status with a failing source: %d %s", r.code, r.body)
	}
}

type fakeDead struct {
	mu       sync.Mutex
	letters  []DeadLetter
	limits   []int
	replayed []uint64
}

func (f *fakeDead) List(ctx context.Context, limit int) ([]DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits = append(f.limits, limit)
	return f.letters[:min(limit, len(f.letters))], nil
}

func (f *fakeDead) Replay(ctx context.Context, seq uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, d := range f.letters {
		if d.Seq == seq {
			f.letters = slices.Delete(f.letters, i, i+1)
			f.replayed = append(f.replayed, seq)
			return nil
		}
	}
	return fmt.Errorf("IMAPKIT_DEAD: %w: %d", ErrNoDeadLetter, seq)
}

func TestAPIDead(t *testing.T) {
	when := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	dead := &fakeDead{}
	for seq := uint64(1); seq <= 3; seq++ {
		dead.letters = append(dead.letters, DeadLetter{
			Seq: seq, Event: delivery.Event{ID: fmt.Sprint("ev", seq), Kind: "new", Account: "alice", Mailbox: "INBOX", UID: uint32(seq)},
			Sink: "webhook https://example.org/hook", Error: "503 Service Unavailable", Attempts: 6, Time: when,
		})
	}
	c, _ := startAPI(t, APIOptions{Dead: dead})

	r := c.do("GET", "/v1/dead?limit=2", "")
	var got struct {
		Dead []DeadLetter `json:"dead"`
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || r.code != 200 || len(got.Dead) != 2 ||
		got.Dead[0].Seq != 1 || got.Dead[1].Event.ID != "ev2" || !got.Dead[0].Time.Equal(when) || got.Dead[0].Attempts != 6 {
		t.Errorf("list with limit 2: %d %s", r.code, r.body)
	}
	if !strings.Contains(r.body, `"seq":1`) || !strings.Contains(r.body, `"event":{"id":"ev1","event":"new"`) {
		t.Errorf("wire form: %s", r.body)
	}
	r = c.do("GET", "/v1/dead", "")
	if r.code != 200 || strings.Count(r.body, `"seq"`) != 3 {
		t.Errorf("list: %d %s", r.code, r.body)
	}
	if !slices.Equal(dead.limits, []int{2, defaultDeadLimit}) {
		t.Errorf("limits asked %v, want [2 %d]", dead.limits, defaultDeadLimit)
	}

	for _, tc := range []struct {
		method, path string
		code         int
		says         string
	}{
		{"GET", "/v1/dead?limit=0", 400, `limit "0"`},
		{"GET", "/v1/dead?limit=1001", 400, "from 1 to 1000"},
		{"GET", "/v1/dead?limit=many", 400, `limit "many"`},
		{"POST", "/v1/dead/two/replay", 400, `dead letter "two"`},
		{"POST", "/v1/dead/0/replay", 400, `dead letter "0"`},
		{"POST", "/v1/dead/9/replay", 404, "no such dead letter"},
		{"GET", "/v1/dead/2/replay", 405, "method not allowed"},
	} {
		if r := c.do(tc.method, tc.path, ""); r.code != tc.code || !strings.Contains(r.errorOf(t), tc.says) {
			t.Errorf("%s %s: %d %s, want %d saying %q", tc.method, tc.path, r.code, r.body, tc.code, tc.says)
		}
	}

	r = c.do("POST", "/v1/dead/2/replay", "")
	if r.code != http.StatusNoContent || !slices.Equal(dead.replayed, []uint64{2}) {
		t.Errorf("replay: %d %s, replayed %v", r.code, r.body, dead.replayed)
	}
	r = c.do("GET", "/v1/dead", "")
	if r.code != 200 || strings.Contains(r.body, `"seq":2`) {
		t.Errorf("after replay: %s", r.body)
	}

	// An empty list is an empty array, not null.
	dead.letters = nil
	if r = c.do("GET", "/v1/dead", ""); r.body != `{"dead":[]}`+"\n" {
		t.Errorf("empty list: %s", r.body)
	}
}

type fakeReady struct{ err error }

func (f fakeReady) Ready() error { return f.err }

func TestAPIHealthReadyMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "imapkit_test_accounts", Help: "Accounts, for the test."})
	reg.MustRegister(g)
	g.Set(3)

	for _, tc := range []struct {
		name  string
		ready Readiness
		code  int
		body  string
	}{
		{"no readiness", nil, 200, "ok\n"},
		{"ready", fakeReady{}, 200, "ok\n"},
		{"not ready", fakeReady{errors.New("NATS: no servers available")}, 503, `{"error":"not ready: NATS: no servers available"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := startAPI(t, APIOptions{Ready: tc.ready, Metrics: reg})
			if r := c.do("GET", "/readyz", ""); r.code != tc.code || r.body != tc.body {
				t.Errorf("readyz: %d %q, want %d %q", r.code, r.body, tc.code, tc.body)
			}
			if r := c.do("GET", "/healthz", ""); r.code != 200 || r.body != "ok\n" {
				t.Errorf("healthz: %d %q", r.code, r.body)
			}
			if r := c.do("GET", "/metrics", ""); r.code != 200 || !strings.Contains(r.body, "imapkit_test_accounts 3") {
				t.Errorf("metrics: %d %q", r.code, r.body)
			}
			if r := c.do("POST", "/healthz", ""); r.code != 405 {
				t.Errorf("POST /healthz: %d %q", r.code, r.body)
			}
		})
	}
}
