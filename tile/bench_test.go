package tile

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/aggregate"
)

// BenchmarkBuild bins 1M events over 10k Zipf-distributed keys (a few keys
// hold most events) and 30 days into hourly tiles with every state column.
func BenchmarkBuild(b *testing.B) {
	ev, g, needs, from, to := buildBenchEvents()
	b.ReportAllocs()
	loops, tiles := 0, 0
	for b.Loop() {
		s := Build(ev, g, needs, from, to)
		tiles = s.Len()
		loops++
	}
	b.ReportMetric(float64(ev.Len())*float64(loops)/b.Elapsed().Seconds(), "rows/s")
	if tiles == 0 {
		b.Fatal("no tiles built")
	}
}

// buildBenchEvents returns BenchmarkBuild's events, grid, needs and range.
func buildBenchEvents() (ev *Events, g Grid, needs aggregate.Needs, from, to int64) {
	const (
		n     = 1 << 20
		keys  = 10_000
		day   = int64(86400e6)
		start = int64(1.7e15) // late 2023
	)
	rng := rand.New(rand.NewPCG(31, 32))
	zipf := rand.NewZipf(rng, 1.1, 1, keys-1)
	ev = &Events{
		Keys:   Keys{Int: make([]int64, n)},
		TS:     make([]int64, n),
		Values: make([]float64, n),
		Valid:  make([]bool, n),
	}
	for i := range n {
		ev.Keys.Int[i] = int64(zipf.Uint64()) * 7919 // scattered key values
		ev.TS[i] = start + rng.Int64N(30*day)
		ev.Values[i] = rng.NormFloat64() * 100
		ev.Valid[i] = rng.IntN(20) != 0
	}
	g = Grid{Width: 3600e6}
	needs = aggregate.Var.Needs() | aggregate.Min.Needs() | aggregate.Max.Needs()
	return ev, g, needs, start, start + 30*day
}

// quarters returns ev as four batches.
func quarters(ev *Events) []*Events {
	var batches []*Events
	for q := range 4 {
		lo, hi := ev.Len()*q/4, ev.Len()*(q+1)/4
		batches = append(batches, &Events{Keys: Keys{Int: ev.Keys.Int[lo:hi]}, TS: ev.TS[lo:hi], Values: ev.Values[lo:hi], Valid: ev.Valid[lo:hi]})
	}
	return batches
}

// BenchmarkBuilder builds the events of BenchmarkBuild handed over in four
// batches, told their bounds: the pass as batches arrive (scan) and the
// sort and fold at Finish (finish), each in rows/s.
func BenchmarkBuilder(b *testing.B) {
	ev, g, needs, from, to := buildBenchEvents()
	benchBuilder(b, ev, g, needs, from, to)
}

// benchBuilder times the build of ev in four batches by a Builder told
// their bounds, as BenchmarkBuilder describes.
func benchBuilder(b *testing.B, ev *Events, g Grid, needs aggregate.Needs, from, to int64) {
	batches := quarters(ev)
	kmin, kmax := slices.Min(ev.Keys.Int), slices.Max(ev.Keys.Int)
	tmin, tmax := slices.Min(ev.TS), slices.Max(ev.TS)
	b.ReportAllocs()
	var scan, finish time.Duration
	for b.Loop() {
		bl := NewBuilder(g, needs, from, to)
		bl.Expect(kmin, kmax, tmin, tmax, ev.Len())
		t0 := time.Now()
		for _, x := range batches {
			bl.Add(x)
		}
		t1 := time.Now()
		if bl.Finish().Len() == 0 {
			b.Fatal("no tiles built")
		}
		scan, finish = scan+t1.Sub(t0), finish+time.Since(t1)
	}
	rows := float64(ev.Len()) * float64(b.N)
	b.ReportMetric(rows/scan.Seconds(), "scan-rows/s")
	b.ReportMetric(rows/finish.Seconds(), "finish-rows/s")
}

// BenchmarkBuilderSpill is BenchmarkBuilder for a builder held to 8 MB
// of memory: blocks evicted to disk as the batches arrive, then built in
// groups read back one at a time (Parts), in rows/s.
func BenchmarkBuilderSpill(b *testing.B) {
	ev, g, needs, from, to := buildBenchEvents()
	batches := quarters(ev)
	kmin, kmax := slices.Min(ev.Keys.Int), slices.Max(ev.Keys.Int)
	tmin, tmax := slices.Min(ev.TS), slices.Max(ev.TS)
	dir := b.TempDir()
	b.ReportAllocs()
	groups := 0
	for b.Loop() {
		bl := NewBuilder(g, needs, from, to)
		bl.Expect(kmin, kmax, tmin, tmax, ev.Len())
		bl.Spill(dir, 8<<20, 0)
		for _, x := range batches {
			bl.Add(x)
		}
		parts := bl.Parts()
		groups = len(parts)
		for _, p := range parts {
			if _, err := p(); err != nil {
				b.Fatal(err)
			}
		}
		if err := bl.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ev.Len())*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(groups), "groups")
}

// BenchmarkBuilderHeavy is BenchmarkBuilder for the shape of the `tessera
// bench` sample: 4M events over 400k keys whose Zipf law gives the first
// hundred keys half the events, 90 days of 4h buckets, count and sum.
func BenchmarkBuilderHeavy(b *testing.B) {
	const (
		n     = 4 << 20
		keys  = 400_000
		day   = int64(86400e6)
		start = int64(1.7e15)
	)
	rng := rand.New(rand.NewPCG(33, 34))
	zipf := rand.NewZipf(rng, 1.2, 4, keys-1)
	ev := &Events{Keys: Keys{Int: make([]int64, n)}, TS: make([]int64, n), Values: make([]float64, n), Valid: make([]bool, n)}
	for i := range n {
		ev.Keys.Int[i] = int64(zipf.Uint64()) + 1
		ev.TS[i] = start + rng.Int64N(90*day)
		ev.Values[i] = float64(rng.IntN(10000)) / 100
		ev.Valid[i] = rng.IntN(200) != 0
	}
	benchBuilder(b, ev, Grid{Width: 4 * 3600e6}, aggregate.Mean.Needs(), start, start+90*day)
}
