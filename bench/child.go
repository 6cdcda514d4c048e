package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/imapkit/imap/bench/replay"
)

// The replay server runs in a child process (this same binary started with
// -serve-replay DIR), so that its memory, goroutines and file descriptors
// never mix with the contenders' in the measurements. It prints
// "ADDR host:port", then obeys commands on stdin ("closeall": drop every
// connection, answered "ok") and exits when stdin closes.

type replayProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	out     *bufio.Reader
	addr    string
	stopped bool
}

func startReplay(dir string) (*replayProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-serve-replay", dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &replayProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	line, err := p.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		p.stop()
		return nil, fmt.Errorf("replay server did not start (%q, %v)", line, err)
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	return p, nil
}

// closeAll makes the server drop every connection.
func (p *replayProc) closeAll() error {
	if _, err := io.WriteString(p.stdin, "closeall\n"); err != nil {
		return err
	}
	line, err := p.out.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "ok" {
		return fmt.Errorf("replay server: %q", line)
	}
	return nil
}

// stop ends the child; it may be called more than once.
func (p *replayProc) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// serveReplay is the child's main.
func serveReplay(dir string) error {
	raiseFileLimit()
	set, err := replay.Load(dir)
	if err != nil {
		return err
	}
	srv, err := replay.Listen("127.0.0.1:0", replay.Config{Set: set})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("ADDR %s\n", srv.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "closeall":
			srv.CloseConns()
			fmt.Println("ok")
		default:
			fmt.Println("unknown command")
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
