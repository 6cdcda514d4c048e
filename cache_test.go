package imap

import (
	"reflect"
	"testing"
)

// fillCache returns a cache holding a little of everything: order across
// types, a type seen twice, nil and empty slices, literals, a response
// without data.
func fillCache() *cache {
	k := &cache{}
	k.addResponse(Response{Type: "FLAGS", Data: []Datum{{Text: []byte(`(\Seen)`)}}})
	k.addResponse(Response{Type: "OK", Data: []Datum{{Text: []byte("[UNSEEN 3] x")}, {Text: []byte{}}}})
	k.addResponse(Response{Type: "EMPTY"})
	k.add("X-LIT", Datum{Text: []byte("1 (BODY[] {3}"), Literal: []byte("abc")}, true)
	k.add("X-LIT", Datum{Text: []byte(")"), Literal: []byte{}}, true)
	k.add("X-LIT", Datum{}, false)
	k.addResponse(Response{Type: "EXISTS", Data: []Datum{{Text: []byte("10000")}}})
	k.addResponse(Response{Type: "FLAGS", Data: []Datum{{Text: []byte(`(\Draft)`)}}})
	return k
}

// TestCacheFreeze checks that the frozen form gives back exactly what went
// in: order, nil and empty slices, literals, types without data.
func TestCacheFreeze(t *testing.T) {
	want := fillCache().takeAll()
	if len(want) != 6 || want[3].Type != "X-LIT" || len(want[3].Data) != 3 || want[2].Data != nil {
		t.Fatalf("takeAll = %q", want)
	}
	for _, typ := range []string{"FLAGS", "OK", "EMPTY", "X-LIT", "EXISTS", "NONE"} {
		k := fillCache()
		if !k.freeze() || k.live != nil {
			t.Fatal("not frozen")
		}
		got, ok := k.get(typ)
		w, wok := fillCache().get(typ)
		if ok != wok || !reflect.DeepEqual(got, w) {
			t.Fatalf("get %s = %q %v, want %q %v", typ, got, ok, w, wok)
		}
		if got := k.pop(typ); !reflect.DeepEqual(got, w) {
			t.Fatalf("pop %s = %q, want %q", typ, got, w)
		}
		if k.has(typ) {
			t.Fatalf("%s still there", typ)
		}
		rest := fillCache()
		rest.drop(typ)
		if got, want := k.takeAll(), rest.takeAll(); !reflect.DeepEqual(got, want) {
			t.Fatalf("after pop %s: %q, want %q", typ, got, want)
		}
	}
	k := fillCache()
	for range freezeMaxData {
		k.addResponse(Response{Type: "EXISTS", Data: []Datum{{Text: []byte("1")}}})
	}
	if k.freeze() {
		t.Fatal("froze a large cache")
	}
	// Appending to a response handed out must not overwrite the next one.
	k = fillCache()
	k.freeze()
	all := k.takeAll()
	all[0].Data = append(all[0].Data, Datum{Text: []byte("new")})
	if string(all[1].Data[0].Text) != "[UNSEEN 3] x" {
		t.Fatalf("append to FLAGS changed OK: %q", all[1].Data)
	}
}

// TestCacheBound checks which data the bounds drop: the oldest half of
// the type holding the most (data, or bytes), whole responses, with the
// counts kept right.
func TestCacheBound(t *testing.T) {
	text := func(s string) Datum { return Datum{Text: []byte(s)} }
	for _, tt := range []struct {
		name      string
		fill      func(k *cache)
		maxData   int
		maxBytes  int
		dropped   int
		remaining []string // types of the responses left, in order
	}{
		{name: "data: largest type", maxData: 4, maxBytes: 1 << 20, dropped: 2,
			fill: func(k *cache) {
				k.addResponse(Response{Type: "FLAGS", Data: []Datum{text("()")}})
				for range 4 {
					k.addResponse(Response{Type: "EXISTS", Data: []Datum{text("1")}})
				}
			},
			remaining: []string{"FLAGS", "EXISTS", "EXISTS"}},
		{name: "bytes: largest type, not the most data", maxData: 100, maxBytes: 3*datumOverhead + 2000, dropped: 1,
			fill: func(k *cache) {
				k.addResponse(Response{Type: "EXISTS", Data: []Datum{text("1")}})
				k.addResponse(Response{Type: "EXISTS", Data: []Datum{text("2")}})
				k.addResponse(Response{Type: "OK", Data: []Datum{text(string(make([]byte, 1000)))}})
				k.addResponse(Response{Type: "OK", Data: []Datum{text(string(make([]byte, 1000)))}})
			},
			remaining: []string{"EXISTS", "EXISTS", "OK"}},
		{name: "whole responses", maxData: 4, maxBytes: 1 << 20, dropped: 4,
			fill: func(k *cache) {
				k.add("FETCH", Datum{Text: []byte("1 (BODY[] {1}"), Literal: []byte("a")}, true)
				k.add("FETCH", text(")"), false)
				k.add("FETCH", Datum{Text: []byte("2 (BODY[] {1}"), Literal: []byte("b")}, true)
				k.add("FETCH", text(")"), false)
				k.add("FETCH", text("3 (FLAGS ())"), false)
			},
			remaining: []string{"FETCH"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &cache{}
			tt.fill(k)
			n, _ := k.bound(tt.maxData, tt.maxBytes)
			if n != tt.dropped {
				t.Fatalf("dropped %d, want %d", n, tt.dropped)
			}
			var types []string
			data, bytes := 0, 0
			for _, r := range k.takeAll() {
				types = append(types, r.Type)
				for i := range r.Data {
					data++
					bytes += cost(&r.Data[i])
				}
			}
			if !reflect.DeepEqual(types, tt.remaining) {
				t.Fatalf("left %q, want %q", types, tt.remaining)
			}
			if data > tt.maxData || bytes > tt.maxBytes {
				t.Fatalf("left %d data, %d bytes", data, bytes)
			}
		})
	}
}
