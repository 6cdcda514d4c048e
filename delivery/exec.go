package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// execWaitDelay bounds how long a hook's output is read after the hook
// exited or was killed: a background process the hook started may hold
// the pipes open for ever.
const execWaitDelay = 2 * time.Second

// maxHookLine is the longest line of a hook's output passed on as one
// line; a longer one is cut into several.
const maxHookLine = 4096

// ExecSink is a Sink that runs a command, the hook, with sh -c for each
// batch of events. The hook reads every event of the batch as a JSON line
// on its stdin, and finds the last one in environment variables:
// IMAPKIT_EVENT (the kind), IMAPKIT_EVENT_ID, IMAPKIT_ACCOUNT,
// IMAPKIT_MAILBOX, IMAPKIT_OLD_MAILBOX (the name before, for
// mailbox_renamed; else empty), IMAPKIT_UIDVALIDITY, IMAPKIT_UID,
// IMAPKIT_FLAGS (space-separated), IMAPKIT_FROM, IMAPKIT_SUBJECT,
// IMAPKIT_MESSAGE_ID, and IMAPKIT_COUNT, the number of events in the
// batch.
//
// The hook succeeds by exiting with status 0. It runs in a process group of
// its own, and when the ctx of Deliver ends (a try's timeout, a shutdown)
// the whole group is killed, so that a pipeline or a background process
// does not outlive it. A hook that must leave something running should
// start it in a new session (setsid) with its output redirected: after the
// hook exited, its output is read for at most 2 s more.
//
// An ExecSink must not be copied after first use.
type ExecSink struct {
	// Command is the hook, a command line for sh -c.
	Command string

	// Stderr receives the hook's output, stdout and stderr alike (never
	// our own stdout, which may be a JSON stream), line by line, each
	// line prefixed with the events it is about, e.g.
	// "hook work/INBOX uid=4242: ". Nil discards the output.
	Stderr io.Writer

	// Env is the environment the IMAPKIT_* variables are added to; nil
	// means os.Environ().
	Env []string

	mu sync.Mutex // keeps lines of hooks running at once apart on Stderr
}

// String returns "exec". The command line is left out: it may hold a
// password.
func (s *ExecSink) String() string { return "exec" }

// Deliver runs the hook for batch and waits for it to exit, or kills its
// process group when ctx ends.
func (s *ExecSink) Deliver(ctx context.Context, batch []Event) error {
	if len(batch) == 0 {
		return nil
	}
	var stdin bytes.Buffer
	for _, ev := range batch {
		b, err := ev.line()
		if err != nil {
			return fmt.Errorf("exec: encode event %s: %w", ev.ID, err)
		}
		stdin.Write(b)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("exec: hook not started: %w", context.Cause(ctx))
	}
	out := &lineWriter{mu: &s.mu, w: s.Stderr, prefix: hookPrefix(batch)}
	cmd := exec.CommandContext(ctx, "sh", "-c", s.Command)
	cmd.Stdin = &stdin
	cmd.Stdout = out // the same writer twice: one pipe, lines in order
	cmd.Stderr = out
	env := s.Env
	if env == nil {
		env = os.Environ()
	}
	// Appended last, the variables win over any of the same name in env.
	cmd.Env = append(slices.Clip(env), hookEnv(batch[len(batch)-1], len(batch))...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = execWaitDelay

	start := time.Now()
	err := cmd.Run()
	out.flush()
	switch {
	case cmd.ProcessState != nil && cmd.ProcessState.Success():
		// The hook did its work, even if a background process it left
		// kept the output open until WaitDelay closed it.
		if errors.Is(err, exec.ErrWaitDelay) {
			out.note("output still open 2s after the hook exited (a background process?); stopped reading it")
		}
		return nil
	case ctx.Err() != nil && cmd.ProcessState != nil:
		return fmt.Errorf("exec: hook killed after %v: %w", time.Since(start).Round(time.Millisecond), context.Cause(ctx))
	case cmd.ProcessState != nil:
		return fmt.Errorf("exec: hook failed: %s%s", cmd.ProcessState, out.lastOutput())
	default:
		return fmt.Errorf("exec: run hook: %w", err)
	}
}

// hookEnv returns the IMAPKIT_* variables for ev, the last event of a batch
// of count. NUL bytes, which no environment can hold, are dropped rather
// than failing the hook for ever.
func hookEnv(ev Event, count int) []string {
	vars := []struct{ name, value string }{
		{"IMAPKIT_EVENT", ev.Kind},
		{"IMAPKIT_EVENT_ID", ev.ID},
		{"IMAPKIT_ACCOUNT", ev.Account},
		{"IMAPKIT_MAILBOX", ev.Mailbox},
		{"IMAPKIT_OLD_MAILBOX", ev.OldMailbox},
		{"IMAPKIT_UIDVALIDITY", strconv.FormatUint(uint64(ev.UIDValidity), 10)},
		{"IMAPKIT_UID", strconv.FormatUint(uint64(ev.UID), 10)},
		{"IMAPKIT_FLAGS", strings.Join(ev.Flags, " ")},
		{"IMAPKIT_FROM", ev.From},
		{"IMAPKIT_SUBJECT", ev.Subject},
		{"IMAPKIT_MESSAGE_ID", ev.MessageID},
		{"IMAPKIT_COUNT", strconv.Itoa(count)},
	}
	env := make([]string, len(vars))
	for i, v := range vars {
		env[i] = v.name + "=" + strings.ReplaceAll(v.value, "\x00", "")
	}
	return env
}

// hookPrefix returns what each line of a hook's output is prefixed with:
// which events the hook was run for.
func hookPrefix(batch []Event) string {
	ev := batch[0]
	switch {
	case len(batch) > 1:
		return fmt.Sprintf("hook %s (%d events): ", ev.where(), len(batch))
	case ev.UID != 0:
		return fmt.Sprintf("hook %s uid=%d: ", ev.where(), ev.UID)
	default:
		return fmt.Sprintf("hook %s %s: ", ev.where(), ev.Kind)
	}
}

// lineWriter passes a hook's output on to w line by line, each line
// prefixed, and remembers the last line for the error of a failed hook.
// os/exec calls Write from one goroutine at a time.
type lineWriter struct {
	mu     *sync.Mutex // shared by the hooks writing to w
	w      io.Writer
	prefix string
	buf    []byte // a partial line
	last   string
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			if len(lw.buf) < maxHookLine {
				break
			}
			i = maxHookLine
			lw.emit(lw.buf[:i])
			lw.buf = append(lw.buf[:0], lw.buf[i:]...)
			continue
		}
		lw.emit(lw.buf[:i])
		lw.buf = append(lw.buf[:0], lw.buf[i+1:]...)
	}
	// Errors writing to w are not the hook's: it must not see EPIPE.
	return len(p), nil
}

// flush passes on a last line that has no newline.
func (lw *lineWriter) flush() {
	if len(lw.buf) > 0 {
		lw.emit(lw.buf)
		lw.buf = nil
	}
}

func (lw *lineWriter) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if s := strings.TrimSpace(string(line)); s != "" {
		lw.last = s
	}
	lw.print(string(line))
}

// note writes a line of ours about the hook, after its output.
func (lw *lineWriter) note(msg string) { lw.print("(" + msg + ")") }

func (lw *lineWriter) print(line string) {
	if lw.w == nil {
		return
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	io.WriteString(lw.w, lw.prefix+line+"\n")
}

// lastOutput returns the hook's last line of output, quoted and cut short,
// to say in an error why the hook failed; or "".
func (lw *lineWriter) lastOutput() string {
	if lw.last == "" {
		return ""
	}
	s := lw.last
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return fmt.Sprintf(" (last output: %q)", s)
}
