package imap

import (
	"slices"
	"strconv"
	"strings"
)

// Star is "*" in a sequence or UID set: the highest number in use in the
// mailbox.
const Star uint32 = 1<<32 - 1

// SeqSet is a set of message sequence numbers, kept as sorted ranges and
// written as IMAP writes it ("1:4,7,9:*"). The commands take sets as
// strings, imaplib's shape: pass String(). SeqSet and UIDSet are distinct
// types so that code that builds one cannot hand it where the other is
// meant. The zero value is an empty set.
type SeqSet struct{ numSet }

// UIDSet is a set of UIDs, like SeqSet, for the UID commands
// (UIDFetchMessages, UID STORE, …).
type UIDSet struct{ numSet }

// numSet is the ranges of a SeqSet or UIDSet: sorted, disjoint, and not
// adjacent, so that a set of 100,000 consecutive numbers is one range.
type numSet struct{ ranges []numRange }

type numRange struct{ lo, hi uint32 }

// Add adds numbers to the set; 0 is not a message number and is ignored.
func (s *numSet) Add(nums ...uint32) {
	for _, n := range nums {
		s.AddRange(n, n)
	}
}

// AddRange adds the numbers from lo to hi (in either order; Star for the
// last). A range including 0 starts at 1.
func (s *numSet) AddRange(lo, hi uint32) {
	if lo > hi {
		lo, hi = hi, lo
	}
	if hi == 0 {
		return
	}
	lo = max(lo, 1)
	// The ranges that overlap or touch [lo, hi] merge into one.
	i, _ := slices.BinarySearchFunc(s.ranges, lo, func(r numRange, lo uint32) int {
		if r.hi != Star && r.hi+1 < lo {
			return -1
		}
		return 1
	})
	j := i
	for j < len(s.ranges) && (hi == Star || s.ranges[j].lo <= hi+1) {
		lo = min(lo, s.ranges[j].lo)
		hi = max(hi, s.ranges[j].hi)
		j++
	}
	s.ranges = slices.Replace(s.ranges, i, j, numRange{lo, hi})
}

// Contains reports whether n is in the set (Star: whether the set reaches
// "*").
func (s numSet) Contains(n uint32) bool {
	_, found := slices.BinarySearchFunc(s.ranges, n, func(r numRange, n uint32) int {
		switch {
		case r.hi < n:
			return -1
		case r.lo > n:
			return 1
		}
		return 0
	})
	return found
}

// Empty reports whether the set holds no number.
func (s numSet) Empty() bool { return len(s.ranges) == 0 }

// String writes the set as IMAP does ("1:4,7,9:*"); "" when empty.
func (s numSet) String() string {
	var b strings.Builder
	num := func(n uint32) {
		if n == Star {
			b.WriteByte('*')
		} else {
			b.WriteString(strconv.FormatUint(uint64(n), 10))
		}
	}
	for i, r := range s.ranges {
		if i > 0 {
			b.WriteByte(',')
		}
		num(r.lo)
		if r.hi != r.lo {
			b.WriteByte(':')
			num(r.hi)
		}
	}
	return b.String()
}
