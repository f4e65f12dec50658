package offline

import (
	"cmp"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/internal/hugepage"
	"github.com/tessera-fe/tessera/tile"
)

// series is a sequence of points (raw events or tiles) of the spine's keys,
// grouped by spine key id and sorted by position (event time or bucket start)
// within each key: key g's points are [first[g], end[g]). The columns may
// hold points of keys outside the spine between the segments (tiles read in
// place from a set).
type series struct {
	tiles      bool
	needs      aggregate.Needs
	first, end []int32
	// runs lists the spine key ids whose tiles are read in place, in the
	// order of their runs in the set (nil otherwise); see renumber.
	runs []int32
	pos  []int64
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
// per core. Each part radix-sorts its events by one number holding the key
// id (within the part) above the time, carrying the value along, and writes
// them out in that order: its region of the output, front to back. Where
// the id and the time span do not fit 64 bits together, the part sorts by
// time carrying the id and scatters the events to their keys' segments.
func eventSeries(ev *tile.Events, dict *tile.Dict, needs aggregate.Needs) *series {
	// An id per event, fresh memory written at once: huge pages spare a
	// page fault per 4 KiB of it (a fifth of a 20M exact query's faults).
	room, written := hugepage.Make[int32](ev.Len())
	ids := dict.LookupAll(&ev.Keys, room[:0])
	written()
	n := dict.Len()
	off := make([]int32, n+1)
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for i, id := range ids {
		if id >= 0 {
			off[id+1]++
			lo, hi = min(lo, ev.TS[i]), max(hi, ev.TS[i])
		}
	}
	tsBits := bits.Len64(uint64(hi) - uint64(lo)) // no event kept: 1, and no key to make
	for g := range n {
		off[g+1] += off[g]
	}
	total := int(off[n])
	withValues := needs.HasValues()
	s := &series{needs: needs, first: off[:n], end: off[1:]}
	var req hugepage.Requests
	defer req.Written()
	s.pos = hugepage.MakeIn[int64](&req, total)
	if withValues {
		s.vals = hugepage.MakeIn[float64](&req, total)
		if ev.Valid != nil {
			s.valid = hugepage.MakeIn[bool](&req, total)
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
			if bits.Len32(uint32(max(b-a-1, 0)))+tsBits <= 64 {
				s.fillSorted(ev, ids, a, b, off[a], off[b], lo, tsBits)
				return
			}
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

// fillSorted writes the events of ids [a, b) to positions [from, to) of s,
// grouped by id and sorted by time: a stable radix sort of (id-a) << tsBits
// | (ts-lo), which fits 64 bits, carrying the values.
func (s *series) fillSorted(ev *tile.Events, ids []int32, a, b, from, to int32, lo int64, tsBits int) {
	size := int(to - from)
	keys, keysWritten := hugepage.Make[uint64](size)
	defer keysWritten()
	keys = keys[:0]
	withValues := s.vals != nil
	var vals []float64
	if withValues {
		var valsWritten func()
		vals, valsWritten = hugepage.Make[float64](size)
		defer valsWritten()
		vals = vals[:0]
	}
	nan := math.NaN()
	for i, id := range ids {
		if id < a || id >= b {
			continue
		}
		keys = append(keys, uint64(id-a)<<tsBits|uint64(ev.TS[i]-lo))
		if withValues {
			v := ev.Values[i]
			if ev.Valid != nil && !ev.Valid[i] {
				v = nan
			}
			vals = append(vals, v)
		}
	}
	if withValues {
		tile.SortByKey(keys, vals, nil, nil)
	} else {
		tile.SortByKey(keys, make([]struct{}, len(keys)), nil, nil)
	}
	mask := uint64(1)<<tsBits - 1 // tsBits < 64: an id bit at least, or none kept
	if tsBits == 64 {
		mask = math.MaxUint64
	}
	pos := s.pos[from:to]
	for i, k := range keys {
		pos[i] = int64(k&mask) + lo
	}
	if !withValues {
		return
	}
	out := s.vals[from:to]
	copy(out, vals)
	if s.valid != nil {
		valid := s.valid[from:to]
		for i, v := range out {
			valid[i] = v == v
			if v != v {
				out[i] = 0
			}
		}
	}
}

// tileSeries keeps the tiles whose key is in dict, grouped and sorted.
// Tiles from the store come sorted by (key, start): each key's tiles are
// then one run of the set, read in place, and only the first tile of a run
// looks its key up. Other sets (with fallback tiles appended) are gathered.
func tileSeries(set *tile.Set, dict *tile.Dict) *series {
	s := &series{tiles: true, needs: set.Needs}
	if !tileRuns(set, dict, s) {
		ids := dict.LookupAll(&set.Keys, make([]int32, 0, set.Len()))
		order, off := tile.GroupBy(ids, dict.Len())
		sortSegments(order, off, set.Start)
		s.first, s.end = off[:dict.Len()], off[1:]
		s.pos = gather(set.Start, order)
		s.count = gather(set.Count, order)
		s.n = gather(set.N, order)
		s.sum = gather(set.Sum, order)
		s.m2 = gather(set.M2, order)
		s.min = gather(set.Min, order)
		s.max = gather(set.Max, order)
	}
	if s.n != nil && s.needs&(aggregate.NeedMin|aggregate.NeedMax) != 0 {
		// Only the sliding min and max skip tiles without a value.
		s.valid = make([]bool, len(s.n))
		for i, n := range s.n {
			s.valid[i] = n > 0
		}
	}
	return s
}

// keyRuns appends to starts the index where each run of equal keys begins,
// and the run's key to keys; sorted is false when starts do not increase
// within a run.
func keyRuns[K comparable](k []K, start []int64, starts []int32, keys []K) (_ []int32, _ []K, sorted bool) {
	for i := range k {
		if i == 0 || k[i] != k[i-1] {
			starts = append(starts, int32(i))
			keys = append(keys, k[i])
		} else if start[i] <= start[i-1] {
			return starts, keys, false
		}
	}
	return starts, keys, true
}

// splitKeyRuns is keyRuns with the second half of a large input scanned on
// another core.
func splitKeyRuns[K comparable](k []K, start []int64, starts []int32, keys []K) (_ []int32, _ []K, sorted bool) {
	n := len(k)
	if n < 1<<18 || runtime.GOMAXPROCS(0) < 2 {
		return keyRuns(k, start, starts, keys)
	}
	h := n / 2
	var starts2 []int32
	var keys2 []K
	var sorted2 bool
	done := make(chan struct{})
	go func() {
		starts2, keys2, sorted2 = keyRuns(k[h:], start[h:], make([]int32, 0, cap(starts)/2), make([]K, 0, cap(keys)/2))
		close(done)
	}()
	starts, keys, sorted = keyRuns(k[:h], start[:h], starts, keys)
	<-done
	if !sorted || !sorted2 {
		return starts, keys, false
	}
	if k[h] == k[h-1] { // one run across the halves
		if start[h] <= start[h-1] {
			return starts, keys, false
		}
		starts2, keys2 = starts2[1:], keys2[1:]
	}
	for _, st := range starts2 {
		starts = append(starts, st+int32(h))
	}
	return starts, append(keys, keys2...), true
}

// tileRuns points s at the columns of set when every key's tiles form one
// run sorted by start, setting each spine key's run; it reports false, and
// leaves s alone, otherwise.
func tileRuns(set *tile.Set, dict *tile.Dict, s *series) bool {
	n := set.Len()
	if n >= math.MaxInt32 {
		return false
	}
	// Run starts: where the key changes. About one run per spine key.
	hint := min(n, 2*dict.Len())
	starts := make([]int32, 0, hint)
	keys := tile.Keys{String: set.Keys.String}
	if keys.String {
		keys.Str = make([]string, 0, hint)
	} else {
		keys.Int = make([]int64, 0, hint)
	}
	var sorted bool
	if set.Keys.String {
		starts, keys.Str, sorted = splitKeyRuns(set.Keys.Str, set.Start, starts, keys.Str)
	} else {
		starts, keys.Int, sorted = splitKeyRuns(set.Keys.Int, set.Start, starts, keys.Int)
	}
	if !sorted {
		return false
	}
	ids := dict.LookupAll(&keys, make([]int32, 0, len(starts)))
	first := make([]int32, dict.Len())
	end := make([]int32, dict.Len())
	runs := make([]int32, 0, min(len(ids), dict.Len()))
	for j, id := range ids {
		if id < 0 {
			continue
		}
		if end[id] != 0 { // the key has two runs: the set is not sorted by key
			return false
		}
		e := int32(n)
		if j+1 < len(starts) {
			e = starts[j+1]
		}
		first[id], end[id] = starts[j], e
		runs = append(runs, id)
	}
	s.first, s.end, s.runs = first, end, runs
	s.pos, s.count, s.n = set.Start, set.Count, set.N
	s.sum, s.m2, s.min, s.max = set.Sum, set.M2, set.Min, set.Max
	return true
}

// renumber gives the spine's keys new ids in the order of their runs in
// the tile set, keys without tiles last, and indexes s by the new ids. It
// returns rank (rank[old id] = new id), or nil, changing nothing, when s
// was not read in place.
//
// Spine key ids follow the keys' first appearance in the spine, while the
// set is sorted by key: a sweep in old id order reads each key's tiles at a
// random place of columns far larger than the caches, a few cache misses
// per column and key. In new id order it reads them front to back.
func (s *series) renumber() []int32 {
	if s.runs == nil {
		return nil
	}
	n := len(s.first)
	rank := make([]int32, n)
	for id := range rank {
		rank[id] = -1
	}
	first, end := make([]int32, n), make([]int32, n)
	next := int32(0)
	for _, id := range s.runs {
		rank[id] = next
		first[next], end[next] = s.first[id], s.end[id]
		next++
	}
	for id, r := range rank {
		if r < 0 { // no tiles: an empty segment
			rank[id] = next
			next++
		}
	}
	s.first, s.end, s.runs = first, end, nil
	return rank
}

// rankBy indexes s by new key ids, rank[old id] = new id, a permutation.
func (s *series) rankBy(rank []int32) {
	n := len(s.first)
	first, end := make([]int32, n), make([]int32, n)
	for id, r := range rank {
		first[r], end[r] = s.first[id], s.end[id]
	}
	s.first, s.end, s.runs = first, end, nil
}

func gather[T any](col []T, order []int32) []T {
	if col == nil {
		return nil
	}
	out, written := hugepage.Make[T](len(order))
	for i, r := range order {
		out[i] = col[r]
	}
	written()
	return out
}

// groupByThenPos orders the rows with id >= 0 by (id, pos) and returns the
// positions in that order too (at[i] = pos[order[i]]): rows of id g are
// order[off[g]:off[g+1]]. A non-nil rank renumbers the ids first (a row of
// id x counts as id rank[x]).
//
// A counting sort by id, split over the cores (each part of the rows counts
// its ids, then writes its rows after those of the earlier parts, so the
// sort is stable), carries each row's position along; then each id's
// segment is sorted by position, which costs one scan for segments already
// in order (rows in time order, as spines usually are).
func groupByThenPos(ids, rank []int32, pos []int64, n int) (order, off []int32, at []int64) {
	rows := len(ids)
	parts := max(1, min(runtime.GOMAXPROCS(0), rows/(1<<16)))
	counts := make([][]int32, parts)
	var wg sync.WaitGroup
	for q := range parts {
		wg.Go(func() {
			c := make([]int32, n)
			for _, id := range ids[rows*q/parts : rows*(q+1)/parts] {
				if id >= 0 {
					if rank != nil {
						id = rank[id]
					}
					c[id]++
				}
			}
			counts[q] = c
		})
	}
	wg.Wait()
	// off[g] = rows of ids < g; counts[q][g] becomes part q's first slot of id g.
	off = tile.Slots(counts)
	sum := off[n]
	order = make([]int32, sum)
	at = make([]int64, sum)
	for q := range parts {
		wg.Go(func() {
			next := counts[q]
			lo := rows * q / parts
			for i, id := range ids[lo : rows*(q+1)/parts] {
				if id >= 0 {
					if rank != nil {
						id = rank[id]
					}
					k := next[id]
					next[id]++
					order[k] = int32(lo + i)
					at[k] = pos[lo+i]
				}
			}
		})
	}
	wg.Wait()
	sortRuns(order, off, at)
	return order, off, at
}

// sortRuns sorts each segment [off[g], off[g+1]) of at, moving order along,
// with the segments shared among the cores in chunks.
func sortRuns(order, off []int32, at []int64) {
	n := len(off) - 1
	const chunk = 1024
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), (n+chunk-1)/chunk)) {
		wg.Go(func() {
			var keys, tmpK []uint64
			var tmpI []int32
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= n {
					return
				}
				for g := lo; g < min(lo+chunk, n); g++ {
					a, b := off[g], off[g+1]
					keys, tmpK, tmpI = sortByPos(order[a:b], at[a:b], keys, tmpK, tmpI)
				}
			}
		})
	}
	wg.Wait()
}

// sortByPos sorts pos ascending, moving rows along: an insertion sort while
// it needs few moves (segments nearly in order, as in a spine exported
// in rough time order), else an LSD radix sort on positions relative to the
// least. keys, tmpK and tmpI are scratch, returned for reuse.
func sortByPos(rows []int32, pos []int64, keys, tmpK []uint64, tmpI []int32) ([]uint64, []uint64, []int32) {
	budget := 8*len(pos) + 64 // element moves
	for i := 1; i < len(pos) && budget >= 0; i++ {
		p, r := pos[i], rows[i]
		j := i
		for ; j > 0 && pos[j-1] > p; j-- {
			pos[j], rows[j] = pos[j-1], rows[j-1]
		}
		pos[j], rows[j] = p, r
		budget -= i - j
	}
	if budget >= 0 {
		return keys, tmpK, tmpI
	}
	lo := slices.Min(pos)
	keys = keys[:0]
	for _, p := range pos {
		keys = append(keys, uint64(p-lo)) // fits: p >= lo
	}
	tmpK, tmpI = slices.Grow(tmpK[:0], len(pos)), slices.Grow(tmpI[:0], len(pos))
	tile.SortByKey(keys, rows, tmpK[:len(pos)], tmpI[:len(pos)])
	for i, k := range keys {
		pos[i] = int64(k) + lo
	}
	return keys, tmpK, tmpI
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

// load points v at the points of key g's segment with positions in
// [lo, hi) and builds their prefix sums.
func (v *view) load(s *series, g int, lo, hi int64) {
	a, b := s.first[g], s.end[g]
	// Points past the last row's range are usually few: a scan from the end
	// finds them at less cost than the prefix sums they would take.
	for b > a && s.pos[b-1] >= hi {
		b--
	}
	if lo != math.MinInt64 && a < b {
		i, _ := slices.BinarySearch(s.pos[a:b], lo)
		a += int32(i)
	}
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
