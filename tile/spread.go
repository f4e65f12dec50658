package tile

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/internal/hugepage"
)

// spread holds composite keys (and their values) as they arrive, already
// split into partitions of contiguous keys, each a chain of fixed-size
// blocks in one slab: the split that a sort of all of them would begin
// with is done as each batch is scanned, and the sort that remains is one
// small, cache-resident sort per partition of keys held in 32 bits, as
// their offsets from the partition's first key. This spares the sort a
// pass over all the keys, its scratch copy of them and half of the key
// bytes.
//
// Partitions are cut from a sample of the keys (the first batch's), so that
// each holds about the same number of keys: keys are skewed (a few heavy
// hitters hold a large share of the events), and a partition of most of
// them would leave the other cores idle while one sorts it.
type spread struct {
	fshift uint     // fine range of a composite key: key >> fshift
	table  []uint16 // fine range -> partition
	base   []uint64 // per partition: its first key; a key's offset from it fits 32 bits
	weight []int    // per partition: its share of the sample (and a little)
	block  int      // slots per block

	keys []uint32  // offset of each key from its partition's base, block by block
	vals []float64 // value of each key, NaN when null; nil without values

	heads  []head    // per partition: next free slot of its last block, and that block's end
	chains [][]int32 // per partition: its blocks, in arrival order
	used   int       // blocks handed out
	free   []int32   // blocks evicted (to disk, or folded), to hand out again
	disk   *spillStore

	unmap func() // frees a slab outside the Go heap; nil when the slab is on it
	// frees the room reserved for the tiles of partitions folded through
	// cells (see reserveTiles); nil when there is none
	unroom func()

	// per partition: its tiles, when it was folded through cells rather
	// than sorted (see sortPart), in summed when they keep a count, n and
	// sum alone, else in folded; nil otherwise.
	folded [][]cellTile
	summed [][]sumTile
	// per partition of a group read back from disk: its cells, when its
	// keys folded into them as they were evicted (see prefold); nil
	// otherwise, and in a spread that does not spill.
	pre []*prefold
}

// cellTile is a tile of a partition folded through cells: its key's offset
// in the partition and its state.
type cellTile struct {
	off uint32
	st  aggregate.State
}

// sumTile is a cellTile of a count, n and sum alone: 32 bytes rather than
// 56, for the most common tiles (sums, counts and means), millions of
// which a backfill writes and reads back once.
type sumTile struct {
	off      uint32
	sum      float64
	count, n int64
}

// sumsAlone reports whether the partial states of needs are a count, n and
// sum alone: the tiles of such needs fold through sumCells into sumTiles.
func sumsAlone(needs aggregate.Needs) bool {
	return needs&(aggregate.NeedM2|aggregate.NeedMin|aggregate.NeedMax) == 0
}

// sumCell is the cell of a tile of a count, n and sum alone (see
// foldSums). Its sum starts at -0, which adding a first value turns into
// exactly that value, as State.Add sets it: no test per event for the
// first.
type sumCell struct {
	sum      float64
	count, n int64
}

type head struct{ pos, end int }

// fineBits is the resolution of the partition cuts: 2^fineBits ranges of
// keys, their partition looked up per key in a table of that many entries.
// Keys wider than fineBits + 32 bits are sorted the other way.
const fineBits = 16

// maxParts bounds the partitions cut to share out the keys. Keys wider
// than 32 bits add cuts wherever a partition would span more than 2^32 of
// them: at most one partition per fine range, which uint16 ids number.
const maxParts = 1 << 14

// fileParts bounds the partitions that events are filed into as they
// arrive, where the groups of a spread that spills do not ask for more:
// filing writes each event to the block being filled of its partition,
// one cache line per partition for the keys and one for the values, and
// 256 partitions keep those lines within a core's 32-48 KiB L1 data
// cache. A 20M-event backfill filed into 1,220 partitions of 16k events
// (msdBucket) spent 8-12 ns an event filing, against 5-6 ns into 256; the
// larger partitions' sorts split on their top bits first (see sortMSD),
// which costs about what the smaller ones saved.
const fileParts = 256

// newSpread returns a spread for composite keys below 1<<width, sized for
// about events of them (at most maxSlots, when above 0: a spread that
// spills) and cut into at least minParts partitions, where the keys allow,
// by the keys of sample, a sample of a share (0 to 1) of the keys to come;
// the rest are assumed spread evenly. It returns nil when the keys are too
// wide for it.
func newSpread(width int, events int, sample []uint64, share float64, withValues bool, maxSlots, minParts int) *spread {
	fine := min(width, fineBits)
	fshift := uint(width - fine)
	if fshift > 32 {
		return nil
	}
	// Weigh each fine range by its share of the sample, and of the keys
	// the sample does not stand for, spread evenly: when later batches
	// hold other keys than the first (files sorted by key), their ranges
	// still get partitions of their own.
	if len(sample) == 0 {
		share = 0
	}
	share = min(1, max(0, share))
	const scale = 1 << 40
	weight := make([]int, 1<<fine)
	for _, c := range sample {
		weight[c>>fshift] += int(share * scale / float64(len(sample)))
	}
	even := max(1, int((1-share)*scale/float64(len(weight))))
	total := 0
	for f := range weight {
		weight[f] += even
		total += weight[f]
	}
	parts := min(maxParts, max(minParts, min(fileParts, events/msdBucket)))
	target := max(1, total/parts)
	// A partition spans at most 2^32 keys: offsets fit 32 bits.
	maxRanges := 1 << min(fine, 32-int(fshift))
	s := &spread{fshift: fshift, table: make([]uint16, 1<<fine)}
	acc, ranges := 0, 0
	for f, w := range weight {
		if f == 0 || (acc+w > target && acc > 0 && len(s.base) < maxParts) || ranges == maxRanges {
			s.base = append(s.base, uint64(f)<<fshift)
			s.weight = append(s.weight, 0)
			acc, ranges = 0, 0
		}
		s.table[f] = uint16(len(s.base) - 1)
		s.weight[len(s.weight)-1] += w
		acc += w
		ranges++
	}
	n := len(s.base)
	s.heads, s.chains = make([]head, n), make([][]int32, n)
	// Blocks of about a quarter of a partition's expected keys, within
	// bounds: few blocks per partition to chain, and little room left
	// unused in the last block of each.
	s.block = min(1024, max(64, events/n/4))
	slots := events + events/16 + min(n, events/s.block+1)*s.block
	if maxSlots > 0 && slots > maxSlots {
		// Room for a block being filled per partition and as many to
		// evict, at least.
		s.block = min(s.block, max(16, maxSlots/n/4))
		slots = max(maxSlots, 2*n*s.block)
	}
	s.alloc(slots, withValues)
	return s
}

// alloc gives a spread a slab of slots outside the Go heap, on huge pages
// (see hugepage.Scratch): keys fill it at random across its partitions'
// blocks, which on the heap costs a page fault per 4 KiB the first time it
// is written, and, in a process that reuses heap memory, a clearing pass
// first. (A 20M-event backfill: 0.35 s of clearing and faults in a warm
// process; 13-18% of the time of a fresh one.) The slab may be one an
// earlier spread freed moments ago, its contents undefined: a spread reads
// only the slots it wrote. A spread that spills has a slab of its share of
// memory, which it reuses as it evicts blocks to disk.
func (s *spread) alloc(slots int, withValues bool) {
	keys, k := hugepage.Scratch[uint32](slots)
	s.keys, s.unmap = keys, k
	if withValues {
		vals, v := hugepage.Scratch[float64](slots)
		s.vals, s.unmap = vals, func() { k(); v() }
	}
}

// release frees the slab of a spread, outside the Go heap, and the room
// reserved for its folded partitions' tiles (see reserveTiles), once the
// spread is done with them: nothing may read them afterwards.
func (s *spread) release() {
	if s.unmap != nil {
		s.unmap()
		s.unmap = nil
		s.keys, s.vals = nil, nil
	}
	if s.unroom != nil {
		s.unroom()
		s.unroom = nil
		s.folded, s.summed = nil, nil
	}
}

// part returns the partition of composite key c and c's offset in it.
func (s *spread) part(c uint64) (int, uint32) {
	d := s.table[c>>s.fshift]
	return int(d), uint32(c - s.base[d])
}

// grow gives partition d a new block. The slab may move: callers reload
// keys and vals. A spread that spills evicts its full blocks to disk when
// its slab is full.
func (s *spread) grow(d int) {
	if len(s.free) == 0 && s.disk != nil && (s.used+1)*s.block > len(s.keys) {
		s.evict()
	}
	if n := len(s.free); n > 0 {
		b := int(s.free[n-1])
		s.free = s.free[:n-1]
		s.chains[d] = append(s.chains[d], int32(b))
		s.heads[d] = head{pos: b * s.block, end: (b + 1) * s.block}
		return
	}
	b := s.used
	s.used++
	if need := s.used * s.block; need > len(s.keys) {
		n := need + need/4
		if s.unmap != nil {
			keys, vals, unmap := s.keys, s.vals, s.unmap
			s.alloc(n, vals != nil)
			copy(s.keys, keys)
			copy(s.vals, vals)
			unmap()
		} else {
			s.keys = append(s.keys, make([]uint32, n-len(s.keys))...)
			if s.vals != nil {
				s.vals = append(s.vals, make([]float64, n-len(s.vals))...)
			}
		}
	}
	s.chains[d] = append(s.chains[d], int32(b))
	s.heads[d] = head{pos: b * s.block, end: (b + 1) * s.block}
}

// file adds composite keys cs (skipped aside) to their partitions, with
// their values (nil: none; valid nil: every value valid).
func (s *spread) file(cs []uint64, vals []float64, valid []bool) {
	keys, out, heads, table, base, fshift := s.keys, s.vals, s.heads, s.table, s.base, s.fshift
	for i, c := range cs {
		if c == skipped {
			continue
		}
		d := table[c>>fshift]
		h := &heads[d]
		if h.pos == h.end {
			s.grow(int(d))
			keys, out = s.keys, s.vals
		}
		keys[h.pos] = uint32(c - base[d])
		if vals != nil {
			v := vals[i]
			if valid != nil && !valid[i] {
				v = math.NaN()
			}
			out[h.pos] = v
		}
		h.pos++
	}
}

// mark is where each partition stood: what a spread holds before a batch
// that proved it wrong.
type mark struct {
	heads  []head
	chains []int
}

func (s *spread) mark() mark {
	m := mark{heads: slices.Clone(s.heads), chains: make([]int, len(s.chains))}
	for d, c := range s.chains {
		m.chains[d] = len(c)
	}
	return m
}

// len returns the keys of partition d up to m (nil: all of them).
func (s *spread) len(d int, m *mark) int {
	c, h := s.chains[d], s.heads[d]
	if m != nil {
		c, h = c[:m.chains[d]], m.heads[d]
	}
	if len(c) == 0 {
		return 0
	}
	return (len(c)-1)*s.block + h.pos - int(c[len(c)-1])*s.block
}

// prefolded returns the cells partition d's keys folded into as they
// were evicted (see prefold), or nil.
func (s *spread) prefolded(d int) *prefold {
	if s.pre == nil {
		return nil
	}
	return s.pre[d]
}

// held returns the keys partition d holds, in its blocks and, in a group
// read back from disk, folded into its cells.
func (s *spread) held(d int) int {
	n := s.len(d, nil)
	if p := s.prefolded(d); p != nil {
		n += p.events
	}
	return n
}

// each calls f with the slots of partition d in order, block by block, up
// to its first n keys.
func (s *spread) each(d, n int, f func(lo, hi int)) {
	for _, b := range s.chains[d] {
		if n <= 0 {
			return
		}
		lo := int(b) * s.block
		k := min(n, s.block)
		f(lo, lo+k)
		n -= k
	}
}

// composite returns the composite key at offset off in partition d.
func (s *spread) composite(d int, off uint32) uint64 {
	return s.base[d] + uint64(off)
}

// sortParts sorts each partition by offset, stably, in place, on up
// to workers cores, or folds it (see sortPart) into the partial states of
// needs, and returns the tiles (distinct keys) of each. A folded partition
// keeps its keys in arrival order, and its tiles in s.summed (needs of a
// count, n and sum alone) or s.folded until fold writes them.
func (s *spread) sortParts(workers int, needs aggregate.Needs) []int {
	parts := len(s.chains)
	tiles := make([]int, parts)
	// Largest partitions first, so that a heavy key's partition does not
	// start last and leave the other cores idle.
	order := make([]int, 0, parts)
	for d := range parts {
		if s.held(d) > 0 {
			order = append(order, d)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(s.held(b), s.held(a)) })
	s.reserveTiles(order, needs)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(order)) {
		wg.Go(func() {
			var sc scratch // sized by the first (largest) partition it sorts
			for {
				i := int(next.Add(1)) - 1
				if i >= len(order) {
					return
				}
				d := order[i]
				tiles[d] = s.sortPart(d, &sc, needs)
			}
		})
	}
	wg.Wait()
	return tiles
}

// scratch is one core's room to sort a partition in.
type scratch struct {
	keys, tmpK []uint32
	vals, tmpV []float64
	none       []struct{}
	cells      []aggregate.State // all zero between partitions
	sums       []sumCell         // all (-0, 0, 0) between partitions
}

// reserveTiles reserves, before the partitions of order sort, room for
// the tiles of those that fold through cells in s.summed or s.folded: a
// tile at most per cell of the partition's range and per key it holds, or,
// for a partition whose keys folded into cells as they were evicted, a
// tile per cell holding keys. sortPart folds through cells exactly the
// partitions given room here. One buffer of scratch memory (see hugepage.Scratch), cut
// per partition: chunks of fresh memory taken as the partitions folded
// cost a page fault per 4 KiB at their first write, 40 ms of CPU in a
// 20M-event build whose 70 folded partitions made 665k tiles.
func (s *spread) reserveTiles(order []int, needs aggregate.Needs) {
	parts := len(s.chains)
	s.folded, s.summed = make([][]cellTile, parts), make([][]sumTile, parts)
	// Per partition: the tiles it may make, and whether as cellTiles.
	room, states := make([]int, parts), make([]bool, parts)
	var nsums, nstates int
	for _, d := range order {
		n, span := s.len(d, nil), s.span(d)
		states[d] = !sumsAlone(needs)
		if p := s.prefolded(d); p != nil {
			n, span, states[d] = p.weight(), uint64(len(p.sums)+len(p.states)), p.states != nil
		} else if !foldsThroughCells(n, span) {
			continue
		}
		room[d] = int(min(uint64(n), span))
		if states[d] {
			nstates += room[d]
		} else {
			nsums += room[d]
		}
	}
	sums, freeSums := scratchOf[sumTile](nsums)
	cells, freeCells := scratchOf[cellTile](nstates)
	s.unroom = func() { freeSums(); freeCells() }
	for _, d := range order {
		switch r := room[d]; {
		case r == 0:
		case states[d]:
			s.folded[d], cells = cells[:0:r], cells[r:]
		default:
			s.summed[d], sums = sums[:0:r], sums[r:]
		}
	}
}

// scratchOf returns room for n tiles in scratch memory (see
// hugepage.Scratch), its contents undefined, and what frees it. The tiles
// hold no pointers: the memory may lie outside the Go heap.
func scratchOf[T sumTile | cellTile](n int) ([]T, func()) {
	size := int(unsafe.Sizeof(*new(T)))
	words, free := hugepage.Scratch[uint64]((n*size + 7) / 8)
	if n == 0 {
		return nil, free
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(words))), n), free
}

func (sc *scratch) size(n int, withValues bool) {
	if len(sc.keys) >= n {
		return
	}
	sc.keys, sc.tmpK = make([]uint32, n), make([]uint32, n)
	if withValues {
		sc.vals, sc.tmpV = make([]float64, n), make([]float64, n)
	} else {
		sc.none = make([]struct{}, 2*n)
	}
}

// gather copies partition d's keys (and values) into sc, in order.
func (s *spread) gather(d int, sc *scratch) (keys []uint32, vals []float64) {
	n := s.len(d, nil)
	sc.size(n, s.vals != nil)
	keys = sc.keys[:0]
	if s.vals != nil {
		vals = sc.vals[:0]
	}
	s.each(d, n, func(lo, hi int) {
		keys = append(keys, s.keys[lo:hi]...)
		if s.vals != nil {
			vals = append(vals, s.vals[lo:hi]...)
		}
	})
	return keys, vals
}

// cellKeys is the range of keys of a partition whose cells (a state per
// key) stay in a core's cache; maxCellKeys bounds the range of a
// partition folded through cells at all.
const (
	cellKeys    = 1 << 14
	maxCellKeys = 1 << 18
)

// foldsThroughCells reports whether a partition of n keys over a range of
// span keys is folded through cells rather than sorted: when it holds at
// least a key per cell, and more the further its cells overflow the cache
// (a cell out of cache costs a miss per key, a sort a few passes over
// them). A heavy key's buckets do: where keys are wide (millions of keys,
// hundreds of buckets), one partition can hold half of the events within
// a range of tens of thousands of keys.
func foldsThroughCells(n int, span uint64) bool {
	return span <= maxCellKeys && uint64(n) >= span*max(1, span/cellKeys)
}

// span returns how many keys partition d's range spans.
func (s *spread) span(d int) uint64 {
	hi := uint64(len(s.table)) << s.fshift
	if d+1 < len(s.base) {
		hi = s.base[d+1]
	}
	return hi - s.base[d]
}

// sortPart sorts partition d in place and counts its distinct keys; or,
// when d is dense enough (foldsThroughCells: a heavy key's buckets), folds
// its keys into a state per key of the range instead, in arrival order, and
// keeps its tiles in s.summed or s.folded (see foldCells): what a sort and
// a fold would give, at the cost of one pass over the keys.
func (s *spread) sortPart(d int, sc *scratch, needs aggregate.Needs) int {
	if p := s.prefolded(d); p != nil {
		return s.foldPrefolded(d, p)
	}
	if s.summed[d] != nil || s.folded[d] != nil { // see reserveTiles
		return s.foldCells(d, int(s.span(d)), sc, needs)
	}
	keys, vals := s.gather(d, sc)
	n := len(keys)
	if s.vals != nil {
		if !sortMSD(keys, vals, sc.tmpK[:n], sc.tmpV[:n], diffWidth(keys)) {
			keys, vals = sc.tmpK[:n], sc.tmpV[:n]
		}
	} else if !sortMSD(keys, sc.none[:n], sc.tmpK[:n], sc.none[n:2*n], diffWidth(keys)) {
		keys = sc.tmpK[:n]
	}
	i := 0
	s.each(d, n, func(lo, hi int) {
		copy(s.keys[lo:hi], keys[i:])
		if s.vals != nil {
			copy(s.vals[lo:hi], vals[i:])
		}
		i += hi - lo
	})
	tiles := 1
	for j := 1; j < n; j++ {
		if keys[j] != keys[j-1] {
			tiles++
		}
	}
	return tiles
}

// foldCells folds the keys of partition d, which span keys of range, into
// a state per key in sc.cells, in arrival order, and keeps those that
// received a key, in key order, as s.folded[d]; it returns how many. For
// needs of a count, n and sum alone it folds through smaller cells into
// s.summed[d] (see foldSums).
func (s *spread) foldCells(d, span int, sc *scratch, needs aggregate.Needs) int {
	if sumsAlone(needs) {
		return s.foldSums(d, span, sc)
	}
	if len(sc.cells) < span {
		sc.cells = make([]aggregate.State, max(span, cellKeys))
	}
	cells := sc.cells[:span]
	// Needs beyond a count, n and sum keep values: the slab holds them.
	s.each(d, s.len(d, nil), func(lo, hi int) {
		stateInto(cells, s.keys[lo:hi], s.vals[lo:hi])
	})
	s.folded[d] = keepStates(cells, s.folded[d], true)
	return len(s.folded[d])
}

// stateInto folds keys, with their values, into cells.
func stateInto(cells []aggregate.State, keys []uint32, vals []float64) {
	vals = vals[:len(keys)]
	for i, k := range keys {
		addEvent(&cells[k], vals[i], true, false)
	}
}

// keepStates appends the tiles of the cells that hold keys, in key order,
// to out, and clears the cells when clear is set.
func keepStates(cells []aggregate.State, out []cellTile, clear bool) []cellTile {
	for k := range cells {
		if cells[k].Count > 0 {
			out = append(out, cellTile{off: uint32(k), st: cells[k]})
			if clear {
				cells[k] = aggregate.State{}
			}
		}
	}
	return out
}

// foldSums is foldCells for tiles of a count, n and sum alone, through
// cells of those alone, into s.summed[d].
func (s *spread) foldSums(d, span int, sc *scratch) int {
	if len(sc.sums) < span {
		sc.sums = newSumCells(max(span, cellKeys))
	}
	cells := sc.sums[:span]
	s.each(d, s.len(d, nil), func(lo, hi int) {
		var vals []float64
		if s.vals != nil {
			vals = s.vals[lo:hi]
		}
		sumInto(cells, s.keys[lo:hi], vals)
	})
	s.summed[d] = keepSums(cells, s.summed[d], true)
	return len(s.summed[d])
}

// newSumCells returns n empty sum cells: sums at -0 (see sumCell).
func newSumCells(n int) []sumCell {
	cells := make([]sumCell, n)
	negZero := math.Copysign(0, -1)
	for k := range cells {
		cells[k].sum = negZero
	}
	return cells
}

// sumInto folds keys, with their values (nil: counts alone), into cells.
func sumInto(cells []sumCell, keys []uint32, vals []float64) {
	if vals == nil {
		for _, k := range keys {
			cells[k].count++
		}
		return
	}
	vals = vals[:len(keys)]
	for i, k := range keys {
		c := &cells[k]
		c.count++
		if v := vals[i]; v == v {
			c.sum += v
			c.n++
		}
	}
}

// keepSums appends the tiles of the cells that hold keys, in key order, to
// out, and empties the cells when clear is set.
func keepSums(cells []sumCell, out []sumTile, clear bool) []sumTile {
	negZero := math.Copysign(0, -1)
	for k := range cells {
		if c := &cells[k]; c.count > 0 {
			t := sumTile{off: uint32(k), count: c.count, n: c.n}
			if c.n > 0 {
				t.sum = c.sum
			}
			out = append(out, t)
			if clear {
				*c = sumCell{sum: negZero}
			}
		}
	}
	return out
}
