package watch

import (
	"slices"
	"strconv"
	"strings"

	"github.com/imapkit/imap"
)

// uidSet is a set of UIDs as sorted, disjoint, non-adjacent ranges: a
// mailbox of 100,000 messages with a few holes takes a few ranges, not
// 400 KB.
type uidSet []uidRange

type uidRange struct{ lo, hi uint32 }

// parseUIDSet reads an IMAP sequence set of UIDs ("1:5,7").
func parseUIDSet(s string) (uidSet, error) {
	if s == "" {
		return nil, nil
	}
	uids, err := imap.ParseSequenceSet(s)
	if err != nil {
		return nil, err
	}
	slices.Sort(uids)
	var set uidSet
	for _, u := range uids {
		set.add(u)
	}
	return set, nil
}

// String writes the set as an IMAP sequence set ("" when empty).
func (s uidSet) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(r.lo), 10))
		if r.hi != r.lo {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(r.hi), 10))
		}
	}
	return b.String()
}

// find returns the index of the first range whose hi is ≥ uid.
func (s uidSet) find(uid uint32) int {
	i, _ := slices.BinarySearchFunc(s, uid, func(r uidRange, u uint32) int {
		switch {
		case r.hi < u:
			return -1
		case r.lo > u:
			return 1
		}
		return 0
	})
	return i
}

func (s uidSet) contains(uid uint32) bool {
	i := s.find(uid)
	return i < len(s) && s[i].lo <= uid
}

// add puts uid in the set, merging ranges that come to touch.
func (s *uidSet) add(uid uint32) {
	set := *s
	i := set.find(uid)
	if i < len(set) && set[i].lo <= uid {
		return // present
	}
	joinsLeft := i > 0 && set[i-1].hi == uid-1
	joinsRight := i < len(set) && set[i].lo == uid+1
	switch {
	case joinsLeft && joinsRight:
		set[i-1].hi = set[i].hi
		set = slices.Delete(set, i, i+1)
	case joinsLeft:
		set[i-1].hi = uid
	case joinsRight:
		set[i].lo = uid
	default:
		set = slices.Insert(set, i, uidRange{uid, uid})
	}
	*s = set
}

// remove takes uid out of the set.
func (s *uidSet) remove(uid uint32) {
	set := *s
	i := set.find(uid)
	if i == len(set) || set[i].lo > uid {
		return // absent
	}
	r := set[i]
	switch {
	case r.lo == r.hi:
		set = slices.Delete(set, i, i+1)
	case uid == r.lo:
		set[i].lo++
	case uid == r.hi:
		set[i].hi--
	default:
		set[i].hi = uid - 1
		set = slices.Insert(set, i+1, uidRange{uid + 1, r.hi})
	}
	*s = set
}

// upTo returns the part of s at or below max, sharing s's memory only when
// nothing is cut.
func (s uidSet) upTo(max uint32) uidSet {
	i := s.find(max)
	if i == len(s) {
		return s
	}
	out := slices.Clone(s[:i])
	if s[i].lo <= max {
		out = append(out, uidRange{s[i].lo, max})
	}
	return out
}

// each calls fn for every UID in order.
func (s uidSet) each(fn func(uint32)) {
	for _, r := range s {
		for u := r.lo; ; u++ {
			fn(u)
			if u == r.hi {
				break
			}
		}
	}
}

// fromSorted builds a set from sorted UIDs.
func fromSorted(uids []uint32) uidSet {
	var set uidSet
	for _, u := range uids {
		if n := len(set); n > 0 && set[n-1].hi+1 == u {
			set[n-1].hi = u
		} else if n == 0 || set[n-1].hi < u {
			set = append(set, uidRange{u, u})
		}
	}
	return set
}
