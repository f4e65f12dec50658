package offline

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/tile"
)

// spineIndex groups spine rows by key id, sorted by input time within a key:
// key g's rows are order[off[g]:off[g+1]], with input times at[off[g]:off[g+1]].
type spineIndex struct {
	times []int64 // input order
	order []int32
	off   []int32
	at    []int64 // times[order[i]]
}

func newSpineIndex(times []int64, ids []int32, nkeys int) *spineIndex {
	order, off, at := groupByThenPos(ids, times, nkeys)
	return &spineIndex{times: times, order: order, off: off, at: at}
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
			p.spans = append(p.spans, span{first: o, outs: []int{k}})
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
// record into an out buffer laid out by block of input rows (see
// outBuffer), a few hundred sequential streams; a second pass then copies
// block by block, each block's part of the columns staying in cache.
func (p *plan) run(sp *spineIndex) {
	p.groupSpans()
	ob := newOutBuffer(sp.order, len(sp.times), len(p.outs))
	nkeys := len(sp.off) - 1
	const chunk = 256
	workers := min(runtime.GOMAXPROCS(0), (nkeys+chunk-1)/chunk)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			w := &sweeper{p: p, ob: ob, cur: make([]cursor, len(p.spans)), ext: make([]extremes, len(p.outs)),
				vals: make([]float64, len(p.outs)), oks: make([]bool, len(p.outs))}
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= nkeys {
					return
				}
				for g := lo; g < min(lo+chunk, nkeys); g++ {
					w.key(sp, g)
				}
			}
		})
	}
	wg.Wait()
	cols := make([]*Column, len(p.outs))
	for k, o := range p.outs {
		cols[k] = o.col
	}
	ob.copyTo(cols)
	ob.release()
}

// outBuffer holds the values of every output for every row of a sweep, one
// record per row: the values' bits, then the valid flags, 64 to a word.
// Records are ordered by block of input rows (rows r>>shift together) and by
// spine index order within a block: slot[i] is the record of the spine
// index's row i, and rows[s] the input row of record s.
type outBuffer struct {
	outs, width int // outputs, words per record
	shift       uint
	slot, rows  []int32
	start       []int32 // block q's records are [start[q], start[q+1])
	words       []uint64
}

// outBlockBytes bounds the bytes of the columns one block of rows covers: a
// block's share of every column fits in a core's L2 cache.
const outBlockBytes = 256 << 10

// newOutBuffer returns a buffer for the rows of order, input rows of a spine
// of spineRows rows.
func newOutBuffer(order []int32, spineRows, outs int) *outBuffer {
	n := len(order)
	b := &outBuffer{outs: outs, width: outs + (outs+63)/64}
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
	b.start = make([]int32, blocks+1)
	var sum int32
	for k := range blocks {
		b.start[k] = sum
		for q := range parts {
			c := counts[q][k]
			counts[q][k] = sum
			sum += c
		}
	}
	b.start[blocks] = sum
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
	b.words = getWords(n * b.width)
	return b
}

// wordPool keeps out buffers between queries: every record is written
// before it is read, so a reused buffer needs no clearing.
var wordPool sync.Pool // of *[]uint64

func getWords(n int) []uint64 {
	if w, ok := wordPool.Get().(*[]uint64); ok && cap(*w) >= n {
		return (*w)[:n]
	}
	return make([]uint64, n)
}

// release returns the buffer's memory for the next sweep.
func (b *outBuffer) release() {
	w := b.words
	b.words = nil
	wordPool.Put(&w)
}

// put writes the record of the spine index's row i.
func (b *outBuffer) put(i int, vals []float64, oks []bool) {
	s := int(b.slot[i]) * b.width
	rec := b.words[s : s+b.width : s+b.width]
	for k, v := range vals {
		rec[k] = math.Float64bits(v)
	}
	for w := range rec[b.outs:] {
		var bits uint64
		for k, ok := range oks[w*64 : min(len(oks), w*64+64)] {
			if ok {
				bits |= 1 << k
			}
		}
		rec[b.outs+w] = bits
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
					b.copyBlock(cols, int(b.start[q]), int(b.start[q+1]))
				}
			}
		})
	}
	wg.Wait()
}

// copyBlock copies records [lo, hi), all of one block, column by column.
func (b *outBuffer) copyBlock(cols []*Column, lo, hi int) {
	if lo == hi {
		return
	}
	rows := b.rows[lo:hi]
	for k, col := range cols {
		vals, valid := col.Values, col.Valid
		words := b.words[lo*b.width+k:]
		for i, r := range rows {
			vals[r] = math.Float64frombits(words[i*b.width])
		}
		if valid != nil {
			words := b.words[lo*b.width+b.outs+k/64:]
			bit := uint(k % 64)
			for i, r := range rows {
				valid[r] = words[i*b.width]>>bit&1 != 0
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
	vals   []float64  // per output: the value of the previous row
	oks    []bool
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
		w.ob.put(base+j, w.vals, w.oks)
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

// compute sets w.vals and w.oks of span sn's outputs over the points of c.
func (w *sweeper) compute(sn *span, c *cursor) {
	p := w.p
	st := w.va.prefix.Range(c.ia, c.ja)
	if p.b != nil {
		st.Merge(w.vb.prefix.Range(c.ib, c.jb))
	}
	for _, k := range sn.outs {
		o := p.outs[k]
		var v float64
		var ok bool
		switch o.fn {
		case aggregate.Min, aggregate.Max:
			e := &w.ext[k]
			v, ok = e.a.Query(c.ia, c.ja)
			if p.b != nil {
				vb2, okb := e.b.Query(c.ib, c.jb)
				v, ok = pick(o.fn == aggregate.Max, v, ok, vb2, okb)
			}
		default:
			v, ok = st.Value(o.fn)
		}
		w.vals[k], w.oks[k] = v, ok
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
