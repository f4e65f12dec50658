package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/tessera-fe/tessera/online/store"
)

// BenchmarkBoltAppend appends batches of 1,000 events (6 tile sets x 1,000
// keys) to a file holding 300,000 events; the metric is events/s.
func BenchmarkBoltAppend(b *testing.B) {
	s, err := store.OpenBolt(filepath.Join(b.TempDir(), "ev.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	batch := func(n int, ts0 int64) []store.Event {
		evs := make([]store.Event, 0, n)
		for i := range n {
			evs = append(evs, store.Event{TileSet: fmt.Sprintf("set%d", i%6), Key: fmt.Sprint(rng.IntN(1000)), TS: ts0 + int64(i), Value: 1, Valid: true})
		}
		return evs
	}
	for i := range 50 {
		if err := s.Append(context.Background(), batch(6000, int64(i)*6000)); err != nil {
			b.Fatal(err)
		}
	}
	ev := batch(1000, 1<<40)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := s.Append(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
		n += len(ev)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
