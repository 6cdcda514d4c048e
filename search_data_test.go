package imap

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseSearch(t *testing.T) {
	tests := []struct {
		name   string
		data   []Datum
		want   []uint32
		modSeq uint64
	}{
		{"dovecot", frame("* SEARCH 1 2 3\r\n"), []uint32{1, 2, 3}, 0},
		{"empty result", frame("* SEARCH\r\n"), nil, 0},
		{"no data", nil, nil, 0},
		{"placeholder", []Datum{{}}, nil, 0},
		{"several responses", frame("* SEARCH 2 84 882\r\n* SEARCH 4294967295\r\n"), []uint32{2, 84, 882, 4294967295}, 0},
		{"dovecot modseq", frame("* SEARCH 1 2 3 (MODSEQ 4)\r\n"), []uint32{1, 2, 3}, 4},
		{"rfc 7162 example", frame("* SEARCH 2 5 6 7 11 12 18 19 20 23 (MODSEQ 917162500)\r\n"),
			[]uint32{2, 5, 6, 7, 11, 12, 18, 19, 20, 23}, 917162500},
		{"extra spaces", []Datum{{Text: []byte(" 1  2 ")}}, []uint32{1, 2}, 0},
	}
	for _, tt := range tests {
		got, modSeq, err := ParseSearchModSeq(tt.data)
		if err != nil || !slices.Equal(got, tt.want) || modSeq != tt.modSeq {
			t.Errorf("%s: ParseSearchModSeq = %v, %d, %v; want %v, %d", tt.name, got, modSeq, err, tt.want, tt.modSeq)
		}
		if got, err := ParseSearch(tt.data); err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: ParseSearch = %v, %v", tt.name, got, err)
		}
	}
}

func TestParseSearchErrors(t *testing.T) {
	tests := []struct {
		data []Datum
		want string
	}{
		{frame("* SEARCH 1 x\r\n"), `imap: parse SEARCH: expected number, found 'x' at offset 2`},
		{frame("* SEARCH 0\r\n"), `number 0`},
		{frame("* SEARCH 4294967296\r\n"), `out of range`},
		{frame("* SEARCH 1 (MODSEQ x)\r\n"), `expected number`},
		{frame("* SEARCH 1 (FOO 5)\r\n"), `expected MODSEQ`},
		{frame("* SEARCH 1 (MODSEQ 5) 7\r\n"), `expected end of response`},
		{frame("* SEARCH 1 {1}\r\n2\r\n"), `expected number`},
		{[]Datum{{Text: []byte("1 {1}"), Literal: []byte("2")}}, `unexpected literal`},
	}
	for _, tt := range tests {
		if got, err := ParseSearch(tt.data); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseSearch(%q) = %v, %v; want error %q", tt.data, got, err, tt.want)
		}
	}
}

func TestParseESearch(t *testing.T) {
	tests := []struct {
		name string
		data []Datum
		want *ESearch
	}{
		{"dovecot", frame("* ESEARCH (TAG \"k\") UID MIN 1 MAX 3 ALL 1:3 COUNT 3\r\n"),
			&ESearch{Tag: "k", UID: true, Min: 1, Max: 3, Count: 3, All: []uint32{1, 2, 3}}},
		{"rfc 4731 example", frame("* ESEARCH (TAG \"A285\") UID MIN 7 MAX 3800\r\n"),
			&ESearch{Tag: "A285", UID: true, Min: 7, Max: 3800}},
		{"all set", frame("* ESEARCH (TAG \"A284\") ALL 2,10:11\r\n"), &ESearch{Tag: "A284", All: []uint32{2, 10, 11}}},
		{"count only", frame("* ESEARCH (TAG \"A283\") COUNT 0\r\n"), &ESearch{Tag: "A283"}},
		{"nothing", frame("* ESEARCH (TAG \"A282\")\r\n"), &ESearch{Tag: "A282"}},
		{"no data", nil, &ESearch{}},
		{"no tag", frame("* ESEARCH UID COUNT 5\r\n"), &ESearch{UID: true, Count: 5}},
		{"modseq and unknown items", frame("* ESEARCH (TAG \"a\") MIN 1 RELEVANCY (4 99) MODSEQ 12345 PARTIAL (1:10 1,3)\r\n"),
			&ESearch{Tag: "a", Min: 1, ModSeq: 12345}},
		{"lower case, atom tag", frame("* ESEARCH (tag a1) uid all 5\r\n"), &ESearch{Tag: "a1", UID: true, All: []uint32{5}}},
		{"two responses", frame("* ESEARCH (TAG \"a\") ALL 1:2\r\n* ESEARCH (TAG \"a\") ALL 7 COUNT 3\r\n"),
			&ESearch{Tag: "a", All: []uint32{1, 2, 7}, Count: 3}},
	}
	for _, tt := range tests {
		got, err := ParseESearch(tt.data)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ParseESearch = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
	errTests := []struct {
		data []Datum
		want string
	}{
		{frame("* ESEARCH (TAG \"a\") ALL 1:*\r\n"), `ALL: "*" not allowed`},
		{frame("* ESEARCH (TAG \"a\") ALL 1:4294967295\r\n"), `ALL: more than 10000000 numbers`},
		{frame("* ESEARCH (TAG \"a\") MIN x\r\n"), `expected number`},
		{frame("* ESEARCH (FOO \"a\")\r\n"), `expected TAG`},
		{frame("* ESEARCH (TAG \"a\"\r\n"), `expected ")"`},
		{frame("* ESEARCH (TAG \"a\") COUNT\r\n"), `expected number, found end of data`},
	}
	for _, tt := range errTests {
		if _, err := ParseESearch(tt.data); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseESearch(%q): err = %v, want %q", tt.data, err, tt.want)
		}
	}
}

func TestParseSequenceSet(t *testing.T) {
	tests := []struct {
		in      string
		want    []uint32
		wantErr string
	}{
		{in: "1", want: []uint32{1}},
		{in: "1:3,7,9:11", want: []uint32{1, 2, 3, 7, 9, 10, 11}},
		{in: "5:3", want: []uint32{3, 4, 5}},
		{in: "4294967294:4294967295", want: []uint32{4294967294, 4294967295}},
		{in: "3,1,3", want: []uint32{3, 1, 3}},
		{in: "1:10000000", want: nil},
		{in: "1:3,7,9:*", wantErr: `"*" not allowed at offset 8`},
		{in: "*", wantErr: `"*" not allowed`},
		{in: "", wantErr: "empty"},
		{in: "0", wantErr: "number 0"},
		{in: "1:0", wantErr: "number 0"},
		{in: "1,", wantErr: "unexpected ','"},
		{in: ",1", wantErr: "unexpected ','"},
		{in: "1,,2", wantErr: "unexpected ','"},
		{in: "1:", wantErr: "missing number"},
		{in: "1:2:3", wantErr: "unexpected ':'"},
		{in: "a", wantErr: "unexpected 'a'"},
		{in: "1 2", wantErr: "unexpected ' '"},
		{in: "4294967296", wantErr: "out of range"},
		{in: "99999999999999999999999", wantErr: "out of range"},
		{in: "1:10000001", wantErr: "more than 10000000 numbers"},
		{in: "1:4294967295", wantErr: "more than 10000000 numbers"},
		{in: strings.Repeat("1:4000000,", 3) + "1", wantErr: "more than 10000000 numbers"},
	}
	for _, tt := range tests {
		got, err := ParseSequenceSet(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSequenceSet(%q) = %d numbers, %v; want error %q", tt.in, len(got), err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSequenceSet(%q): %v", tt.in, err)
			continue
		}
		if tt.want != nil && !slices.Equal(got, tt.want) {
			t.Errorf("ParseSequenceSet(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if tt.in == "1:10000000" && (len(got) != 10_000_000 || got[len(got)-1] != 10_000_000) {
			t.Errorf("ParseSequenceSet(%q) = %d numbers", tt.in, len(got))
		}
	}
}

func TestFormatSequenceSet(t *testing.T) {
	tests := []struct {
		in   []uint32
		want string
	}{
		{nil, ""},
		{[]uint32{0}, ""},
		{[]uint32{1}, "1"},
		{[]uint32{1, 2, 3, 7, 9, 10}, "1:3,7,9:10"},
		{[]uint32{10, 9, 7, 3, 2, 1}, "1:3,7,9:10"},
		{[]uint32{1, 1, 2, 2, 3}, "1:3"},
		{[]uint32{0, 0, 1, 2, 5}, "1:2,5"},
		{[]uint32{2, 4, 6}, "2,4,6"},
		{[]uint32{4294967294, 4294967295, 1}, "1,4294967294:4294967295"},
	}
	for _, tt := range tests {
		orig := slices.Clone(tt.in)
		if got := FormatSequenceSet(tt.in); got != tt.want {
			t.Errorf("FormatSequenceSet(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if !slices.Equal(orig, tt.in) {
			t.Errorf("FormatSequenceSet modified its argument: %v", tt.in)
		}
	}
	if got := string(AppendSequenceSet([]byte("UID FETCH "), []uint32{5, 6})); got != "UID FETCH 5:6" {
		t.Errorf("AppendSequenceSet = %q", got)
	}
	// Round trip.
	for _, set := range []string{"1:3,7,9:11", "1", "2,4,6:100,200"} {
		nums, err := ParseSequenceSet(set)
		if err != nil || FormatSequenceSet(nums) != set {
			t.Errorf("round trip of %q = %q, %v", set, FormatSequenceSet(nums), err)
		}
	}
}
