package tile

// intTable maps int64 keys to dense ids with open addressing and linear
// probing: one multiply to hash, no per-entry allocation, and probes that
// stay in one cache line far more often than a general map's. It is the
// hottest structure of a query (every raw event and tile looks up its key).
type intTable struct {
	keys  []int64
	ids   []int32 // id+1; 0 marks an empty slot
	shift uint
	n     int
}

func newIntTable(hint int) *intTable {
	t := &intTable{}
	t.init(max(16, hint*2))
	return t
}

func (t *intTable) init(capacity int) {
	size, shift := 1, uint(64)
	for size < capacity {
		size <<= 1
		shift--
	}
	t.keys = make([]int64, size)
	t.ids = make([]int32, size)
	t.shift = shift
	t.n = 0
}

func (t *intTable) slot(k int64) uint64 {
	return (uint64(k) * 0x9E3779B97F4A7C15) >> t.shift
}

// get returns the id of k, or -1.
func (t *intTable) get(k int64) int32 {
	mask := uint64(len(t.keys) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		id := t.ids[i]
		if id == 0 {
			return -1
		}
		if t.keys[i] == k {
			return id - 1
		}
	}
}

// put returns the id of k, giving it next when absent (added reports which).
func (t *intTable) put(k int64, next int32) (id int32, added bool) {
	if 2*(t.n+1) > len(t.keys) {
		t.grow()
	}
	mask := uint64(len(t.keys) - 1)
	for i := t.slot(k); ; i = (i + 1) & mask {
		id := t.ids[i]
		if id == 0 {
			t.keys[i], t.ids[i] = k, next+1
			t.n++
			return next, true
		}
		if t.keys[i] == k {
			return id - 1, false
		}
	}
}

func (t *intTable) grow() { t.rehash(2 * len(t.keys)) }

// reserve makes room for n keys in all, so that adding up to n keys
// rehashes no more.
func (t *intTable) reserve(n int) {
	if 2*n > len(t.keys) {
		t.rehash(2 * n)
	}
}

// rehash moves every entry into a table of at least capacity slots.
func (t *intTable) rehash(capacity int) {
	keys, ids := t.keys, t.ids
	t.init(capacity)
	mask := uint64(len(t.keys) - 1)
	for j, id := range ids {
		if id == 0 {
			continue
		}
		k := keys[j]
		i := t.slot(k)
		for t.ids[i] != 0 {
			i = (i + 1) & mask
		}
		t.keys[i], t.ids[i] = k, id
		t.n++
	}
}
