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

// spineIndex groups spine rows by key id, sorted by input time within a key.
type spineIndex struct {
	times []int64
	order []int32
	off   []int32
}

func newSpineIndex(times []int64, ids []int32, nkeys int) *spineIndex {
	order, off := groupByThenPos(ids, times, nkeys)
	return &spineIndex{times: times, order: order, off: off}
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
	vals  [][]float64 // per output, in spine index order
	oks   [][]bool
}

// scatter moves each output's values from spine index order to input order.
func (p *plan) scatter(sp *spineIndex) {
	var wg sync.WaitGroup
	for k, o := range p.outs {
		wg.Go(func() {
			vals, oks := p.vals[k], p.oks[k]
			for i, r := range sp.order {
				o.col.Values[r] = vals[i]
			}
			if oks != nil {
				for i, r := range sp.order {
					o.col.Valid[r] = oks[i]
				}
			}
		})
	}
	wg.Wait()
	p.vals, p.oks = nil, nil
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
func (p *plan) run(sp *spineIndex) {
	p.groupSpans()
	// Workers write each key's values in the spine index's order (sequential
	// writes); one pass per column then scatters them to input order.
	p.vals = make([][]float64, len(p.outs))
	p.oks = make([][]bool, len(p.outs))
	for k, o := range p.outs {
		p.vals[k] = make([]float64, len(sp.order))
		if o.col.Valid != nil {
			p.oks[k] = make([]bool, len(sp.order))
		}
	}
	defer p.scatter(sp)
	nkeys := len(sp.off) - 1
	const chunk = 256
	workers := min(runtime.GOMAXPROCS(0), (nkeys+chunk-1)/chunk)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			w := &sweeper{p: p, cur: make([]cursor, len(p.spans)), ext: make([]extremes, len(p.outs))}
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
}

// sweeper is one worker's state.
type sweeper struct {
	p      *plan
	va, vb view
	cur    []cursor   // per span
	ext    []extremes // per output
}

// key computes every output for the rows of key g.
func (w *sweeper) key(sp *spineIndex, g int) {
	p := w.p
	rows := sp.order[sp.off[g]:sp.off[g+1]]
	if len(rows) == 0 {
		return
	}
	va, vb := &w.va, &w.vb
	va.load(p.a, g)
	if p.b != nil {
		vb.load(p.b, g)
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
	base := int(sp.off[g])
	for j, r := range rows {
		t := sp.times[r]
		var lastGrid tile.Grid
		var fl int64
		for si := range p.spans {
			sn := &p.spans[si]
			c := &w.cur[si]
			if gr := sn.first.grid; gr.Width > 0 && gr != lastGrid {
				lastGrid, fl = gr, gr.Floor(t)
			}
			loA, hiA, loB, hiB := p.bounds(sn.first, t, fl)
			c.ia = advance(va.pos, c.ia, loA)
			c.ja = advance(va.pos, max(c.ja, c.ia), hiA)
			st := va.prefix.Range(c.ia, c.ja)
			if p.b != nil {
				c.ib = advance(vb.pos, c.ib, loB)
				c.jb = advance(vb.pos, max(c.jb, c.ib), hiB)
				st.Merge(vb.prefix.Range(c.ib, c.jb))
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
				p.vals[k][base+j] = v
				if oks := p.oks[k]; oks != nil {
					oks[base+j] = ok
				}
			}
		}
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
