package offline

import (
	"math"

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
	order, off := tile.GroupBy(ids, nkeys)
	sortSegments(order, off, times)
	return &spineIndex{times: times, order: order, off: off}
}

// output is one requested feature window within a plan.
type output struct {
	fn     aggregate.Func
	window feature.Window
	grid   tile.Grid // for bucket rounding; zero Width when the mode does not round
	col    *Column

	// sweep state, reset per key
	ia, ja, ib, jb int
	extA, extB     aggregate.Extreme
}

// plan computes a set of outputs that read the same data: series a (events
// or tiles) and, for materialized+align, series b (head-bucket events).
type plan struct {
	opt  Options
	a, b *series
	outs []*output
}

// bounds returns the half-open position ranges that output o reads for a row
// at t: [loA, hiA) on series a and [loB, hiB) on series b (DESIGN.md's table).
func (p *plan) bounds(o *output, t int64) (loA, hiA, loB, hiB int64) {
	lo := int64(math.MinInt64)
	if !o.window.All() {
		lo = t - o.window.Micros
	}
	switch {
	case p.opt.Materialized && p.opt.Align:
		head := o.grid.Floor(t)
		return floorOrMin(o.grid, lo), head, head, t
	case p.opt.Materialized:
		return floorOrMin(o.grid, lo), o.grid.Ceil(t), 0, 0
	case p.opt.Align:
		return floorOrMin(o.grid, lo), t, 0, 0
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
// input positions.
func (p *plan) run(sp *spineIndex) {
	var va, vb view
	for g := range len(sp.off) - 1 {
		rows := sp.order[sp.off[g]:sp.off[g+1]]
		if len(rows) == 0 {
			continue
		}
		va.load(p.a, g)
		if p.b != nil {
			vb.load(p.b, g)
		}
		for _, o := range p.outs {
			o.ia, o.ja, o.ib, o.jb = 0, 0, 0, 0
			switch o.fn {
			case aggregate.Min:
				o.extA.Reset(va.vals, va.valid, false)
				o.extB.Reset(vb.vals, vb.valid, false)
			case aggregate.Max:
				o.extA.Reset(va.maxs, va.valid, true)
				o.extB.Reset(vb.maxs, vb.valid, true)
			}
		}
		for _, r := range rows {
			t := sp.times[r]
			for _, o := range p.outs {
				loA, hiA, loB, hiB := p.bounds(o, t)
				o.ia = advance(va.pos, o.ia, loA)
				o.ja = advance(va.pos, max(o.ja, o.ia), hiA)
				st := va.prefix.Range(o.ia, o.ja)
				if p.b != nil {
					o.ib = advance(vb.pos, o.ib, loB)
					o.jb = advance(vb.pos, max(o.jb, o.ib), hiB)
					st.Merge(vb.prefix.Range(o.ib, o.jb))
				}
				var v float64
				var ok bool
				switch o.fn {
				case aggregate.Min, aggregate.Max:
					v, ok = o.extA.Query(o.ia, o.ja)
					if p.b != nil {
						vb2, okb := o.extB.Query(o.ib, o.jb)
						v, ok = pick(o.fn == aggregate.Max, v, ok, vb2, okb)
					}
				default:
					v, ok = st.Value(o.fn)
				}
				o.col.Values[r] = v
				if o.col.Valid != nil {
					o.col.Valid[r] = ok
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
