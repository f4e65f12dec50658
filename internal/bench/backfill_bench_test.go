package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/cputime"
	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
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

// BenchmarkBuildDir times the middle of a backfill alone: building the
// tiles of the events of a directory prepared by `tessera bench`
// (TESSERA_BENCH_DIR; the first tile set of its configuration), decoded
// into memory once beforehand, with a Builder told their bounds, as a
// backfill streams them (filing each batch as it comes, then sorting and
// folding on every core), but neither decoding nor writing anything, over
// the events' own time range rather than the tile set's cover: the steps of BenchmarkBackfillDir move with the
// machine's hour by more than a change to the build is worth. It reports
// events/s and the CPU time per build (cpu-ns/op). The events take 33
// bytes each in memory: 0.7 GB at the 20M scale.
func BenchmarkBuildDir(b *testing.B) {
	_, cfg := benchDir(b)
	sets := cfg.TileSets()
	if len(sets) == 0 {
		b.Fatal("the directory's configuration materializes no feature")
	}
	ts := sets[0]
	src := cfg.Sources[ts.Source]
	spec := offline.EventSpec{Source: ts.Source, Key: ts.Key, Value: ts.Value}
	req := []source.Request{{Name: src.Timestamp, Role: source.Time}, {Name: ts.Key, Role: source.Key}}
	if ts.Value != "" {
		req = append(req, source.Request{Name: ts.Value, Role: source.Value})
	}
	if ts.Filter != nil {
		spec.Filter = *ts.Filter
		req = append(req, source.Request{Name: ts.Filter.Column, Role: source.Text})
	}
	var batches []*tile.Events
	events := 0
	kmin, kmax, tmin, tmax := int64(math.MaxInt64), int64(math.MinInt64), int64(math.MaxInt64), int64(math.MinInt64)
	err := source.Stream(context.Background(), src.Path, req, source.Options{}, func(_ string, t *source.Table) error {
		ev := offline.EventsOf(t, spec, src.Timestamp, nil)
		if ev.Keys.String {
			return fmt.Errorf("%s: string keys: the build streams int keys only", src.Path)
		}
		for i, k := range ev.Keys.Int {
			kmin, kmax = min(kmin, k), max(kmax, k)
			tmin, tmax = min(tmin, ev.TS[i]), max(tmax, ev.TS[i])
		}
		events += ev.Len()
		batches = append(batches, ev)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if events == 0 {
		b.Fatal("no events")
	}
	from, to := ts.Grid.Floor(tmin), ts.Grid.Floor(tmax)+ts.Grid.Width
	build := func() {
		bl := tile.NewBuilder(ts.Grid, ts.Needs, from, to)
		bl.Expect(kmin, kmax, tmin, tmax, events)
		for _, ev := range batches {
			bl.Add(ev)
		}
		set, release := bl.FinishScratch()
		n := set.Len()
		release()
		if n == 0 {
			b.Fatal("no tiles built")
		}
	}
	build() // untimed: the first build of a process faults in fresh memory
	b.ReportAllocs()
	cpu0 := cputime.Process()
	runs := 0
	for b.Loop() {
		build()
		runs++
	}
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(runs), "cpu-ns/op")
	b.ReportMetric(float64(runs*events)/b.Elapsed().Seconds(), "events/s")
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
