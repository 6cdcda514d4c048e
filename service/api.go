package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imapkit/imap/delivery"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxRequestBody bounds the body of an API request.
const MaxRequestBody = 1 << 20

// States of a watched account (AccountStatus.State).
const (
	StateConnecting = "connecting" // dialling, logging in
	StateSyncing    = "syncing"    // catching up with what changed
	StateIdle       = "idle"       // synced, waiting for news (IDLE or polling)
	StateWaiting    = "waiting"    // waiting to reconnect after a failure
	StateStopped    = "stopped"    // given up (LastError says why)
	StateUnowned    = "unowned"    // no live node watches it (yet)
)

// AccountStatus is how an account is being watched, as
// GET /v1/accounts/{name}/status replies it.
type AccountStatus struct {
	// Name is the account's name.
	Name string `json:"name"`
	// Owner is the ID of the node that watches the account, "" if none.
	Owner string `json:"owner"`
	// State is one of the State constants.
	State string `json:"state"`
	// Mailboxes are the watched mailboxes by name.
	Mailboxes map[string]MailboxStatus `json:"mailboxes"`
	// LastError is the account's last failure (to connect, to log in...),
	// "" if none since it last worked.
	LastError string `json:"last_error"`
}

// MailboxStatus is how far the watch of one mailbox got.
type MailboxStatus struct {
	// LastUID is the highest UID whose events were published.
	LastUID uint32 `json:"last_uid"`
	// UIDValidity is the mailbox's UIDVALIDITY that LastUID is of.
	UIDValidity uint32 `json:"uid_validity"`
	// LastError is the mailbox's last failure, "" if none since it last
	// worked.
	LastError string `json:"last_error"`
}

// A StatusSource tells how accounts are being watched, over all nodes.
type StatusSource interface {
	// Status returns the status of the named account, which exists in
	// the store; one that no node watches is StateUnowned.
	Status(ctx context.Context, name string) (AccountStatus, error)
}

// DeadLetter is an event that a sink gave up on, kept in the stream
// IMAPKIT_DEAD, as GET /v1/dead replies it.
type DeadLetter struct {
	// Seq is the dead letter's sequence in IMAPKIT_DEAD: what to replay.
	Seq uint64 `json:"seq"`
	// Event is the event that was not delivered.
	Event delivery.Event `json:"event"`
	// Sink is the sink that gave up (its String).
	Sink string `json:"sink"`
	// Error is the last try's error.
	Error string `json:"error"`
	// Attempts is how many tries were made.
	Attempts int `json:"attempts"`
	// Time is when the last try failed.
	Time time.Time `json:"time"`
}

// ErrNoDeadLetter is what DeadLetters.Replay wraps when no dead letter has
// the sequence.
var ErrNoDeadLetter = errors.New("no such dead letter")

// DeadLetters lists and replays the dead letters.
type DeadLetters interface {
	// List returns up to limit dead letters, oldest first.
	List(ctx context.Context, limit int) ([]DeadLetter, error)
	// Replay hands the dead letter seq to its sink again and removes it,
	// or returns an error wrapping ErrNoDeadLetter.
	Replay(ctx context.Context, seq uint64) error
}

// Readiness tells whether the node can do its work.
type Readiness interface {
	// Ready returns why the node is not ready (NATS unreachable, say),
	// or nil.
	Ready() error
}

// Limits of GET /v1/dead.
const (
	defaultDeadLimit = 100
	maxDeadLimit     = 1000
)

// APIOptions configure an API.
type APIOptions struct {
	// Accounts is the store that /v1/accounts manages. Required.
	Accounts *AccountStore
	// Status answers /v1/accounts/{name}/status; if nil, that route
	// replies 503.
	Status StatusSource
	// Dead serves /v1/dead; if nil, those routes reply 503.
	Dead DeadLetters
	// Ready answers /readyz; if nil, the node is always ready.
	Ready Readiness
	// Metrics, if set, is served on /metrics in the Prometheus format.
	Metrics prometheus.Gatherer
	// Token, if set, must come as "Authorization: Bearer TOKEN" with
	// every /v1/ request. /healthz, /readyz and /metrics stay open.
	Token string
	// Log, if set, receives the failures that are the server's (5xx):
	// the request's method and path and the error, never a body.
	Log *slog.Logger
}

// API is the HTTP interface of imapkit serve. Its routes:
//
//	GET    /v1/accounts                 {"accounts":[Account...]}, sorted by name
//	GET    /v1/accounts/{name}          Account
//	PUT    /v1/accounts/{name}          body Account: 201 created, 200 updated
//	DELETE /v1/accounts/{name}          204
//	GET    /v1/accounts/{name}/status   AccountStatus
//	GET    /v1/dead?limit=N             {"dead":[DeadLetter...]} (N 1–1000, default 100)
//	POST   /v1/dead/{seq}/replay        204
//	GET    /healthz                     200 "ok": the process serves
//	GET    /readyz                      200 "ok", or 503 and why not
//	GET    /metrics                     Prometheus metrics
//
// Accounts in replies are their Public form: no password field, sealed or
// not. A PUT replaces the account's settings; without a password it keeps
// the stored one, and a new account needs one. With "If-None-Match: *" it
// only creates, with "If-Match: *" it only updates (412 otherwise). The
// name in the body may be left out; if given, it must match the path.
//
// Every failure replies a JSON object {"error":"..."}: 400 for a request
// that cannot be taken as is (the message says why), 401 without the
// bearer token (with WWW-Authenticate: Bearer), 404 for an unknown
// account or dead letter, 413 for a body over MaxRequestBody, 503 when
// the node is not ready or a source is missing, 500 for failures of NATS.
type API struct {
	opts     APIOptions
	mux      *http.ServeMux
	tokenSum *[sha256.Size]byte // of opts.Token, nil if none
}

// NewAPI returns the API over opts.
func NewAPI(opts APIOptions) *API {
	a := &API{opts: opts, mux: http.NewServeMux()}
	if opts.Token != "" {
		sum := sha256.Sum256([]byte(opts.Token))
		a.tokenSum = &sum
	}
	m := a.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeText(w, "ok") })
	m.HandleFunc("GET /readyz", a.readyz)
	if opts.Metrics != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(opts.Metrics, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	}
	m.HandleFunc("GET /v1/accounts", a.listAccounts)
	m.HandleFunc("GET /v1/accounts/{name}", a.getAccount)
	m.HandleFunc("PUT /v1/accounts/{name}", a.putAccount)
	m.HandleFunc("DELETE /v1/accounts/{name}", a.deleteAccount)
	m.HandleFunc("GET /v1/accounts/{name}/status", a.accountStatus)
	m.HandleFunc("GET /v1/dead", a.listDead)
	m.HandleFunc("POST /v1/dead/{seq}/replay", a.replayDead)
	return a
}

// ServeHTTP serves the API's routes.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := a.mux.Handler(r)
	guarded := strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/v1" || strings.Contains(pattern, " /v1/")
	if guarded && !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="imapkit"`)
		writeError(w, http.StatusUnauthorized, "a bearer token is required (Authorization: Bearer TOKEN), and this one is missing or wrong")
		return
	}
	if pattern == "" {
		// No route: the mux's 404, 405 (with Allow) or redirect, with a
		// JSON body.
		a.mux.ServeHTTP(&jsonStatus{w: w, r: r}, r)
		return
	}
	a.mux.ServeHTTP(w, r) // sets the path values, which Handler does not
}

// authorized reports whether r carries the token, if one is required.
func (a *API) authorized(r *http.Request) bool {
	if a.tokenSum == nil {
		return true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Hashing first makes the comparison's time independent of the
	// length too.
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.opts.Ready != nil {
		if err := a.opts.Ready.Ready(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	writeText(w, "ok")
}

func (a *API) listAccounts(w http.ResponseWriter, r *http.Request) {
	list, err := a.opts.Accounts.List(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Accounts []Account `json:"accounts"`
	}{list})
}

func (a *API) getAccount(w http.ResponseWriter, r *http.Request) {
	acc, err := a.opts.Accounts.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, acc)
}

func (a *API) putAccount(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := ValidName(name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var acc Account
	if code, err := decodeBody(w, r, &acc); err != nil {
		writeError(w, code, err.Error())
		return
	}
	switch {
	case acc.PasswordSealed != "":
		writeError(w, http.StatusBadRequest, "password_sealed cannot be set: send the password in clear (over TLS) as password")
		return
	case acc.Name == "":
		acc.Name = name
	case acc.Name != name:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the body names account %q, the path %q", acc.Name, name))
		return
	}
	var (
		pub     Account
		created bool
		err     error
	)
	switch {
	case r.Header.Get("If-None-Match") == "*":
		pub, err = a.opts.Accounts.Create(r.Context(), acc)
		created = err == nil
	case r.Header.Get("If-Match") == "*":
		pub, err = a.opts.Accounts.Update(r.Context(), acc)
	default:
		pub, created, err = a.opts.Accounts.Put(r.Context(), acc)
	}
	switch {
	case errors.Is(err, ErrAccountExists), errors.Is(err, ErrNoAccount):
		writeError(w, http.StatusPreconditionFailed, err.Error())
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	if created {
		w.Header().Set("Location", "/v1/accounts/"+pub.Name)
		writeJSON(w, http.StatusCreated, pub)
		return
	}
	writeJSON(w, http.StatusOK, pub)
}

func (a *API) deleteAccount(w http.ResponseWriter, r *http.Request) {
	if err := a.opts.Accounts.Delete(r.Context(), r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) accountStatus(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := a.opts.Accounts.Get(r.Context(), name); err != nil {
		a.fail(w, r, err)
		return
	}
	if a.opts.Status == nil {
		writeError(w, http.StatusServiceUnavailable, "account status is not available on this node")
		return
	}
	st, err := a.opts.Status.Status(r.Context(), name)
	if err != nil {
		a.fail(w, r, fmt.Errorf("status of account %s: %w", name, err))
		return
	}
	st.Name = name
	if st.Mailboxes == nil {
		st.Mailboxes = map[string]MailboxStatus{}
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *API) listDead(w http.ResponseWriter, r *http.Request) {
	limit := defaultDeadLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDeadLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a number from 1 to %d", s, maxDeadLimit))
			return
		}
		limit = n
	}
	if a.opts.Dead == nil {
		writeError(w, http.StatusServiceUnavailable, "dead letters are not available on this node")
		return
	}
	list, err := a.opts.Dead.List(r.Context(), limit)
	if err != nil {
		a.fail(w, r, fmt.Errorf("dead letters: %w", err))
		return
	}
	if list == nil {
		list = []DeadLetter{}
	}
	writeJSON(w, http.StatusOK, struct {
		Dead []DeadLetter `json:"dead"`
	}{list})
}

func (a *API) replayDead(w http.ResponseWriter, r *http.Request) {
	s := r.PathValue("seq")
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("dead letter %q: want its sequence number", s))
		return
	}
	if a.opts.Dead == nil {
		writeError(w, http.StatusServiceUnavailable, "dead letters are not available on this node")
		return
	}
	if err := a.opts.Dead.Replay(r.Context(), seq); err != nil {
		a.fail(w, r, fmt.Errorf("replay of dead letter %d: %w", seq, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// fail replies err with the status it calls for.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalidAccount):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNoAccount), errors.Is(err, ErrNoDeadLetter):
		code = http.StatusNotFound
	case errors.Is(err, ErrAccountExists):
		code = http.StatusConflict
	case r.Context().Err() != nil:
		code = http.StatusServiceUnavailable // the client left or the server stops
	}
	if code >= 500 && a.opts.Log != nil {
		a.opts.Log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	writeError(w, code, err.Error())
}

// decodeBody decodes r's body, one JSON object of at most MaxRequestBody
// bytes with no unknown field, into v. Its errors never quote the body.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) (int, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err = dec.Token(); err == io.EOF {
			return 0, nil
		}
		if err == nil {
			return http.StatusBadRequest, errors.New("request body: more than one JSON value")
		}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", MaxRequestBody)
	case err == io.EOF:
		return http.StatusBadRequest, errors.New("request body: empty, want a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// Names a field of the request, never a value.
		return http.StatusBadRequest, fmt.Errorf("request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return http.StatusBadRequest, fmt.Errorf("request body: %s", jsonErrorKind(err))
}

// writeJSON replies v as JSON with the status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "encoding the reply: " + err.Error()})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// writeError replies {"error": msg} with the status code.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// writeText replies 200 and s as plain text.
func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, s+"\n")
}

// jsonStatus passes on the status and headers of the mux's own replies
// (404, 405 with Allow, redirects) and replaces their text with a JSON
// error.
type jsonStatus struct {
	w     http.ResponseWriter
	r     *http.Request
	wrote bool
}

func (j *jsonStatus) Header() http.Header { return j.w.Header() }

func (j *jsonStatus) WriteHeader(code int) {
	if j.wrote {
		return
	}
	j.wrote = true
	msg := fmt.Sprintf("%s %s: %s", j.r.Method, j.r.URL.Path, strings.ToLower(http.StatusText(code)))
	if allow := j.w.Header().Get("Allow"); allow != "" {
		msg += " (allowed: " + allow + ")"
	}
	writeError(j.w, code, msg)
}

func (j *jsonStatus) Write(p []byte) (int, error) {
	if !j.wrote {
		j.WriteHeader(http.StatusOK)
	}
	return len(p), nil
}
