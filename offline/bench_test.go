package offline

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// tableEvents serves the events of an in-memory source table.
type tableEvents struct {
	t  *source.Table
	ts string
}

func (e tableEvents) KeyKind(_ context.Context, spec EventSpec) (bool, error) {
	return e.t.Column(spec.Key).Kind == source.String, nil
}

func (e tableEvents) Events(_ context.Context, spec EventSpec, keep *tile.Dict) (*tile.Events, error) {
	return EventsOf(e.t, spec, e.ts, keep), nil
}

// benchScale picks the benchmark size: TESSERA_BENCH_SCALE=20M runs 20M
// events and 2M spine rows; the default is 1M events and 100k rows.
func benchScale() (events, rows int) {
	if os.Getenv("TESSERA_BENCH_SCALE") == "20M" {
		return 20_000_000, 2_000_000
	}
	return 1_000_000, 100_000
}

type benchWorld struct {
	cfg   *feature.Config
	ev    tableEvents
	tiles *memTiles
	spine *Spine
}

var benchCache = map[int]*benchWorld{}

func newBenchWorld(b *testing.B) *benchWorld {
	nev, nrows := benchScale()
	if w := benchCache[nev]; w != nil {
		return w
	}
	spec := sample.Default()
	spec.Events, spec.SpineRows, spec.Users = nev, nrows, uint64(max(1000, nev/50))
	events := sample.Events(spec)
	sp := sample.Spine(spec, events)
	cfg, err := feature.Parse("bench.yaml", []byte(sample.Config()))
	if err != nil {
		b.Fatal(err)
	}
	w := &benchWorld{cfg: cfg, ev: tableEvents{t: events, ts: "ts"},
		tiles: &memTiles{sets: map[string]*tile.Set{}, cover: map[string][]tilestore.Range{}}}
	for _, ts := range cfg.TileSets() {
		es := EventSpec{Source: ts.Source, Key: ts.Key, Value: ts.Value}
		if ts.Filter != nil {
			es.Filter = *ts.Filter
		}
		w.tiles.sets[ts.ID] = tile.Build(EventsOf(events, es, "ts", nil), ts.Grid, ts.Needs, math.MinInt64, math.MaxInt64)
		w.tiles.cover[ts.ID] = []tilestore.Range{{From: math.MinInt64, To: math.MaxInt64}}
	}
	w.spine = &Spine{Keys: tile.Keys{Int: sp.Column("user_id").Ints}, Times: sp.Column("ts").Ints}
	benchCache[nev] = w
	return w
}

func refsOf(b *testing.B, names ...string) []feature.Ref {
	var refs []feature.Ref
	for _, n := range names {
		r, err := feature.ParseRef(n)
		if err != nil {
			b.Fatal(err)
		}
		refs = append(refs, r)
	}
	return refs
}

// BenchmarkQuery measures spine rows/s of each planner mode for sum, mean and
// max over one window, at 7d, 30d and all: materialized cost must not grow
// with the window. The naive baseline runs on the first 2% of the spine.
func BenchmarkQuery(b *testing.B) {
	w := newBenchWorld(b)
	for _, win := range []string{"7d", "30d", "all"} {
		refs := refsOf(b, "user.total_transaction_amount["+win+"]")
		if win == "7d" {
			refs = refsOf(b, "user.total_transaction_amount[7d]", "user.mean_transaction_amount[7d]", "user.max_transaction_amount[7d]")
		}
		for _, mode := range []struct {
			name string
			opt  Options
		}{{"exact", Options{}}, {"materialized", Options{Materialized: true}}, {"materialized+align", Options{Materialized: true, Align: true}}, {"naive", Options{}}} {
			b.Run(fmt.Sprintf("%s/%s/windows=%d", mode.name, win, len(refs)), func(b *testing.B) {
				eng := &Engine{Config: w.cfg, Events: w.ev, Tiles: w.tiles}
				sp := w.spine
				if mode.name == "naive" {
					n := len(sp.Times) / 50
					sp = &Spine{Keys: tile.Keys{Int: sp.Keys.Int[:n]}, Times: sp.Times[:n]}
				}
				b.ReportAllocs()
				runs := 0
				for b.Loop() {
					var err error
					if mode.name == "naive" {
						_, err = eng.Naive(context.Background(), sp, refs, mode.opt)
					} else {
						_, err = eng.Query(context.Background(), sp, refs, mode.opt)
					}
					if err != nil {
						b.Fatal(err)
					}
					runs++
				}
				b.ReportMetric(float64(runs*len(sp.Times))/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkBackfillBuild measures tile building from events in memory
// (events/s), the core of a backfill.
func BenchmarkBackfillBuild(b *testing.B) {
	w := newBenchWorld(b)
	ts := w.cfg.TileSetOf("user.total_transaction_amount")
	ev := EventsOf(w.ev.t, EventSpec{Source: ts.Source, Key: ts.Key, Value: ts.Value}, "ts", nil)
	b.ReportAllocs()
	runs := 0
	for b.Loop() {
		tile.Build(ev, ts.Grid, ts.Needs, math.MinInt64, math.MaxInt64)
		runs++
	}
	b.ReportMetric(float64(runs*ev.Len())/b.Elapsed().Seconds(), "events/s")
}
