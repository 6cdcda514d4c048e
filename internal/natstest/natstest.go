// Package natstest runs NATS servers with JetStream for tests, in process:
// the real server code (github.com/nats-io/nats-server/v2), on loopback
// ports chosen at start, storing under the test's temporary directory.
package natstest

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Start runs one server with JetStream and stops it when the test ends.
func Start(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		ServerName: "test",
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: server not ready within 10 s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Cluster runs n servers clustered with each other (JetStream with a
// meta-group of n, so that streams and buckets can have n replicas), and
// stops them when the test ends. Its servers' ClientURLs are the URLs to
// connect to. Each configure function may change the options of every
// server before it starts (Cluster.NoAdvertise, say).
//
// The route ports are picked by listening on port 0 and closing, and
// another process may take one before its server listens there: then the
// cluster is started again on other ports.
//
// With -short the test is skipped: a cluster's elections take seconds, and
// -short is the quick edit-test loop (CI runs without it).
func Cluster(t testing.TB, n int, configure ...func(*server.Options)) []*server.Server {
	t.Helper()
	skipShort(t)
	const attempts = 5
	for attempt := 1; ; attempt++ {
		servers, err := startCluster(t, n, configure)
		if err == nil {
			for _, s := range servers {
				t.Cleanup(func() {
					s.Shutdown()
					s.WaitForShutdown()
				})
			}
			return servers
		}
		for _, s := range servers {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
		if attempt == attempts {
			t.Fatalf("natstest: cluster of %d: %v", n, err)
		}
		t.Logf("natstest: cluster of %d, attempt %d: %v; starting again on other ports", n, attempt, err)
	}
}

// startCluster starts one cluster: on an error, the servers started are
// returned with it, for the caller to stop.
func startCluster(t testing.TB, n int, configure []func(*server.Options)) ([]*server.Server, error) {
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(p))
	}
	servers := make([]*server.Server, n)
	for i := range servers {
		opts := &server.Options{
			ServerName: fmt.Sprintf("node-%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "imapkit-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(joinOthers(routes, i)),
		}
		for _, c := range configure {
			c(opts)
		}
		s, err := server.NewServer(opts)
		if err != nil {
			return servers, fmt.Errorf("node %d: %w", i, err)
		}
		s.Start()
		servers[i] = s
	}
	for i, s := range servers {
		// The route listener comes up at once, or never: its port was
		// taken meanwhile (ReadyForConnections would wait its whole
		// timeout for it).
		deadline := time.Now().Add(10 * time.Second)
		for s.ClusterAddr() == nil {
			if time.Now().After(deadline) {
				return servers, fmt.Errorf("node %d: not listening on route port %d within 10 s (taken?)", i, ports[i])
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !s.ReadyForConnections(20 * time.Second) {
			return servers, fmt.Errorf("node %d not ready within 20 s", i)
		}
	}
	// Wait until JetStream has a meta leader, so that creating streams works.
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(servers[0].ClientURL())
		if err == nil {
			js, _ := jetstream.New(nc)
			_, err = js.AccountInfo(t.Context())
			nc.Close()
			if err == nil {
				return servers, nil
			}
		}
		if time.Now().After(deadline) {
			return servers, fmt.Errorf("JetStream of the cluster not ready within 30 s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Connect opens a connection to s (closed when the test ends) and its
// JetStream context.
func Connect(t testing.TB, urls string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return nc, js
}

func joinOthers(routes []string, skip int) string {
	s := ""
	for i, r := range routes {
		if i == skip {
			continue
		}
		if s != "" {
			s += ","
		}
		s += r
	}
	return s
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// skipShort skips a test that needs a NATS cluster under -short.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a NATS cluster: skipped with -short")
	}
}
