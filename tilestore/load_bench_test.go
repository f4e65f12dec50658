package tilestore

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/internal/cputime"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/internal/snappy"
	"github.com/tessera-fe/tessera/tile"
)

// benchTiles is the tile set the load benchmarks read.
type benchTiles struct {
	set  *tile.Set
	grid tile.Grid
}

// loadBenchTiles builds the benchmark's tiles. By default they are the
// sample's user tiles (count, sum and min per 1h bucket, about 200k tiles),
// fast enough for every run; TESSERA_BENCH_SCALE=1M or 20M builds the tiles
// of the benchmark harness at that scale instead (count and sum per 4h
// bucket; about 3.8M tiles at 20M events).
func loadBenchTiles(b *testing.B) benchTiles {
	b.Helper()
	spec := sample.Default()
	grid, needs := hourGrid, aggregate.NeedCount|aggregate.NeedSum|aggregate.NeedMin
	switch scale := os.Getenv("TESSERA_BENCH_SCALE"); scale {
	case "":
	case "1M":
		spec.Events, spec.Users, spec.Merchants = 1_000_000, 50_000, 5_000
		grid, needs = tile.Grid{Width: 4 * hour}, aggregate.NeedCount|aggregate.NeedSum
	case "20M":
		spec.Events, spec.Users, spec.Merchants = 20_000_000, 400_000, 20_000
		grid, needs = tile.Grid{Width: 4 * hour}, aggregate.NeedCount|aggregate.NeedSum
	default:
		b.Fatalf("TESSERA_BENCH_SCALE=%q: want 1M or 20M (or unset for the small sample)", scale)
	}
	start := time.Now()
	set := buildTiles(spec, "user_id", grid, needs)
	b.Logf("%d tiles (%s) built in %v", set.Len(), needs, time.Since(start).Round(time.Millisecond))
	return benchTiles{set: set, grid: grid}
}

// buildTiles builds the tiles with needs of the sample transactions of spec
// grouped by keyColumn, on grid.
func buildTiles(spec sample.Spec, keyColumn string, grid tile.Grid, needs aggregate.Needs) *tile.Set {
	ev := sample.Events(spec)
	amount := ev.Column("amount")
	events := &tile.Events{
		Keys:   tile.Keys{Int: ev.Column(keyColumn).Ints},
		TS:     ev.Column("ts").Ints,
		Values: amount.Floats,
		Valid:  amount.Valid,
	}
	return tile.Build(events, grid, needs, everythingFrom, everythingTo)
}

// BenchmarkLoad loads a committed tile set whole and for a random 1% of the
// keys, reporting tiles/s and the bytes read per load. See loadBenchTiles for
// its sizes (TESSERA_BENCH_SCALE).
func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	bt := loadBenchTiles(b)
	set := bt.set
	s, err := Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m, err := s.Commit(ctx, Commit{TileSet: "bench", Needs: set.Needs, Grid: bt.grid, Cover: everything, Tiles: set})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 1))
	sample1 := &KeyFilter{Int: map[int64]struct{}{}}
	for _, k := range slices.Compact(slices.Clone(set.Keys.Int)) {
		if rng.IntN(100) == 0 {
			sample1.Int[k] = struct{}{}
		}
	}
	for _, c := range []struct {
		name string
		keep *KeyFilter
	}{{"all", nil}, {"sample1pct", sample1}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b0, tiles, cpu0 := s.BytesRead(), 0, cputime.Process()
			for b.Loop() {
				got, err := s.Load(ctx, m, everything, c.keep)
				if err != nil {
					b.Fatal(err)
				}
				tiles += got.Len()
			}
			b.ReportMetric(float64(tiles)/b.Elapsed().Seconds(), "tiles/s")
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(s.BytesRead()-b0)/float64(b.N), "bytes-read/op")
		})
	}
}

// benchFormats are the tile object formats BenchmarkTileCodec compares.
var benchFormats = []struct {
	name string
	f    objectFormat
}{
	{"zstd", objectFormat{codec: &parquet.Zstd}},
	{"zstd-fastest", objectFormat{codec: &zstd.Codec{Level: zstd.SpeedFastest}}},
	{"snappy", objectFormat{codec: &parquet.Snappy}},
	{"none", objectFormat{codec: &parquet.Uncompressed}},
	{"delta+zstd", objectFormat{codec: &parquet.Zstd, ints: &parquet.DeltaBinaryPacked}},
	{"delta+zstd-fastest", objectFormat{codec: &zstd.Codec{Level: zstd.SpeedFastest}, ints: &parquet.DeltaBinaryPacked}},
	{"delta+snappy", objectFormat{codec: &parquet.Snappy, ints: &parquet.DeltaBinaryPacked}},
	{"delta+snappy-std", objectFormat{codec: snappy.Codec{}, ints: &parquet.DeltaBinaryPacked}},
	{"delta+none", objectFormat{codec: &parquet.Uncompressed, ints: &parquet.DeltaBinaryPacked}},
	{"delta+split+zstd", objectFormat{codec: &parquet.Zstd, ints: &parquet.DeltaBinaryPacked, floats: &parquet.ByteStreamSplit}},
	{"delta+split+snappy", objectFormat{codec: &parquet.Snappy, ints: &parquet.DeltaBinaryPacked, floats: &parquet.ByteStreamSplit}},
}

// BenchmarkTileCodec compares page codecs for tile objects on the tiles of
// loadBenchTiles: the time to encode every tile into objects (write, on one
// core, as a commit does), the time of a full Load of them (load), and their
// size (bytes/tile, and the total in MB).
func BenchmarkTileCodec(b *testing.B) {
	ctx := context.Background()
	bt := loadBenchTiles(b)
	set := bt.set
	defer func(f objectFormat) { tileFormat = f }(tileFormat)
	for _, c := range benchFormats {
		b.Run(c.name+"/write", func(b *testing.B) {
			b.ReportAllocs()
			var size int64
			cpu0 := cputime.Process()
			for b.Loop() {
				size = 0
				for lo := 0; lo < set.Len(); lo += maxObjectRows {
					data, _, err := encodeObjectAs("bench.parquet", set, lo, min(lo+maxObjectRows, set.Len()), bt.grid.Width, c.f)
					if err != nil {
						b.Fatal(err)
					}
					size += int64(len(data))
				}
			}
			b.ReportMetric(float64(set.Len())*float64(b.N)/b.Elapsed().Seconds(), "tiles/s")
			b.ReportMetric(float64(size)/float64(set.Len()), "bytes/tile")
			b.ReportMetric(float64(size)/1e6, "MB")
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
		})
		b.Run(c.name+"/load", func(b *testing.B) {
			s, err := Open(ctx, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			tileFormat = c.f
			m, err := s.Commit(ctx, Commit{TileSet: "bench", Needs: set.Needs, Grid: bt.grid, Cover: everything, Tiles: set})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu0 := cputime.Process()
			for b.Loop() {
				if _, err := s.Load(ctx, m, everything, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(set.Len())*float64(b.N)/b.Elapsed().Seconds(), "tiles/s")
			b.ReportMetric(float64(totalBytes(m))/float64(set.Len()), "bytes/tile")
		})
	}
}
