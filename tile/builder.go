package tile

import (
	"sync"

	"github.com/tessera-fe/tessera/aggregate"
)

// Builder builds the tiles of events that arrive in batches, such as the
// files of a source as they decode, into the Set that Build makes of all
// of them at once.
//
// Told what the batches hold (Expect: the range of their int keys and
// times, as file statistics give them), it numbers each batch's (key,
// bucket) pairs as the batch arrives, so that this pass over the events runs
// while the next batch decodes, and Finish only sorts and folds, on every
// core; the batches themselves are not kept. Otherwise, or once a batch
// falls outside what it was told, it keeps the batches and builds from them
// at Finish as Build does.
type Builder struct {
	g        Grid
	needs    aggregate.Needs
	from, to int64
	batches  []*Events // kept when not streaming
	added    bool

	expect *expectation
	// The pass as batches arrive; streaming is false when there is none.
	streaming bool
	p         part  // direct composite keys and values of every batch, in input order
	kmax      int64 // greatest key expected (p.kmin the least)
	bk        bucketer
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
	if !b.added {
		b.added = true
		b.begin(ev)
	}
	if b.streaming {
		n := len(b.p.keys)
		if b.scan(ev) {
			return
		}
		// The batch is not what was expected: build at Finish, from the
		// events scanned so far (as one batch at their buckets' starts)
		// and this batch on.
		b.p.keys, b.p.vals = b.p.keys[:n], sub(b.p.vals, n)
		b.batches = append(b.batches, b.scanned())
		b.streaming, b.p = false, part{}
	}
	b.batches = append(b.batches, ev)
}

func sub(vals []float64, n int) []float64 {
	if vals == nil {
		return nil
	}
	return vals[:n]
}

// scanned returns the events scanned so far, in input order, each at the
// start of its bucket (or at from, within the same bucket): what their
// tiles need of them.
func (b *Builder) scanned() *Events {
	p := &b.p
	n := len(p.keys)
	ev := &Events{Keys: Keys{Int: make([]int64, n)}, TS: make([]int64, n)}
	if p.vals != nil {
		ev.Values, ev.Valid = make([]float64, n), make([]bool, n)
	}
	for i, c := range p.keys {
		ev.Keys.Int[i] = int64(uint64(p.kmin) + c/p.nb)
		ev.TS[i] = max(b.g.Origin+(int64(c%p.nb)+p.bmin)*b.g.Width, b.from)
		if p.vals != nil {
			v := p.vals[i]
			ev.Values[i], ev.Valid[i] = v, v == v
			if v != v {
				ev.Values[i] = 0
			}
		}
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
	b.streaming = true
	b.kmax = e.kmax
	b.p = part{direct: true, nb: nb, bmin: bmin, kmin: e.kmin}
	b.p.start(false, b.needs.HasValues(), max(e.events, first.Len()))
}

// scan appends the composite keys (and values) of the events of ev with
// from <= ts < to; it reports false at the first event outside the
// expected keys or times, leaving those of ev before it appended.
func (b *Builder) scan(ev *Events) bool {
	if ev.Keys.String {
		return false
	}
	withValues := b.needs.HasValues()
	from, to, kmin, kmax, bk := b.from, b.to, b.p.kmin, b.kmax, b.bk
	nb, bmin := b.p.nb, b.p.bmin
	keys, vals := b.p.keys, b.p.vals
	defer func() { b.p.keys, b.p.vals = keys, vals }()
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
		keys = append(keys, (uint64(k)-uint64(kmin))*nb+bucket)
		if withValues {
			vals = append(vals, valueAt(ev, i))
		}
	}
	return true
}

// Finish returns the tiles of every batch added, sorted by (key, bucket
// start), as Build would return them for the batches joined.
func (b *Builder) Finish() *Set {
	if !b.streaming {
		n := 0
		for _, ev := range b.batches {
			n += ev.Len()
		}
		return buildParts(b.batches, b.g, b.needs, b.from, b.to, partsFor(n))
	}
	keys, vals := b.p.keys, b.p.vals
	if len(keys) == 0 {
		return &Set{Needs: b.needs}
	}
	workers := partsFor(len(keys))
	if vals != nil {
		sortParallel(keys, vals, workers)
	} else {
		sortParallel(keys, make([]struct{}, len(keys)), workers)
	}
	// Fold on every core: cut the sorted pairs into shares at changes of
	// the composite key, so that no tile straddles two.
	var ps []*part
	lo := 0
	for w := 1; w <= workers; w++ {
		hi := len(keys) * w / workers
		for hi < len(keys) && hi > lo && keys[hi] == keys[hi-1] {
			hi++
		}
		if hi <= lo {
			continue
		}
		p := b.p
		p.keys = keys[lo:hi]
		if vals != nil {
			p.vals = vals[lo:hi]
		}
		ps = append(ps, &p)
		lo = hi
	}
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.countTiles)
	}
	wg.Wait()
	return foldParts(ps, &Set{Needs: b.needs}, b.g, b.needs, b.from, b.to, b.batches)
}
