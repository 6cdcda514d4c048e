package imap_test

import (
	"testing"

	"github.com/imapkit/imap"
)

func TestNumSet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		build  func(s *imap.UIDSet)
		want   string
		in     []uint32
		out    []uint32
		isZero bool
	}{
		{name: "empty", build: func(s *imap.UIDSet) {}, want: "", out: []uint32{1}, isZero: true},
		{name: "singles merge", build: func(s *imap.UIDSet) { s.Add(3, 1, 2, 7, 5) }, want: "1:3,5,7", in: []uint32{1, 2, 3, 5, 7}, out: []uint32{4, 6, 8}},
		{name: "adjacent ranges join", build: func(s *imap.UIDSet) { s.AddRange(10, 12); s.AddRange(5, 9); s.Add(13) }, want: "5:13"},
		{name: "overlap spans several", build: func(s *imap.UIDSet) { s.Add(1, 3, 5, 7, 20); s.AddRange(2, 8) }, want: "1:8,20"},
		{name: "reversed range", build: func(s *imap.UIDSet) { s.AddRange(9, 4) }, want: "4:9"},
		{name: "star", build: func(s *imap.UIDSet) { s.AddRange(100, imap.Star); s.Add(5) }, want: "5,100:*", in: []uint32{100, 4000000000, imap.Star}, out: []uint32{99}},
		{name: "star swallows what follows", build: func(s *imap.UIDSet) { s.Add(50, 60); s.AddRange(40, imap.Star) }, want: "40:*"},
		{name: "star alone", build: func(s *imap.UIDSet) { s.Add(imap.Star) }, want: "*"},
		{name: "zero ignored", build: func(s *imap.UIDSet) { s.Add(0); s.AddRange(0, 2) }, want: "1:2"},
		{name: "max below star", build: func(s *imap.UIDSet) { s.Add(imap.Star - 1); s.Add(imap.Star) }, want: "4294967294:*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s imap.UIDSet
			tc.build(&s)
			if got := s.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			if s.Empty() != tc.isZero {
				t.Errorf("Empty() = %v", s.Empty())
			}
			for _, n := range tc.in {
				if !s.Contains(n) {
					t.Errorf("Contains(%d) = false", n)
				}
			}
			for _, n := range tc.out {
				if s.Contains(n) {
					t.Errorf("Contains(%d) = true", n)
				}
			}
		})
	}
	var seq imap.SeqSet
	seq.AddRange(1, 10)
	if seq.String() != "1:10" {
		t.Errorf("SeqSet: %q", seq.String())
	}
}
