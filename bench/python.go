package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// pythonScript times imaplib on one workload: it connects, logs in,
// examines the mailbox, then runs the command n+1 times on that connection
// (the first run warms up) and prints "nanoseconds count" for each run. The
// timed part is the imaplib call plus turning its data into a result of the
// same kind the Go contenders produce (for SEARCH, a list of ints).
const pythonScript = `
import imaplib, sys, time
host, port, workload, mailbox, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
M = imaplib.IMAP4(host, port)
M.login('bench', 'bench')
typ, _ = M.select(mailbox, readonly=True)
assert typ == 'OK', typ

def count_messages(data):
    c = 0
    for d in data:
        head = d[0] if isinstance(d, tuple) else d
        if head[:1].isdigit():
            c += 1
    return c

for i in range(n + 1):
    if workload == 'fetch-meta':
        t0 = time.perf_counter_ns()
        typ, data = M.fetch('1:*', '(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)')
        t1 = time.perf_counter_ns()
        count = count_messages(data)
    elif workload in ('fetch-body', 'big'):
        t0 = time.perf_counter_ns()
        typ, data = M.fetch('1:*', '(BODY.PEEK[])')
        t1 = time.perf_counter_ns()
        count = count_messages(data)
    elif workload == 'search':
        t0 = time.perf_counter_ns()
        typ, data = M.uid('search', None, 'ALL')
        uids = [int(x) for x in data[0].split()]
        t1 = time.perf_counter_ns()
        count = len(uids)
    else:
        raise SystemExit('unknown workload ' + workload)
    assert typ == 'OK', typ
    del data
    print(t1 - t0, count, flush=True)
M.logout()
`

// pythonVersion returns the version of python3, or "" when it is missing.
func pythonVersion() string {
	out, err := exec.Command("python3", "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// measurePython runs the imaplib script for workload; n runs are measured
// after one warm-up.
func measurePython(ctx context.Context, n int, addr, workload, mailbox string) ([]sample, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-c", pythonScript, host, port, workload, mailbox, strconv.Itoa(n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("python3: %v: %s", err, lastLines(stderr.String(), 3))
	}
	var ss []sample
	sc := bufio.NewScanner(bytes.NewReader(out))
	for i := 0; sc.Scan(); i++ {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			return nil, fmt.Errorf("python3: unexpected output %q", sc.Text())
		}
		ns, err1 := strconv.ParseInt(f[0], 10, 64)
		cnt, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("python3: unexpected output %q", sc.Text())
		}
		if i > 0 {
			ss = append(ss, sample{dur: time.Duration(ns), count: cnt})
		}
	}
	if len(ss) != n {
		return nil, fmt.Errorf("python3: got %d results, want %d", len(ss), n)
	}
	return ss, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
