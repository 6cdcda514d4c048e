//go:build !nokit

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/imapkit/imap/service"
	"github.com/imapkit/imap/watch"
)

// The child processes of the serve section (see serve.go): a NATS server,
// and imapkit serve's node.

// serveNATSChild is the main of -serve-nats-child: imapkit serve's embedded
// NATS server (service.StartEmbedded), storing under dir, on a free
// loopback port. It prints "URL nats://…" once the server takes
// connections, and shuts it down when stdin closes.
func serveNATSChild(dir string) error {
	raiseFileLimit()
	ns, err := service.StartEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		fmt.Printf("ERROR %s\n", oneLine(err))
		return nil
	}
	fmt.Printf("URL %s\n", ns.ClientURL())
	io.Copy(io.Discard, os.Stdin)
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

// writeProfiles writes a heap profile (after a GC) to prefix.heap.pprof
// and the goroutines grouped by stack to prefix.goroutines.
func writeProfiles(prefix string) error {
	runtime.GC()
	for _, p := range []struct {
		name, file string
		debug      int
	}{{"heap", prefix + ".heap.pprof", 0}, {"goroutine", prefix + ".goroutines", 1}} {
		f, err := os.Create(p.file)
		if err != nil {
			return err
		}
		err = pprof.Lookup(p.name).WriteTo(f, p.debug)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// serveNodeOptions are the node options of imapkit serve's defaults
// (cmd/imapkit/serve.go: --start-concurrency 32, --per-server 8,
// --timeout 30s, default watch options).
func serveNodeOptions(id string, log *slog.Logger, m *service.Metrics) service.NodeOptions {
	return service.NodeOptions{
		NodeID: id, StartConcurrency: 32, PerServerConcurrency: 8, Timeout: 30 * time.Second,
		Watch: watch.Options{}, Logger: log.With("node", id), Metrics: m,
	}
}

// serveNodeChild is the main of -serve-node-child: one node of imapkit
// serve, set up as runServe in cmd/imapkit does it (its NATS connection,
// EnsureInfra, NewMetrics, NewNode with serve's default options, Run), but
// without the HTTP API, which keeps nothing per account. It logs at info
// level, as serve does, to logFile. It prints "READY" once Run is running
// and then answers "MEM" on stdin with "MEM <heap in use> <stack in use>
// <goroutines>" after two GCs, and "PROFILE PREFIX" with "ok" once it has
// written profiles there (writeProfiles). When stdin closes it stops the node (which
// hands its leases back) and exits; the harness usually kills it instead.
func serveNodeChild(id, natsURL, keyFile, logFile string, ttl time.Duration, profileRate int) error {
	if profileRate > 0 {
		runtime.MemProfileRate = profileRate // before anything is allocated
	}
	raiseFileLimit()
	fail := func(err error) error {
		fmt.Printf("ERROR %s\n", oneLine(err))
		return nil
	}
	out := io.Discard
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		out = f
	}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sealer, err := service.LoadKeyFile(keyFile)
	if err != nil {
		return fail(err)
	}
	nc, err := nats.Connect(natsURL, nats.Name("imapkit serve "+id), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	infra, err := service.EnsureInfra(ctx, js, service.InfraOptions{LeaseTTL: ttl})
	if err != nil {
		return fail(err)
	}
	m := service.NewMetrics()
	node := service.NewNode(nc, infra, sealer, ttl, serveNodeOptions(id, log, m))
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx) }()
	fmt.Println("READY")

	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "MEM":
			h, s := memStat()
			fmt.Printf("MEM %d %d %d\n", h, s, runtime.NumGoroutine())
		case "PROFILE":
			// PROFILE PREFIX: a heap profile in PREFIX.heap.pprof and the
			// goroutines grouped by stack in PREFIX.goroutines.
			if err := writeProfiles(arg); err != nil {
				fmt.Printf("ERROR %s\n", oneLine(err))
			} else {
				fmt.Println("ok")
			}
		default:
			fmt.Printf("ERROR unknown command %q\n", sc.Text())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			log.Error("node stopped", "error", err)
		}
	case <-time.After(30 * time.Second):
		log.Error("node did not stop within 30 s")
	}
	return nil
}
