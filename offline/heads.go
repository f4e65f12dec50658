package offline

import (
	"math"
	"slices"

	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// headSet is, per key, the sorted head buckets of its spine rows: the
// bucket [floor(t), t) of each row off a bucket boundary, the only raw
// events materialized+align reads besides coverage gaps.
type headSet struct {
	g      tile.Grid
	off    []int32 // key id k's head buckets are starts[off[k]:off[k+1]]
	starts []int64
}

func newHeadSet(sp *spineIndex, g tile.Grid) *headSet {
	nkeys := len(sp.off) - 1
	h := &headSet{g: g, off: make([]int32, nkeys+1)}
	for k := range nkeys {
		last := int64(math.MinInt64)
		for _, r := range sp.order[sp.off[k]:sp.off[k+1]] {
			if t := sp.times[r]; !g.OnBoundary(t) {
				if b := g.Floor(t); b != last {
					h.starts = append(h.starts, b)
					last = b
				}
			}
		}
		h.off[k+1] = int32(len(h.starts))
	}
	return h
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
		if h.off[id] == h.off[id+1] {
			continue
		}
		if _, ok := slices.BinarySearch(h.starts[h.off[id]:h.off[id+1]], h.g.Floor(ts[i])); ok {
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
