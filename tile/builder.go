package tile

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/internal/hugepage"
)

// Builder builds the tiles of events that arrive in batches, such as the
// files of a source as they decode, into the Set that Build makes of all
// of them at once.
//
// Told what the batches hold (Expect: the range of their int keys and
// times, as file statistics give them), it numbers each batch's (key,
// bucket) pairs as the batch arrives and files them in partitions of
// contiguous numbers (see spread), so that this pass over the events runs
// while the next batch decodes, and Finish only sorts each partition and
// folds, on every core; the batches themselves are not kept. Otherwise, or
// once a batch falls outside what it was told, it keeps the batches and
// builds from them at Finish as Build does. Told to Spill, it keeps at most
// a share of memory and writes the rest to disk, but for the partitions of
// heavy keys, which fold into cells as they leave memory (see prefold), and
// Parts builds the tiles a group of keys at a time.
type Builder struct {
	g        Grid
	needs    aggregate.Needs
	from, to int64
	batches  []*Events // kept when not streaming
	added    bool

	expect *expectation
	// The pass as batches arrive; streaming is false when there is none.
	// The composite key of an event is (key - kmin) * nb + bucket - bmin.
	streaming  bool
	sp         *spread // composite keys and values of every batch
	kmin, kmax int64   // keys expected
	tmin, tmax int64   // times expected, within [from, to)
	bmin       int64   // first bucket expected
	nb         uint64  // buckets expected
	bk         bucketer
	near       bool     // bk.near holds for every time expected
	chunk      []uint64 // composite keys of a chunk of a batch
	// events of the batches scanned so far
	scannedEvents int

	spill  *spillPlan // set by Spill
	groups int        // of keys that Parts builds in turn, when spilling
	err    error      // what stopped a builder that spills
	// the columns of the last part Parts built, which the next part's
	// tiles reuse when they fit, and the most tiles a part can make
	partCols  []int64
	partTiles int
}

// spillPlan is what Spill was told.
type spillPlan struct {
	dir    string
	memory int64
	groups int
}

// expectation is what Expect was told.
type expectation struct {
	kmin, kmax, tmin, tmax int64
	events                 int
}

// NewBuilder returns a builder of the tiles of the events with from <= ts
// < to on grid g, with the partial-state columns of needs.
func NewBuilder(g Grid, needs aggregate.Needs, from, to int64) *Builder {
	return &Builder{g: g, needs: needs, from: from, to: to, bk: newBucketer(g)}
}

// Expect tells the builder, before the first Add, that the batches will
// hold int keys within [kmin, kmax] and times within [tmin, tmax], about
// events of them in all. Being wrong costs speed, not correctness.
func (b *Builder) Expect(kmin, kmax, tmin, tmax int64, events int) {
	if !b.added && kmin <= kmax && tmin <= tmax {
		b.expect = &expectation{kmin: kmin, kmax: kmax, tmin: tmin, tmax: tmax, events: events}
	}
}

// Spill tells the builder, before the first Add, to hold about memory
// bytes of events at most and to write the rest to disk, under dir ("" is
// the system temporary directory), in groups of contiguous keys that Parts
// builds one at a time: as many groups as the memory needs, or groups when
// above 0. It needs what Expect tells: a builder that cannot number the
// batches as they arrive stops, and Err says why. Close removes what it
// wrote.
func (b *Builder) Spill(dir string, memory int64, groups int) {
	if !b.added {
		b.spill = &spillPlan{dir: dir, memory: max(memory, 1<<20), groups: groups}
	}
}

// ErrNotNumbered is the error of a builder that spills and cannot number
// the batches' keys and times as they arrive.
var ErrNotNumbered = errors.New("the batches' keys and times cannot be numbered as they arrive")

// Err returns what stopped a builder that spills: batches it could not
// number as they arrived (no expectation, string keys, or a batch outside
// the expectation), or a spill file that could not be written. The
// builder then holds nothing; the caller builds the events another way.
func (b *Builder) Err() error { return b.err }

// bytesPerSpilledEvent is what the build of a group costs per event, at
// most: its keys and values read back (12 bytes), their sort scratch (24)
// or, in a partition folded through cells, up to a state per event held
// until it is written (56), and up to a tile each (64 with every state
// column).
const bytesPerSpilledEvent = 136

// bytesPerFoldedTile is what the build of a group costs per tile of a
// partition folded as it left memory (see prefold), whose cells are held
// already: the tile as the fold keeps it until it is written (up to 56
// bytes) and as written (64 with every state column).
const bytesPerFoldedTile = 120

// Add adds a batch of events of one key kind. The builder may keep the
// batch until Finish: the caller must not change it. An empty batch may
// say another key kind (a CSV file with only a header reads as integers):
// the first batch holding events decides.
func (b *Builder) Add(ev *Events) {
	if ev.Len() == 0 {
		if len(b.batches) == 0 && !b.streaming {
			b.batches = append(b.batches, ev) // the kind, if no event ever comes
		}
		return
	}
	if b.err != nil {
		return
	}
	if !b.added {
		b.added = true
		b.begin(ev)
		if b.spill != nil && !b.streaming && b.err == nil {
			b.err = fmt.Errorf("%w (no file statistics, string keys, or too wide a range)", ErrNotNumbered)
		}
		if b.err != nil {
			b.drop()
			return
		}
	}
	if b.streaming {
		if b.spill != nil {
			if !b.scan(ev) {
				b.err = fmt.Errorf("%w: a batch holds keys or times outside its file statistics", ErrNotNumbered)
				b.drop()
			} else if err := b.sp.disk.err; err != nil {
				b.err = fmt.Errorf("spill tiles to %s (set TMPDIR to a disk with room): %w", b.sp.disk.dir, err)
				b.drop()
			}
			return
		}
		m := b.sp.mark()
		if b.scan(ev) {
			return
		}
		// The batch is not what was expected: build at Finish, from the
		// events scanned before it (as one batch at their buckets' starts)
		// and this batch on.
		b.batches = append(b.batches, b.scanned(&m))
		b.sp.release()
		b.streaming, b.sp = false, nil
	}
	b.batches = append(b.batches, ev)
}

// drop lets go of everything a builder that spills holds, once it stopped.
func (b *Builder) drop() {
	if b.sp != nil {
		b.sp.release()
	}
	b.streaming, b.batches = false, nil
	if b.sp != nil && b.sp.disk != nil {
		_ = b.sp.disk.close()
	}
	b.sp = nil
}

// Close removes what the builder spilled to disk and frees what it holds
// outside the Go heap: a builder given up before Finish (a source that
// failed to read) must be closed.
func (b *Builder) Close() error {
	b.partCols = nil
	if b.sp == nil {
		return nil
	}
	b.sp.release()
	if b.sp.disk != nil {
		return b.sp.disk.close()
	}
	return nil
}

// scanned returns the events scanned up to m, each at the start of its
// bucket (or at from, within the same bucket): what their tiles need of
// them. They come by partition, but those of each tile in input order,
// which is all that a stable sort by tile keeps of the order.
func (b *Builder) scanned(m *mark) *Events {
	s := b.sp
	n := 0
	for d := range s.chains {
		n += s.len(d, m)
	}
	ev := &Events{Keys: Keys{Int: make([]int64, 0, n)}, TS: make([]int64, 0, n)}
	if s.vals != nil {
		ev.Values, ev.Valid = make([]float64, 0, n), make([]bool, 0, n)
	}
	for d := range s.chains {
		s.each(d, s.len(d, m), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				c := s.composite(d, s.keys[i])
				ev.Keys.Int = append(ev.Keys.Int, int64(uint64(b.kmin)+c/b.nb))
				ev.TS = append(ev.TS, max(b.g.Origin+(int64(c%b.nb)+b.bmin)*b.g.Width, b.from))
				if s.vals != nil {
					v := s.vals[i]
					ev.Values = append(ev.Values, v)
					ev.Valid = append(ev.Valid, v == v)
					if v != v {
						ev.Values[len(ev.Values)-1] = 0
					}
				}
			}
		})
	}
	return ev
}

// KeepsBatches reports whether the builder holds on to the batches added
// (it builds from them at Finish) rather than only to what it drew from
// them as they arrived.
func (b *Builder) KeepsBatches() bool { return !b.streaming }

// begin sets up the pass over batches as they arrive, when the expectation
// allows numbering every (key, bucket) pair directly.
func (b *Builder) begin(first *Events) {
	e := b.expect
	if e == nil || first.Keys.String {
		return
	}
	tmin, tmax := max(e.tmin, b.from), min(e.tmax, b.to-1)
	if b.from >= b.to || tmin > tmax {
		return // no event is kept: nothing to gain (and number needs from < to)
	}
	bmin, bmax := b.bk.of(tmin), b.bk.of(tmax)
	if bmax-bmin < 0 {
		return
	}
	nb := uint64(bmax-bmin) + 1
	if !fitsComposite(e.kmin, e.kmax, nb) {
		return
	}
	b.kmin, b.kmax, b.bmin, b.nb = e.kmin, e.kmax, bmin, nb
	b.tmin, b.tmax = tmin, tmax
	b.near = b.bk.near(tmin) && b.bk.near(tmax)
	width := bits.Len64((uint64(e.kmax)-uint64(e.kmin))*nb + nb - 1)
	events := max(e.events, first.Len())
	slots := 0
	if b.spill != nil {
		per := int64(4)
		if b.needs.HasValues() {
			per += 8
		}
		// A quarter of the memory holds events as they arrive (more
		// would mostly spare eviction passes: every event goes to disk
		// once, but for those of partitions dense enough to fold as they
		// leave, see prefold); a group's build takes the whole.
		slots = int(max(1, b.spill.memory/4/per))
	}
	groups := 1
	if b.spill != nil {
		groups = b.spill.groups
		if groups <= 0 {
			// What the cells of partitions folded at eviction (see
			// prefold) leave for a group's build.
			room := b.spill.memory - b.spill.memory/prefoldShare
			groups = int((int64(events)*bytesPerSpilledEvent + room - 1) / room)
		}
		groups = max(1, min(groups, maxParts))
	}
	// Partitions enough for the groups to share the keys evenly.
	sample := b.sample(first)
	b.sp = newSpread(width, events, sample, b.share(first, events, sample), b.needs.HasValues(), slots, 8*groups)
	b.streaming = b.sp != nil
	if b.streaming && b.spill != nil {
		b.groups = groups
		st, err := newSpillStore(b.sp, b.spill.dir, b.needs, b.spill.memory/prefoldShare)
		if err != nil {
			b.err = err
			return
		}
		b.sp.disk = st
	}
}

// share returns the share of the events to come that the sample of the
// first batch stands for: its share of the events, or, when its keys span
// the keys expected (batches in no key order, such as the pieces of one
// file), the share of the expected keys they span, up to maxShare. Only
// batches sorted by key hold other keys than the first.
func (b *Builder) share(first *Events, events int, sample []uint64) float64 {
	share := float64(first.Len()) / float64(events)
	if len(sample) == 0 {
		return share
	}
	lo, hi := slices.Min(sample)/b.nb, slices.Max(sample)/b.nb
	if keys := uint64(b.kmax) - uint64(b.kmin); keys > 0 {
		share = max(share, min(maxShare, float64(hi-lo)/float64(keys)))
	}
	return share
}

// maxShare bounds the share a first batch's sample stands for by the span
// of its keys: a stray key at either end (a sentinel in every file of data
// whose keys grow with time) spans the range without standing for it, and
// the keys the sample missed still weigh a tenth, spread evenly, rather
// than piling into a few partitions (or, spilling, into one group).
const maxShare = 0.9

// sampleKeys is about the keys of the first batch that cut a spread's
// partitions.
const sampleKeys = 1 << 16

// sample returns the composite keys of about sampleKeys events of ev, taken
// at even steps, that fall within the expectation.
func (b *Builder) sample(ev *Events) []uint64 {
	step := max(1, ev.Len()/sampleKeys)
	var out []uint64
	for i := 0; i < ev.Len(); i += step {
		k, ts := ev.Keys.Int[i], ev.TS[i]
		if ts < b.from || ts >= b.to || k < b.kmin || k > b.kmax {
			continue
		}
		if bucket := uint64(b.bk.of(ts) - b.bmin); bucket < b.nb {
			out = append(out, (uint64(k)-uint64(b.kmin))*b.nb+bucket)
		}
	}
	return out
}

// scanChunk is the events a scan numbers before it files them in the
// spread: few enough that their numbers stay in the L1 cache between the
// two loops, each of which then keeps its state in registers.
const scanChunk = 2048

// skipped marks an event outside [from, to) in a chunk: no composite key
// of a spread comes near it.
const skipped = ^uint64(0)

// scan adds the composite keys (and values) of the events of ev with from
// <= ts < to to the spread; it reports false at the first event outside the
// expected keys or times, having added some of ev's events (none, where
// it files them on every core: see scanParallel).
func (b *Builder) scan(ev *Events) bool {
	if ev.Keys.String {
		return false
	}
	defer func() { b.scannedEvents += ev.Len() }()
	if b.scansInParallel(ev) {
		return b.scanParallel(ev)
	}
	if b.chunk == nil {
		b.chunk = make([]uint64, scanChunk)
	}
	n := len(ev.Keys.Int)
	tss := ev.TS[:n]
	for lo := 0; lo < n; lo += scanChunk {
		hi := min(n, lo+scanChunk)
		cs := b.chunk[:hi-lo]
		if !b.number(ev.Keys.Int[lo:hi], tss[lo:hi], cs) {
			return false
		}
		var vals []float64
		var valid []bool
		if b.sp.vals != nil {
			vals = ev.Values[lo:hi]
			if ev.Valid != nil {
				valid = ev.Valid[lo:hi]
			}
		}
		b.sp.file(cs, vals, valid)
	}
	return true
}

// number writes the composite key of each event (keys[i], tss[i]) to cs[i],
// skipped for those outside [from, to); it reports false at the first event
// outside the expected keys or times.
func (b *Builder) number(keys, tss []int64, cs []uint64) bool {
	if !b.near {
		return b.numberFar(keys, tss, cs)
	}
	// Each range test is one unsigned comparison: x in [lo, hi] when
	// x-lo, wrapped, is at most hi-lo.
	from, span := b.from, uint64(b.to)-uint64(b.from) // [from, to)
	tmin, tspan := b.tmin, uint64(b.tmax)-uint64(b.tmin)
	kmin, kspan := b.kmin, uint64(b.kmax)-uint64(b.kmin)
	origin, width, inv := b.bk.origin, b.bk.width, b.bk.inv
	base := uint64(b.bmin)
	nb := b.nb
	tss, cs = tss[:len(keys)], cs[:len(keys)]
	for i, k := range keys {
		ts := tss[i]
		if uint64(ts)-uint64(from) >= span {
			cs[i] = skipped
			continue
		}
		if uint64(ts)-uint64(tmin) > tspan || uint64(k)-uint64(kmin) > kspan {
			return false
		}
		// bucketer.of, for a time it is near: one correction at most.
		x := ts - origin
		q := int64(float64(x) * inv)
		if r := x - q*width; r < 0 {
			q--
		} else if r >= width {
			q++
		}
		cs[i] = (uint64(k)-uint64(kmin))*nb + uint64(q) - base
	}
	return true
}

// numberFar is number for times too far from the grid's origin, in
// buckets, for its quick bucket numbering.
func (b *Builder) numberFar(keys, tss []int64, cs []uint64) bool {
	for i, k := range keys {
		ts := tss[i]
		if ts < b.from || ts >= b.to {
			cs[i] = skipped
			continue
		}
		if ts < b.tmin || ts > b.tmax || k < b.kmin || k > b.kmax {
			return false
		}
		cs[i] = (uint64(k)-uint64(b.kmin))*b.nb + uint64(b.bk.of(ts)-b.bmin)
	}
	return true
}

// Finish returns the tiles of every batch added, sorted by (key, bucket
// start), as Build would return them for the batches joined. It is called
// once: the builder lets go of what it held.
func (b *Builder) Finish() *Set {
	if !b.streaming {
		n := 0
		for _, ev := range b.batches {
			n += ev.Len()
		}
		return buildParts(b.batches, b.g, b.needs, b.from, b.to, partsFor(n))
	}
	set, _ := b.finish(b.sp, heapColumns)
	return set
}

// FinishScratch is Finish for a caller that writes the tiles out and then
// drops them, such as a backfill: the columns of the set it returns may
// lie outside the Go heap, in memory an earlier build freed moments ago
// (see hugepage.Scratch), which spares clearing and faulting in hundreds
// of megabytes per build. They are valid until release is called, once;
// nothing may read them afterwards.
func (b *Builder) FinishScratch() (set *Set, release func()) {
	if !b.streaming {
		return b.Finish(), func() {}
	}
	return b.finish(b.sp, scratchColumns)
}

// Parts returns the builds of the tiles of a builder that spills, one per
// group of keys, in key order: each reads its group back from disk (and the
// cells of its partitions folded as they left memory) and returns its
// tiles, sorted by (key, bucket start); together they are what Finish would
// return, and a part built again returns the same. A builder that does not
// spill has one part: Finish.
//
// A group's tiles are valid until the next part is built, whose tiles take
// over their memory where they fit (new heap memory is cleared first: 0.4
// s of CPU for the four groups of a 100M-event backfill): a caller writes
// each part out before it builds the next. The builder lets go of that
// memory once it built the last group, so that a backfill of several tile
// sets does not hold one such buffer per set until it ends.
func (b *Builder) Parts() []func() (*Set, error) {
	if b.err != nil {
		err := b.err
		return []func() (*Set, error){func() (*Set, error) { return nil, err }}
	}
	if b.spill == nil || !b.streaming {
		return []func() (*Set, error){func() (*Set, error) { return b.Finish(), nil }}
	}
	s := b.sp
	s.evictAll()
	// The groups' slabs are of other sizes than the one just freed: give
	// it back now rather than keep it, off the memory limit, while they
	// build.
	hugepage.Trim()
	s.disk.flush()
	if err := s.disk.err; err != nil {
		err = fmt.Errorf("spill tiles to %s (set TMPDIR to a disk with room): %w", s.disk.dir, err)
		return []func() (*Set, error){func() (*Set, error) { return nil, err }}
	}
	groups := b.groups
	if b.spill.groups <= 0 {
		// As many groups as what went to disk and the folded partitions'
		// tiles need, now that they are known: the heavy keys' events that
		// folded as they left memory need none of the room planned for
		// them, and fewer, larger groups write larger objects.
		room := b.spill.memory - b.spill.memory/prefoldShare
		groups = max(1, min(groups, int((s.disk.need()+room-1)/room)))
	}
	cuts := s.disk.cuts(groups)
	parts := make([]func() (*Set, error), len(cuts)-1)
	b.partTiles = 0
	for g := range parts {
		b.partTiles = max(b.partTiles, s.disk.tilesAtMost(cuts[g], cuts[g+1]))
	}
	for g := range parts {
		parts[g] = func() (*Set, error) {
			sub, err := s.loadGroup(cuts[g], cuts[g+1])
			if err != nil {
				return nil, err
			}
			set, _ := b.finish(sub, partColumns)
			if g == len(parts)-1 {
				// The last group: the set holds the columns as long as
				// the caller does, the builder no longer.
				b.partCols = nil
			}
			return set, nil
		}
	}
	return parts
}

// columns says where finish puts the columns of the tiles it folds.
type columns int

const (
	heapColumns    columns = iota // new heap memory (Finish)
	scratchColumns                // scratch memory (FinishScratch)
	partColumns                   // the last part's columns, where they fit (Parts)
)

// finish sorts and folds the partitions of s into tiles, in columns where
// cols says, with what frees them.
func (b *Builder) finish(s *spread, cols columns) (*Set, func()) {
	n := 0
	for d := range s.chains {
		n += s.held(d)
	}
	out := &Set{Needs: b.needs}
	if n == 0 {
		s.release()
		return out, func() {}
	}
	workers := partsFor(n)
	tiles := s.sortParts(workers, b.needs)
	offs := make([]int, len(tiles))
	total := 0
	for d, t := range tiles {
		offs[d] = total
		total += t
	}
	free, written := func() {}, func() {}
	switch cols {
	case scratchColumns:
		free = out.allocScratch(total)
	case partColumns:
		if need := out.words(total); len(b.partCols) < need {
			// Room for the largest group's tiles at once, where the bound
			// on them is not far above what this group made: groups cut
			// at equal events make more tiles the lighter their keys.
			b.partCols = nil // garbage before its successor is made
			size := max(need, min(out.words(b.partTiles), 3*need))
			b.partCols, written = hugepage.Make[int64](size)
		}
		out.allocIn(b.partCols, total)
	default:
		out.alloc(total)
		written = out.adviseHuge()
	}
	// Fold the partitions, in turns, on every core; each writes its own
	// rows of out.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				d := int(next.Add(1)) - 1
				if d >= len(tiles) {
					return
				}
				if tiles[d] > 0 {
					b.fold(s, d, out, offs[d])
				}
			}
		})
	}
	wg.Wait()
	written()
	s.release()
	return out, free
}

// fold writes the tiles of partition d of the spread, which is sorted, into
// rows off, off+1, ... of out, as part.fold does: one per run of equal
// composite keys.
func (b *Builder) fold(s *spread, d int, out *Set, off int) {
	g := b.g
	withValues, sumOnly := b.needs.HasValues(), out.sumOnly()
	j, off0 := off, off
	var st aggregate.State
	var cur uint32
	started := false
	// Tiles come in ascending composite keys: the key is divided out once
	// per key, not per tile (two 64-bit divisions per tile took a seventh
	// of the fold's time in a 20M-event backfill).
	var key, first uint64
	put := func(off uint32, st *aggregate.State) {
		c := s.composite(d, off)
		if j == off0 || c-first >= b.nb {
			key = c / b.nb
			first = key * b.nb
		}
		out.Keys.Int[j] = int64(uint64(b.kmin) + key)
		out.putState(j, g.Origin+(int64(c-first)+b.bmin)*g.Width, st)
		j++
	}
	if tiles := s.summed[d]; tiles != nil {
		for i := range tiles {
			t := &tiles[i]
			put(t.off, &aggregate.State{Count: t.count, N: t.n, Sum: t.sum})
		}
		s.summed[d] = nil
		return
	}
	if tiles := s.folded[d]; tiles != nil {
		for i := range tiles {
			put(tiles[i].off, &tiles[i].st)
		}
		s.folded[d] = nil
		return
	}
	flush := func() {
		put(cur, &st)
		st = aggregate.State{}
	}
	s.each(d, s.len(d, nil), func(lo, hi int) {
		for i, k := range s.keys[lo:hi] {
			if started && k != cur {
				flush()
			}
			cur, started = k, true
			var v float64
			if withValues {
				v = s.vals[lo+i]
			}
			addEvent(&st, v, withValues, sumOnly)
		}
	})
	flush()
}
