package offline

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

// series is a sequence of points (raw events or tiles) of the spine's keys,
// grouped by spine key id and sorted by position (event time or bucket start)
// within each key: key g's points are [off[g], off[g+1]).
type series struct {
	tiles bool
	needs aggregate.Needs
	off   []int32
	pos   []int64
	// tiles
	count, n          []int64
	sum, m2, min, max []float64
	// events
	vals  []float64
	valid []bool
}

// eventSeries keeps the events whose key is in dict, grouped and sorted.
//
// Keys are split into contiguous id ranges of about equal event counts, one
// per core. Each part radix-sorts its events by time carrying (key id,
// value) along, then scatters them into its own region of the output, so
// no step reads an event at random.
func eventSeries(ev *tile.Events, dict *tile.Dict, needs aggregate.Needs) *series {
	ids := dict.LookupAll(&ev.Keys, make([]int32, 0, ev.Len()))
	n := dict.Len()
	off := make([]int32, n+1)
	lo := int64(math.MaxInt64)
	for i, id := range ids {
		if id >= 0 {
			off[id+1]++
			lo = min(lo, ev.TS[i])
		}
	}
	for g := range n {
		off[g+1] += off[g]
	}
	total := int(off[n])
	withValues := needs.HasValues()
	s := &series{needs: needs, off: off, pos: make([]int64, total)}
	if withValues {
		s.vals = make([]float64, total)
		if ev.Valid != nil {
			s.valid = make([]bool, total)
		}
	}
	parts := max(1, min(runtime.GOMAXPROCS(0), total/(1<<18)))
	cut := make([]int32, parts+1) // part q holds ids [cut[q], cut[q+1])
	for q, g := 1, 0; q < parts; q++ {
		for g < n && int(off[g]) < total*q/parts {
			g++
		}
		cut[q] = int32(g)
	}
	cut[parts] = int32(n)
	type payload struct {
		id int32
		v  float64 // NaN for a null value
	}
	nan := math.NaN()
	var wg sync.WaitGroup
	for q := range parts {
		wg.Go(func() {
			a, b := cut[q], cut[q+1]
			size := off[b] - off[a]
			keys := make([]uint64, 0, size)
			pay := make([]payload, 0, size)
			for i, id := range ids {
				if id < a || id >= b {
					continue
				}
				keys = append(keys, uint64(ev.TS[i]-lo))
				v := 0.0
				if withValues {
					v = ev.Values[i]
					if ev.Valid != nil && !ev.Valid[i] {
						v = nan
					}
				}
				pay = append(pay, payload{id, v})
			}
			tile.SortByKey(keys, pay, nil, nil)
			next := slices.Clone(off[a:b])
			for i, p := range pay {
				at := next[p.id-a]
				next[p.id-a]++
				s.pos[at] = int64(keys[i]) + lo
				if withValues {
					s.vals[at] = p.v
					if s.valid != nil {
						s.valid[at] = p.v == p.v
						if p.v != p.v {
							s.vals[at] = 0
						}
					}
				}
			}
		})
	}
	wg.Wait()
	return s
}

// tileSeries keeps the tiles whose key is in dict, grouped and sorted.
func tileSeries(set *tile.Set, dict *tile.Dict) *series {
	ids := dict.LookupAll(&set.Keys, make([]int32, 0, set.Len()))
	order, off := tile.GroupBy(ids, dict.Len())
	sortSegments(order, off, set.Start)
	s := &series{tiles: true, needs: set.Needs, off: off}
	s.pos = gather(set.Start, order)
	s.count = gather(set.Count, order)
	s.n = gather(set.N, order)
	s.sum = gather(set.Sum, order)
	s.m2 = gather(set.M2, order)
	s.min = gather(set.Min, order)
	s.max = gather(set.Max, order)
	if s.n != nil {
		s.valid = make([]bool, len(s.n))
		for i, n := range s.n {
			s.valid[i] = n > 0
		}
	}
	return s
}

func gather[T any](col []T, order []int32) []T {
	if col == nil {
		return nil
	}
	out := make([]T, len(order))
	for i, r := range order {
		out[i] = col[r]
	}
	return out
}

// groupByThenPos orders the rows with id >= 0 by (id, pos): a radix sort by
// position, then a stable counting sort by id. Rows of id g are
// order[off[g]:off[g+1]].
func groupByThenPos(ids []int32, pos []int64, n int) (order, off []int32) {
	lo := int64(math.MaxInt64)
	kept := 0
	for i, id := range ids {
		if id >= 0 {
			lo = min(lo, pos[i])
			kept++
		}
	}
	keys := make([]uint64, 0, kept)
	idx := make([]int32, 0, kept)
	for i, id := range ids {
		if id >= 0 {
			keys = append(keys, uint64(pos[i]-lo)) // fits: pos[i] >= lo
			idx = append(idx, int32(i))
		}
	}
	tile.SortByKey(keys, idx, nil, nil)
	off = make([]int32, n+1)
	for _, r := range idx {
		off[ids[r]+1]++
	}
	for g := range n {
		off[g+1] += off[g]
	}
	order = make([]int32, len(idx))
	next := slices.Clone(off[:n])
	for _, r := range idx {
		g := ids[r]
		order[next[g]] = r
		next[g]++
	}
	return order, off
}

// sortSegments sorts each key's rows by position. The order among equal
// positions does not matter: spine rows with the same key and time get the
// same values, and events at the same time fall in the same ranges. Segments
// already in order (tiles from the store, time-ordered sources) cost one scan.
func sortSegments(order, off []int32, pos []int64) {
	cmpPos := func(a, b int32) int { return cmp.Compare(pos[a], pos[b]) }
	for g := range len(off) - 1 {
		seg := order[off[g]:off[g+1]]
		if len(seg) < 2 || slices.IsSortedFunc(seg, cmpPos) {
			continue
		}
		slices.SortFunc(seg, cmpPos)
	}
}

// view is one key's segment of a series, with its range structures built.
type view struct {
	pos    []int64
	prefix aggregate.Prefix
	vals   []float64 // values for min (events) or tile minima
	maxs   []float64 // values for max
	valid  []bool
}

// load points v at key g's segment and builds its prefix sums.
func (v *view) load(s *series, g int) {
	a, b := s.off[g], s.off[g+1]
	v.pos = s.pos[a:b]
	v.valid = nil
	if s.valid != nil {
		v.valid = s.valid[a:b]
	}
	if s.tiles {
		v.prefix.BuildTiles(s.count[a:b], sub(s.n, a, b), sub(s.sum, a, b), sub(s.m2, a, b), s.needs)
		v.vals, v.maxs = sub(s.min, a, b), sub(s.max, a, b)
		return
	}
	vals := sub(s.vals, a, b)
	v.prefix.BuildEvents(vals, v.valid, s.needs)
	v.vals, v.maxs = vals, vals
}

func sub[T any](s []T, a, b int32) []T {
	if s == nil {
		return nil
	}
	return s[a:b]
}
