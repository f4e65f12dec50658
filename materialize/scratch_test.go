package materialize_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/internal/hugepage"
	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
)

// TestBackfillScratchTiles: a backfill large enough that its tiles are
// built in scratch memory outside the Go heap commits Build's tiles, and
// gives that memory back (to the spares that wait for the next build)
// once they are committed, for each of its tile sets.
func TestBackfillScratchTiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("scratch is mapped outside the Go heap on Linux only")
	}
	const n = 400_000
	rng := rand.New(rand.NewPCG(71, 72))
	dir := t.TempDir()
	uid, ts, amount := make([]int64, n), make([]int64, n), make([]float64, n)
	for i := range n {
		uid[i], ts[i] = rng.Int64N(50_000), day0.UnixMicro()+rng.Int64N(10*86400e6)
		amount[i] = float64(rng.IntN(10000)) / 100
	}
	err := source.Write(filepath.Join(dir, "events.parquet"), &source.Table{Rows: n, Columns: []*source.Column{
		{Name: "user_id", Kind: source.Int64, Ints: uid},
		{Name: "ts", Kind: source.Timestamp, Ints: ts},
		{Name: "amount", Kind: source.Float64, Floats: amount},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, store := openConfig(t, dir, `sources:
  tx: {path: events.parquet, timestamp: ts}
entities:
  user: {key: user_id}
features:
  user.total: {source: tx, aggregation: sum, value: amount, windows: [1d], materialization: {bucket_duration: 1h}}
  user.n: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 2h}}
`)
	defer hugepage.HoldSpares(time.Minute)()
	hugepage.Trim()
	sum := backfill(t, cfg, store, materialize.Options{})
	if sum.Events != n || len(sum.Sets) != 2 {
		t.Fatalf("backfill read %d events into %d tile sets", sum.Events, len(sum.Sets))
	}
	if spare := hugepage.Spare(); spare == 0 || hugepage.Mapped() != spare {
		t.Fatalf("after the backfill, %d bytes of scratch are mapped, %d of them spare: all should be", hugepage.Mapped(), spare)
	}
	hugepage.Trim()
	ev := &tile.Events{Keys: tile.Keys{Int: uid}, TS: ts, Values: amount, Valid: nil}
	for _, set := range cfg.TileSets() {
		cover := sum.Sets[0].Cover
		for _, s := range sum.Sets {
			if s.TileSet == set.ID {
				cover = s.Cover
			}
		}
		m := tileSetOf(t, cfg, store, set.Features[0])
		got, err := store.Load(context.Background(), m, cover, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := tile.Build(ev, set.Grid, set.Needs, cover.From, cover.To)
		if want.Len() < 100_000 || !reflect.DeepEqual(got, want) {
			t.Fatalf("tile set %s: committed %d tiles, Build %d, or they differ", set.ID, got.Len(), want.Len())
		}
	}
}
