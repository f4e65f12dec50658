package offline

import (
	"context"
	"math"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/tile"
)

// Naive computes the same result as Query the slow way that a plain
// point-in-time join takes: for every spine row and output it scans every
// raw event of the row's key and aggregates those in the row's interval. Its
// cost grows with rows x events per key. It exists as the baseline that
// benchmarks and the demo compare against; it reads no tiles.
func (e *Engine) Naive(ctx context.Context, sp *Spine, refs []feature.Ref, opt Options) (*Result, error) {
	res := &Result{Stats: Stats{Rows: len(sp.Times), Mode: "naive " + opt.Mode()}}
	keys := newSpineKeys(&sp.Keys)
	for _, ref := range refs {
		f, err := e.Config.Resolve(ref)
		if err != nil {
			return nil, err
		}
		var grid tile.Grid
		if opt.Materialized || opt.Align {
			ts := e.Config.TileSetOf(f.Name)
			if ts == nil {
				return nil, ErrNotMaterialized
			}
			grid = ts.Grid
		}
		spec := EventSpec{Source: f.Source, Key: f.Key, Value: f.Value}
		if f.Filter != nil {
			spec.Filter = *f.Filter
		}
		str, err := e.eventKeyKind(ctx, spec)
		if err != nil {
			return nil, err
		}
		dict, ids := keys.as(str)
		ev, err := e.Events.Events(ctx, spec, dict)
		if err != nil {
			return nil, err
		}
		res.Stats.EventsRead += int64(ev.Len())
		evIDs := dict.LookupAll(&ev.Keys, nil)
		byKey := make([][]int32, dict.Len())
		for i, id := range evIDs {
			if id >= 0 {
				byKey[id] = append(byKey[id], int32(i))
			}
		}
		col := &Column{Name: ref.Text, Integer: f.Aggregation == aggregate.Count, Values: make([]float64, len(sp.Times))}
		if f.Aggregation != aggregate.Count && f.Aggregation != aggregate.Sum {
			col.Valid = make([]bool, len(sp.Times))
		}
		for r, t := range sp.Times {
			from, to := int64(math.MinInt64), t
			if !ref.Window.All() {
				from = t - ref.Window.Micros
			}
			if opt.Materialized || opt.Align {
				from = floorOrMin(grid, from)
			}
			if opt.Materialized && !opt.Align {
				to = grid.Ceil(t)
			}
			var st aggregate.State
			var rowEvents []int32 // none for a key that matches no data
			if ids[r] >= 0 {
				rowEvents = byKey[ids[r]]
			}
			for _, i := range rowEvents {
				if ts := ev.TS[i]; ts >= from && ts < to {
					if ev.Values == nil {
						st.Count++
					} else {
						st.Add(ev.Values[i], ev.Valid == nil || ev.Valid[i])
					}
				}
			}
			v, ok := st.Value(f.Aggregation)
			col.Values[r] = v
			if col.Valid != nil {
				col.Valid[r] = ok
			}
		}
		res.Columns = append(res.Columns, col)
	}
	return res, nil
}
