package tile

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tessera-fe/tessera/internal/hugepage"
)

// parallelScanEvents is the fewest events of a batch that scanParallel
// files on several cores; a batch must also hold at least half of the
// events expected (see scansInParallel). (A variable for tests.)
var parallelScanEvents = 1 << 18

// parallelScans counts the batches scanParallel filed (for tests).
var parallelScans atomic.Int64

// scansInParallel reports whether the builder files batch ev on every
// core rather than on the caller's: when the batch is most of what is to
// come (a source of one large row group, read as one piece), nothing
// decodes beside the filing, and one core would file a million events
// (12 ms) while the other waits. Batches of a source read in many pieces
// are filed as they come, on the caller's core, while the next decode:
// filing them in parallel would cost more CPU (a count per event and a
// second pass) for no idle core to use.
func (b *Builder) scansInParallel(ev *Events) bool {
	n := ev.Len()
	if b.expect == nil {
		return false
	}
	// Of the events told or, where more came (a row count estimated), of
	// those seen so far.
	all := max(b.expect.events, b.scannedEvents+n)
	return b.sp.disk == nil && runtime.GOMAXPROCS(0) > 1 && n >= parallelScanEvents && 2*n >= all
}

// cursor is where a worker of scanParallel files the next key of a
// partition: slot pos of the block that ends at end, the idx-th of the
// partition's chain.
type cursor struct {
	idx      int
	pos, end int
}

// scanParallel is scan on every core, for a batch that scansInParallel
// picks: each core numbers a run of the events and counts them per
// partition, room is then made in each partition for every run's keys in
// turn, and each core files its run into its own room. A partition's keys
// end up in the order of the batch, as scan files them. It reports false,
// having filed nothing, when an event lies outside the expected keys or
// times.
func (b *Builder) scanParallel(ev *Events) bool {
	s := b.sp
	n := ev.Len()
	workers := min(runtime.GOMAXPROCS(0), max(1, n/max(1, parallelScanEvents/4)))
	cs, free := hugepage.Scratch[uint64](n)
	defer free()
	parts := len(s.base)
	counts := make([][]int, workers)
	ok := make([]bool, workers)
	run := func(w int) (lo, hi int) { return n * w / workers, n * (w + 1) / workers }
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			lo, hi := run(w)
			count := make([]int, parts)
			table, fshift := s.table, s.fshift
			for c := lo; c < hi; c += scanChunk {
				e := min(hi, c+scanChunk)
				if !b.number(ev.Keys.Int[c:e], ev.TS[c:e], cs[c:e]) {
					return
				}
				for _, k := range cs[c:e] {
					if k != skipped {
						count[table[k>>fshift]]++
					}
				}
			}
			counts[w], ok[w] = count, true
		})
	}
	wg.Wait()
	for _, o := range ok {
		if !o {
			return false
		}
	}
	// Room for each run's keys in each partition, runs in order. The slab
	// may move as blocks are added: the workers read it afterwards.
	curs := make([][]cursor, workers)
	for w := range curs {
		curs[w] = make([]cursor, parts)
	}
	for d := range parts {
		h := &s.heads[d]
		for w := range workers {
			curs[w][d] = cursor{idx: len(s.chains[d]) - 1, pos: h.pos, end: h.end}
			for left := counts[w][d]; left > 0; {
				if h.pos == h.end {
					s.grow(d)
					h = &s.heads[d]
				}
				k := min(left, h.end-h.pos)
				h.pos += k
				left -= k
			}
		}
	}
	keys, out, table, base, fshift, block := s.keys, s.vals, s.table, s.base, s.fshift, s.block
	for w := range workers {
		wg.Go(func() {
			lo, hi := run(w)
			cur := curs[w]
			for i := lo; i < hi; i++ {
				c := cs[i]
				if c == skipped {
					continue
				}
				d := table[c>>fshift]
				p := &cur[d]
				if p.pos == p.end {
					p.idx++
					blk := int(s.chains[d][p.idx])
					p.pos, p.end = blk*block, (blk+1)*block
				}
				keys[p.pos] = uint32(c - base[d])
				if out != nil {
					v := ev.Values[i]
					if ev.Valid != nil && !ev.Valid[i] {
						v = math.NaN()
					}
					out[p.pos] = v
				}
				p.pos++
			}
		})
	}
	wg.Wait()
	parallelScans.Add(1)
	return true
}
