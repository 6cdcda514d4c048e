package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap/delivery"
	"github.com/imapkit/imap/service"
	"github.com/imapkit/imap/watch"
)

var serveUsage = cmdUsage{
	command:  "serve",
	synopsis: "--secret-key-file FILE [flags]",
	about: `Watch many accounts and publish their events to NATS JetStream: on an embedded
NATS server (the default), or on a NATS cluster shared by several nodes, which
divide the accounts between them and take over those of a node that dies.
Accounts are managed through the API on --http (see imapkit accounts).`,
	examples: []string{
		"imapkit keygen --out /etc/imapkit/secret.key",
		"imapkit serve --data-dir /var/lib/imapkit --secret-key-file /etc/imapkit/secret.key \\",
		"    --api-token-file /etc/imapkit/api.token --http 127.0.0.1:8025",
		"imapkit serve --nats nats://n1:4222,nats://n2:4222,nats://n3:4222 --replicas 3 \\",
		"    --secret-key-file /etc/imapkit/secret.key --api-token-file /etc/imapkit/api.token --http :8025",
		"imapkit serve --secret-key-file secret.key --webhook https://hooks.example.org/mail",
	},
}

// runServe runs imapkit serve: the watcher service for many accounts, on
// an embedded NATS server (the default) or on a NATS cluster shared with
// other nodes.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "imapkit-data", "where the embedded NATS server stores everything (`DIR`)")
	natsURLs := fs.String("nats", "", "join the NATS cluster at `URL[,URL…]` instead of starting an embedded server")
	natsListen := fs.String("nats-listen", "127.0.0.1:4222", "the embedded NATS server's client `ADDR` (local consumers read IMAPKIT_EVENTS there)")
	nodeID := fs.String("node-id", "", "this node's `ID` in leases and status (default: host name and a random suffix)")
	leaseTTL := fs.Duration("lease-ttl", 15*time.Second, "how long an account's lease lasts without renewal: a dead node's accounts move after it")
	replicas := fs.Int("replicas", 1, "replicas of every stream and bucket (3 on a 3-node NATS cluster)")
	dupWindow := fs.Duration("duplicate-window", 10*time.Minute, "how long IMAPKIT_EVENTS remembers event IDs to drop a repeated publish")
	httpAddr := fs.String("http", "127.0.0.1:8025", "serve the API, /healthz, /readyz and /metrics on `ADDR` (empty: none)")
	tokenFile := fs.String("api-token-file", "", "require `FILE`'s content as a bearer token on the API")
	keyFile := fs.String("secret-key-file", "", "the AES-256 key sealing the accounts' passwords (`FILE`, from imapkit keygen); the same on every node")
	startConc := fs.Int("start-concurrency", 32, "connections opened at once")
	perServer := fs.Int("per-server", 8, "connections opened at once to one server")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on every wait for an IMAP server")
	debug := fs.Bool("debug", false, "log at debug level")
	var sf sinkFlags
	fs.Var(&sf.webhooks, "webhook", "deliver each event to `URL` from a durable consumer (repeatable)")
	fs.StringVar(&sf.webhookSecret, "webhook-secret-file", "", "sign webhook bodies with the content of `FILE`")
	fs.DurationVar(&sf.webhookTO, "webhook-timeout", 30*time.Second, "bound on each webhook call")
	fs.IntVar(&sf.webhookTries, "webhook-retries", 5, "retries of a failed webhook call before the event goes to IMAPKIT_DEAD")
	fs.StringVar(&sf.exec, "exec", "", "run `CMD` for each event from a durable consumer; exit 0 acknowledges")
	fs.DurationVar(&sf.execTimeout, "exec-timeout", 60*time.Second, "kill a hook running longer than this, and retry")
	fs.IntVar(&sf.execRetries, "exec-retries", 5, "retries of a failed hook before the event goes to IMAPKIT_DEAD")
	fs.DurationVar(&sf.backoff, "retry-backoff", time.Second, "delay before the first retry of a hook or webhook (doubling, up to 5m)")
	fs.StringVar(&sf.events, "events", "", eventsHelp)
	if err := serveUsage.parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	set := setFlags(fs)
	if embedded := given(set, "data-dir", "nats-listen"); *natsURLs != "" && len(embedded) > 0 {
		return serveUsage.fail(stderr, "%s with --nats: they configure the embedded NATS server, which --nats replaces", strings.Join(embedded, ", "))
	}
	switch {
	case *keyFile == "":
		return serveUsage.fail(stderr, "--secret-key-file is required (write one with: imapkit keygen --out FILE)")
	case *tokenFile != "" && *httpAddr == "":
		return serveUsage.fail(stderr, "--api-token-file with an empty --http: there is no API to protect")
	case *leaseTTL < 100*time.Millisecond:
		// JetStream's least MaxAge, which the lease bucket uses.
		return serveUsage.fail(stderr, "--lease-ttl %v: want 100ms or more", *leaseTTL)
	case *replicas < 1 || *replicas > 5:
		return serveUsage.fail(stderr, "--replicas %d: want 1 to 5 (JetStream's limit)", *replicas)
	case *dupWindow <= 0:
		return serveUsage.fail(stderr, "--duplicate-window %v: want a positive duration", *dupWindow)
	case *startConc < 1:
		return serveUsage.fail(stderr, "--start-concurrency %d: want 1 or more", *startConc)
	case *perServer < 1:
		return serveUsage.fail(stderr, "--per-server %d: want 1 or more", *perServer)
	case *timeout <= 0:
		return serveUsage.fail(stderr, "--timeout %v: want a positive duration", *timeout)
	}
	if err := sf.check(set); err != nil {
		return serveUsage.fail(stderr, "%v", err)
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sealer, err := service.LoadKeyFile(*keyFile)
	if err != nil {
		return err
	}
	var token string
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--api-token-file: %w", err)
		}
		if token = strings.TrimRight(string(b), "\r\n"); token == "" {
			return fmt.Errorf("--api-token-file %s is empty", *tokenFile)
		}
	}
	if *nodeID == "" {
		*nodeID = defaultNodeID()
	}
	if err := service.ValidName(*nodeID); err != nil {
		return fmt.Errorf("--node-id: %w", err)
	}

	urls := *natsURLs
	if urls == "" {
		ns, err := service.StartEmbedded(*dataDir, *natsListen)
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		urls = ns.ClientURL()
		log.Info("embedded NATS started", "url", urls, "data_dir", *dataDir)
	}
	nc, err := nats.Connect(urls, nats.Name("imapkit serve "+*nodeID), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", urls, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	infra, err := service.EnsureInfra(ctx, js, service.InfraOptions{Replicas: *replicas, DuplicateWindow: *dupWindow, LeaseTTL: *leaseTTL})
	if err != nil {
		return err
	}
	metrics := service.NewMetrics()
	node := service.NewNode(nc, infra, sealer, *leaseTTL, service.NodeOptions{
		NodeID: *nodeID, StartConcurrency: *startConc, PerServerConcurrency: *perServer, Timeout: *timeout,
		Watch: watch.Options{}, Logger: log.With("node", *nodeID), Metrics: metrics,
	})

	var wg sync.WaitGroup
	defer wg.Wait()
	consumerCtx, stopConsumers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsumers()
	consumers, err := serveConsumers(js, &sf, stderr, log, metrics)
	if err != nil {
		return err // the flags passed check: a secret file that cannot be read
	}
	for _, c := range consumers {
		wg.Go(func() { c.Run(consumerCtx) })
	}

	if *httpAddr != "" {
		api := service.NewAPI(service.APIOptions{
			Accounts: service.NewAccountStore(infra.Accounts, sealer),
			Status:   node, Ready: node, Dead: service.NewDeadLetters(js), Metrics: metrics.Registry, Token: token, Log: log,
		})
		ln, err := net.Listen("tcp", *httpAddr)
		if err != nil {
			return fmt.Errorf("--http %s: %w", *httpAddr, err)
		}
		srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("API server", "error", err)
			}
		})
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		log.Info("API listening", "addr", ln.Addr().String())
	}
	fmt.Fprintf(stdout, "imapkit serve: node %s ready (NATS %s)\n", *nodeID, urls)

	// On SIGTERM the node hands its leases back; hooks and webhook calls
	// under way are cancelled and their events handed back to JetStream,
	// which redelivers them (to another node, or after a restart).
	return node.Run(ctx)
}

// serveConsumers makes the durable consumers of serve's hook and webhooks.
func serveConsumers(js jetstream.JetStream, sf *sinkFlags, stderr io.Writer, log *slog.Logger, m *service.Metrics) ([]*service.SinkConsumer, error) {
	routes, err := sf.routes(io.Discard, stderr)
	if err != nil {
		return nil, err
	}
	var out []*service.SinkConsumer
	webhooks := 0
	for _, r := range routes[1:] { // routes[0] is stdout: serve has none
		name := "exec"
		if _, ok := r.Sink.(*delivery.WebhookSink); ok {
			webhooks++
			name = fmt.Sprintf("webhook-%d", webhooks)
		}
		out = append(out, service.NewSinkConsumer(js, service.SinkConsumerOptions{Name: name, Sink: r.Sink, Kinds: r.Kinds, Retry: r.Retry, Logger: log, Metrics: m}))
	}
	return out, nil
}

// defaultNodeID is the host name and a random suffix.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, host)
	var b [3]byte
	rand.Read(b[:])
	id := host + "-" + hex.EncodeToString(b[:])
	if len(id) > 64 {
		id = id[len(id)-64:]
	}
	return id
}
