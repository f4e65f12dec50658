package tile

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
)

// Dict assigns dense ids 0..Len()-1 to distinct keys, hashing each key once so
// that the sweeps downstream work on small integers whatever the key type.
type Dict struct {
	String bool
	ints   *intTable
	strs   map[string]int32
	intOf  []int64 // id -> key
	strOf  []string
}

// NewDict returns an empty dictionary for int (str false) or string keys.
func NewDict(str bool) *Dict {
	d := &Dict{String: str}
	if str {
		d.strs = make(map[string]int32)
	} else {
		d.ints = newIntTable(0)
	}
	return d
}

// Len returns the number of distinct keys.
func (d *Dict) Len() int {
	if d.String {
		return len(d.strOf)
	}
	return len(d.intOf)
}

// AddAll adds every key of k and returns the id of each row, appended to ids.
// New keys get ids in order of first appearance in k; keys of the other
// type than d's get -1. Large inputs are split
// over the cores: each part numbers its own keys in a private table, then the
// parts' distinct keys are merged into d in part order (which keeps the
// first-appearance order) and every row's local id is mapped to d's.
func (d *Dict) AddAll(k *Keys, ids []int32) []int32 {
	n := k.Len()
	base := len(ids)
	ids = slices.Grow(ids, n)[:base+n]
	out := ids[base:]
	if k.String != d.String { // keys of the other type cannot be added
		for i := range out {
			out[i] = -1
		}
		return ids
	}
	parts := min(runtime.GOMAXPROCS(0), n/minAddPerPart)
	if parts <= 1 {
		d.addRange(k, 0, n, out)
		return ids
	}
	locals := make([]*Dict, parts)
	var wg sync.WaitGroup
	for q := range parts {
		lo, hi := n*q/parts, n*(q+1)/parts
		locals[q] = NewDict(d.String)
		if !d.String {
			locals[q].ints = newIntTable(min(hi-lo, 1<<16))
		}
		wg.Go(func() { locals[q].addRange(k, lo, hi, out[lo:hi]) })
	}
	wg.Wait()
	if !d.String {
		most := 0
		for _, l := range locals {
			most = max(most, l.Len())
		}
		d.ints.reserve(d.Len() + most)
	}
	maps := make([][]int32, parts) // local id -> id in d
	for q, l := range locals {
		m := make([]int32, l.Len())
		if d.String {
			d.strOf = slices.Grow(d.strOf, l.Len())
			for i, s := range l.strOf {
				m[i] = d.addStr(s)
			}
		} else {
			d.intOf = slices.Grow(d.intOf, l.Len())
			for i, x := range l.intOf {
				m[i] = d.addInt(x)
			}
		}
		maps[q] = m
	}
	for q := range parts {
		lo, hi := n*q/parts, n*(q+1)/parts
		m := maps[q]
		wg.Go(func() {
			for i, id := range out[lo:hi] {
				out[lo+i] = m[id]
			}
		})
	}
	wg.Wait()
	return ids
}

// minAddPerPart is the least number of rows AddAll gives one core: below it,
// merging the parts costs more than the parallel hashing saves.
const minAddPerPart = 1 << 17

// addRange adds the keys of rows [lo, hi) of k, writing their ids to out.
func (d *Dict) addRange(k *Keys, lo, hi int, out []int32) {
	if d.String {
		for i, s := range k.Str[lo:hi] {
			out[i] = d.addStr(s)
		}
		return
	}
	for i, x := range k.Int[lo:hi] {
		out[i] = d.addInt(x)
	}
}

func (d *Dict) addStr(s string) int32 {
	id, ok := d.strs[s]
	if !ok {
		id = int32(len(d.strOf))
		d.strs[s] = id
		d.strOf = append(d.strOf, s)
	}
	return id
}

func (d *Dict) addInt(x int64) int32 {
	id, added := d.ints.put(x, int32(len(d.intOf)))
	if added {
		d.intOf = append(d.intOf, x)
	}
	return id
}

// LookupAll appends the id of each key of k to ids, -1 for keys not in d.
// Keys of the other type than d's are all unknown. Large inputs are looked up
// by several goroutines (map reads are safe to share).
func (d *Dict) LookupAll(k *Keys, ids []int32) []int32 {
	n := k.Len()
	base := len(ids)
	ids = slices.Grow(ids, n)[:base+n]
	out := ids[base:]
	if k.String != d.String {
		for i := range out {
			out[i] = -1
		}
		return ids
	}
	parallel(n, 1<<16, func(lo, hi int) {
		if d.String {
			for i, s := range k.Str[lo:hi] {
				id, ok := d.strs[s]
				if !ok {
					id = -1
				}
				out[lo+i] = id
			}
			return
		}
		for i, x := range k.Int[lo:hi] {
			out[lo+i] = d.ints.get(x)
		}
	})
	return ids
}

// parallel calls f on consecutive ranges [lo, hi) of [0, n), one per
// available core when n is at least minPer per core, else once.
func parallel(n, minPer int, f func(lo, hi int)) {
	p := min(runtime.GOMAXPROCS(0), n/minPer)
	if p <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range p {
		lo, hi := n*w/p, n*(w+1)/p
		wg.Go(func() { f(lo, hi) })
	}
	wg.Wait()
}

// IntKey and StrKey return the key with id.
func (d *Dict) IntKey(id int32) int64 { return d.intOf[id] }

// StrKey returns the string key with id.
func (d *Dict) StrKey(id int32) string { return d.strOf[id] }

// Ranks returns, for each id, its rank in key order: ids renumbered by
// Ranks give key-sorted output.
func (d *Dict) Ranks() []int32 {
	n := d.Len()
	byKey := make([]int32, n)
	for i := range byKey {
		byKey[i] = int32(i)
	}
	if d.String {
		slices.SortFunc(byKey, func(a, b int32) int { return cmp.Compare(d.strOf[a], d.strOf[b]) })
	} else {
		slices.SortFunc(byKey, func(a, b int32) int { return cmp.Compare(d.intOf[a], d.intOf[b]) })
	}
	rank := make([]int32, n)
	for r, id := range byKey {
		rank[id] = int32(r)
	}
	return rank
}

// GroupBy orders rows by id with a counting sort: rows of id g are
// order[offsets[g]:offsets[g+1]], in their original order. Rows with id < 0
// are left out.
func GroupBy(ids []int32, n int) (order []int32, offsets []int32) {
	offsets = make([]int32, n+1)
	for _, id := range ids {
		if id >= 0 {
			offsets[id+1]++
		}
	}
	for g := range n {
		offsets[g+1] += offsets[g]
	}
	order = make([]int32, offsets[n])
	pos := slices.Clone(offsets[:n])
	for row, id := range ids {
		if id >= 0 {
			order[pos[id]] = int32(row)
			pos[id]++
		}
	}
	return order, offsets
}
