package imap

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"
)

// DialStream runs command with "sh -c" and speaks IMAP over its standard
// input and output, like imaplib's IMAP4_stream (for example
// "doveadm exec imap -u alice" or "ssh host imapd"). Unlike imaplib, every
// timeout, the IDLE duration and Burst work on a stream: the pipes support
// deadlines. The command counts as a secure transport. Closing the Client
// closes the pipes and waits for the command to exit.
func DialStream(ctx context.Context, command string, opts *Options) (*Client, error) {
	toChild, stdin, err := os.Pipe()
	if err != nil {
		return nil, &Error{Kind: ErrAbort, Text: "stream: cannot create pipe", Err: err}
	}
	stdout, fromChild, err := os.Pipe()
	if err != nil {
		toChild.Close()
		stdin.Close()
		return nil, &Error{Kind: ErrAbort, Text: "stream: cannot create pipe", Err: err}
	}
	cmd := exec.Command("sh", "-c", command)
	cmd.Stdin = toChild
	cmd.Stdout = fromChild
	cmd.Stderr = os.Stderr
	if opts != nil && opts.StreamStderr != nil {
		cmd.Stderr = opts.StreamStderr
	}
	if err := cmd.Start(); err != nil {
		for _, f := range []*os.File{toChild, stdin, stdout, fromChild} {
			f.Close()
		}
		return nil, &Error{Kind: ErrAbort, Text: "stream: cannot start " + command, Err: err}
	}
	// The child holds its own copies now.
	toChild.Close()
	fromChild.Close()
	conn := &pipeConn{r: stdout, w: stdin, cmd: cmd}
	c, err := newClient(ctx, conn, opts, "", true, conn.wait)
	if err != nil {
		conn.Close()
		conn.wait()
		return nil, err
	}
	return c, nil
}

// pipeConn adapts a child's pipes to net.Conn, deadlines included.
type pipeConn struct {
	r, w     *os.File
	cmd      *exec.Cmd
	once     sync.Once
	waitOnce sync.Once
	waitErr  error
}

func (p *pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }

func (p *pipeConn) Close() error {
	var err error
	p.once.Do(func() {
		err = errors.Join(p.w.Close(), p.r.Close())
	})
	return err
}

// wait reaps the child, killing it if it does not exit soon after its
// pipes closed.
func (p *pipeConn) wait() error {
	p.waitOnce.Do(func() {
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case p.waitErr = <-done:
		case <-time.After(5 * time.Second):
			p.cmd.Process.Kill()
			p.waitErr = <-done
		}
	})
	return nil
}

func (p *pipeConn) LocalAddr() net.Addr  { return pipeAddr{} }
func (p *pipeConn) RemoteAddr() net.Addr { return pipeAddr{} }

func (p *pipeConn) SetDeadline(t time.Time) error {
	return errors.Join(p.r.SetReadDeadline(t), p.w.SetWriteDeadline(t))
}
func (p *pipeConn) SetReadDeadline(t time.Time) error  { return p.r.SetReadDeadline(t) }
func (p *pipeConn) SetWriteDeadline(t time.Time) error { return p.w.SetWriteDeadline(t) }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "stream" }
