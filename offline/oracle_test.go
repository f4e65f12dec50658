package offline

import (
	"context"
	"math"
	"sort"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// rawEvent is one event of the test source "ev": key (int or string), time,
// value (null when !valid) and a status column for filters.
type rawEvent struct {
	ikey   int64
	skey   string
	ts     int64
	value  float64
	valid  bool
	status string
}

// memEvents serves raw events from memory, counting what it hands out.
type memEvents struct {
	str    bool
	events []rawEvent
	loaded int
}

func (m *memEvents) KeyKind(context.Context, EventSpec) (bool, error) { return m.str, nil }

func (m *memEvents) Events(_ context.Context, spec EventSpec, keep *tile.Dict) (*tile.Events, error) {
	ev := &tile.Events{Keys: tile.Keys{String: m.str}}
	for _, e := range m.events {
		if spec.Filter.Column != "" && e.status != spec.Filter.Equals {
			continue
		}
		ev.Keys.Int = append(ev.Keys.Int, e.ikey)
		ev.Keys.Str = append(ev.Keys.Str, e.skey)
		ev.TS = append(ev.TS, e.ts)
		ev.Values = append(ev.Values, e.value)
		ev.Valid = append(ev.Valid, e.valid)
	}
	if m.str {
		ev.Keys.Int = nil
	} else {
		ev.Keys.Str = nil
	}
	m.loaded += ev.Len()
	return ev, nil
}

// memTiles is a tile store in memory: one set and its coverage per tile set.
type memTiles struct {
	sets  map[string]*tile.Set
	cover map[string][]tilestore.Range
	str   bool
}

func (m *memTiles) Manifest(_ context.Context, id string) (*tilestore.Manifest, error) {
	s, ok := m.sets[id]
	if !ok {
		return nil, nil
	}
	return &tilestore.Manifest{TileSet: id, Needs: s.Needs, StringKeys: m.str, Coverage: m.cover[id]}, nil
}

func (m *memTiles) Load(_ context.Context, man *tilestore.Manifest, r tilestore.Range, keep *tilestore.KeyFilter) (*tile.Set, error) {
	s := m.sets[man.TileSet]
	out := &tile.Set{Needs: s.Needs, Keys: tile.Keys{String: s.Keys.String}}
	for i := range s.Len() {
		if s.Start[i] < r.From || s.Start[i] >= r.To {
			continue
		}
		if s.Keys.String {
			if _, ok := keep.Str[s.Keys.Str[i]]; keep.Str != nil && !ok {
				continue
			}
			out.Append(0, s.Keys.Str[i], s.Start[i], s.State(i))
		} else {
			if _, ok := keep.Int[s.Keys.Int[i]]; keep.Int != nil && !ok {
				continue
			}
			out.Append(s.Keys.Int[i], "", s.Start[i], s.State(i))
		}
	}
	return out, nil
}

// lentTiles is memTiles that lends its loads (as tilestore.Store's
// LoadScratch): releasing a set overwrites it with values no load holds,
// so that a query reading its tiles after freeing them goes wrong; it
// counts loads and releases.
type lentTiles struct {
	*memTiles
	lent, released int
}

func (l *lentTiles) LoadScratch(ctx context.Context, man *tilestore.Manifest, r tilestore.Range, keep *tilestore.KeyFilter) (*tile.Set, func(), error) {
	set, err := l.Load(ctx, man, r, keep)
	if err != nil {
		return nil, nil, err
	}
	l.lent++
	done := false
	return set, func() {
		if done {
			panic("a lent tile set released twice")
		}
		done = true
		l.released++
		for i := range set.Len() {
			set.Start[i], set.Count[i] = -1<<62, -7
			for _, c := range [][]int64{set.Keys.Int, set.N} {
				if c != nil {
					c[i] = -7
				}
			}
			for _, c := range [][]float64{set.Sum, set.M2, set.Min, set.Max} {
				if c != nil {
					c[i] = math.NaN()
				}
			}
		}
	}, nil
}

// oracle computes one value literally from DESIGN.md: pick the events of
// the row's key in the mode's interval, then aggregate them directly.
func oracle(events []rawEvent, f *feature.Feature, w feature.Window, grid tile.Grid, opt Options, str bool, ikey int64, skey string, t int64) (float64, bool) {
	from, to := int64(math.MinInt64), t
	if !w.All() {
		from = t - w.Micros
	}
	b := grid.Width
	if (opt.Materialized || opt.Align) && !w.All() {
		from = floorExact(from, grid)
	}
	if opt.Materialized && !opt.Align {
		to = -floorExact(-t, tile.Grid{Width: b, Origin: -grid.Origin}) // ceil
	}
	var vals []float64
	count := 0
	for _, e := range events {
		if str && e.skey != skey || !str && e.ikey != ikey {
			continue
		}
		if f.Filter != nil && e.status != f.Filter.Equals {
			continue
		}
		if e.ts < from || e.ts >= to {
			continue
		}
		count++
		if e.valid {
			vals = append(vals, e.value)
		}
	}
	switch f.Aggregation {
	case aggregate.Count:
		return float64(count), true
	case aggregate.Sum:
		s := 0.0
		for _, v := range vals {
			s += v
		}
		return s, true
	}
	if len(vals) == 0 {
		return 0, false
	}
	sort.Float64s(vals)
	s := 0.0
	for _, v := range vals {
		s += v
	}
	mean := s / float64(len(vals))
	ss := 0.0
	for _, v := range vals {
		ss += (v - mean) * (v - mean)
	}
	switch f.Aggregation {
	case aggregate.Mean:
		return mean, true
	case aggregate.Min:
		return vals[0], true
	case aggregate.Max:
		return vals[len(vals)-1], true
	case aggregate.Var:
		return ss / float64(len(vals)), true
	case aggregate.Std:
		return math.Sqrt(ss / float64(len(vals))), true
	}
	panic("unknown aggregation")
}

// floorExact is floor to the grid by integer arithmetic, written
// independently of tile.Grid.Floor.
func floorExact(x int64, g tile.Grid) int64 {
	d := x - g.Origin
	q := d / g.Width
	if d%g.Width < 0 {
		q--
	}
	return g.Origin + q*g.Width
}
