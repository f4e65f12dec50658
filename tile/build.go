package tile

import (
	"cmp"
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
func Build(ev *Events, g Grid, needs aggregate.Needs, from, to int64) *Set {
	dict := NewDict(ev.Keys.String)
	ids := dict.AddAll(&ev.Keys, make([]int32, 0, ev.Len()))
	for i, ts := range ev.TS {
		if ts < from || ts >= to {
			ids[i] = -1
		}
	}
	rank := dict.Ranks()
	for i, id := range ids {
		if id >= 0 {
			ids[i] = rank[id]
		}
	}
	byRank := make([]int32, dict.Len()) // rank -> id
	for id, r := range rank {
		byRank[r] = int32(id)
	}
	order, offsets := GroupBy(ids, dict.Len())
	out := &Set{Needs: needs, Keys: Keys{String: ev.Keys.String}}
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
