package imap

// cache is imaplib's untagged_responses: data by response type, in arrival
// order within a type. It is a small slice rather than a map, because a
// client usually holds a handful of types and thousands of idle clients
// should stay small; the number of types is bounded so that a hostile
// server inventing names cannot make lookups slow.
type cache struct {
	entries []cacheEntry
	count   int // data held, for Options.MaxCached
	evicted int // data dropped with the oldest type, for Client.Dropped
}

type cacheEntry struct {
	typ  string
	data []Datum
}

// maxCacheTypes bounds the distinct types held; past it the oldest type is
// dropped.
const maxCacheTypes = 256

func (k *cache) index(typ string) int {
	for i := range k.entries {
		if k.entries[i].typ == typ {
			return i
		}
	}
	return -1
}

// get returns the data of typ, nil when absent; ok says whether typ is
// present (possibly with no data).
func (k *cache) get(typ string) (data []Datum, ok bool) {
	if i := k.index(typ); i >= 0 {
		return k.entries[i].data, true
	}
	return nil, false
}

// list returns a pointer to typ's data, creating the entry.
func (k *cache) list(typ string) *[]Datum {
	if i := k.index(typ); i >= 0 {
		return &k.entries[i].data
	}
	if len(k.entries) >= maxCacheTypes {
		// Fix (limits): count what is evicted, as Dropped promises.
		k.evicted += len(k.entries[0].data)
		k.count -= len(k.entries[0].data)
		k.entries = append(k.entries[:0], k.entries[1:]...)
	}
	k.entries = append(k.entries, cacheEntry{typ: typ})
	return &k.entries[len(k.entries)-1].data
}

// pop removes typ and returns its data (nil when absent).
func (k *cache) pop(typ string) []Datum {
	i := k.index(typ)
	if i < 0 {
		return nil
	}
	data := k.entries[i].data
	k.count -= len(data)
	k.entries = append(k.entries[:i], k.entries[i+1:]...)
	if len(k.entries) == 0 {
		k.entries = nil
	}
	return data
}

func (k *cache) clear() {
	k.entries = nil
	k.count = 0
}
