package imap

import (
	"reflect"
	"testing"
)

// TestCacheFreeze checks that the frozen form gives back exactly what went
// in: order, nil and empty slices, literals, types without data.
func TestCacheFreeze(t *testing.T) {
	fill := func() *cache {
		k := &cache{}
		add := func(typ string, data ...Datum) {
			l := k.list(typ)
			*l = append(*l, data...)
			k.count += len(data)
		}
		add("FLAGS", Datum{Text: []byte(`(\Seen)`)})
		add("OK", Datum{Text: []byte("[UNSEEN 3] x")}, Datum{Text: []byte{}})
		add("EMPTY")
		add("X-LIT", Datum{Text: []byte("1 (BODY[] {3}"), Literal: []byte("abc")},
			Datum{Text: []byte(")"), Literal: []byte{}}, Datum{})
		add("EXISTS", Datum{Text: []byte("10000")})
		return k
	}
	want := fill()
	for _, typ := range []string{"FLAGS", "OK", "EMPTY", "X-LIT", "EXISTS", "NONE"} {
		k := fill()
		if !k.freeze() || k.entries != nil {
			t.Fatal("not frozen")
		}
		got, ok := k.get(typ)
		w, wok := want.get(typ)
		if ok != wok || !reflect.DeepEqual(got, w) {
			t.Fatalf("get %s = %q %v, want %q %v", typ, got, ok, w, wok)
		}
		if got := k.pop(typ); !reflect.DeepEqual(got, w) {
			t.Fatalf("pop %s = %q, want %q", typ, got, w)
		}
		if k.frozen == nil && k.count != 0 {
			t.Fatalf("pop %s emptied a cache of %d", typ, k.count)
		}
		k.thaw()
		rest := fill()
		rest.pop(typ)
		if !reflect.DeepEqual(k.entries, rest.entries) || k.count != rest.count {
			t.Fatalf("after pop %s: %+v (%d), want %+v (%d)", typ, k.entries, k.count, rest.entries, rest.count)
		}
		// Appending to a thawed list must not overwrite the next one.
		l := k.list("OK")
		*l = append(*l, Datum{Text: []byte("new")})
		if typ != "X-LIT" {
			if got, _ := k.get("X-LIT"); !reflect.DeepEqual(got, func() []Datum { d, _ := want.get("X-LIT"); return d }()) {
				t.Fatalf("append to OK changed X-LIT: %q", got)
			}
		}
	}
	k := fill()
	k.count = freezeMaxData + 1
	if k.freeze() {
		t.Fatal("froze a large cache")
	}
}
