package tile

import (
	"cmp"
	"math"
	"math/bits"
	"slices"

	"github.com/tessera-fe/tessera/aggregate"
)

// Events is a columnar batch of events of one tile set, in any order.
type Events struct {
	Keys   Keys
	TS     []int64   // microseconds since the epoch
	Values []float64 // nil when only counts are needed
	Valid  []bool    // false for a null value; nil when every value is valid
}

// Len returns the number of events.
func (e *Events) Len() int { return len(e.TS) }

// Build bins the events with from <= ts < to into the grid's buckets and
// returns one tile per (key, bucket) that holds at least one event, sorted by
// (key, bucket start), with the partial-state columns of needs.
//
// Events are ordered by one composite integer, key rank * buckets + bucket,
// with a radix sort (no comparisons), then folded run by run.
func Build(ev *Events, g Grid, needs aggregate.Needs, from, to int64) *Set {
	dict := NewDict(ev.Keys.String)
	ids := dict.AddAll(&ev.Keys, make([]int32, 0, ev.Len()))
	rank := dict.Ranks()
	bmin, bmax := int64(math.MaxInt64), int64(math.MinInt64)
	kept := 0
	for i, ts := range ev.TS {
		if ts < from || ts >= to {
			ids[i] = -1
			continue
		}
		ids[i] = rank[ids[i]]
		b := floorDiv(ts-g.Origin, g.Width)
		bmin, bmax = min(bmin, b), max(bmax, b)
		kept++
	}
	out := &Set{Needs: needs, Keys: Keys{String: ev.Keys.String}}
	if kept == 0 {
		return out
	}
	byRank := make([]int32, dict.Len()) // rank -> id
	for id, r := range rank {
		byRank[r] = int32(id)
	}
	nb := uint64(bmax-bmin) + 1
	if hi, _ := bits.Mul64(nb, uint64(dict.Len())); hi != 0 || bmax-bmin < 0 {
		return buildSorted(ev, g, needs, dict, ids, byRank, out)
	}
	keys := make([]uint64, 0, kept)
	idx := make([]int32, 0, kept)
	for i, r := range ids {
		if r >= 0 {
			keys = append(keys, uint64(r)*nb+uint64(floorDiv(ev.TS[i]-g.Origin, g.Width)-bmin))
			idx = append(idx, int32(i))
		}
	}
	SortByKey(keys, idx, nil, nil)
	withValues := needs.HasValues()
	var st aggregate.State
	for i, k := range keys {
		row := idx[i]
		if withValues {
			st.Add(ev.Values[row], ev.Valid == nil || ev.Valid[row])
		} else {
			st.Count++
		}
		if i+1 < len(keys) && keys[i+1] == k {
			continue
		}
		r := int32(k / nb)
		start := g.Origin + (int64(k%nb)+bmin)*g.Width
		if ev.Keys.String {
			out.Append(0, dict.StrKey(byRank[r]), start, st)
		} else {
			out.Append(dict.IntKey(byRank[r]), "", start, st)
		}
		st = aggregate.State{}
	}
	return out
}

// buildSorted is Build for grids too fine to number every (key, bucket)
// pair in 64 bits: it groups by key and sorts each key's events by time.
func buildSorted(ev *Events, g Grid, needs aggregate.Needs, dict *Dict, ids, byRank []int32, out *Set) *Set {
	order, offsets := GroupBy(ids, dict.Len())
	withValues := needs.HasValues()
	for r := range dict.Len() {
		seg := order[offsets[r]:offsets[r+1]]
		if len(seg) == 0 {
			continue
		}
		slices.SortFunc(seg, func(a, b int32) int { return cmp.Compare(ev.TS[a], ev.TS[b]) })
		var ik int64
		var sk string
		if ev.Keys.String {
			sk = dict.StrKey(byRank[r])
		} else {
			ik = dict.IntKey(byRank[r])
		}
		var st aggregate.State
		cur := g.Floor(ev.TS[seg[0]])
		for _, row := range seg {
			b := g.Floor(ev.TS[row])
			if b != cur {
				out.Append(ik, sk, cur, st)
				st, cur = aggregate.State{}, b
			}
			if withValues {
				st.Add(ev.Values[row], ev.Valid == nil || ev.Valid[row])
			} else {
				st.Count++
			}
		}
		out.Append(ik, sk, cur, st)
	}
	return out
}
