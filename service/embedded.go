package service

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartEmbedded starts the NATS server of a single-machine imapkit serve:
// JetStream storing under dataDir/nats, clients on listen (HOST:PORT, so
// that local consumers can read IMAPKIT_EVENTS; default 127.0.0.1:4222;
// port 0 picks a free one).
// Stop it with Shutdown and WaitForShutdown.
func StartEmbedded(dataDir, listen string) (*server.Server, error) {
	if listen == "" {
		listen = "127.0.0.1:4222"
	}
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: want HOST:PORT: %w", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT // NATS reads 0 as its default, 4222
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "imapkit",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(dataDir, "nats"),
		NoSigs:     true, // imapkit serve handles SIGTERM itself
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS on %s: not ready within 30 s (is the port in use?)", listen)
	}
	return s, nil
}
