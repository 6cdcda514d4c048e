package imap

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
)

// ParseSearch parses the data of a SEARCH (or UID SEARCH, SORT) result,
// such as "2 3 6", into numbers. Several datums (several SEARCH responses)
// are concatenated in order. A trailing "(MODSEQ n)" (RFC 7162) is
// accepted and ignored; use ParseSearchModSeq to get it.
func ParseSearch(data []Datum) ([]uint32, error) {
	nums, _, err := ParseSearchModSeq(data)
	return nums, err
}

// ParseSearchModSeq is ParseSearch that also returns the highest
// mod-sequence of the "(MODSEQ n)" that ends a SEARCH response under
// CONDSTORE, or 0 when there is none.
func ParseSearchModSeq(data []Datum) (nums []uint32, modSeq uint64, err error) {
	size := 0
	for _, d := range data {
		if len(d.Text) > 0 {
			size += bytes.Count(d.Text, []byte{' '}) + 1
		}
	}
	if size > 0 {
		nums = make([]uint32, 0, size)
	}
	var s scanner
	for rest := data; len(rest) > 0; {
		resp, r, complete := nextResponse(rest)
		rest = r
		if !complete {
			return nil, 0, &ParseError{Type: "SEARCH", Offset: -1, Msg: "unexpected literal"}
		}
		s.reset(resp)
		for {
			s.skipSP()
			if s.atEnd() {
				break
			}
			if s.peek() == '(' {
				if err := s.searchModSeq(&modSeq); err != nil {
					return nil, 0, withContext(err, "SEARCH", 0, "")
				}
				if err := s.expectEnd(); err != nil {
					return nil, 0, withContext(err, "SEARCH", 0, "")
				}
				break
			}
			n, err := s.number32()
			if err == nil && n == 0 {
				err = s.errorf("number 0")
			}
			if err != nil {
				return nil, 0, withContext(err, "SEARCH", 0, "")
			}
			nums = append(nums, n)
		}
	}
	return nums, modSeq, nil
}

// searchModSeq parses "(MODSEQ n)".
func (s *scanner) searchModSeq(dst *uint64) error {
	if err := s.open(); err != nil {
		return err
	}
	s.skipSP()
	if !eqFold(s.atom(), "MODSEQ") {
		return s.unexpected("MODSEQ")
	}
	s.skipSP()
	n, err := s.number()
	if err != nil {
		return err
	}
	if !s.close() {
		return s.unexpected(`")"`)
	}
	*dst = n
	return nil
}

// ESearch is the typed form of an ESEARCH response (RFC 4731, RFC 9051).
// Fields the server did not return are zero.
type ESearch struct {
	Tag    string   // the tag of the command the response answers
	UID    bool     // whether the numbers are UIDs
	Min    uint32   // MIN
	Max    uint32   // MAX
	Count  uint32   // COUNT
	All    []uint32 // ALL, expanded
	ModSeq uint64   // MODSEQ (RFC 7162)
}

// ParseESearch parses the data of an ESEARCH result, such as
// `(TAG "A282") UID MIN 2 COUNT 3 ALL 2,10:11`. Return items it does not
// know are skipped. Data normally holds one response; when it holds
// several, their ALL sets are concatenated and the other fields come from
// the last response that has them. Empty data gives an empty result.
func ParseESearch(data []Datum) (*ESearch, error) {
	es := new(ESearch)
	var s scanner
	for resp, complete := range parsedResponses(data) {
		s.reset(resp)
		if err := s.esearch(es); err != nil {
			return nil, withContext(err, "ESEARCH", 0, "")
		}
		if !complete {
			return nil, &ParseError{Type: "ESEARCH", Offset: -1, Msg: "data ends in a literal"}
		}
	}
	return es, nil
}

func (s *scanner) esearch(es *ESearch) error {
	s.skipSP()
	if s.peek() == '(' {
		// search-correlator: (TAG tag-string)
		if err := s.open(); err != nil {
			return err
		}
		s.skipSP()
		if !eqFold(s.atom(), "TAG") {
			return s.unexpected("TAG")
		}
		s.skipSP()
		raw, esc, err := s.astring()
		if err != nil {
			return err
		}
		if esc {
			es.Tag = s.arena.unescape(raw)
		} else {
			es.Tag = s.arena.str(raw)
		}
		if !s.close() {
			return s.unexpected(`")"`)
		}
	}
	for {
		s.skipSP()
		if s.atEnd() {
			return nil
		}
		name := s.atom()
		if len(name) == 0 {
			return s.unexpected("search return item")
		}
		if eqFold(name, "UID") {
			es.UID = true
			continue
		}
		s.skipSP()
		var err error
		switch {
		case eqFold(name, "MIN"):
			es.Min, err = s.number32()
		case eqFold(name, "MAX"):
			es.Max, err = s.number32()
		case eqFold(name, "COUNT"):
			es.Count, err = s.number32()
		case eqFold(name, "MODSEQ"):
			es.ModSeq, err = s.number()
		case eqFold(name, "ALL"):
			set := s.atom()
			var nums []uint32
			if nums, err = parseSequenceSet(set); err != nil {
				s.pos -= len(set)
				err = s.errorf("ALL: %v", err)
			}
			es.All = append(es.All, nums...)
		default:
			err = s.skipValue()
		}
		if err != nil {
			return err
		}
	}
}

// maxSequenceSet bounds the numbers ParseSequenceSet expands a set into.
const maxSequenceSet = 10_000_000

// ParseSequenceSet expands a sequence set such as "1:3,7,9:11" into the
// numbers it names, in the order written; a range may be written high to
// low ("5:3" is 3, 4, 5). "*" is not allowed (it has no value without a
// mailbox), nor is 0. A set naming more than 10,000,000 numbers is refused
// before anything is allocated.
func ParseSequenceSet(set string) ([]uint32, error) {
	nums, err := parseSequenceSet(set)
	if err != nil {
		return nil, errors.New("imap: parse sequence set " + quoteForError(set) + ": " + err.Error())
	}
	return nums, nil
}

func parseSequenceSet[T string | []byte](set T) ([]uint32, error) {
	if len(set) == 0 {
		return nil, errors.New("empty")
	}
	// First pass: validate and count.
	total := 0
	if err := walkSequenceSet(set, func(lo, hi uint32) bool {
		total += int(hi - lo + 1)
		return total <= maxSequenceSet
	}); err != nil {
		return nil, err
	}
	if total > maxSequenceSet {
		return nil, errors.New("more than " + strconv.Itoa(maxSequenceSet) + " numbers")
	}
	nums := make([]uint32, 0, total)
	walkSequenceSet(set, func(lo, hi uint32) bool {
		for n := lo; ; n++ {
			nums = append(nums, n)
			if n == hi {
				return true
			}
		}
	})
	return nums, nil
}

// walkSequenceSet calls fn for each element of set as a range lo <= hi,
// until fn returns false.
func walkSequenceSet[T string | []byte](set T, fn func(lo, hi uint32) bool) error {
	for i := 0; i < len(set); {
		lo, j, err := seqNumber(set, i)
		if err != nil {
			return err
		}
		hi := lo
		if j < len(set) && set[j] == ':' {
			if hi, j, err = seqNumber(set, j+1); err != nil {
				return err
			}
			if hi < lo {
				lo, hi = hi, lo
			}
		}
		if j < len(set) {
			if set[j] != ',' || j == len(set)-1 {
				return errors.New("unexpected " + strconv.QuoteRune(rune(set[j])) + " at offset " + strconv.Itoa(j))
			}
			j++
		}
		i = j
		if !fn(lo, hi) {
			return nil
		}
	}
	return nil
}

// seqNumber parses a non-zero 32-bit number at set[i:].
func seqNumber[T string | []byte](set T, i int) (uint32, int, error) {
	start := i
	var n uint64
	for i < len(set) && isDigit(set[i]) {
		n = n*10 + uint64(set[i]-'0')
		if n > math.MaxUint32 {
			return 0, i, errors.New("number out of range at offset " + strconv.Itoa(start))
		}
		i++
	}
	switch {
	case i < len(set) && set[i] == '*':
		return 0, i, errors.New(`"*" not allowed at offset ` + strconv.Itoa(i))
	case i == start && i < len(set):
		return 0, i, errors.New("unexpected " + strconv.QuoteRune(rune(set[i])) + " at offset " + strconv.Itoa(i))
	case i == start:
		return 0, i, errors.New("missing number at end")
	case n == 0:
		return 0, i, errors.New("number 0 at offset " + strconv.Itoa(start))
	}
	return uint32(n), i, nil
}

// FormatSequenceSet returns the shortest sequence set naming nums, with
// runs of consecutive numbers written as ranges: [1 2 3 7 9 10] gives
// "1:3,7,9:10". Order and duplicates in nums do not matter; 0, which is
// not a valid message number, is skipped. It returns "" for no numbers.
func FormatSequenceSet(nums []uint32) string {
	return string(AppendSequenceSet(nil, nums))
}

// AppendSequenceSet appends the sequence set of FormatSequenceSet to dst,
// for building command lines without extra copies.
func AppendSequenceSet(dst []byte, nums []uint32) []byte {
	if !slices.IsSorted(nums) {
		nums = slices.Clone(nums)
		slices.Sort(nums)
	}
	first := true
	for i := 0; i < len(nums); {
		lo := nums[i]
		hi := lo
		i++
		for i < len(nums) && (nums[i] == hi || (hi < math.MaxUint32 && nums[i] == hi+1)) {
			hi = nums[i]
			i++
		}
		if lo == 0 {
			if hi == 0 {
				continue
			}
			lo = 1
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = strconv.AppendUint(dst, uint64(lo), 10)
		if hi != lo {
			dst = append(dst, ':')
			dst = strconv.AppendUint(dst, uint64(hi), 10)
		}
	}
	return dst
}
