package tile

import (
	"runtime"
	"sync"

	"github.com/tessera-fe/tessera/aggregate"
)

// Builder builds the tiles of events that arrive in batches, such as the
// files of a source as they decode, into the Set that Build makes of all
// of them at once.
//
// Told what the batches hold (Expect: the range of their int keys and
// times, as file statistics give them), it sorts each batch's events into
// key ranges as the batch arrives, so that this pass over the events runs
// while the next batch decodes, and Finish only sorts and folds the ranges.
// Otherwise, or when a batch falls outside what it was told, it builds from
// the batches at Finish as Build does.
type Builder struct {
	g        Grid
	needs    aggregate.Needs
	from, to int64
	batches  []*Events

	expect *expectation
	ps     []*part // the key ranges of the pass as batches arrive; nil when there is none
	cuts   []int64 // ps[i] holds the keys below cuts[i] (and at or above cuts[i-1])
	kmin   int64
	kmax   int64
	bk     bucketer
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
	if len(b.batches) == 0 && kmin <= kmax && tmin <= tmax {
		b.expect = &expectation{kmin: kmin, kmax: kmax, tmin: tmin, tmax: tmax, events: events}
	}
}

// Add adds a batch of events of one key kind. The builder keeps the batch
// until Finish: the caller must not change it.
func (b *Builder) Add(ev *Events) {
	if len(b.batches) == 0 {
		b.begin(ev)
	}
	b.batches = append(b.batches, ev)
	if b.ps != nil && !b.scan(ev) {
		b.ps = nil // the batch is not what was expected: build at Finish
	}
}

// begin sets up the key ranges of the pass over batches as they arrive,
// when the expectation allows numbering every (key, bucket) pair directly.
func (b *Builder) begin(first *Events) {
	e := b.expect
	if e == nil || first.Keys.String {
		return
	}
	tmin, tmax := max(e.tmin, b.from), min(e.tmax, b.to-1)
	if tmin > tmax {
		return // no event is kept: nothing to gain
	}
	bmin, bmax := b.bk.of(tmin), b.bk.of(tmax)
	if bmax-bmin < 0 {
		return
	}
	nb := uint64(bmax-bmin) + 1
	if !fitsComposite(e.kmin, e.kmax, nb) {
		return
	}
	events := max(e.events, first.Len())
	parts := max(1, runtime.GOMAXPROCS(0))
	ranges := splitKeys([][]int64{first.Keys.Int}, parts)
	withValues := b.needs.HasValues()
	b.kmin, b.kmax = e.kmin, e.kmax
	for i, r := range ranges {
		p := &part{ints: r, direct: true, nb: nb, bmin: bmin, kmin: e.kmin}
		p.start(false, withValues, events/len(ranges))
		b.ps = append(b.ps, p)
		if i > 0 {
			b.cuts = append(b.cuts, r.lo)
		}
	}
}

// scan appends the events of ev with from <= ts < to to their key ranges;
// it reports false, leaving the ranges part-filled, at the first event
// outside the expected keys or times.
func (b *Builder) scan(ev *Events) bool {
	if ev.Keys.String {
		return false
	}
	withValues := b.needs.HasValues()
	from, to, kmin, kmax := b.from, b.to, b.kmin, b.kmax
	p0 := b.ps[0]
	nb, bmin := p0.nb, p0.bmin
	ps, cuts, bk := b.ps, b.cuts, b.bk
	tss := ev.TS[:len(ev.Keys.Int)]
	for i, k := range ev.Keys.Int {
		ts := tss[i]
		if ts < from || ts >= to {
			continue
		}
		bucket := uint64(bk.of(ts) - bmin)
		if k < kmin || k > kmax || bucket >= nb {
			return false
		}
		q := 0
		for q < len(cuts) && k >= cuts[q] {
			q++
		}
		p := ps[q]
		p.keys = append(p.keys, (uint64(k)-uint64(kmin))*nb+bucket)
		if withValues {
			p.vals = append(p.vals, valueAt(ev, i))
		}
	}
	return true
}

// Finish returns the tiles of every batch added, sorted by (key, bucket
// start), as Build would return them for the batches joined.
func (b *Builder) Finish() *Set {
	if b.ps == nil {
		n := 0
		for _, ev := range b.batches {
			n += ev.Len()
		}
		return buildParts(b.batches, b.g, b.needs, b.from, b.to, partsFor(n))
	}
	kept := 0
	for _, p := range b.ps {
		kept += len(p.keys)
	}
	if kept == 0 {
		return &Set{Needs: b.needs}
	}
	var wg sync.WaitGroup
	for _, p := range b.ps {
		wg.Go(p.sort)
	}
	wg.Wait()
	return foldParts(b.ps, &Set{Needs: b.needs}, b.g, b.needs, b.from, b.to, b.batches)
}
