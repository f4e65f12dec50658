package offline

import (
	"slices"

	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// headSet is the head buckets of the spine rows, as (key id, bucket start)
// pairs: the bucket [floor(t), t) of each row off a bucket boundary, the
// only raw events materialized+align reads besides coverage gaps. It is an
// open-addressing hash set: a heavy key has thousands of head buckets, and
// events are checked in any order.
type headSet struct {
	g     tile.Grid
	slots []headSlot // id -1: empty
	mask  uint64
}

type headSlot struct {
	id    int32
	start int64
}

func newHeadSet(sp *spineIndex, g tile.Grid) *headSet {
	n := 0
	for _, t := range sp.times {
		if !g.OnBoundary(t) {
			n++
		}
	}
	size := 16
	for size < 2*n {
		size *= 2
	}
	h := &headSet{g: g, slots: make([]headSlot, size), mask: uint64(size - 1)}
	for i := range h.slots {
		h.slots[i].id = -1
	}
	nkeys := len(sp.off) - 1
	for k := range nkeys {
		for _, r := range sp.order[sp.off[k]:sp.off[k+1]] {
			if t := sp.times[r]; !g.OnBoundary(t) {
				h.add(int32(k), g.Floor(t))
			}
		}
	}
	return h
}

func (h *headSet) slot(id int32, start int64) uint64 {
	x := uint64(start)*0x9E3779B97F4A7C15 ^ uint64(uint32(id))*0xC2B2AE3D27D4EB4F
	return (x ^ x>>31) & h.mask
}

func (h *headSet) add(id int32, start int64) {
	for i := h.slot(id, start); ; i = (i + 1) & h.mask {
		s := &h.slots[i]
		if s.id < 0 {
			*s = headSlot{id, start}
			return
		}
		if s.id == id && s.start == start {
			return
		}
	}
}

func (h *headSet) has(id int32, start int64) bool {
	for i := h.slot(id, start); ; i = (i + 1) & h.mask {
		s := h.slots[i]
		if s.id < 0 {
			return false
		}
		if s.id == id && s.start == start {
			return true
		}
	}
}

// keep appends to rows the index of each event (key ids, times) that lies
// in a head bucket of its key or in one of gaps (sorted, disjoint).
func (h *headSet) keep(ids []int32, ts []int64, gaps []tilestore.Range, rows []int32) []int32 {
	for i, id := range ids {
		if id < 0 {
			continue
		}
		if len(gaps) > 0 {
			j, _ := slices.BinarySearchFunc(gaps, ts[i], func(r tilestore.Range, t int64) int {
				if r.To <= t {
					return -1
				}
				return 1
			})
			if j < len(gaps) && gaps[j].Contains(ts[i]) {
				rows = append(rows, int32(i))
				continue
			}
		}
		if h.has(id, h.g.Floor(ts[i])) {
			rows = append(rows, int32(i))
		}
	}
	return rows
}

// headEvents keeps the events that lie in the head bucket of some spine row
// of their key.
func headEvents(ev *tile.Events, dict *tile.Dict, sp *spineIndex, g tile.Grid) *tile.Events {
	ids := dict.LookupAll(&ev.Keys, make([]int32, 0, ev.Len()))
	return pickEvents(ev, newHeadSet(sp, g).keep(ids, ev.TS, nil, nil))
}

// pickEvents returns the events of ev at rows, in order.
func pickEvents(ev *tile.Events, rows []int32) *tile.Events {
	out := &tile.Events{Keys: tile.Keys{String: ev.Keys.String}, TS: gather(ev.TS, rows)}
	if ev.Keys.String {
		out.Keys.Str = gather(ev.Keys.Str, rows)
	} else {
		out.Keys.Int = gather(ev.Keys.Int, rows)
	}
	if ev.Values != nil {
		out.Values = gather(ev.Values, rows)
	}
	if ev.Valid != nil {
		out.Valid = gather(ev.Valid, rows)
	}
	return out
}
