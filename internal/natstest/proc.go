package natstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// serverBinary builds the nats-server command of the module's
// nats-server dependency once per test process: the same server code as
// Start and Cluster run in process, but in processes of its own, without
// the race detector of the test binary, and killable.
var serverBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "natstest-bin-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "nats-server")
	out, err := exec.Command("go", "build", "-o", path, "github.com/nats-io/nats-server/v2").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build nats-server: %v\n%s", err, out)
	}
	return path, nil
})

// Proc is a NATS server with JetStream running as a child process.
type Proc struct {
	// Name is the server's name; ClientAddr its client address
	// ("127.0.0.1:PORT") and ClientURL the URL of it; StoreDir where
	// JetStream stores everything; LogFile the server's log.
	Name, ClientAddr, ClientURL, StoreDir, LogFile string

	bin, config string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// ProcCluster runs n nats-server processes clustered with each other
// (JetStream with a meta-group of n, so that streams and buckets can have n
// replicas), each advertising only its own client URL (no_advertise: a
// client knows the servers it was given), and kills them when the test
// ends. It returns once JetStream answers on every server.
//
// Ports are picked by listening on port 0 and closing: should another
// process take one first, the cluster is started again on other ports.
//
// With -short the test is skipped, as with Cluster.
func ProcCluster(t testing.TB, n int) []*Proc {
	t.Helper()
	skipShort(t)
	bin, err := serverBinary()
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	const attempts = 5
	for attempt := 1; ; attempt++ {
		procs, err := startProcCluster(t, bin, n)
		if err == nil {
			for _, p := range procs {
				t.Cleanup(p.Kill)
			}
			return procs
		}
		for _, p := range procs {
			if p != nil {
				p.Kill()
			}
		}
		if attempt == attempts {
			t.Fatalf("natstest: cluster of %d processes: %v", n, err)
		}
		t.Logf("natstest: cluster of %d processes, attempt %d: %v; starting again on other ports", n, attempt, err)
	}
}

func startProcCluster(t testing.TB, bin string, n int) ([]*Proc, error) {
	clientPorts, routePorts := make([]int, n), make([]int, n)
	for i := range n {
		clientPorts[i], routePorts[i] = freePort(t), freePort(t)
	}
	procs := make([]*Proc, n)
	for i := range n {
		dir := t.TempDir()
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, strconv.Quote("nats-route://127.0.0.1:"+strconv.Itoa(p)))
			}
		}
		p := &Proc{
			Name:       fmt.Sprintf("node-%d", i),
			ClientAddr: "127.0.0.1:" + strconv.Itoa(clientPorts[i]),
			StoreDir:   filepath.Join(dir, "store"),
			LogFile:    filepath.Join(dir, "server.log"),
			bin:        bin,
			config:     filepath.Join(dir, "server.conf"),
		}
		p.ClientURL = "nats://" + p.ClientAddr
		conf := fmt.Sprintf(`server_name: %q
listen: %q
log_file: %q
jetstream {
  store_dir: %q
}
cluster {
  name: "imapkit-test"
  listen: "127.0.0.1:%d"
  routes: [%s]
  no_advertise: true
}
`, p.Name, p.ClientAddr, p.LogFile, p.StoreDir, routePorts[i], strings.Join(routes, ", "))
		if err := os.WriteFile(p.config, []byte(conf), 0o600); err != nil {
			return procs, err
		}
		if err := p.Start(); err != nil {
			return procs, err
		}
		procs[i] = p
	}
	for _, p := range procs {
		if err := p.WaitReady(60 * time.Second); err != nil {
			return procs, err
		}
	}
	return procs, nil
}

// Start starts the server (again, after Kill or Stop, with the same ports
// and store). It returns once the process runs; see WaitReady.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("natstest: %s is running", p.Name)
		}
	}
	cmd := exec.Command(p.bin, "-c", p.config)
	// Killed with the test process, should it die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("natstest: starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		cmd.Wait()
		close(done)
	}()
	return nil
}

// WaitReady waits until JetStream answers on the server, which needs a
// meta leader, hence a quorum of the cluster.
func (p *Proc) WaitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if !p.Running() {
			return fmt.Errorf("natstest: %s exited:\n%s", p.Name, p.LogTail(20))
		}
		var nc *nats.Conn
		nc, err = nats.Connect(p.ClientURL, nats.Timeout(time.Second), nats.NoReconnect())
		if err == nil {
			var js jetstream.JetStream
			if js, err = jetstream.New(nc); err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err = js.AccountInfo(ctx)
				cancel()
			}
			nc.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("natstest: JetStream of %s not ready within %v: %v\n%s", p.Name, d, err, p.LogTail(20))
}

// Running reports whether the process runs.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill kills the server (SIGKILL) and waits for it to exit.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL) }

// Stop stops the server as an operator would (SIGTERM) and waits for it
// to exit, at most 30 s, then kills it.
func (p *Proc) Stop() {
	if !p.signal(syscall.SIGTERM) {
		p.Kill()
	}
}

// signal sends sig and waits up to 30 s for the process to exit; it
// reports whether it did.
func (p *Proc) signal(sig syscall.Signal) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return false
	}
	select {
	case <-done:
		return true
	case <-time.After(30 * time.Second):
		return false
	}
}

// LogTail returns the last lines of the server's log.
func (p *Proc) LogTail(lines int) string {
	b, _ := os.ReadFile(p.LogFile)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
