package offline

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/hugepage"
	"github.com/tessera-fe/tessera/tile"
)

// spineIndex groups spine rows by key id, sorted by input time within a key:
// key g's rows are order[off[g]:off[g+1]], with input times at[off[g]:off[g+1]].
type spineIndex struct {
	times []int64 // input order
	order []int32
	off   []int32
	at    []int64 // times[order[i]]
	rank  []int32 // the renumbering of the key ids (nil: none)
}

func newSpineIndex(times []int64, ids []int32, nkeys int) *spineIndex {
	return newRankedIndex(times, ids, nil, nkeys)
}

// newRankedIndex is newSpineIndex with the key ids renumbered by rank (nil:
// unchanged), as series.renumber returns it.
func newRankedIndex(times []int64, ids, rank []int32, nkeys int) *spineIndex {
	order, off, at := groupByThenPos(ids, rank, times, nkeys)
	return &spineIndex{times: times, order: order, off: off, at: at, rank: rank}
}

// output is one requested feature window within a plan.
type output struct {
	fn     aggregate.Func
	window feature.Window
	grid   tile.Grid // for bucket rounding; zero Width when the mode does not round
	col    *Column
}

// span is the outputs of a plan that read the same range for every row (one
// window on one grid): the range is found and its prefix difference taken
// once for all of them.
type span struct {
	first *output
	outs  []int // indices into plan.outs
	// Where the span's state goes in a record (see layout), -1 for none:
	// the sum's bits, Count (and N, packed), N (wide layout).
	sumWord, countWord, nWord int
	values                    []int // outputs stored as values (min, max, var, std)
	// The window in whole buckets (materialized modes): the range starts
	// the window's length before the row's bucket.
	wholeBuckets bool
}

// cursor is one span's sweep state over one key: the point ranges of the
// previous row. extremes is one output's sliding min or max. Each worker has
// its own.
type cursor struct{ ia, ja, ib, jb int }

type extremes struct{ a, b aggregate.Extreme }

// plan computes a set of outputs that read the same data: series a (events
// or tiles) and, for materialized+align, series b (head-bucket events).
type plan struct {
	opt   Options
	a, b  *series
	outs  []*output
	spans []span
	lay   layout
	// tilesOnly: materialized without align, every span on one grid (see
	// sweeper.tileRows).
	tilesOnly bool
	// slots places the sweep's records in the out buffer; nil until the
	// sweep (or the caller, ahead of it) builds them from the spine index.
	slots *outSlots
}

// group the outputs into spans.
func (p *plan) groupSpans() {
	p.spans = p.spans[:0]
	for k, o := range p.outs {
		found := false
		for i := range p.spans {
			if f := p.spans[i].first; f.window == o.window && f.grid == o.grid {
				p.spans[i].outs = append(p.spans[i].outs, k)
				found = true
				break
			}
		}
		if !found {
			whole := o.grid.Width > 0 && !o.window.All() && o.window.Micros%o.grid.Width == 0
			p.spans = append(p.spans, span{first: o, outs: []int{k}, wholeBuckets: whole})
		}
	}
	p.tilesOnly = p.opt.Materialized && !p.opt.Align && p.b == nil && len(p.spans) > 0
	for i := range p.spans {
		if g := p.spans[i].first.grid; g.Width <= 0 || g != p.spans[0].first.grid {
			p.tilesOnly = false
		}
	}
}

// bounds returns the half-open position ranges that output o reads for a row
// at t: [loA, hiA) on series a and [loB, hiB) on series b (DESIGN.md's table).
// fl is o.grid.Floor(t) in the modes that round (the caller computes it once
// per row); windows are whole numbers of buckets, so floor(t-W) = fl-W.
func (p *plan) bounds(o *output, t, fl int64) (loA, hiA, loB, hiB int64) {
	if !p.opt.Materialized && !p.opt.Align {
		if o.window.All() {
			return math.MinInt64, t, 0, 0
		}
		return t - o.window.Micros, t, 0, 0
	}
	lo := int64(math.MinInt64)
	if !o.window.All() {
		if o.window.Micros%o.grid.Width == 0 {
			lo = fl - o.window.Micros
		} else {
			lo = o.grid.Floor(t - o.window.Micros)
		}
	}
	switch {
	case p.opt.Materialized && p.opt.Align:
		return lo, fl, fl, t
	case p.opt.Materialized:
		if fl == t {
			return lo, t, 0, 0
		}
		return lo, fl + o.grid.Width, 0, 0
	}
	return lo, t, 0, 0
}

func floorOrMin(g tile.Grid, lo int64) int64 {
	if lo == math.MinInt64 {
		return lo
	}
	return g.Floor(lo)
}

// run sweeps every spine key once, writing each output's values at the rows'
// input positions. Keys are independent: workers take chunks of keys in turn
// (dynamic scheduling, since heavy-hitter keys make chunks uneven).
//
// Rows come in key order but the columns are in input order: writing each
// value straight to its row would touch a random cache line (and page) of
// every column per row. Instead the sweep writes each row's values as one
// record (see layout) into an out buffer laid out by block of input rows
// (see outBuffer), a few hundred sequential streams; a second pass then
// copies block by block, each block's part of the columns staying in cache.
func (p *plan) run(sp *spineIndex) {
	p.groupSpans()
	p.layOut(true)
	if !p.sweep(sp) {
		// A window held 2^32 events or more: sweep again with counts in
		// words of their own.
		p.layOut(false)
		p.sweep(sp)
	}
}

// sweep runs the sweep and copies the records to the output columns; it
// reports false, writing no column, when a count did not fit a packed
// layout.
func (p *plan) sweep(sp *spineIndex) bool {
	if p.slots == nil {
		p.slots = newOutSlots(sp.order, len(sp.times), len(p.outs))
	}
	ob := newOutBuffer(p.slots, &p.lay)
	defer ob.release()
	nkeys := len(sp.off) - 1
	const chunk = 256
	workers := min(runtime.GOMAXPROCS(0), (nkeys+chunk-1)/chunk)
	var next atomic.Int64
	var overflow atomic.Bool
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			w := &sweeper{p: p, ob: ob, cur: make([]cursor, len(p.spans)), ext: make([]extremes, len(p.outs)),
				rec: make([]uint64, p.lay.width)}
			defer func() {
				if w.overflow {
					overflow.Store(true)
				}
			}()
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= nkeys || w.overflow {
					return
				}
				for g := lo; g < min(lo+chunk, nkeys); g++ {
					w.key(sp, g)
				}
			}
		})
	}
	wg.Wait()
	if overflow.Load() {
		return false
	}
	cols := make([]*Column, len(p.outs))
	for k, o := range p.outs {
		cols[k] = o.col
	}
	ob.copyTo(cols)
	return true
}

// layout says where each output's value is in a record of the out buffer.
// Count, sum and mean are not stored as values: a span stores its state,
// the sum's bits and the counts, and the copy to the columns derives them
// (mean = Sum/N) as aggregate.State.Value does. Three such outputs of one
// window take two words instead of three and a flag. Other outputs store
// their value's bits and a valid flag, 64 flags to a word after the values.
type layout struct {
	width  int     // words per record
	fields []field // per output
	// packed: Count in the low and N in the high 32 bits of one word, when
	// every window holds fewer than 2^32 events; else N has its own word.
	packed bool
}

// field locates one output's value in a record.
type field struct {
	fn   aggregate.Func
	word int // stored value, or the span's sum (sum, mean)
	cnt  int // the span's count word (count, mean)
	n    int // the span's N word (mean; = cnt when packed)
	bit  int // stored value: its valid flag, as a bit index from word 0
}

// stored reports whether an output of fn is stored as a value rather than
// derived from its span's state.
func stored(fn aggregate.Func) bool {
	return fn != aggregate.Count && fn != aggregate.Sum && fn != aggregate.Mean
}

// layOut sets p.lay and the spans' words.
func (p *plan) layOut(packed bool) {
	l := layout{fields: make([]field, len(p.outs)), packed: packed}
	w := 0
	var values []int // stored outputs, in order
	for si := range p.spans {
		sn := &p.spans[si]
		sn.sumWord, sn.countWord, sn.nWord, sn.values = -1, -1, -1, sn.values[:0]
		var sum, count, mean bool
		for _, k := range sn.outs {
			switch p.outs[k].fn {
			case aggregate.Sum:
				sum = true
			case aggregate.Count:
				count = true
			case aggregate.Mean:
				sum, mean = true, true
			default:
				sn.values = append(sn.values, k)
			}
		}
		if sum {
			sn.sumWord = w
			w++
		}
		if count || mean {
			sn.countWord, sn.nWord = w, w
			w++
			if !packed {
				sn.nWord = w
				w++
			}
		}
		for _, k := range sn.outs {
			f := &l.fields[k]
			f.fn = p.outs[k].fn
			f.word, f.cnt, f.n = sn.sumWord, sn.countWord, sn.nWord
			if stored(f.fn) {
				f.word = w
				w++
				values = append(values, k)
			}
		}
	}
	for j, k := range values {
		l.fields[k].bit = w*64 + j
	}
	l.width = w + (len(values)+63)/64
	p.lay = l
}

// outBuffer holds the values of every output for every row of a sweep, one
// record per row (see layout), in the places its outSlots give.
type outBuffer struct {
	*outSlots
	lay   *layout
	width int // words per record
	words []uint64
	free  func() // gives words back (see getWords)
}

// outSlots places the records of a sweep. Records are ordered by block of
// input rows (rows r>>shift together) and by spine index order within a
// block: slot[i] is the record of the spine index's row i, and rows[s] the
// input row of record s.
type outSlots struct {
	shift      uint
	slot, rows []int32
	start      []int32 // block q's records are [start[q], start[q+1])
}

// outBlockBytes bounds the bytes of the columns one block of rows covers: a
// block's share of every column fits in a core's L2 cache.
const outBlockBytes = 256 << 10

// newOutSlots places the rows of order, input rows of a spine of spineRows
// rows, for outs outputs. It needs no data: a sweep over tiles builds it
// while they load.
func newOutSlots(order []int32, spineRows, outs int) *outSlots {
	n := len(order)
	b := &outSlots{}
	b.shift = 6 // at least one cache line of every column
	for 2<<b.shift*8*outs <= outBlockBytes {
		b.shift++
	}
	blocks := spineRows>>b.shift + 1
	// A stable counting sort of the index's rows by block, split over the
	// cores like groupByThenPos.
	parts := max(1, min(runtime.GOMAXPROCS(0), n/(1<<16)))
	counts := make([][]int32, parts)
	var wg sync.WaitGroup
	for q := range parts {
		wg.Go(func() {
			c := make([]int32, blocks)
			for _, r := range order[n*q/parts : n*(q+1)/parts] {
				c[r>>b.shift]++
			}
			counts[q] = c
		})
	}
	wg.Wait()
	b.start = tile.Slots(counts)
	b.slot = make([]int32, n)
	b.rows = make([]int32, n)
	for q := range parts {
		wg.Go(func() {
			next := counts[q]
			lo := n * q / parts
			for i, r := range order[lo : n*(q+1)/parts] {
				s := next[r>>b.shift]
				next[r>>b.shift]++
				b.slot[lo+i] = s
				b.rows[s] = r
			}
		})
	}
	wg.Wait()
	return b
}

// newOutBuffer returns a buffer for the records that slots place.
func newOutBuffer(slots *outSlots, lay *layout) *outBuffer {
	b := &outBuffer{outSlots: slots, lay: lay, width: lay.width}
	b.words, b.free = getWords(len(slots.slot) * lay.width)
	return b
}

// getWords returns n words of scratch memory (hugepage.Scratch) and what
// frees them: every record is written before it is read, so a buffer needs
// no clearing, and the buffer of a sweep that ended moments ago (the same
// query again, or the key partition before, of about as many rows) is
// reused as it is. Fresh words are on huge pages: records land at random,
// a page fault per 4 KiB otherwise. (A pool of the Go heap lost its
// buffers at every collection: the kernel cleared the huge pages of a new
// one for 16% of a warm 20M-row query's CPU.)
func getWords(n int) (words []uint64, free func()) {
	words, free = hugepage.Scratch[uint64](n)
	if fillWords != nil {
		fillWords(words)
	}
	return words, free
}

// fillWords, when set, fills every new out buffer: tests set it to fill
// them with values no sweep writes, as reused scratch memory may hold.
var fillWords func([]uint64)

// release frees the buffer's memory, for the next sweep; it does nothing
// the second time (freeing scratch memory twice would hand it to two
// buffers).
func (b *outBuffer) release() {
	b.words = nil
	if b.free != nil {
		b.free()
		b.free = nil
	}
}

// put writes rec as the record of the spine index's row i.
func (b *outBuffer) put(i int, rec []uint64) {
	s := int(b.slot[i]) * b.width
	dst := b.words[s : s+len(rec) : s+len(rec)]
	for k, x := range rec { // a few words: a loop costs less than a memmove call
		dst[k] = x
	}
}

// copyTo writes every record's values to its input row of cols, blocks of
// rows shared among the cores.
func (b *outBuffer) copyTo(cols []*Column) {
	blocks := len(b.start) - 1
	const chunk = 16 // blocks per turn
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), (blocks+chunk-1)/chunk)) {
		wg.Go(func() {
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= blocks {
					return
				}
				for q := lo; q < min(lo+chunk, blocks); q++ {
					b.copyBlock(cols, q)
				}
			}
		})
	}
	wg.Wait()
}

// copyBlock copies the records of block q to their rows of cols.
//
// The records of a block come in spine index order, their rows at random
// within the block: written straight to whole columns, every value would
// be a store to a random cache line of each column, missing the cache (and
// faulting on the first touch of fresh memory) in no order the prefetcher
// can follow. A block's rows of every column fit in a core's cache
// (outBlockBytes), so each column is written here record by record, its
// stores landing in that window alone. Rows without a record (other key
// partitions, unknown keys) are left as they are, and cost nothing: a key
// partition of a query larger than memory writes only its own rows.
func (b *outBuffer) copyBlock(cols []*Column, q int) {
	lo, hi := int(b.start[q]), int(b.start[q+1])
	if lo == hi {
		return
	}
	base := q << b.shift
	nrows := min(1<<b.shift, len(cols[0].Values)-base)
	wd := b.width
	rows := b.rows[lo:hi]
	recs := b.words[lo*wd : hi*wd]
	nShift, countMask := uint(0), ^uint64(0)
	if b.lay.packed {
		nShift, countMask = 32, math.MaxUint32
	}
	for k, col := range cols {
		f := &b.lay.fields[k]
		vals := col.Values[base : base+nrows]
		var valid []bool
		if col.Valid != nil {
			valid = col.Valid[base : base+nrows]
		}
		switch f.fn {
		case aggregate.Count:
			for s, r := range rows {
				vals[int(r)-base] = float64(int64(recs[s*wd+f.cnt] & countMask))
			}
		case aggregate.Sum:
			for s, r := range rows {
				vals[int(r)-base] = math.Float64frombits(recs[s*wd+f.word])
			}
		case aggregate.Mean:
			// As aggregate.State.Value: Sum/N, null when N is 0.
			for s, r := range rows {
				j := int(r) - base
				n := int64(recs[s*wd+f.n] >> nShift)
				v := 0.0
				if n != 0 {
					v = math.Float64frombits(recs[s*wd+f.word]) / float64(n)
				}
				vals[j] = v
				if valid != nil {
					valid[j] = n != 0
				}
			}
		default:
			at, bit := f.bit/64, uint(f.bit%64)
			for s, r := range rows {
				j := int(r) - base
				vals[j] = math.Float64frombits(recs[s*wd+f.word])
				if valid != nil {
					valid[j] = recs[s*wd+at]>>bit&1 != 0
				}
			}
		}
	}
}

// sweeper is one worker's state.
type sweeper struct {
	p      *plan
	ob     *outBuffer
	va, vb view
	cur    []cursor   // per span
	ext    []extremes // per output
	rec    []uint64   // the record of the previous row
	// overflow: a count did not fit the packed layout; the sweep stops.
	overflow bool
}

// key computes every output for the rows of key g.
func (w *sweeper) key(sp *spineIndex, g int) {
	p := w.p
	rows := sp.order[sp.off[g]:sp.off[g+1]]
	if len(rows) == 0 {
		return
	}
	// Only points within the ranges of the first and the last row are read
	// (ranges grow with t): the prefix sums cover those alone.
	base := int(sp.off[g])
	loA, _, loB, _ := w.reach(sp.at[base])
	_, hiA, _, hiB := w.reach(sp.at[base+len(rows)-1])
	va, vb := &w.va, &w.vb
	va.load(p.a, g, loA, hiA)
	if p.b != nil {
		vb.load(p.b, g, loB, hiB)
	}
	clear(w.cur)
	for k, o := range p.outs {
		e := &w.ext[k]
		switch o.fn {
		case aggregate.Min:
			e.a.Reset(va.vals, va.valid, false)
			e.b.Reset(vb.vals, vb.valid, false)
		case aggregate.Max:
			e.a.Reset(va.maxs, va.valid, true)
			e.b.Reset(vb.maxs, vb.valid, true)
		}
	}
	if p.tilesOnly {
		w.tileRows(sp, base, len(rows))
		return
	}
	for j := range rows {
		t := sp.at[base+j]
		var lastGrid tile.Grid
		var fl int64
		for si := range p.spans {
			sn := &p.spans[si]
			c := &w.cur[si]
			if gr := sn.first.grid; gr.Width > 0 && gr != lastGrid {
				lastGrid, fl = gr, gr.Floor(t)
			}
			loA, hiA, loB, hiB := p.bounds(sn.first, t, fl)
			prev := *c
			c.ia = advance(va.pos, c.ia, loA)
			c.ja = advance(va.pos, max(c.ja, c.ia), hiA)
			if p.b != nil {
				c.ib = advance(vb.pos, c.ib, loB)
				c.jb = advance(vb.pos, max(c.jb, c.ib), hiB)
			}
			// A row that reads the same points as the previous row of its key
			// (same time, or same bucket in the materialized modes) gets the
			// same values.
			if j == 0 || *c != prev {
				w.compute(sn, c)
			}
		}
		w.ob.put(base+j, w.rec)
	}
}

// tileRows is key's row loop for plans that are tilesOnly: the ranges
// plan.bounds gives, with each row's bucket found once for every span (by
// a division only when the row leaves the bucket of the previous row), and
// the end of the range, the same for every span, advanced once.
func (w *sweeper) tileRows(sp *spineIndex, base, n int) {
	p := w.p
	pos := w.va.pos
	grid := p.spans[0].first.grid
	var fl int64
	ja := 0
	for j := range n {
		t := sp.at[base+j]
		if j == 0 || uint64(t-fl) >= uint64(grid.Width) {
			fl = grid.Floor(t)
		}
		hi := fl + grid.Width // up to the end of the row's bucket
		if fl == t {
			hi = t
		}
		ja = advance(pos, ja, hi)
		for si := range p.spans {
			sn := &p.spans[si]
			c := &w.cur[si]
			lo := int64(math.MinInt64)
			switch win := sn.first.window; {
			case sn.wholeBuckets:
				lo = fl - win.Micros
			case !win.All():
				lo = grid.Floor(t - win.Micros)
			}
			// The range starts at or before its end (lo <= fl <= hi): ia <= ja.
			ia := advance(pos, c.ia, lo)
			// A row that reads the same tiles as the previous row of its
			// key (same bucket) gets the same values.
			if j == 0 || ia != c.ia || ja != c.ja {
				c.ia, c.ja = ia, ja
				w.compute(sn, c)
			}
		}
		w.ob.put(base+j, w.rec)
	}
}

// reach returns the least lower and the greatest upper bound of the ranges
// that the spans read for a row at t.
func (w *sweeper) reach(t int64) (loA, hiA, loB, hiB int64) {
	p := w.p
	loA, loB = math.MaxInt64, math.MaxInt64
	hiA, hiB = math.MinInt64, math.MinInt64
	for si := range p.spans {
		o := p.spans[si].first
		var fl int64
		if o.grid.Width > 0 {
			fl = o.grid.Floor(t)
		}
		la, ha, lb, hb := p.bounds(o, t, fl)
		loA, hiA = min(loA, la), max(hiA, ha)
		loB, hiB = min(loB, lb), max(hiB, hb)
	}
	return loA, hiA, loB, hiB
}

// compute writes span sn's part of w.rec over the points of c.
func (w *sweeper) compute(sn *span, c *cursor) {
	p := w.p
	if p.b == nil && len(sn.values) == 0 {
		// Count, sum and mean alone, from one series: the sums suffice.
		count, n, sum := w.va.prefix.Sums(c.ia, c.ja)
		if !sn.putSums(w.rec, count, n, sum, p.lay.packed) {
			w.overflow = true
		}
		return
	}
	st := w.va.prefix.Range(c.ia, c.ja)
	if p.b != nil {
		st.Merge(w.vb.prefix.Range(c.ib, c.jb))
	}
	if !sn.putSums(w.rec, st.Count, st.N, st.Sum, p.lay.packed) {
		w.overflow = true
	}
	for _, k := range sn.values {
		f := &p.lay.fields[k]
		var v float64
		var ok bool
		switch f.fn {
		case aggregate.Min, aggregate.Max:
			e := &w.ext[k]
			v, ok = e.a.Query(c.ia, c.ja)
			if p.b != nil {
				vb2, okb := e.b.Query(c.ib, c.jb)
				v, ok = pick(f.fn == aggregate.Max, v, ok, vb2, okb)
			}
		default:
			v, ok = st.Value(f.fn)
		}
		f.putValue(w.rec, v, ok)
	}
}

// putSums writes the span's state (a State's Count, N and Sum) to rec; it
// reports false when a count does not fit the packed layout.
func (sn *span) putSums(rec []uint64, count, n int64, sum float64, packed bool) bool {
	if sn.sumWord >= 0 {
		rec[sn.sumWord] = math.Float64bits(sum)
	}
	if sn.countWord < 0 {
		return true
	}
	if !packed {
		rec[sn.countWord], rec[sn.nWord] = uint64(count), uint64(n)
		return true
	}
	rec[sn.countWord] = uint64(count) | uint64(n)<<32
	return uint64(count) <= math.MaxUint32 && uint64(n) <= math.MaxUint32
}

// putValue writes a stored output's value and valid flag to rec.
func (f *field) putValue(rec []uint64, v float64, ok bool) {
	rec[f.word] = math.Float64bits(v)
	at, bit := f.bit/64, uint(f.bit%64)
	if ok {
		rec[at] |= 1 << bit
	} else {
		rec[at] &^= 1 << bit
	}
}

// advance moves i forward to the first position >= bound.
func advance(pos []int64, i int, bound int64) int {
	for i < len(pos) && pos[i] < bound {
		i++
	}
	return i
}

func pick(isMax bool, a float64, aok bool, b float64, bok bool) (float64, bool) {
	switch {
	case !aok:
		return b, bok
	case !bok:
		return a, aok
	case isMax:
		return math.Max(a, b), true
	}
	return math.Min(a, b), true
}
