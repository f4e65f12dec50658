package bench

import (
	"context"
	"path/filepath"
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
// by `tessera bench` (TESSERA_BENCH_DIR, opened read-only): "store" exactly
// as the harness does, a fresh engine per query over the directory tile
// store; "decoded" the same with the tiles decoded once beforehand. It
// reports spine rows/s and the CPU time per query (cpu-ns/op), which the
// load of a shared machine disturbs less than wall time.
func BenchmarkQueryMaterializedDir(b *testing.B) {
	dir, cfg := benchDir(b)
	ctx := context.Background()
	store, err := tilestore.Open(ctx, filepath.Join(dir, "store"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	spine, err := source.Read(filepath.Join(dir, "spine.parquet"), []source.Request{{Name: "user_id", Role: source.Key}, {Name: "ts", Role: source.Time}}, source.Options{})
	if err != nil {
		b.Fatal(err)
	}
	keys := tile.Keys{Int: spine.Column("user_id").Ints}
	times := spine.Column("ts").Ints
	var refs []feature.Ref
	for _, s := range []string{
		"user.amount_sum[7d]", "user.amount_sum[30d]", "user.amount_sum[all]",
		"user.amount_count[7d]", "user.amount_count[30d]", "user.amount_count[all]",
		"user.amount_mean[7d]", "user.amount_mean[30d]", "user.amount_mean[all]"} {
		r, err := feature.ParseRef(s)
		if err != nil {
			b.Fatal(err)
		}
		refs = append(refs, r)
	}
	keysFor := func(*feature.Feature) (string, tile.Keys, error) { return "user_id", keys, nil }
	for _, c := range []struct {
		name  string
		tiles offline.Tiles
	}{{"store", store}, {"decoded", &decodedTiles{Tiles: store}}} {
		query := func() {
			eng := &offline.Engine{Config: cfg, Events: &offline.FileEvents{Config: cfg}, Tiles: c.tiles}
			if _, err := tessera.QueryByKey(ctx, eng, refs, times, keysFor, offline.Options{Materialized: true}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			query() // decodes the tiles of "decoded"
			b.ReportAllocs()
			cpu0 := int64(cputime.Process())
			runs := 0
			for b.Loop() {
				query()
				runs++
			}
			b.ReportMetric(float64(int64(cputime.Process())-cpu0)/float64(runs), "cpu-ns/op")
			b.ReportMetric(float64(runs*len(times))/b.Elapsed().Seconds(), "rows/s")
		})
	}
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
