package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/cputime"
	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

// BenchmarkBackfillDir times, in one process, the two steps whose ratio
// the harness reports against a directory prepared by `tessera bench`
// (TESSERA_BENCH_DIR; its events are only read): "decode" streams the
// events' three Parquet columns and nothing else, "backfill" builds and
// commits the tiles to a fresh store in a temporary directory. Each
// reports events/s, the CPU time per run (cpu-ns/op) and the page
// faults (faults/op: each costs microseconds on a virtual machine); run them in one
// command so that the machine's hour weighs on both alike.
func BenchmarkBackfillDir(b *testing.B) {
	_, cfg := benchDir(b)
	ctx := context.Background()
	src := cfg.Sources["transactions"]
	events, _, err := source.Rows(src.Path, nil)
	if err != nil {
		b.Fatal(err)
	}
	req := []source.Request{{Name: "ts", Role: source.Time}, {Name: "user_id", Role: source.Key}, {Name: "amount", Role: source.Value}}
	steps := []struct {
		name string
		run  func(b *testing.B)
	}{
		{"decode", func(b *testing.B) {
			if err := source.Stream(ctx, src.Path, req, source.Options{}, func(_ string, t *source.Table) error { t.Release(); return nil }); err != nil {
				b.Fatal(err)
			}
		}},
		{"backfill", func(b *testing.B) {
			b.StopTimer()
			storeDir := b.TempDir()
			store, err := tilestore.Open(ctx, storeDir)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := materialize.Backfill(ctx, cfg, store, materialize.Options{Now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			store.Close()
			os.RemoveAll(storeDir)
			b.StartTimer()
		}},
	}
	for _, s := range steps {
		b.Run(s.name, func(b *testing.B) {
			// A first, untimed run: the first of a process faults in
			// fresh memory, which the steps after it do not pay.
			s.run(b)
			b.ReportAllocs()
			cpu0, faults0 := cputime.Process(), cputime.Faults()
			runs := 0
			for b.Loop() {
				s.run(b)
				runs++
			}
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(runs), "cpu-ns/op")
			b.ReportMetric(float64(cputime.Faults()-faults0)/float64(runs), "faults/op")
			b.ReportMetric(float64(int64(runs)*events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// benchDir returns the directory prepared by `tessera bench` that
// TESSERA_BENCH_DIR names, and its feature configuration; it skips the
// benchmark when none is named.
func benchDir(b *testing.B) (string, *feature.Config) {
	dir := os.Getenv("TESSERA_BENCH_DIR")
	if dir == "" {
		b.Skip("TESSERA_BENCH_DIR names no directory prepared by `tessera bench`")
	}
	cfgPath := filepath.Join(dir, "tessera.yaml")
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := feature.Parse(cfgPath, text)
	if err != nil {
		b.Fatal(err)
	}
	return dir, cfg
}
