package tile

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSortByKey(t *testing.T) {
	testSort(t, func(keys []uint64, idx []int32) { SortByKey(keys, idx, nil, nil) }, []int{0, 1, 2, 17, 1000, 50_000})
}

// testSort checks that sort orders keys stably, moving idx along, on random
// keys of several sizes and spans (all equal, narrow, wide, the top bit set,
// a heavy key).
func testSort(t *testing.T, sort func(keys []uint64, idx []int32), sizes []int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range sizes {
		for _, span := range []uint64{1, 7, 1 << 11, 1 << 33, 1<<63 + 5, 0} {
			keys := make([]uint64, n)
			idx := make([]int32, n)
			for i := range keys {
				if span == 0 { // a heavy key among light ones
					keys[i] = 1 << 40
					if rng.IntN(4) == 0 {
						keys[i] = rng.Uint64N(1 << 41)
					}
				} else {
					keys[i] = rng.Uint64N(span)
				}
				idx[i] = int32(i)
			}
			orig := slices.Clone(keys)
			sort(keys, idx)
			for i := range keys {
				if keys[i] != orig[idx[i]] {
					t.Fatalf("n %d span %d: key %d does not follow its index", n, span, i)
				}
				if i > 0 && (keys[i-1] > keys[i] || keys[i-1] == keys[i] && idx[i-1] > idx[i]) {
					t.Fatalf("n %d span %d: not sorted stably at %d", n, span, i)
				}
			}
		}
	}
}

func BenchmarkSortByKey(b *testing.B) {
	const n = 1 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]uint64, n)
	for i := range src {
		src[i] = rng.Uint64N(1 << 43)
	}
	keys := make([]uint64, n)
	idx := make([]int32, n)
	tk, ti := make([]uint64, n), make([]int32, n)
	b.ReportAllocs()
	runs := 0
	for b.Loop() {
		copy(keys, src)
		for i := range idx {
			idx[i] = int32(i)
		}
		SortByKey(keys, idx, tk, ti)
		runs++
	}
	b.ReportMetric(float64(runs*n)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkSortByKeyPdq(b *testing.B) {
	const n = 1 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]uint64, n)
	for i := range src {
		src[i] = rng.Uint64N(1 << 43)
	}
	idx := make([]int32, n)
	runs := 0
	for b.Loop() {
		for i := range idx {
			idx[i] = int32(i)
		}
		slices.SortFunc(idx, func(x, y int32) int { return cmpU(src[x], src[y]) })
		runs++
	}
	b.ReportMetric(float64(runs*n)/b.Elapsed().Seconds(), "rows/s")
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
