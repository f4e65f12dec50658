package tile

import (
	"math/rand/v2"
	"testing"

	"github.com/tessera-fe/tessera/aggregate"
)

// BenchmarkBuild bins 1M events over 10k Zipf-distributed keys (a few keys
// hold most events) and 30 days into hourly tiles with every state column.
func BenchmarkBuild(b *testing.B) {
	const (
		n     = 1 << 20
		keys  = 10_000
		day   = int64(86400e6)
		start = int64(1.7e15) // late 2023
	)
	rng := rand.New(rand.NewPCG(31, 32))
	zipf := rand.NewZipf(rng, 1.1, 1, keys-1)
	ev := &Events{
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
	g := Grid{Width: 3600e6}
	needs := aggregate.Var.Needs() | aggregate.Min.Needs() | aggregate.Max.Needs()
	b.ReportAllocs()
	loops, tiles := 0, 0
	for b.Loop() {
		s := Build(ev, g, needs, start, start+30*day)
		tiles = s.Len()
		loops++
	}
	b.ReportMetric(float64(n)*float64(loops)/b.Elapsed().Seconds(), "rows/s")
	if tiles == 0 {
		b.Fatal("no tiles built")
	}
}
