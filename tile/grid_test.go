package tile

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

// refFloor is the bucket start holding ts, computed in arbitrary precision
// with Euclidean division (Width > 0, so it floors).
func refFloor(g Grid, ts int64) int64 {
	d := new(big.Int).Sub(big.NewInt(ts), big.NewInt(g.Origin))
	w := big.NewInt(g.Width)
	k := new(big.Int).Div(d, w) // Euclidean: floor for w > 0
	k.Mul(k, w).Add(k, big.NewInt(g.Origin))
	return k.Int64()
}

func checkGrid(t *testing.T, g Grid, ts int64) {
	t.Helper()
	f := refFloor(g, ts)
	c := f
	if f != ts {
		c = f + g.Width
	}
	if got := g.Floor(ts); got != f {
		t.Fatalf("%+v.Floor(%d) = %d, want %d", g, ts, got, f)
	}
	if got := g.Ceil(ts); got != c {
		t.Fatalf("%+v.Ceil(%d) = %d, want %d", g, ts, got, c)
	}
	if got := g.OnBoundary(ts); got != (f == ts) {
		t.Fatalf("%+v.OnBoundary(%d) = %v, want %v", g, ts, got, f == ts)
	}
	wantN, wantFirst := 0, -1
	if f != ts {
		wantN, wantFirst = 1, 0
	}
	if n, first := g.OffBoundaries([]int64{ts}); n != wantN || first != wantFirst {
		t.Fatalf("%+v.OffBoundaries([%d]) = %d, %d, want %d, %d", g, ts, n, first, wantN, wantFirst)
	}
}

func TestGridTable(t *testing.T) {
	const h = int64(3600e6)
	for _, tc := range []struct {
		g               Grid
		ts, floor, ceil int64
		onBoundary      bool
	}{
		{Grid{h, 0}, 0, 0, 0, true},
		{Grid{h, 0}, 1, 0, h, false},
		{Grid{h, 0}, h - 1, 0, h, false},
		{Grid{h, 0}, h, h, h, true},
		{Grid{h, 0}, -1, -h, 0, false},
		{Grid{h, 0}, -h, -h, -h, true},
		{Grid{h, 0}, -h - 1, -2 * h, -h, false},
		{Grid{10, 3}, 3, 3, 3, true},
		{Grid{10, 3}, 2, -7, 3, false},
		{Grid{10, 3}, -7, -7, -7, true},
		{Grid{10, 3}, -8, -17, -7, false},
		{Grid{10, 3}, 12, 3, 13, false},
		{Grid{10, 3}, 13, 13, 13, true},
		{Grid{10, -5}, 0, -5, 5, false},
		{Grid{10, 1e15}, 0, 0, 0, true}, // origin far after ts, on the same grid
		{Grid{1, 7}, -123, -123, -123, true},
	} {
		if got := tc.g.Floor(tc.ts); got != tc.floor {
			t.Errorf("%+v.Floor(%d) = %d, want %d", tc.g, tc.ts, got, tc.floor)
		}
		if got := tc.g.Ceil(tc.ts); got != tc.ceil {
			t.Errorf("%+v.Ceil(%d) = %d, want %d", tc.g, tc.ts, got, tc.ceil)
		}
		if got := tc.g.OnBoundary(tc.ts); got != tc.onBoundary {
			t.Errorf("%+v.OnBoundary(%d) = %v, want %v", tc.g, tc.ts, got, tc.onBoundary)
		}
	}
}

// TestGridRandom compares the grid with a big.Int reference over times from
// about 1000 BC to 5000 AD, origins on both sides of the epoch, and times on
// and next to boundaries.
func TestGridRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const span = int64(1e17) // microseconds: about 3200 years
	widths := []int64{1, 7, 1e6, 60e6, 600e6, 3600e6, 86400e6, 7 * 86400e6, 1e12}
	for range 20000 {
		g := Grid{Width: widths[rng.IntN(len(widths))], Origin: 0}
		switch rng.IntN(3) {
		case 1:
			g.Origin = rng.Int64N(2*span) - span
		case 2:
			g.Origin = rng.Int64N(2e6) - 1e6
		}
		ts := rng.Int64N(2*span) - span
		checkGrid(t, g, ts)
		b := refFloor(g, ts)
		for _, d := range []int64{-1, 0, 1, g.Width, -g.Width} {
			checkGrid(t, g, b+d)
		}
	}
}

// TestOffBoundaries: over runs of times on and off the boundaries, near
// the origin and far from it (past 2^52 microseconds and 2^40 buckets from
// it, where OffBoundaries divides), OffBoundaries counts those OnBoundary
// says are off and finds the first.
func TestOffBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, g := range []Grid{{3600e6, 0}, {7, -3}, {3, 1 << 60}, {4 * 3600e6, 1_700_000_000e6}, {1<<41 + 1, -5}} {
		far := min(int64(1)<<50, (int64(1)<<61)/g.Width) // buckets: k*Width stays within int64
		for range 200 {
			ts := make([]int64, rng.IntN(40))
			for i := range ts {
				k := rng.Int64N(1<<20) - 1<<19
				if rng.IntN(2) == 0 {
					k = rng.Int64N(2*far) - far
				}
				ts[i] = g.Origin + k*g.Width
				if rng.IntN(4) == 0 {
					ts[i] += rng.Int64N(3) - 1
				}
			}
			wantN, wantFirst := 0, -1
			for i, x := range ts {
				if !g.OnBoundary(x) {
					if wantN == 0 {
						wantFirst = i
					}
					wantN++
				}
			}
			if n, first := g.OffBoundaries(ts); n != wantN || first != wantFirst {
				t.Fatalf("%+v.OffBoundaries(%v) = %d, %d, want %d, %d", g, ts, n, first, wantN, wantFirst)
			}
		}
	}
}

// TestOnBoundaryEstimate: for multiples of many widths, the float estimate
// of the bucket number sometimes falls just below it (and is cut one
// short) or, below the origin, just above it; the times are on the grid
// all the same, and the times next to them off it. The test counts such
// estimates, so that it fails if none comes up any more.
func TestOnBoundaryEstimate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	short := 0
	for range 200_000 {
		w := rng.Int64N(1<<20) + 2
		k := rng.Int64N(1<<31) - 1<<30
		b := newBucketer(Grid{Width: w})
		x := k * w
		if int64(float64(x)*b.inv) != k {
			short++
		}
		if !b.on(x) || b.on(x+1) || b.on(x-1) {
			t.Fatalf("width %d, bucket %d: on(%d) = %v, on(+1) = %v, on(-1) = %v", w, k, x, b.on(x), b.on(x+1), b.on(x-1))
		}
	}
	if short == 0 {
		t.Fatal("no estimate was off by one: the test no longer reaches the correction")
	}
}

// FuzzGrid compares the grid with the big.Int reference for any time and
// origin within ±2^61 microseconds (±73,000 years) and any positive width
// below 2^60, where no arithmetic of the grid can overflow.
func FuzzGrid(f *testing.F) {
	f.Add(int64(3600e6), int64(0), int64(-1))
	f.Add(int64(10), int64(3), int64(-7))
	f.Add(int64(86400e6), int64(1577836800e6), int64(1577836800e6))
	f.Fuzz(func(t *testing.T, width, origin, ts int64) {
		const lim = int64(1) << 61
		if width <= 0 || width >= lim/2 || origin < -lim || origin > lim || ts < -lim || ts > lim {
			return
		}
		checkGrid(t, Grid{Width: width, Origin: origin}, ts)
	})
}
