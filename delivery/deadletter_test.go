package delivery

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testRecord() DeadRecord {
	e := ev("work", "INBOX", 4242)
	e.MessageID = "<m@x>"
	return DeadRecord{Event: e, Sink: "webhook https://h/p", Err: "webhook: server answered 500 Internal Server Error",
		Attempts: 6, Time: time.Date(2025, 3, 4, 8, 6, 10, 5, time.FixedZone("CET", 3600))}
}

const testRecordLine = `{"event":{"id":"work-INBOX-4242","event":"new","time":"2025-03-04T07:06:10Z","account":"work","mailbox":"INBOX","uidvalidity":7,"uid":4242,"message_id":"<m@x>"},` +
	`"sink":"webhook https://h/p","error":"webhook: server answered 500 Internal Server Error","attempts":6,"time":"2025-03-04T07:06:10Z"}` + "\n"

func TestDeadLetterFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	d, err := OpenDeadLetterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(testRecord()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != testRecordLine {
		t.Errorf("file holds\n%s\nwant\n%s", b, testRecordLine)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := d.Write(testRecord()); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}

	// Reopened, it appends.
	d, err = OpenDeadLetterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Write(testRecord()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != testRecordLine+testRecordLine {
		t.Errorf("after reopening, file holds\n%s", b)
	}
	var back DeadRecord
	if err := json.Unmarshal([]byte(testRecordLine), &back); err != nil || back.Attempts != 6 || back.Event.UID != 4242 ||
		!back.Time.Equal(time.Date(2025, 3, 4, 7, 6, 10, 0, time.UTC)) {
		t.Errorf("record reads back as %+v, %v", back, err)
	}
}

func TestDeadLetterFileMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "dead.jsonl")
	_, err := OpenDeadLetterFile(path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "dead-letter file") || !strings.Contains(err.Error(), path) {
		t.Errorf("OpenDeadLetterFile in a missing directory: %v", err)
	}
}

func TestDeadLetterFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	d, err := OpenDeadLetterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if err := d.Write(testRecord()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	d.Close()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		if sc.Text()+"\n" != testRecordLine {
			t.Fatalf("line %d: %s", n+1, sc.Text())
		}
	}
	if n != 80 {
		t.Errorf("%d lines, want 80", n)
	}
}

func TestDeadLetterWriter(t *testing.T) {
	var buf syncBuffer
	if err := NewDeadLetterWriter(&buf).Write(testRecord()); err != nil {
		t.Fatal(err)
	}
	if buf.String() != testRecordLine {
		t.Errorf("writer got\n%s\nwant\n%s", buf.String(), testRecordLine)
	}
}
