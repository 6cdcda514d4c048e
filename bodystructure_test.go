package imap

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// parseBody parses one BODYSTRUCTURE value in wire form.
func parseBody(t *testing.T, value string) (*BodyStructure, error) {
	t.Helper()
	m, err := ParseFetchResponse(Response{Type: "FETCH", Data: frame("* 1 FETCH (BODYSTRUCTURE " + value + ")\r\n")})
	if err != nil {
		return nil, err
	}
	return m.BodyStructure, nil
}

func TestBodyStructure(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  *BodyStructure
	}{
		{
			name:  "rfc 3501 text/plain",
			value: `("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)`,
			want: &BodyStructure{Type: "text", Subtype: "plain", Params: []Param{{"charset", "US-ASCII"}},
				Encoding: "7bit", Size: 3028, Lines: 92},
		},
		{
			name:  "rfc 3501 multipart",
			value: `(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 1152 23)("TEXT" "PLAIN" ("CHARSET" "US-ASCII" "NAME" "cc.diff") "<960723163407.20117h@cac.washington.edu>" "Compiler diff" "BASE64" 4554 73) "MIXED")`,
			want: &BodyStructure{Type: "multipart", Subtype: "mixed", Parts: []*BodyStructure{
				{Type: "text", Subtype: "plain", Params: []Param{{"charset", "US-ASCII"}}, Encoding: "7bit", Size: 1152, Lines: 23},
				{Type: "text", Subtype: "plain", Params: []Param{{"charset", "US-ASCII"}, {"name", "cc.diff"}},
					ID: "<960723163407.20117h@cac.washington.edu>", Description: "Compiler diff", Encoding: "base64", Size: 4554, Lines: 73},
			}},
		},
		{
			name:  "NIL everywhere",
			value: `(NIL NIL NIL NIL NIL NIL 0)`,
			want:  &BodyStructure{},
		},
		{
			name:  "extension data with unknown extensions",
			value: `("application" "x-Thing" NIL NIL NIL "X-Custom" 10 "md5sum" ("INLINE" ("FILENAME" {5}` + "\r\na b.c" + `)) "EN" NIL 12 ("x" ("y" 1)))`,
			want: &BodyStructure{Type: "application", Subtype: "x-thing", Encoding: "x-custom", Size: 10, Extended: true,
				MD5: "md5sum", Disposition: "inline", DispositionParams: []Param{{"filename", "a b.c"}}, Language: []string{"EN"}},
		},
		{
			name:  "multipart extension with language list and location",
			value: `(("text" "plain" NIL NIL NIL "7bit" 1 1) "related" ("type" "text/html" "boundary" "x") ("inline" NIL) ("en" "fr") "http://e.x/" "future")`,
			want: &BodyStructure{Type: "multipart", Subtype: "related", Extended: true,
				Params:      []Param{{"type", "text/html"}, {"boundary", "x"}},
				Disposition: "inline", Language: []string{"en", "fr"}, Location: "http://e.x/",
				Parts: []*BodyStructure{{Type: "text", Subtype: "plain", Encoding: "7bit", Size: 1, Lines: 1}}},
		},
		{
			name:  "message/rfc822 without envelope (lenient)",
			value: `("message" "rfc822" NIL NIL NIL "7bit" 100)`,
			want:  &BodyStructure{Type: "message", Subtype: "rfc822", Encoding: "7bit", Size: 100},
		},
		{
			name:  "message/global",
			value: `("message" "global" NIL NIL NIL "8bit" 100 (NIL "s" NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" NIL NIL NIL "8bit" 5 1) 3)`,
			want: &BodyStructure{Type: "message", Subtype: "global", Encoding: "8bit", Size: 100, Lines: 3,
				Envelope: &Envelope{Subject: "s"},
				Body:     &BodyStructure{Type: "text", Subtype: "plain", Encoding: "8bit", Size: 5, Lines: 1}},
		},
		{
			name:  "disposition as a bare string (lenient)",
			value: `("image" "png" NIL NIL NIL "base64" 10 NIL "attachment" NIL NIL)`,
			want:  &BodyStructure{Type: "image", Subtype: "png", Encoding: "base64", Size: 10, Extended: true, Disposition: "attachment"},
		},
		{
			name:  "parts separated by spaces (lenient)",
			value: `( ("text" "plain" NIL NIL NIL "7bit" 1 1) ("text" "html" NIL NIL NIL "7bit" 1 1) "alternative")`,
			want: &BodyStructure{Type: "multipart", Subtype: "alternative", Parts: []*BodyStructure{
				{Type: "text", Subtype: "plain", Encoding: "7bit", Size: 1, Lines: 1},
				{Type: "text", Subtype: "html", Encoding: "7bit", Size: 1, Lines: 1}}},
		},
		{
			name:  "escaped parameter",
			value: `("text" "plain" ("NAME" "a\"b") NIL NIL "7bit" 1 1)`,
			want:  &BodyStructure{Type: "text", Subtype: "plain", Params: []Param{{"name", `a"b`}}, Encoding: "7bit", Size: 1, Lines: 1},
		},
	}
	for _, tt := range tests {
		got, err := parseBody(t, tt.value)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, dump(got), dump(tt.want))
		}
	}
}

func TestBodyStructureErrors(t *testing.T) {
	tests := []struct {
		value, want string
	}{
		{`NIL`, `BODYSTRUCTURE: expected "("`},
		{`("text")`, `expected string or NIL, found ')'`},
		{`("text" "plain" NIL NIL NIL "7bit" big)`, `expected number, found 'b'`},
		{`("text" "plain" ("a" "b" "c") NIL NIL "7bit" 1 1)`, `expected string or NIL, found ')'`},
		{`("text" "plain" NIL NIL NIL "7bit" 1 1 NIL ("inline" NIL NIL))`, `expected ")" after disposition`},
		{`("text" "plain" NIL NIL NIL "7bit" 1 1 NIL NIL ("en" 1))`, `expected string or NIL, found '1'`},
		{`(("text" "plain" NIL NIL NIL "7bit" 1 1) "mixed" ("boundary"))`, `expected string or NIL, found ')'`},
		{`(("text" "plain" NIL NIL NIL "7bit" 1 1)`, `found end of data`},
		{`("message" "rfc822" NIL NIL NIL "7bit" 1 (NIL) ("text" "plain" NIL NIL NIL "7bit" 1 1) 1)`, `expected string or NIL, found ')'`},
	}
	for _, tt := range tests {
		_, err := parseBody(t, tt.value)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("BODYSTRUCTURE %s: err = %v, want %q", tt.value, err, tt.want)
		}
	}
}

func TestBodyStructureWalk(t *testing.T) {
	tests := []struct {
		value string
		want  []string
	}{
		{`("text" "plain" NIL NIL NIL "7bit" 1 1)`, []string{"1 text/plain"}},
		{`(("text" "plain" NIL NIL NIL "7bit" 1 1)(("text" "plain" NIL NIL NIL "7bit" 1 1)("image" "gif" NIL NIL NIL "base64" 1) "related") "mixed")`,
			[]string{" multipart/mixed", "1 text/plain", "2 multipart/related", "2.1 text/plain", "2.2 image/gif"}},
		{`(("text" "plain" NIL NIL NIL "7bit" 1 1)("message" "rfc822" NIL NIL NIL "7bit" 1 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" NIL NIL NIL "7bit" 1 1) 1) "mixed")`,
			[]string{" multipart/mixed", "1 text/plain", "2 message/rfc822", "2.1 text/plain"}},
		{`("message" "rfc822" NIL NIL NIL "7bit" 1 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (("text" "plain" NIL NIL NIL "7bit" 1 1)("text" "html" NIL NIL NIL "7bit" 1 1) "alternative") 1)`,
			[]string{"1 message/rfc822", "1 multipart/alternative", "1.1 text/plain", "1.2 text/html"}},
	}
	for _, tt := range tests {
		b, err := parseBody(t, tt.value)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		b.Walk(func(part string, b *BodyStructure) bool {
			got = append(got, part+" "+b.MediaType())
			return true
		})
		if !slices.Equal(got, tt.want) {
			t.Errorf("Walk(%s) = %q, want %q", tt.value, got, tt.want)
		}
	}
	// Returning false prunes.
	b, _ := parseBody(t, tests[1].value)
	var got []string
	b.Walk(func(part string, b *BodyStructure) bool {
		got = append(got, part)
		return !b.IsMultipart() || part == ""
	})
	if want := []string{"", "1", "2"}; !slices.Equal(got, want) {
		t.Errorf("pruned Walk = %q, want %q", got, want)
	}
}

func TestBodyStructureHelpers(t *testing.T) {
	b := &BodyStructure{Type: "application", Subtype: "pdf", Params: []Param{{"name", "n.pdf"}, {"charset", "x"}}}
	tests := []struct {
		got, want string
	}{
		{b.Param("CHARSET"), "x"},
		{b.Param("missing"), ""},
		{b.Filename(), "n.pdf"},
		{b.MediaType(), "application/pdf"},
		{fmt.Sprint(b.IsMultipart()), "false"},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %q, want %q", i, tt.got, tt.want)
		}
	}
	b.DispositionParams = []Param{{"filename", "d.pdf"}}
	if got := b.Filename(); got != "d.pdf" {
		t.Errorf("Filename = %q, want the disposition's", got)
	}
}
