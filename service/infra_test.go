package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap/internal/natstest"
)

func TestEnsureInfraCreates(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.ClientURL())
	in, err := EnsureInfra(t.Context(), js, InfraOptions{})
	if err != nil {
		t.Fatal(err)
	}

	streams := []struct {
		name       string
		subject    string
		maxAge     time.Duration
		duplicates time.Duration // 0: not checked
	}{
		{StreamEvents, "imapkit.events.>", DefaultMaxEventsAge, DefaultDuplicateWindow},
		{StreamDead, "imapkit.dead.>", 0, 0},
	}
	for _, want := range streams {
		st, err := js.Stream(t.Context(), want.name)
		if err != nil {
			t.Fatalf("stream %s: %v", want.name, err)
		}
		c := st.CachedInfo().Config
		if len(c.Subjects) != 1 || c.Subjects[0] != want.subject || c.Storage != jetstream.FileStorage ||
			c.MaxAge != want.maxAge || c.Replicas != 1 || (want.duplicates != 0 && c.Duplicates != want.duplicates) {
			t.Errorf("stream %s: subjects %v, storage %v, max age %v, replicas %d, duplicates %v; want [%s], file, %v, 1, %v",
				want.name, c.Subjects, c.Storage, c.MaxAge, c.Replicas, c.Duplicates, want.subject, want.maxAge, want.duplicates)
		}
	}

	buckets := []struct {
		kv      jetstream.KeyValue
		name    string
		history int64
		ttl     time.Duration
	}{
		{in.Accounts, BucketAccounts, 1, 0},
		{in.State, BucketState, 1, 0},
		{in.Leases, BucketLeases, 1, 0},
		{in.Nodes, BucketNodes, 1, DefaultLeaseTTL},
		{in.Status, BucketStatus, 1, 0},
	}
	for _, want := range buckets {
		if want.kv == nil {
			t.Errorf("bucket %s: nil in Infra", want.name)
			continue
		}
		if want.kv.Bucket() != want.name {
			t.Errorf("Infra holds bucket %s where %s belongs", want.kv.Bucket(), want.name)
		}
		st, err := want.kv.Status(t.Context())
		if err != nil {
			t.Fatalf("bucket %s: %v", want.name, err)
		}
		if st.History() != want.history || st.TTL() != want.ttl {
			t.Errorf("bucket %s: history %d, TTL %v; want %d, %v", want.name, st.History(), st.TTL(), want.history, want.ttl)
		}
		if _, err := want.kv.Put(t.Context(), "k", []byte("v")); err != nil {
			t.Errorf("bucket %s: put: %v", want.name, err)
		}
	}
	if in.JS != js {
		t.Error("Infra.JS is not the JetStream context given")
	}
}

// TestEnsureInfraTwiceIsNoOp checks that a second call (every node's start
// after the first) changes nothing: no stream is updated or deleted.
func TestEnsureInfraTwiceIsNoOp(t *testing.T) {
	s := natstest.Start(t)
	nc, _ := natstest.Connect(t, s.ClientURL())
	var mu sync.Mutex
	var sent []string
	js, err := jetstream.New(nc, jetstream.WithClientTrace(&jetstream.ClientTrace{
		RequestSent: func(subj string, _ []byte) {
			mu.Lock()
			sent = append(sent, subj)
			mu.Unlock()
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureInfra(t.Context(), js, InfraOptions{}); err != nil {
		t.Fatal(err)
	}
	before := streamConfigs(t, js)
	mu.Lock()
	sent = nil
	mu.Unlock()
	if _, err := EnsureInfra(t.Context(), js, InfraOptions{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	second := sent
	mu.Unlock()
	if len(second) == 0 {
		t.Fatal("no request traced")
	}
	for _, subj := range second {
		if strings.Contains(subj, ".UPDATE.") || strings.Contains(subj, ".DELETE.") || strings.Contains(subj, ".PURGE.") {
			t.Errorf("second EnsureInfra sent %s", subj)
		}
	}
	after := streamConfigs(t, js)
	for name, c := range before {
		if !configEqual(c, after[name]) || c.Description != after[name].Description {
			t.Errorf("stream %s changed: %+v → %+v", name, c, after[name])
		}
	}
}

func streamConfigs(t *testing.T, js jetstream.JetStream) map[string]jetstream.StreamConfig {
	t.Helper()
	m := map[string]jetstream.StreamConfig{}
	for _, name := range []string{StreamEvents, StreamDead, "KV_" + BucketAccounts, "KV_" + BucketState, "KV_" + BucketLeases, "KV_" + BucketNodes, "KV_" + BucketStatus} {
		st, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		m[name] = st.CachedInfo().Config
	}
	return m
}

// TestEnsureInfraExisting runs EnsureInfra over infrastructure made with
// other options: what can change in place changes, what cannot is an error
// naming the stream or bucket and both values.
func TestEnsureInfraExisting(t *testing.T) {
	tests := []struct {
		name    string
		first   InfraOptions
		second  InfraOptions
		wantErr []string // substrings; nil: success
		check   func(t *testing.T, js jetstream.JetStream)
	}{
		{
			name:   "duplicate window and retention are updated",
			first:  InfraOptions{DuplicateWindow: time.Minute, MaxEventsAge: time.Hour},
			second: InfraOptions{},
			check: func(t *testing.T, js jetstream.JetStream) {
				c := streamConfig(t, js, StreamEvents)
				if c.Duplicates != DefaultDuplicateWindow || c.MaxAge != DefaultMaxEventsAge {
					t.Errorf("IMAPKIT_EVENTS: duplicates %v, max age %v; want %v, %v", c.Duplicates, c.MaxAge, DefaultDuplicateWindow, DefaultMaxEventsAge)
				}
			},
		},
		{
			name:    "another lease TTL is refused",
			first:   InfraOptions{LeaseTTL: 15 * time.Second},
			second:  InfraOptions{LeaseTTL: 30 * time.Second},
			wantErr: []string{"bucket IMAPKIT_NODES", "15s", "30s"},
			check: func(t *testing.T, js jetstream.JetStream) {
				if c := streamConfig(t, js, "KV_"+BucketNodes); c.MaxAge != 15*time.Second {
					t.Errorf("IMAPKIT_NODES: TTL %v after a refused change; want 15s", c.MaxAge)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := natstest.Start(t)
			_, js := natstest.Connect(t, s.ClientURL())
			if _, err := EnsureInfra(t.Context(), js, tt.first); err != nil {
				t.Fatal(err)
			}
			_, err := EnsureInfra(t.Context(), js, tt.second)
			checkErr(t, err, tt.wantErr)
			tt.check(t, js)
		})
	}
}

func TestEnsureInfraRefusesMemoryStream(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.ClientURL())
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: StreamDead, Subjects: []string{"imapkit.dead.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	_, err := EnsureInfra(t.Context(), js, InfraOptions{})
	checkErr(t, err, []string{"stream IMAPKIT_DEAD", "Memory", "File"})
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st.CachedInfo().Config
}

func checkErr(t *testing.T, err error, want []string) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("error %v; want none", err)
	case want != nil && err == nil:
		t.Fatalf("no error; want one saying %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestInfraOptionsInvalid(t *testing.T) {
	tests := []struct {
		o    InfraOptions
		want string
	}{
		{InfraOptions{Replicas: -1}, "replicas -1"},
		{InfraOptions{Replicas: 6}, "replicas 6"},
		{InfraOptions{DuplicateWindow: -time.Second}, "duplicate window -1s"},
		{InfraOptions{LeaseTTL: time.Millisecond}, "lease TTL 1ms"},
		{InfraOptions{MaxEventsAge: -time.Second}, "max events age -1s"},
		{InfraOptions{DuplicateWindow: time.Hour, MaxEventsAge: time.Minute}, "duplicate window 1h0m0s is longer than the max events age 1m0s"},
	}
	for _, tt := range tests {
		// No server: options are checked before any request.
		_, err := EnsureInfra(t.Context(), nil, tt.o)
		checkErr(t, err, []string{tt.want})
	}
}

// TestEnsureInfraPermanentErrorIsQuick asks a single server for 3 replicas:
// no retry can fix that, so EnsureInfra says so at once instead of retrying
// until ctx ends.
func TestEnsureInfraPermanentErrorIsQuick(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := EnsureInfra(ctx, js, InfraOptions{Replicas: 3})
	checkErr(t, err, []string{"stream IMAPKIT_EVENTS", "replicas"})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("EnsureInfra took %v to report a permanent error", d)
	}
}

// TestEnsureInfraGivesUp connects to a server without JetStream: nothing
// answers, and EnsureInfra retries until ctx ends, then says what it was
// doing.
func TestEnsureInfraGivesUp(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	_, js := natstest.Connect(t, s.ClientURL())
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	_, err = EnsureInfra(ctx, js, InfraOptions{})
	checkErr(t, err, []string{"stream IMAPKIT_EVENTS", "gave up after"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not context.DeadlineExceeded", err)
	}
}

// TestEnsureInfraWaitsForServer starts EnsureInfra before the server it
// connects to: the requests that get no answer are retried, and EnsureInfra
// succeeds once the server is up.
func TestEnsureInfraWaitsForServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := EnsureInfra(ctx, js, InfraOptions{})
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("EnsureInfra returned %v before the server started", err)
	default:
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	start := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("EnsureInfra done %v after the server started", time.Since(start))
}

// TestEnsureInfraClusterConcurrent starts three nodes at once on a fresh
// 3-node cluster, each connected to another server: all must succeed.
func TestEnsureInfraClusterConcurrent(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	const bound = 25 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	start := time.Now()
	for i, s := range servers {
		_, js := natstest.Connect(t, s.ClientURL())
		wg.Go(func() {
			_, errs[i] = EnsureInfra(ctx, js, InfraOptions{Replicas: 3})
		})
	}
	wg.Wait()
	t.Logf("3 concurrent EnsureInfra on a fresh cluster: %v", time.Since(start))
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	_, js := natstest.Connect(t, servers[0].ClientURL())
	for name, c := range streamConfigs(t, js) {
		if c.Replicas != 3 {
			t.Errorf("stream %s: %d replicas; want 3", name, c.Replicas)
		}
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{nats.ErrTimeout, true},
		{nats.ErrNoResponders, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008}, true},
		{&jetstream.APIError{Code: 500, ErrorCode: 10074}, false}, // replicas > 1 not supported in non-clustered mode
		{&jetstream.APIError{Code: 400, ErrorCode: 10003}, false},
		{jetstream.ErrStreamNotFound, true},
		{nats.ErrConnectionClosed, false},
		{context.Canceled, false},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%v) = %v; want %v", tt.err, got, tt.want)
		}
	}
}
