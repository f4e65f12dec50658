package bench

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/tessera-fe/tessera"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/cputime"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// BenchmarkQueryMaterializedDir runs the benchmark harness's materialized
// query of sum+count+mean over three windows against a directory prepared
// by `tessera bench` (TESSERA_BENCH_DIR, opened read-only): "store", a
// fresh engine per query over the directory tile store; "collected", the
// same after a collection (untimed), as the harness runs each query, whose
// heap then starts small and collects again as the query allocates;
// "decoded", the tiles decoded once beforehand. It reports spine rows/s and
// the CPU time per query (cpu-ns/op), which the load of a shared machine
// disturbs less than wall time.
func BenchmarkQueryMaterializedDir(b *testing.B) {
	q := newBenchQuery(b)
	defer q.store.Close()
	for _, c := range []struct {
		name    string
		tiles   offline.Tiles
		collect bool
	}{{"store", q.store, false}, {"collected", q.store, true}, {"decoded", &decodedTiles{Tiles: q.store}, false}} {
		b.Run(c.name, func(b *testing.B) {
			q.collect = c.collect
			q.run(b, c.tiles, offline.Options{Materialized: true}) // the first run decodes the tiles of "decoded"
		})
	}
}

// BenchmarkQueryExactDir runs the benchmark harness's exact sweep of
// sum+count+mean over three windows against a directory prepared by
// `tessera bench` (TESSERA_BENCH_DIR), as the harness does, and reports as
// BenchmarkQueryMaterializedDir does, with page faults per query.
func BenchmarkQueryExactDir(b *testing.B) {
	q := newBenchQuery(b)
	defer q.store.Close()
	q.run(b, q.store, offline.Options{})
}

// benchQuery is the harness's nine-column query over a bench directory.
type benchQuery struct {
	cfg   *feature.Config
	store *tilestore.Store
	times []int64
	refs  []feature.Ref
	keys  tile.Keys
	// collect runs a collection, untimed, before each query.
	collect bool
}

func newBenchQuery(b *testing.B) *benchQuery {
	dir, cfg := benchDir(b)
	store, err := tilestore.Open(context.Background(), filepath.Join(dir, "store"))
	if err != nil {
		b.Fatal(err)
	}
	spine, err := source.Read(filepath.Join(dir, "spine.parquet"), []source.Request{{Name: "user_id", Role: source.Key}, {Name: "ts", Role: source.Time}}, source.Options{})
	if err != nil {
		b.Fatal(err)
	}
	q := &benchQuery{cfg: cfg, store: store, keys: tile.Keys{Int: spine.Column("user_id").Ints}, times: spine.Column("ts").Ints}
	for _, s := range []string{
		"user.amount_sum[7d]", "user.amount_sum[30d]", "user.amount_sum[all]",
		"user.amount_count[7d]", "user.amount_count[30d]", "user.amount_count[all]",
		"user.amount_mean[7d]", "user.amount_mean[30d]", "user.amount_mean[all]"} {
		r, err := feature.ParseRef(s)
		if err != nil {
			b.Fatal(err)
		}
		q.refs = append(q.refs, r)
	}
	return q
}

// run times the query with a fresh engine per run over tiles, after one
// untimed run.
func (q *benchQuery) run(b *testing.B, tiles offline.Tiles, opt offline.Options) {
	ctx := context.Background()
	keysFor := func(*feature.Feature) (string, tile.Keys, error) { return "user_id", q.keys, nil }
	query := func() {
		eng := &offline.Engine{Config: q.cfg, Events: &offline.FileEvents{Config: q.cfg}, Tiles: tiles}
		if _, err := tessera.QueryByKey(ctx, eng, q.refs, q.times, keysFor, opt); err != nil {
			b.Fatal(err)
		}
	}
	query()
	b.ReportAllocs()
	var cpu, faults int64
	runs := 0
	for b.Loop() {
		if q.collect {
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
		}
		cpu0, faults0 := int64(cputime.Process()), cputime.Faults()
		query()
		cpu += int64(cputime.Process()) - cpu0
		faults += cputime.Faults() - faults0
		runs++
	}
	b.ReportMetric(float64(cpu)/float64(runs), "cpu-ns/op")
	b.ReportMetric(float64(faults)/float64(runs), "faults/op")
	b.ReportMetric(float64(runs*len(q.times))/b.Elapsed().Seconds(), "rows/s")
}

// decodedTiles loads tiles once and serves the same set afterwards, so that
// a benchmark measures the query without the tile decode. The query only
// reads a set loaded from a complete store.
type decodedTiles struct {
	offline.Tiles
	set *tile.Set
}

func (d *decodedTiles) Load(ctx context.Context, m *tilestore.Manifest, r tilestore.Range, keep *tilestore.KeyFilter) (*tile.Set, error) {
	if d.set == nil {
		set, err := d.Tiles.Load(ctx, m, r, keep)
		if err != nil {
			return nil, err
		}
		d.set = set
	}
	return d.set, nil
}
