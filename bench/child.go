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
// connection, answered "ok"; "pushall": push an EXISTS to every idling
// connection, answered "ok N") and exits when stdin closes.

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
	_, err := p.command("closeall")
	return err
}

// pushAll makes the server push one "* N EXISTS" to every idling
// connection and returns how many it pushed to.
func (p *replayProc) pushAll() (int, error) {
	reply, err := p.command("pushall")
	if err != nil {
		return 0, err
	}
	var n int
	if _, err := fmt.Sscanf(reply, "ok %d", &n); err != nil {
		return 0, fmt.Errorf("replay server: %q", reply)
	}
	return n, nil
}

// command sends one command to the child and returns its "ok..." reply.
func (p *replayProc) command(cmd string) (string, error) {
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return "", err
	}
	line, err := p.out.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "ok") {
		return "", fmt.Errorf("replay server: %q", line)
	}
	return line, nil
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
		case "pushall":
			fmt.Println("ok", srv.PushAll("* 4243 EXISTS"))
		default:
			fmt.Println("unknown command")
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
