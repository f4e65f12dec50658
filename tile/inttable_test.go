package tile

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestIntTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	tab := newIntTable(0)
	ref := map[int64]int32{}
	special := []int64{0, -1, 1, math.MinInt64, math.MaxInt64, 1 << 40}
	for i := range 200_000 {
		var k int64
		switch {
		case i < len(special):
			k = special[i]
		case i%3 == 0:
			k = rng.Int64N(1000) // repeats
		default:
			k = int64(rng.Uint64())
		}
		want, ok := ref[k]
		if !ok {
			want = int32(len(ref))
			ref[k] = want
		}
		got, added := tab.put(k, int32(len(ref)-1))
		if got != want || added == ok {
			t.Fatalf("put(%d) = %d, %v; want %d, %v", k, got, added, want, !ok)
		}
	}
	for k, want := range ref {
		if got := tab.get(k); got != want {
			t.Fatalf("get(%d) = %d, want %d", k, got, want)
		}
	}
	for range 10_000 {
		k := int64(rng.Uint64())
		if _, ok := ref[k]; !ok && tab.get(k) != -1 {
			t.Fatalf("get of absent key %d found something", k)
		}
	}
}

func BenchmarkDictLookup(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	keys := make([]int64, 400_000)
	for i := range keys {
		keys[i] = rng.Int64N(1 << 40)
	}
	d := NewDict(false)
	d.AddAll(&Keys{Int: keys}, nil)
	probe := make([]int64, 1<<22)
	for i := range probe {
		probe[i] = keys[rng.IntN(len(keys))]
	}
	ids := make([]int32, 0, len(probe))
	runs := 0
	for b.Loop() {
		ids = d.LookupAll(&Keys{Int: probe}, ids[:0])
		runs++
	}
	b.ReportMetric(float64(runs*len(probe))/b.Elapsed().Seconds(), "lookups/s")
}

// TestIntTableReserve: after reserve(n), adding n keys keeps every entry
// (including those from before) and rehashes no more.
func TestIntTableReserve(t *testing.T) {
	tab := newIntTable(0)
	for k := range int64(10) {
		tab.put(k*3, int32(k))
	}
	tab.reserve(5000)
	size := len(tab.keys)
	for k := range int64(5000) {
		if id, added := tab.put(k*3, int32(k)); id != int32(k) || added != (k >= 10) {
			t.Fatalf("put(%d) = %d, %v", k*3, id, added)
		}
	}
	if len(tab.keys) != size {
		t.Fatalf("table grew from %d to %d slots after reserve", size, len(tab.keys))
	}
	for k := range int64(5000) {
		if got := tab.get(k * 3); got != int32(k) {
			t.Fatalf("get(%d) = %d, want %d", k*3, got, k)
		}
	}
}
