package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Each memory measurement runs in a fresh child process (this binary with
// -memory-child), so that no contender inherits another's freed goroutine
// stacks or heap fragments: a per-connection figure from a process that
// already ran other contenders came out below one goroutine stack per
// connection. The child asks its parent, over stdout/stdin, to make the
// replay server push or drop connections ("PUSHALL", "CLOSEALL", each
// answered "ok ..."), and prints "RESULT <json>" at the end.

// memoryJSON is memory in the form the child prints.
type memoryJSON struct {
	K, PerConn, Heap, Stack, Goroutines    float64
	PushedPerConn, PushedHeap, PushedStack float64
}

// measureIdlersInChild runs measureIdlers for contender name with k
// connections in a child process.
func measureIdlersInChild(proc *replayProc, name string, k int) (memory, error) {
	exe, err := os.Executable()
	if err != nil {
		return memory{}, err
	}
	cmd := exec.Command(exe, "-memory-child", name, "-memory-k", strconv.Itoa(k), "-memory-addr", proc.addr)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return memory{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return memory{}, err
	}
	if err := cmd.Start(); err != nil {
		return memory{}, err
	}
	defer cmd.Wait()
	defer stdin.Close()
	out := bufio.NewReader(stdout)
	for {
		line, err := out.ReadString('\n')
		if err != nil {
			return memory{}, fmt.Errorf("memory child for %s: %w", name, err)
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "PUSHALL":
			n, err := proc.pushAll()
			if err != nil {
				fmt.Fprintf(stdin, "error %v\n", err)
			} else {
				fmt.Fprintf(stdin, "ok %d\n", n)
			}
		case line == "CLOSEALL":
			if err := proc.closeAll(); err != nil {
				fmt.Fprintf(stdin, "error %v\n", err)
			} else {
				fmt.Fprintf(stdin, "ok\n")
			}
		case strings.HasPrefix(line, "RESULT "):
			var j memoryJSON
			if err := json.Unmarshal([]byte(line[len("RESULT "):]), &j); err != nil {
				return memory{}, err
			}
			return memory{k: int(j.K), perConn: j.PerConn, heap: j.Heap, stack: j.Stack, goroutines: j.Goroutines,
				pushedPerConn: j.PushedPerConn, pushedHeap: j.PushedHeap, pushedStack: j.PushedStack}, nil
		case strings.HasPrefix(line, "ERROR "):
			return memory{}, fmt.Errorf("%s", line[len("ERROR "):])
		}
	}
}

// memoryChild is the child's main: it measures one contender and reports.
func memoryChild(name string, k int, addr string, kit *kitSuite) error {
	raiseFileLimit()
	opens := map[string]openFunc{nameFloor: floorOpenIdler, nameGoimap: goimapOpenIdler}
	if kit != nil {
		opens[nameKitIdler] = kit.openIdler
	}
	open := opens[name]
	if open == nil {
		return fmt.Errorf("no memory contender %q", name)
	}
	ask := askParent(bufio.NewReader(os.Stdin))
	closeAll := func() error { _, err := ask("CLOSEALL"); return err }
	pushAll := func() (int, error) {
		reply, err := ask("PUSHALL")
		if err != nil {
			return 0, err
		}
		var n int
		_, err = fmt.Sscanf(reply, "ok %d", &n)
		return n, err
	}
	m, err := measureIdlers(context.Background(), addr, k, open, closeAll, pushAll)
	if err != nil {
		fmt.Printf("ERROR %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return nil
	}
	b, err := json.Marshal(memoryJSON{K: float64(k), PerConn: m.perConn, Heap: m.heap, Stack: m.stack, Goroutines: m.goroutines,
		PushedPerConn: m.pushedPerConn, PushedHeap: m.pushedHeap, PushedStack: m.pushedStack})
	if err != nil {
		return err
	}
	fmt.Printf("RESULT %s\n", b)
	return nil
}

// askParent returns how a child process asks its parent for something: it
// prints the command on stdout and reads the answer, a line starting with
// "ok", on stdin.
func askParent(in *bufio.Reader) func(cmd string) (string, error) {
	return func(cmd string) (string, error) {
		fmt.Println(cmd)
		line, err := in.ReadString('\n')
		if err != nil && err != io.EOF {
			return "", err
		}
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "ok") {
			return "", fmt.Errorf("parent: %q", line)
		}
		return line, nil
	}
}
