package tile

import (
	"cmp"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"

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
// with a radix sort that carries the values along (no comparisons, no random
// reads), then folded run by run. Large inputs are split into contiguous key
// ranks of about equal event counts, built in parallel and concatenated.
func Build(ev *Events, g Grid, needs aggregate.Needs, from, to int64) *Set {
	dict := NewDict(ev.Keys.String)
	ids := dict.AddAll(&ev.Keys, make([]int32, 0, ev.Len()))
	rank := dict.Ranks()
	bmin, bmax := int64(math.MaxInt64), int64(math.MinInt64)
	perRank := make([]int, dict.Len())
	kept := 0
	for i, ts := range ev.TS {
		if ts < from || ts >= to {
			ids[i] = -1
			continue
		}
		r := rank[ids[i]]
		ids[i] = r
		perRank[r]++
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

	// Split ranks into parts of about equal event counts.
	parts := max(1, min(runtime.GOMAXPROCS(0), kept/(1<<18)))
	partOf := make([]uint8, dict.Len())
	size := make([]int, parts)
	acc, p := 0, 0
	for r, c := range perRank {
		if p < parts-1 && acc >= kept*(p+1)/parts {
			p++
		}
		partOf[r] = uint8(p)
		size[p] += c
		acc += c
	}
	keys := make([][]uint64, parts)
	vals := make([][]float64, parts)
	for q := range parts {
		keys[q] = make([]uint64, 0, size[q])
		vals[q] = make([]float64, 0, size[q])
	}
	withValues := needs.HasValues()
	nan := math.NaN()
	for i, r := range ids {
		if r < 0 {
			continue
		}
		q := partOf[r]
		keys[q] = append(keys[q], uint64(r)*nb+uint64(floorDiv(ev.TS[i]-g.Origin, g.Width)-bmin))
		v := 0.0
		if withValues {
			v = ev.Values[i]
			if ev.Valid != nil && !ev.Valid[i] {
				v = nan // null: values are never NaN (sources reject them)
			}
		}
		vals[q] = append(vals[q], v)
	}
	sets := make([]*Set, parts)
	var wg sync.WaitGroup
	for q := range parts {
		wg.Go(func() {
			SortByKey(keys[q], vals[q], nil, nil)
			sets[q] = fold(keys[q], vals[q], nb, bmin, g, needs, dict, byRank)
		})
	}
	wg.Wait()
	if parts == 1 {
		return sets[0]
	}
	for _, s := range sets {
		out.AppendAll(s)
	}
	return out
}

// fold turns events sorted by composite key into tiles.
func fold(keys []uint64, vals []float64, nb uint64, bmin int64, g Grid, needs aggregate.Needs, dict *Dict, byRank []int32) *Set {
	out := &Set{Needs: needs, Keys: Keys{String: dict.String}}
	withValues := needs.HasValues()
	var st aggregate.State
	for i, k := range keys {
		if withValues {
			v := vals[i]
			st.Add(v, v == v)
		} else {
			st.Count++
		}
		if i+1 < len(keys) && keys[i+1] == k {
			continue
		}
		r := int32(k / nb)
		start := g.Origin + (int64(k%nb)+bmin)*g.Width
		if dict.String {
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
