package tile

import (
	"cmp"
	"slices"
	"unsafe"

	"github.com/tessera-fe/tessera/aggregate"
)

// prefold is a partition of a spread that spills whose keys fold into a
// cell per key of its range as they are evicted, rather than go to disk:
// a heavy key's buckets, millions of events that make a few thousand
// tiles. (A 100M-event backfill under a 2 GiB limit spilled 1.2 GB of keys
// and values, most of them of the heavy keys whose groups made a few
// thousand tiles each; writing them to the page cache and reading them back
// took a third of its CPU.) Its keys fold in arrival order, as foldCells
// folds those of a partition in memory, so its tiles are bit for bit what
// they would be.
type prefold struct {
	sums   []sumCell         // needs of a count, n and sum alone
	states []aggregate.State // other needs
	events int               // keys folded
}

// maxPrefoldSpan is the widest range of keys a partition folded at
// eviction spans, the widest folded through cells in memory (see
// foldsThroughCells).
const maxPrefoldSpan = maxCellKeys

// prefoldShare is the share of a spilling builder's memory that the cells
// of partitions folded at eviction may take: 1/prefoldShare. (A variable
// for tests.)
var prefoldShare int64 = 16

// choosePrefolds picks the partitions of s whose keys fold into cells
// from their first eviction on, among those about to be evicted for the
// first time (every one holding keys when last is set, else those with
// full blocks): a partition whose keys span at most maxPrefoldSpan and that
// holds at least a key per cell by then, densest first, as long as their
// cells fit in what is left of the memory for cells. A partition decides
// once, for good: the keys of a tile fold in arrival order, so one whose
// first keys went to disk stays there.
func (st *spillStore) choosePrefolds(s *spread, last bool) {
	type candidate struct {
		d       int
		density float64 // keys per cell
	}
	var cands []candidate
	for d, c := range s.chains {
		if st.pre[d] != nil || len(st.blocks[d]) > 0 || len(c) == 0 || len(c) == 1 && !last {
			continue
		}
		if span, n := s.span(d), s.len(d, nil); span <= maxPrefoldSpan && uint64(n) >= span {
			cands = append(cands, candidate{d, float64(n) / float64(span)})
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int { return cmp.Compare(b.density, a.density) })
	cell := int64(unsafe.Sizeof(aggregate.State{}))
	if st.sums {
		cell = int64(unsafe.Sizeof(sumCell{}))
	}
	for _, c := range cands {
		span := s.span(c.d)
		if cost := int64(span) * cell; st.preBytes+cost <= st.maxPre {
			st.preBytes += cost
			p := &prefold{}
			if st.sums {
				p.sums = newSumCells(int(span))
			} else {
				p.states = make([]aggregate.State, span)
			}
			st.pre[c.d] = p
		}
	}
}

// add folds the n keys (and values) of s from slot lo into p's cells.
func (p *prefold) add(s *spread, lo, n int) {
	p.events += n
	keys := s.keys[lo : lo+n]
	var vals []float64
	if s.vals != nil {
		vals = s.vals[lo : lo+n]
	}
	if p.states != nil {
		stateInto(p.states, keys, vals)
	} else {
		sumInto(p.sums, keys, vals)
	}
}

// weight returns the cells of p that hold keys: the tiles it makes.
func (p *prefold) weight() int {
	n := 0
	for k := range p.sums {
		if p.sums[k].count > 0 {
			n++
		}
	}
	for k := range p.states {
		if p.states[k].Count > 0 {
			n++
		}
	}
	return n
}

// foldPrefolded keeps the tiles of partition d, whose keys folded into
// cells p as they were evicted, as s.summed[d] or s.folded[d], as
// foldCells does for a partition in memory, and returns how many. The
// cells stay as they are, for a group built again (see Builder.Parts).
func (s *spread) foldPrefolded(d int, p *prefold) int {
	if p.states != nil {
		s.folded[d] = keepStates(p.states, s.folded[d], false)
		return len(s.folded[d])
	}
	s.summed[d] = keepSums(p.sums, s.summed[d], false)
	return len(s.summed[d])
}
