package watch

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// openTestStateFile opens a state file in a new directory, with contents
// unless contents is nil, and closes it at the end of the test.
func openTestStateFile(t *testing.T, contents []byte, opts *StateFileOptions) (*StateFile, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.json")
	if contents != nil {
		if err := os.WriteFile(path, contents, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := OpenStateFile(path, opts)
	if err != nil {
		t.Fatalf("OpenStateFile: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

func mustLoad(t *testing.T, f *StateFile, account string) *AccountState {
	t.Helper()
	st, err := f.Load(account)
	if err != nil {
		t.Fatalf("Load(%q): %v", account, err)
	}
	return st
}

func inbox(last uint32) *AccountState {
	return &AccountState{Server: "imap.example.org:993", User: "alice", Mailboxes: map[string]*MailboxState{
		"INBOX": {UIDValidity: 1700000000, LastUID: last, HighestModSeq: 917, UIDs: fmt.Sprintf("1:%d", last)},
	}}
}

// openCase is a test of OpenStateFile: the outcome of opening contents.
type openCase struct {
	name       string
	contents   *string // nil: no file
	rebaseline bool
	want       map[string]*AccountState
	wantErr    []string // substrings of the error, which always names the file
	fresh      bool
	migrated   []string // substrings of each note, in order
}

func TestStateFileOpen(t *testing.T) {
	const v2 = `{"version": 2, "accounts": {"work": {"server": "s:993", "user": "u",
		"mailboxes": {"INBOX": {"uidvalidity": 7, "last_uid": 42, "highestmodseq": 9, "uids": "1:42"}}}}}`
	const v1 = `{"mailboxes": {
		"acct/INBOX": {"uidvalidity": 7, "last_uid": 42, "uids": "1:42"},
		"acct/Lists/go": {"uidvalidity": 8, "last_uid": 5},
		"other/INBOX": {"uidvalidity": 9, "last_uid": 1}}}`
	work := map[string]*AccountState{"work": {Server: "s:993", User: "u", Mailboxes: map[string]*MailboxState{
		"INBOX": {UIDValidity: 7, LastUID: 42, HighestModSeq: 9, UIDs: "1:42"}}}}
	migrated := map[string]*AccountState{
		"acct": {Mailboxes: map[string]*MailboxState{
			"INBOX":    {UIDValidity: 7, LastUID: 42, UIDs: "1:42"},
			"Lists/go": {UIDValidity: 8, LastUID: 5}}},
		"other": {Mailboxes: map[string]*MailboxState{"INBOX": {UIDValidity: 9, LastUID: 1}}},
	}
	empty := map[string]*AccountState{}
	noState := []string{"holds no state", "skip mail that arrived while away", "--rebaseline"}

	tests := []openCase{
		{name: "no file", want: empty, fresh: true},
		{name: "no file, rebaseline", rebaseline: true, want: empty, fresh: true},
		{name: "v2", contents: ptr(v2), want: work},
		{name: "v1", contents: ptr(v1), want: migrated, migrated: []string{
			`migrated 2 mailboxes of account "acct" from format 1`,
			`migrated 1 mailbox of account "other" from format 1`}},
		{name: "v1 with version 1", contents: ptr(`{"version": 1, "mailboxes": {"a/INBOX": {"last_uid": 3}}}`),
			want:     map[string]*AccountState{"a": {Mailboxes: map[string]*MailboxState{"INBOX": {LastUID: 3}}}},
			migrated: []string{`migrated 1 mailbox of account "a"`}},
		{name: "v1 empty account", contents: ptr(`{"mailboxes": {"/INBOX": {"last_uid": 3}}}`),
			want:     map[string]*AccountState{"": {Mailboxes: map[string]*MailboxState{"INBOX": {LastUID: 3}}}},
			migrated: []string{`account ""`}},
		{name: "v2 with rebaseline keeps state", contents: ptr(v2), rebaseline: true, want: work},
	}
	for _, c := range []struct{ name, contents string }{
		{"empty", ""}, {"whitespace", " \n\t\n"}, {"null", "null"}, {"{}", "{}\n"},
		{"v2 accounts missing", `{"version": 2}`}, {"v2 accounts null", `{"version": 2, "accounts": null}`},
		{"v2 accounts empty", `{"version": 2, "accounts": {}}`},
		{"v1 mailboxes empty", `{"mailboxes": {}}`}, {"v1 mailboxes null", `{"mailboxes": null}`},
	} {
		tests = append(tests,
			openCase{name: c.name, contents: ptr(c.contents), wantErr: noState},
			openCase{name: c.name + ", rebaseline", contents: ptr(c.contents), rebaseline: true, want: empty})
	}
	for _, c := range []struct{ name, contents, err string }{
		{"version 3", `{"version": 3, "accounts": {"a": {}}}`, "format version 3 is not supported"},
		{"version -1", `{"version": -1}`, "format version -1 is not supported"},
		{"invalid JSON", `{"version": 2,`, "unexpected end of JSON input"},
		{"trailing garbage", `{"version": 2} x`, "invalid character"},
		{"not an object", `[1]`, "cannot unmarshal array"},
		{"version is a string", `{"version": "2"}`, "cannot unmarshal string"},
		{"null account", `{"version": 2, "accounts": {"a": {"mailboxes": {}}, "work": null}}`, `account "work" has no entry`},
		{"null mailbox", `{"version": 2, "accounts": {"work": {"mailboxes": {"INBOX": null}}}}`, `mailbox "INBOX" has no position`},
		{"accounts without version", `{"accounts": {"work": {}}}`, `"accounts" without a "version"`},
		{"v1 key without slash", `{"mailboxes": {"INBOX": {"last_uid": 3}}}`, `entry "INBOX" is not account/mailbox`},
		{"v1 null entry", `{"mailboxes": {"a/INBOX": null}}`, `entry "a/INBOX" has no position`},
	} {
		for _, rebaseline := range []bool{false, true} {
			tests = append(tests, openCase{name: fmt.Sprintf("%s, rebaseline %v", c.name, rebaseline), contents: ptr(c.contents),
				rebaseline: rebaseline, wantErr: []string{c.err}})
		}
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if tc.contents != nil {
				if err := os.WriteFile(path, []byte(*tc.contents), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			f, err := OpenStateFile(path, &StateFileOptions{Rebaseline: tc.rebaseline})
			if tc.wantErr != nil {
				if err == nil {
					f.Close()
					t.Fatalf("OpenStateFile succeeded, want an error containing %q", tc.wantErr)
				}
				for _, s := range append([]string{path}, tc.wantErr...) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				// A refused file is left alone, and not left locked.
				if g, err := OpenStateFile(path, &StateFileOptions{Rebaseline: true}); err == nil {
					g.Close()
				} else if strings.Contains(err.Error(), "in use") {
					t.Errorf("refused file left locked: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenStateFile: %v", err)
			}
			defer f.Close()
			got := map[string]*AccountState{}
			for _, name := range f.Accounts() {
				got[name] = mustLoad(t, f, name)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("entries %s, want %s", dump(got), dump(tc.want))
			}
			if f.Fresh() != tc.fresh {
				t.Errorf("Fresh() = %v, want %v", f.Fresh(), tc.fresh)
			}
			notes := f.Migrated()
			if len(notes) != len(tc.migrated) {
				t.Fatalf("Migrated() = %q, want %d notes", notes, len(tc.migrated))
			}
			for i, s := range tc.migrated {
				if !strings.Contains(notes[i], s) || !strings.HasPrefix(notes[i], "state file "+path+": ") {
					t.Errorf("Migrated()[%d] = %q, want %q about %s", i, notes[i], s, path)
				}
			}
			// Opening writes nothing: no file when there was none, the
			// same bytes (format 1 too) when there was one.
			b, err := os.ReadFile(path)
			switch {
			case tc.contents == nil && !os.IsNotExist(err):
				t.Errorf("open created the file (err %v)", err)
			case tc.contents != nil && string(b) != *tc.contents:
				t.Errorf("open changed the file to %q", b)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func dump(m map[string]*AccountState) string {
	var b strings.Builder
	for name, st := range m {
		fmt.Fprintf(&b, "%q:{%q %q", name, st.Server, st.User)
		for mb, pos := range st.Mailboxes {
			fmt.Fprintf(&b, " %q:%+v", mb, *pos)
		}
		b.WriteString("} ")
	}
	return b.String()
}

func TestStateFileDirectory(t *testing.T) {
	root := t.TempDir()
	notDir := filepath.Join(root, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, err string }{
		{filepath.Join(root, "x", "y", "state.json"),
			"state file " + filepath.Join(root, "x", "y", "state.json") + ": directory " + filepath.Join(root, "x", "y") + " does not exist"},
		{filepath.Join(notDir, "state.json"), notDir + " is not a directory"},
		{"", "empty path"},
	}
	for _, tc := range tests {
		f, err := OpenStateFile(tc.path, nil)
		if err == nil {
			f.Close()
			t.Errorf("OpenStateFile(%q) succeeded", tc.path)
		} else if !strings.Contains(err.Error(), tc.err) {
			t.Errorf("OpenStateFile(%q): %v, want %q", tc.path, err, tc.err)
		}
	}
	// The writability probe leaves nothing behind but the lock file.
	_, path := openTestStateFile(t, nil, nil)
	assertDir(t, filepath.Dir(path), "state.json.lock")
}

// assertDir checks that dir holds exactly names.
func assertDir(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !reflect.DeepEqual(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

func TestStateFileFormat(t *testing.T) {
	f, path := openTestStateFile(t, nil, nil)
	if err := f.Save("work", inbox(4242)); err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": 2,
  "accounts": {
    "work": {
      "server": "imap.example.org:993",
      "user": "alice",
      "mailboxes": {
        "INBOX": {
          "uidvalidity": 1700000000,
          "last_uid": 4242,
          "highestmodseq": 917,
          "uids": "1:4242"
        }
      }
    }
  }
}
`
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
	assertMode(t, path)
	assertDir(t, filepath.Dir(path), "state.json", "state.json.lock")
}

func assertMode(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode())
	}
}

// TestStateFileMode: a file someone made readable by all is private again
// after a Save, whatever the umask.
func TestStateFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"version": 2, "accounts": {"a": {}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	f, err := OpenStateFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	assertMode(t, path+".lock")
	// A umask that takes more than 0600 away: the file is still 0600.
	old := syscall.Umask(0o377)
	err = f.Save("a", inbox(1))
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	assertMode(t, path)
}

// TestStateFileReopen: what was saved is what the next open loads; format
// 1 is rewritten as format 2 at the first Save, keeping every entry.
func TestStateFileReopen(t *testing.T) {
	f, path := openTestStateFile(t, []byte(`{"mailboxes": {"old/INBOX": {"uidvalidity": 3, "last_uid": 10, "uids": "1:10"}}}`), nil)
	if len(f.Migrated()) != 1 {
		t.Fatalf("Migrated() = %q", f.Migrated())
	}
	if err := f.Save("work", inbox(20)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := OpenStateFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Fresh() || len(g.Migrated()) != 0 {
		t.Errorf("reopened: Fresh() %v, Migrated() %q", g.Fresh(), g.Migrated())
	}
	want := map[string]*AccountState{
		"old":  {Mailboxes: map[string]*MailboxState{"INBOX": {UIDValidity: 3, LastUID: 10, UIDs: "1:10"}}},
		"work": inbox(20),
	}
	got := map[string]*AccountState{}
	for _, name := range g.Accounts() {
		got[name] = mustLoad(t, g, name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reopened: %s, want %s", dump(got), dump(want))
	}
}

// TestStateFileCopies: the store keeps its own copies, in and out.
func TestStateFileCopies(t *testing.T) {
	f, _ := openTestStateFile(t, nil, nil)
	if st := mustLoad(t, f, "work"); st != nil {
		t.Fatalf("Load of a missing entry = %+v, want nil", st)
	}
	st := inbox(5)
	if err := f.Save("work", st); err != nil {
		t.Fatal(err)
	}
	st.Mailboxes["INBOX"].LastUID = 99 // the caller reuses st
	st.Mailboxes["Sent"] = &MailboxState{LastUID: 1}
	got := mustLoad(t, f, "work")
	if !reflect.DeepEqual(got, inbox(5)) {
		t.Fatalf("after changing the saved value: %s", dump(map[string]*AccountState{"work": got}))
	}
	got.Mailboxes["INBOX"].LastUID = 77
	got.Server = "elsewhere"
	if again := mustLoad(t, f, "work"); !reflect.DeepEqual(again, inbox(5)) {
		t.Errorf("after changing a loaded value: %s", dump(map[string]*AccountState{"work": again}))
	}
	if err := f.Save("work", nil); err == nil {
		t.Error("Save of nil succeeded")
	}
}

func TestStateFileImport(t *testing.T) {
	f, path := openTestStateFile(t, nil, nil)
	if err := f.Save("b", inbox(2)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		account string
		st      *AccountState
		added   bool
		want    *AccountState
	}{
		{"a", inbox(1), true, inbox(1)},
		{"a", inbox(3), false, inbox(1)}, // already there: kept
		{"b", inbox(4), false, inbox(2)}, // saved: kept
		{"c", &AccountState{}, true, &AccountState{Mailboxes: map[string]*MailboxState{}}},
	}
	for _, tc := range tests {
		added, err := f.Import(tc.account, tc.st)
		if err != nil || added != tc.added {
			t.Errorf("Import(%q) = %v, %v; want %v, nil", tc.account, added, err, tc.added)
		}
		if got := mustLoad(t, f, tc.account); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("after Import(%q): %s", tc.account, dump(map[string]*AccountState{tc.account: got}))
		}
	}
	if got, want := f.Accounts(), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Accounts() = %q, want %q", got, want)
	}
	// Imports are written.
	f.Close()
	g, err := OpenStateFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got, want := g.Accounts(), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("reopened: Accounts() = %q, want %q", got, want)
	}
}

func TestStateFileLock(t *testing.T) {
	f, path := openTestStateFile(t, nil, nil)
	if g, err := OpenStateFile(path, nil); err == nil {
		g.Close()
		t.Fatal("second OpenStateFile of the same file succeeded")
	} else if !strings.Contains(err.Error(), "in use by another imapkit") || !strings.Contains(err.Error(), path) {
		t.Errorf("second OpenStateFile: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, err := range []error{f.Save("a", inbox(1)), second(f.Import("a", inbox(1)))} {
		if err == nil || !strings.Contains(err.Error(), "closed") || !strings.Contains(err.Error(), path) {
			t.Errorf("after Close: %v, want an error that says the state file is closed", err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a refused Save wrote the file (err %v)", err)
	}
	g, err := OpenStateFile(path, nil)
	if err != nil {
		t.Fatalf("OpenStateFile after Close: %v", err)
	}
	g.Close()
}

func second(_ bool, err error) error { return err }

// TestStateFileLockProcess: the lock holds against another process.
func TestStateFileLockProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	cmd := exec.Command(os.Args[0], "-test.run=^TestStateFileLockHelper$")
	// GORACE: a race-enabled helper would otherwise sleep a second at exit.
	cmd.Env = append(os.Environ(), "IMAPKIT_STATEFILE_HELPER="+path, "GORACE=atexit_sleep_ms=0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("helper said %q (%v)", line, err)
	}
	if g, err := OpenStateFile(path, nil); err == nil {
		g.Close()
		t.Error("OpenStateFile succeeded while another process holds the file")
	} else if !strings.Contains(err.Error(), "in use by another imapkit") {
		t.Errorf("OpenStateFile: %v", err)
	}
	stdin.Close() // the helper exits, which releases its lock
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	g, err := OpenStateFile(path, nil)
	if err != nil {
		t.Fatalf("OpenStateFile after the other process exited: %v", err)
	}
	g.Close()
}

// TestStateFileLockHelper is the other process of TestStateFileLockProcess.
func TestStateFileLockHelper(t *testing.T) {
	path := os.Getenv("IMAPKIT_STATEFILE_HELPER")
	if path == "" {
		t.Skip("run by TestStateFileLockProcess")
	}
	f, err := OpenStateFile(path, nil)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("locked")
	bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	f.Close()
}

// TestStateFileConcurrentSaves: 50 goroutines, each saving 20 times its own
// account. Every Save returns with its change written, the file ends with
// each account's last value, and writes are shared.
func TestStateFileConcurrentSaves(t *testing.T) {
	const goroutines, saves = 50, 20
	f, path := openTestStateFile(t, nil, nil)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			account := fmt.Sprintf("acct%02d", g)
			st := inbox(0)
			for i := 1; i <= saves; i++ {
				st.Mailboxes["INBOX"].LastUID = uint32(i) // reused, as a Watcher does
				if err := f.Save(account, st); err != nil {
					t.Errorf("Save(%s) #%d: %v", account, i, err)
					return
				}
				if i == saves/2 {
					// What this Save returned for is on disk already.
					checkOnDisk(t, path, account, uint32(i))
				}
			}
		})
	}
	wg.Wait()
	f.mu.Lock()
	writes := f.writes
	f.mu.Unlock()
	t.Logf("%d Saves, %d writes", goroutines*saves, writes)
	if writes > goroutines*saves/4 {
		t.Errorf("%d writes for %d Saves: not coalesced", writes, goroutines*saves)
	}
	for g := range goroutines {
		checkOnDisk(t, path, fmt.Sprintf("acct%02d", g), saves)
	}
}

// checkOnDisk checks that the file's entry for account has an INBOX
// LastUID of at least min (another Save may have followed).
func checkOnDisk(t *testing.T, path, account string, min uint32) {
	t.Helper()
	f := &StateFile{path: path, accounts: map[string]*AccountState{}}
	b, err := os.ReadFile(path)
	if err == nil {
		err = f.decode(b, false)
	}
	if err != nil {
		t.Errorf("reading %s: %v", path, err)
		return
	}
	if st := f.accounts[account]; st == nil || st.Mailboxes["INBOX"] == nil || st.Mailboxes["INBOX"].LastUID < min {
		t.Errorf("%s on disk: %+v, want INBOX LastUID >= %d", account, st, min)
	}
}

// TestStateFileCoalesce: Saves that arrive during a write all wait for the
// next one, which covers them all, and each gets the error of the write
// that covered it; after a failure the next write has everything.
func TestStateFileCoalesce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state.json")
	f, err := OpenStateFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	release := make(chan struct{})
	f.beforeWrite = func(n int) {
		switch n {
		case 1:
			<-release
		case 2:
			os.RemoveAll(dir) // write 2 fails
		}
	}

	first := make(chan error)
	go func() { first <- f.Save("first", inbox(1)) }()
	// Wait until write 1 has begun, then queue 10 Saves behind it.
	waitFor(t, f, func() bool { return f.writing })
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- f.Save(fmt.Sprintf("queued%d", i), inbox(uint32(i))) }()
	}
	waitFor(t, f, func() bool { return len(f.accounts) == 1+n })
	select {
	case err := <-errs:
		t.Fatalf("a queued Save returned (%v) while the write before it was in progress", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("Save covered by write 1: %v", err)
	}
	for range n {
		if err := <-errs; err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Save covered by the failed write 2: %v, want an error naming %s", err, path)
		}
	}
	if f.writes != 2 {
		t.Errorf("%d writes, want 2", f.writes)
	}

	// The directory is back: the next Save writes every entry.
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := f.Save("last", inbox(5)); err != nil {
		t.Fatalf("Save after the directory is back: %v", err)
	}
	checkOnDisk(t, path, "first", 1)
	checkOnDisk(t, path, "last", 5)
	for i := range n {
		checkOnDisk(t, path, fmt.Sprintf("queued%d", i), uint32(i))
	}
}

// waitFor polls cond, under f.mu, until it holds.
func waitFor(t *testing.T, f *StateFile, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
	}
	t.Fatal("condition never held")
}

// TestStateFileCloseWaits: Close lets a Save already under way finish its
// write before it releases the lock.
func TestStateFileCloseWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	f, err := OpenStateFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	f.beforeWrite = func(int) { <-release }
	saved := make(chan error)
	go func() { saved <- f.Save("a", inbox(1)) }()
	waitFor(t, f, func() bool { return f.writing })
	closed := make(chan error)
	go func() { closed <- f.Close() }()
	waitFor(t, f, func() bool { return f.closed })
	select {
	case <-closed:
		t.Fatal("Close returned during a write")
	case <-time.After(10 * time.Millisecond):
	}
	close(release)
	if err := <-saved; err != nil {
		t.Errorf("Save: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	checkOnDisk(t, path, "a", 1)
	g, err := OpenStateFile(path, nil)
	if err != nil {
		t.Fatalf("OpenStateFile after Close: %v", err)
	}
	g.Close()
}

// TestStateFileFailedWrite: a write that fails leaves no temporary file
// and the old file intact, reports which file and what failed, and the next
// Save retries.
func TestStateFileFailedWrite(t *testing.T) {
	f, path := openTestStateFile(t, nil, nil)
	dir := filepath.Dir(path)
	if err := f.Save("a", inbox(1)); err != nil {
		t.Fatal(err)
	}

	// A non-empty directory in the way: the rename fails, even for root.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := f.Save("b", inbox(2))
	if err == nil || !strings.Contains(err.Error(), "state file "+path+": replacing the file") {
		t.Errorf("Save with a directory at the path: %v", err)
	}
	assertDir(t, dir, "state.json", "state.json.lock")
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}

	// The directory gone: creating the temporary file fails.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err = f.Save("c", inbox(3))
	if err == nil || !strings.Contains(err.Error(), "state file "+path+": creating a temporary file") {
		t.Errorf("Save with the directory gone: %v", err)
	}

	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := f.Save("d", inbox(4)); err != nil {
		t.Fatalf("Save after the directory is back: %v", err)
	}
	for i, account := range []string{"a", "b", "c", "d"} {
		checkOnDisk(t, path, account, uint32(i+1))
	}
	assertMode(t, path)
}
