// Package replay serves recorded IMAP responses over loopback TCP so that
// IMAP clients can be benchmarked on exactly the bytes a real server sent,
// without the server's own cost.
//
// A [Set] holds [Recording]s keyed by mailbox and command [Kind]. A
// [Server] greets, answers CAPABILITY, LOGIN, SELECT/EXAMINE, NOOP and
// LOGOUT minimally, and answers a workload command (FETCH, SEARCH, IDLE) in
// the selected mailbox with the recorded untagged bytes, written from memory
// in one large write, followed by the tagged completion carrying the
// client's own tag.
package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kind classifies the command a recording answers.
type Kind string

// The kinds of recorded commands.
const (
	KindSelect    Kind = "select"     // SELECT or EXAMINE
	KindFetchMeta Kind = "fetch-meta" // FETCH of non-body items (ENVELOPE, BODYSTRUCTURE, ...)
	KindFetchBody Kind = "fetch-body" // FETCH BODY[] / BODY.PEEK[] / RFC822
	KindSearch    Kind = "search"     // SEARCH or UID SEARCH
	KindIdle      Kind = "idle"       // untagged data sent during IDLE
)

// Recording is a server's answer to one command: every byte of untagged
// data (literals included) and the text of the tagged completion that
// follows the tag, such as "OK Fetch completed.". For KindIdle, Untagged is
// what the server sent while idling and Tagged answers DONE.
type Recording struct {
	Untagged []byte
	Tagged   string
}

// Split separates a captured response, untagged data followed by the
// tagged completion line for tag (CRLF included), into a Recording.
func Split(capture []byte, tag string) (*Recording, error) {
	if !bytes.HasSuffix(capture, []byte("\r\n")) {
		return nil, errors.New("replay: capture does not end in CRLF")
	}
	body := capture[:len(capture)-2]
	start := bytes.LastIndex(body, []byte("\r\n")) + 2
	if start == 1 { // no CRLF: the tagged line is all there is
		start = 0
	}
	last := string(body[start:])
	if !strings.HasPrefix(last, tag+" ") {
		return nil, fmt.Errorf("replay: last line %.60q is not tagged %s", last, tag)
	}
	return &Recording{Untagged: capture[:start], Tagged: last[len(tag)+1:]}, nil
}

// Key identifies a recording.
type Key struct {
	Mailbox string
	Kind    Kind
}

// Set is a collection of recordings, plus free-form metadata describing
// where they came from (server version, corpus seed, ...).
type Set struct {
	Meta map[string]string
	recs map[Key]*Recording
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{Meta: map[string]string{}, recs: map[Key]*Recording{}}
}

// Add stores rec for mailbox and kind, replacing any previous one.
// Mailbox names are case-sensitive except INBOX.
func (s *Set) Add(mailbox string, kind Kind, rec *Recording) {
	s.recs[Key{normMailbox(mailbox), kind}] = rec
}

// Get returns the recording for mailbox and kind, or nil.
func (s *Set) Get(mailbox string, kind Kind) *Recording {
	return s.recs[Key{normMailbox(mailbox), kind}]
}

// Keys returns the keys of s in a stable order.
func (s *Set) Keys() []Key {
	keys := make([]Key, 0, len(s.recs))
	for k := range s.recs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Mailbox != keys[j].Mailbox {
			return keys[i].Mailbox < keys[j].Mailbox
		}
		return keys[i].Kind < keys[j].Kind
	})
	return keys
}

func normMailbox(m string) string {
	if strings.EqualFold(m, "INBOX") {
		return "INBOX"
	}
	return m
}

// fileTag is the tag written in front of the tagged line in saved files.
const fileTag = "R0001"

type manifest struct {
	Meta  map[string]string `json:"meta"`
	Files []manifestFile    `json:"files"`
}

type manifestFile struct {
	Mailbox string `json:"mailbox"`
	Kind    Kind   `json:"kind"`
	File    string `json:"file"`
	Size    int    `json:"size"`
}

// Save writes s into dir (created if needed): one file per recording, in
// wire form with the tag R0001, and a manifest.json written last, so that
// a directory with a manifest is complete.
func (s *Set) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m := manifest{Meta: s.Meta}
	for _, k := range s.Keys() {
		rec := s.recs[k]
		name := fmt.Sprintf("%s.%s.imap", strings.ReplaceAll(k.Mailbox, "/", "_"), k.Kind)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		_, err = f.Write(rec.Untagged)
		if err == nil {
			_, err = fmt.Fprintf(f, "%s %s\r\n", fileTag, rec.Tagged)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		m.Files = append(m.Files, manifestFile{Mailbox: k.Mailbox, Kind: k.Kind, File: name, Size: len(rec.Untagged)})
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "manifest.json.tmp")
	if err := os.WriteFile(tmp, js, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "manifest.json"))
}

// Info describes a saved Set without loading its recordings.
type Info struct {
	Meta  map[string]string
	Sizes map[Key]int // bytes of untagged data per recording
}

// Stat reads the manifest of a Set saved in dir.
func Stat(dir string) (*Info, error) {
	js, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("replay: %s: %w", dir, err)
	}
	info := &Info{Meta: m.Meta, Sizes: map[Key]int{}}
	for _, f := range m.Files {
		info.Sizes[Key{normMailbox(f.Mailbox), f.Kind}] = f.Size
	}
	return info, nil
}

// Load reads a Set written by Save. It fails with an error wrapping
// os.ErrNotExist when dir holds no complete set.
func Load(dir string) (*Set, error) {
	js, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("replay: %s: %w", dir, err)
	}
	s := NewSet()
	if m.Meta != nil {
		s.Meta = m.Meta
	}
	for _, f := range m.Files {
		b, err := os.ReadFile(filepath.Join(dir, f.File))
		if err != nil {
			return nil, err
		}
		rec, err := Split(b, fileTag)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.File, err)
		}
		s.Add(f.Mailbox, f.Kind, rec)
	}
	return s, nil
}
