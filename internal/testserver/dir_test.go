package testserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestRemoveStale(t *testing.T) {
	parent := t.TempDir()
	const prefix = "imapkit-test-"
	mk := func(name, owner string) string {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, OwnerFile), []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	// A child that has exited and been reaped gives a pid that is dead.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := strconv.Itoa(cmd.Process.Pid)
	for dir, keep := range map[string]bool{
		mk(prefix+"dead", deadPid):                    false,
		mk(prefix+"alive", strconv.Itoa(os.Getpid())): true,
		mk(prefix+"creating", ""):                     true,
		mk("other", deadPid):                          true,
	} {
		defer func() {
			_, err := os.Stat(dir)
			if exists := err == nil; exists != keep {
				t.Errorf("%s exists = %v, want %v", filepath.Base(dir), exists, keep)
			}
		}()
	}
	RemoveStale(parent, prefix)
}

func TestMakeDir(t *testing.T) {
	dir, err := MakeDir("test")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("Stat(%s) = %v, %v; want mode 0755", dir, fi, err)
	}
	owner, err := os.ReadFile(filepath.Join(dir, OwnerFile))
	if err != nil || string(owner) != strconv.Itoa(os.Getpid()) {
		t.Errorf("owner file = %q, %v; want this process's pid", owner, err)
	}
	if !othersTraverse(dir) {
		t.Errorf("%s is not traversable by every user", dir)
	}
}
