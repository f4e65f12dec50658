package tile

import (
	"cmp"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/internal/hugepage"
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
// Events are ordered by one composite integer per event, key * buckets +
// bucket, with a radix sort that carries the values along (no comparisons,
// no random reads), then folded run by run. Int keys whose range allows it
// enter the composite as their offset from the smallest key, with no
// dictionary; string keys, and int keys spread too wide, enter as their rank
// in a dictionary.
//
// Large inputs are split into contiguous key ranges of about equal event
// counts (cut at quantiles of a sample of the keys), one per core. Each range
// is built by its own goroutine, which scans the events for its own keys,
// sorts them and folds them into its slice of the output. Ranges follow key
// order, so the slices make up the sorted result without a merge.
func Build(ev *Events, g Grid, needs aggregate.Needs, from, to int64) *Set {
	return buildParts([]*Events{ev}, g, needs, from, to, partsFor(ev.Len()))
}

// partsFor returns the key ranges worth building n events in.
func partsFor(n int) int { return max(1, min(runtime.GOMAXPROCS(0), n/partEvents)) }

// partEvents is the fewest events per key range worth a goroutine of its own.
const partEvents = 1 << 18

// splitSample is the keys sampled per key range to place the cuts.
const splitSample = 4096

// keyRange is the keys k with lo <= k < hi; a bound that is not set is open.
type keyRange[K cmp.Ordered] struct {
	lo, hi       K
	hasLo, hasHi bool
}

func (r keyRange[K]) has(k K) bool {
	return (!r.hasLo || k >= r.lo) && (!r.hasHi || k < r.hi)
}

// splitKeys cuts the key space into at most parts ranges, in key order, that
// hold about equal shares of the keys of every batch (events, not distinct
// keys, so that a heavy key weighs what it costs). A key too heavy for one
// share leaves fewer ranges.
func splitKeys[K cmp.Ordered](batches [][]K, parts int) []keyRange[K] {
	n := 0
	for _, keys := range batches {
		n += len(keys)
	}
	if parts <= 1 || n == 0 {
		return []keyRange[K]{{}}
	}
	step := max(1, n/(splitSample*parts))
	sample := make([]K, 0, n/step+len(batches))
	for _, keys := range batches {
		for i := 0; i < len(keys); i += step {
			sample = append(sample, keys[i])
		}
	}
	slices.Sort(sample)
	var cuts []K
	for p := 1; p < parts; p++ {
		c := sample[len(sample)*p/parts]
		if c > sample[0] && (len(cuts) == 0 || c > cuts[len(cuts)-1]) {
			cuts = append(cuts, c)
		}
	}
	out := make([]keyRange[K], len(cuts)+1)
	for i, c := range cuts {
		out[i].hi, out[i].hasHi = c, true
		out[i+1].lo, out[i+1].hasLo = c, true
	}
	return out
}

// span is what a first pass learns of the events in [from, to).
type span struct {
	kept       int
	bmin, bmax int64 // bucket numbers
	kmin, kmax int64 // int keys
}

// spanOf measures the events of the batches with from <= ts < to, on
// several cores when there are many.
func spanOf(batches []*Events, g Grid, from, to int64) span {
	all := span{bmin: math.MaxInt64, bmax: math.MinInt64, kmin: math.MaxInt64, kmax: math.MinInt64}
	for _, ev := range batches {
		sp := spanOfBatch(ev, g, from, to)
		all.kept += sp.kept
		all.bmin, all.bmax = min(all.bmin, sp.bmin), max(all.bmax, sp.bmax)
		all.kmin, all.kmax = min(all.kmin, sp.kmin), max(all.kmax, sp.kmax)
	}
	return all
}

// spanOfBatch is spanOf of one batch.
func spanOfBatch(ev *Events, g Grid, from, to int64) span {
	n := ev.Len()
	chunks := partsFor(n)
	spans := make([]span, chunks)
	var wg sync.WaitGroup
	for c := range chunks {
		wg.Go(func() {
			lo, hi := n*c/chunks, n*(c+1)/chunks
			sp := span{bmin: math.MaxInt64, bmax: math.MinInt64, kmin: math.MaxInt64, kmax: math.MinInt64}
			tmin, tmax := int64(math.MaxInt64), int64(math.MinInt64)
			for i, ts := range ev.TS[lo:hi] {
				if ts < from || ts >= to {
					continue
				}
				sp.kept++
				tmin, tmax = min(tmin, ts), max(tmax, ts)
				if !ev.Keys.String {
					k := ev.Keys.Int[lo+i]
					sp.kmin, sp.kmax = min(sp.kmin, k), max(sp.kmax, k)
				}
			}
			if sp.kept > 0 {
				sp.bmin, sp.bmax = floorDiv(tmin-g.Origin, g.Width), floorDiv(tmax-g.Origin, g.Width)
			}
			spans[c] = sp
		})
	}
	wg.Wait()
	all := spans[0]
	for _, sp := range spans[1:] {
		all.kept += sp.kept
		all.bmin, all.bmax = min(all.bmin, sp.bmin), max(all.bmax, sp.bmax)
		all.kmin, all.kmax = min(all.kmin, sp.kmin), max(all.kmax, sp.kmax)
	}
	return all
}

// buildParts is Build of the events of every batch (of one key kind) over
// at most parts key ranges.
func buildParts(batches []*Events, g Grid, needs aggregate.Needs, from, to int64, parts int) *Set {
	batches, str := nonEmpty(batches)
	out := &Set{Needs: needs, Keys: Keys{String: str}}
	sp := spanOf(batches, g, from, to)
	if sp.kept == 0 {
		return out
	}
	if sp.bmax-sp.bmin < 0 { // overflows int64
		return buildFine(Concat(batches), g, needs, from, to)
	}
	nb := uint64(sp.bmax-sp.bmin) + 1
	direct := !str && fitsComposite(sp.kmin, sp.kmax, nb)
	var ps []*part
	newPart := func() *part {
		return &part{direct: direct, nb: nb, bmin: sp.bmin, kmin: sp.kmin}
	}
	if str {
		for _, r := range splitKeys(columnOf(batches, func(k *Keys) []string { return k.Str }), parts) {
			p := newPart()
			p.strs = r
			ps = append(ps, p)
		}
	} else {
		for _, r := range splitKeys(columnOf(batches, func(k *Keys) []int64 { return k.Int }), parts) {
			p := newPart()
			p.ints = r
			ps = append(ps, p)
		}
	}
	withValues := needs.HasValues()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() {
			p.start(str, withValues, sp.kept/len(ps))
			for _, ev := range batches {
				p.scan(ev, g, from, to, withValues)
			}
			p.sort()
		})
	}
	wg.Wait()
	return foldParts(ps, out, g, needs, from, to, batches)
}

// columnOf returns the key column of each batch.
func columnOf[K any](batches []*Events, col func(*Keys) []K) [][]K {
	out := make([][]K, len(batches))
	for i, ev := range batches {
		out[i] = col(&ev.Keys)
	}
	return out
}

// fitsComposite reports whether every (key, bucket) pair of int keys in
// [kmin, kmax] and nb buckets numbers directly in 64 bits: the largest
// composite, (kmax-kmin)*nb + nb-1, must fit.
func fitsComposite(kmin, kmax int64, nb uint64) bool {
	hi, lo := bits.Mul64(uint64(kmax)-uint64(kmin), nb)
	_, carry := bits.Add64(lo, nb-1, 0)
	return hi == 0 && carry == 0
}

// foldParts folds the sorted parts, in key order, into out; a part whose
// keys could not be numbered (tooFine) sends the batches down the per-key
// path instead.
func foldParts(ps []*part, out *Set, g Grid, needs aggregate.Needs, from, to int64, batches []*Events) *Set {
	withValues := needs.HasValues()
	var wg sync.WaitGroup
	total := 0
	for _, p := range ps {
		if p.tooFine {
			return buildFine(Concat(batches), g, needs, from, to)
		}
		p.off = total
		total += p.tiles
	}
	out.alloc(total)
	defer out.adviseHuge()()
	for _, p := range ps {
		wg.Go(func() { p.fold(out, g, withValues) })
	}
	wg.Wait()
	return out
}

// part builds the tiles of one key range.
type part struct {
	ints keyRange[int64] // the range, of int keys
	strs keyRange[string]

	// direct: the composite key is (key - kmin) * nb + bucket - bmin, with
	// no dictionary; else it is rank * nb + bucket - bmin.
	direct bool
	kmin   int64
	bmin   int64
	nb     uint64 // buckets from bmin to the last

	keys []uint64  // composite key of each event (direct), or bucket - bmin
	vals []float64 // value of each event, NaN when null; nil without values

	dict    *Dict   // not direct: the range's keys
	ids     []int32 // not direct: dict id of each event
	byRank  []int32 // not direct: rank -> dict id
	tooFine bool    // not direct: rank * nb + bucket does not fit 64 bits

	tiles int // tiles the range folds into
	off   int // first row of the range's tiles in the output
}

// start sizes p's buffers for about hint events.
func (p *part) start(str, withValues bool, hint int) {
	hint += hint / 8
	p.keys = make([]uint64, 0, hint)
	if withValues {
		p.vals = make([]float64, 0, hint)
	}
	if !p.direct {
		p.dict = NewDict(str)
		p.ids = make([]int32, 0, hint)
	}
}

// scan appends the events of ev in p's key range with from <= ts < to, in
// input order.
func (p *part) scan(ev *Events, g Grid, from, to int64, withValues bool) {
	if p.direct {
		p.scanDirect(ev, g, from, to, withValues)
		return
	}
	keys, vals, ids, d := p.keys, p.vals, p.ids, p.dict
	bk := newBucketer(g)
	for i, ts := range ev.TS {
		if ts < from || ts >= to {
			continue
		}
		if ev.Keys.String {
			k := ev.Keys.Str[i]
			if !p.strs.has(k) {
				continue
			}
			id, ok := d.strs[k]
			if !ok {
				id = int32(len(d.strOf))
				d.strs[k] = id
				d.strOf = append(d.strOf, k)
			}
			ids = append(ids, id)
		} else {
			k := ev.Keys.Int[i]
			if !p.ints.has(k) {
				continue
			}
			id, added := d.ints.put(k, int32(len(d.intOf)))
			if added {
				d.intOf = append(d.intOf, k)
			}
			ids = append(ids, id)
		}
		keys = append(keys, uint64(bk.of(ts)-p.bmin))
		if withValues {
			vals = append(vals, valueAt(ev, i))
		}
	}
	p.keys, p.vals, p.ids = keys, vals, ids
}

// valueAt returns the value of event i, NaN when null (values are never NaN:
// sources reject them).
func valueAt(ev *Events, i int) float64 {
	if ev.Valid != nil && !ev.Valid[i] {
		return math.NaN()
	}
	return ev.Values[i]
}

// scanDirect is scan for int keys that enter the composite key directly:
// the hottest loop of a backfill, kept free of dictionary and key-type
// branches.
func (p *part) scanDirect(ev *Events, g Grid, from, to int64, withValues bool) {
	klo, khi := int64(math.MinInt64), int64(math.MaxInt64) // inclusive
	if p.ints.hasLo {
		klo = p.ints.lo
	}
	if p.ints.hasHi {
		khi = p.ints.hi - 1 // a cut is above the smallest key: no overflow
	}
	nb, bmin, kmin := p.nb, p.bmin, uint64(p.kmin)
	bk := newBucketer(g)
	keys, vals := p.keys, p.vals
	tss := ev.TS[:len(ev.Keys.Int)]
	for i, k := range ev.Keys.Int {
		ts := tss[i]
		if ts < from || ts >= to || k < klo || k > khi {
			continue
		}
		keys = append(keys, (uint64(k)-kmin)*nb+uint64(bk.of(ts)-bmin))
		if withValues {
			vals = append(vals, valueAt(ev, i))
		}
	}
	p.keys, p.vals = keys, vals
}

// sort completes the composite keys, sorts them with their values and
// counts the tiles, or sets tooFine.
func (p *part) sort() {
	if len(p.keys) == 0 {
		return
	}
	if !p.direct {
		rank := p.dict.Ranks()
		p.byRank = make([]int32, len(rank))
		for id, r := range rank {
			p.byRank[r] = int32(id)
		}
		hi, lo := bits.Mul64(uint64(len(rank)-1), p.nb)
		if _, carry := bits.Add64(lo, p.nb-1, 0); hi != 0 || carry != 0 {
			p.tooFine = true
			return
		}
		for i, id := range p.ids {
			p.keys[i] += uint64(rank[id]) * p.nb // keys held bucket - bmin
		}
		p.ids = nil
	}
	if p.vals != nil {
		SortByKey(p.keys, p.vals, nil, nil)
	} else {
		SortByKey(p.keys, make([]struct{}, len(p.keys)), nil, nil)
	}
	p.countTiles()
}

// countTiles counts the runs of equal composite keys of p, which are sorted.
func (p *part) countTiles() {
	p.tiles = 0
	if len(p.keys) > 0 {
		p.tiles = 1
	}
	for i := 1; i < len(p.keys); i++ {
		if p.keys[i] != p.keys[i-1] {
			p.tiles++
		}
	}
}

// alloc sizes the columns of s, which is empty, for n tiles: those of its
// Needs, as Append would fill them.
func (s *Set) alloc(n int) {
	if s.Keys.String {
		s.Keys.Str = make([]string, n)
	} else {
		s.Keys.Int = make([]int64, n)
	}
	ints, floats := s.stateColumns()
	for _, c := range ints {
		*c = make([]int64, n)
	}
	for _, c := range floats {
		*c = make([]float64, n)
	}
}

// stateColumns returns the columns of s but the keys that its Needs keep:
// start and count, then n, and the float columns.
func (s *Set) stateColumns() (ints []*[]int64, floats []*[]float64) {
	ints = []*[]int64{&s.Start, &s.Count}
	if s.Needs.HasValues() {
		ints = append(ints, &s.N)
	}
	for _, c := range []struct {
		need aggregate.Needs
		col  *[]float64
	}{{NeedSumOrM2, &s.Sum}, {aggregate.NeedM2, &s.M2}, {aggregate.NeedMin, &s.Min}, {aggregate.NeedMax, &s.Max}} {
		if s.Needs&c.need != 0 {
			floats = append(floats, c.col)
		}
	}
	return ints, floats
}

// allocScratch is alloc for a set of int keys whose columns lie in one
// buffer of hugepage.Scratch, their contents undefined until written; it
// returns what frees them. One buffer rather than one per column: the
// scratch buffers a backfill frees (slabs, columns, object buffers) all
// wait as spares for the next.
func (s *Set) allocScratch(n int) (free func()) {
	buf, free := hugepage.Scratch[int64](s.words(n))
	s.allocIn(buf, n)
	return free
}

// words returns the 8-byte words that the columns of n tiles of s take,
// keys included (int keys).
func (s *Set) words(n int) int {
	ints, floats := s.stateColumns()
	return n * (len(ints) + len(floats) + 1)
}

// allocIn is alloc for a set of int keys whose columns are cut from buf,
// of s.words(n) words at least, as they are: undefined until written.
func (s *Set) allocIn(buf []int64, n int) {
	if s.Keys.String {
		panic("tile: allocIn of a set of string keys")
	}
	ints, floats := s.stateColumns()
	ints = append(ints, &s.Keys.Int)
	for i, c := range ints {
		*c = buf[i*n : (i+1)*n : (i+1)*n]
	}
	for i, c := range floats {
		col := buf[(len(ints)+i)*n:]
		*c = unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(col))), n)
	}
}

// adviseHuge asks for huge pages under the numeric columns of s, which
// alloc just made, before they are first written, and returns a function
// that withdraws the request once they are. In a fresh process the columns
// of a large set are fresh memory, a page fault per 4 KiB when first
// written otherwise: 44k faults for the 4.56M tiles of a 20M-event
// backfill, half a second on a virtual machine.
func (s *Set) adviseHuge() (release func()) {
	var done []func()
	for _, c := range [][]int64{s.Keys.Int, s.Start, s.Count, s.N} {
		done = append(done, hugepage.Advise(c))
	}
	for _, c := range [][]float64{s.Sum, s.M2, s.Min, s.Max} {
		done = append(done, hugepage.Advise(c))
	}
	return func() {
		for _, f := range done {
			f()
		}
	}
}

// fold writes p's tiles, one per run of equal composite keys, into rows
// p.off, p.off+1, ... of out.
func (p *part) fold(out *Set, g Grid, withValues bool) {
	keys, vals, nb, d := p.keys, p.vals, p.nb, p.dict
	kmin := uint64(p.kmin)
	j := p.off
	sumOnly := out.sumOnly()
	var st aggregate.State
	for i, k := range keys {
		var v float64
		if withValues {
			v = vals[i]
		}
		addEvent(&st, v, withValues, sumOnly)
		if i+1 < len(keys) && keys[i+1] == k {
			continue
		}
		switch {
		case p.direct:
			out.Keys.Int[j] = int64(kmin + k/nb)
		case d.String:
			out.Keys.Str[j] = d.strOf[p.byRank[k/nb]]
		default:
			out.Keys.Int[j] = d.intOf[p.byRank[k/nb]]
		}
		out.putState(j, g.Origin+(int64(k%nb)+p.bmin)*g.Width, &st)
		j++
		st = aggregate.State{}
	}
}

// sumOnly reports whether the state of s's tiles is count, n and sum
// alone: no m2, min or max.
func (s *Set) sumOnly() bool { return s.M2 == nil && s.Min == nil && s.Max == nil }

// addEvent adds an event of value v (NaN when null) to st, as State.Add
// does; for a state of count, n and sum alone (sumOnly), without its
// per-event division.
func addEvent(st *aggregate.State, v float64, withValues, sumOnly bool) {
	switch {
	case !withValues:
		st.Count++
	case sumOnly:
		st.Count++
		if v == v {
			if st.N == 0 {
				st.Sum = v
			} else {
				st.Sum += v
			}
			st.N++
		}
	default:
		st.Add(v, v == v)
	}
}

// putState writes the start and state of the tile at row j of s, whose
// columns alloc sized.
func (s *Set) putState(j int, start int64, st *aggregate.State) {
	s.Start[j] = start
	s.Count[j] = st.Count
	if s.N != nil {
		s.N[j] = st.N
	}
	if s.Sum != nil {
		s.Sum[j] = st.Sum
	}
	if s.M2 != nil {
		s.M2[j] = st.M2
	}
	if s.Min != nil {
		s.Min[j] = st.Min
	}
	if s.Max != nil {
		s.Max[j] = st.Max
	}
}

// buildFine is Build for grids too fine to number every (key, bucket) pair
// of a key range in 64 bits, on one core.
func buildFine(ev *Events, g Grid, needs aggregate.Needs, from, to int64) *Set {
	dict := NewDict(ev.Keys.String)
	ids := dict.AddAll(&ev.Keys, make([]int32, 0, ev.Len()))
	rank := dict.Ranks()
	for i, ts := range ev.TS {
		if ts < from || ts >= to {
			ids[i] = -1
		} else {
			ids[i] = rank[ids[i]]
		}
	}
	byRank := make([]int32, dict.Len()) // rank -> id
	for id, r := range rank {
		byRank[r] = int32(id)
	}
	return buildSorted(ev, g, needs, dict, ids, byRank, &Set{Needs: needs, Keys: Keys{String: ev.Keys.String}})
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

// nonEmpty returns the batches that hold events, and their key kind: that
// of the first batch holding events (an empty batch, such as a CSV file
// with only a header, says nothing of it), else of the first batch.
func nonEmpty(batches []*Events) ([]*Events, bool) {
	var out []*Events
	for _, b := range batches {
		if b.Len() > 0 {
			out = append(out, b)
		}
	}
	switch {
	case len(out) > 0:
		return out, out[0].Keys.String
	case len(batches) > 0:
		return nil, batches[0].Keys.String
	}
	return nil, false
}

// Concat joins batches of events of one key kind (empty batches aside, which
// may say another) into one; a single batch is returned as is. Large
// batches are copied on every core: the copy's first touch of each fresh
// page of the joined columns costs more than the copying itself.
func Concat(batches []*Events) *Events {
	if len(batches) == 1 {
		return batches[0]
	}
	batches, str := nonEmpty(batches)
	out := &Events{Keys: Keys{String: str}}
	n, values, valid := 0, false, false
	offs := make([]int, len(batches))
	for i, b := range batches {
		offs[i] = n
		n += b.Len()
		values = values || b.Values != nil
		valid = valid || b.Valid != nil
	}
	// The joined columns are fresh memory in a fresh process: huge pages
	// spare a page fault per 4 KiB of them as the copy first writes them.
	var req hugepage.Requests
	defer req.Written()
	out.TS = hugepage.MakeIn[int64](&req, n)
	if out.Keys.String {
		out.Keys.Str = make([]string, n)
	} else {
		out.Keys.Int = hugepage.MakeIn[int64](&req, n)
	}
	if values {
		out.Values = hugepage.MakeIn[float64](&req, n)
	}
	if valid {
		out.Valid = hugepage.MakeIn[bool](&req, n)
	}
	put := func(i int) {
		b, o := batches[i], offs[i]
		copy(out.TS[o:], b.TS)
		if out.Keys.String {
			copy(out.Keys.Str[o:], b.Keys.Str)
		} else {
			copy(out.Keys.Int[o:], b.Keys.Int)
		}
		if values {
			copy(out.Values[o:], b.Values) // nil Values leave zeros
		}
		if valid {
			if b.Valid != nil {
				copy(out.Valid[o:], b.Valid)
			} else {
				fillTrue(out.Valid[o : o+b.Len()])
			}
		}
	}
	if n < partEvents {
		for i := range batches {
			put(i)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(batches)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(batches); i = int(next.Add(1)) - 1 {
				put(i)
			}
		})
	}
	wg.Wait()
	return out
}

// fillTrue sets every flag of v.
func fillTrue(v []bool) {
	for i := range v {
		v[i] = true
	}
}
