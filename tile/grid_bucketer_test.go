package tile

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestBucketer checks the division-free bucket numbers against floorDiv:
// random offsets of every size and sign, bucket edges and their
// neighbours, the ends of the estimated span and of int64, for widths from
// one microsecond to a year and odd ones.
func TestBucketer(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	widths := []int64{1, 2, 3, 7, 1000, 3600e6, 4 * 3600e6, 86400e6, 7 * 86400e6, 365 * 86400e6, 999_999_937, math.MaxInt64 / 3, math.MaxInt64}
	for range 50 {
		widths = append(widths, 1+rng.Int64N(1<<40))
	}
	for _, w := range widths {
		for _, origin := range []int64{0, 1, -7, 1.7e15, rng.Int64N(w)} {
			b := newBucketer(Grid{Width: w, Origin: origin})
			check := func(ts int64) {
				if got, want := b.of(ts), floorDiv(ts-origin, w); got != want {
					t.Fatalf("width %d origin %d ts %d: bucket %d, want %d", w, origin, ts, got, want)
				}
			}
			for _, x := range []int64{0, 1, -1, fastSpan - 1, fastSpan, -fastSpan + 1, -fastSpan, math.MaxInt64 / 2, math.MinInt64 / 2} {
				check(origin + x)
			}
			for range 2000 {
				var x int64
				switch rng.IntN(4) {
				case 0:
					x = rng.Int64N(1<<53) - 1<<52
				case 1:
					x = rng.Int64N(1<<20) - 1<<19
				case 2: // a bucket edge, or next to one
					k := rng.Int64N(1<<40) - 1<<39
					if hi, lo := k*w, k; lo != 0 && hi/lo != w {
						continue
					}
					x = k*w + rng.Int64N(3) - 1
				default:
					x = int64(rng.Uint64() >> 2)
					if rng.IntN(2) == 0 {
						x = -x
					}
				}
				check(origin + x)
			}
		}
	}
}
