package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// genValues returns n random values of one of a few shapes, and their
// validity (about one in five null).
func genValues(rng *rand.Rand, n int, shape string) ([]float64, []bool) {
	v := make([]float64, n)
	ok := make([]bool, n)
	for i := range v {
		switch shape {
		case "uniform":
			v[i] = rng.Float64()*200 - 100
		case "offset":
			v[i] = 1e6 + rng.NormFloat64()
		case "integers":
			v[i] = float64(rng.IntN(5))
		case "heavy":
			v[i] = math.Exp(rng.NormFloat64() * 5)
		}
		ok[i] = rng.IntN(5) != 0
	}
	return v, ok
}

var shapes = []string{"uniform", "offset", "integers", "heavy"}

var prefixNeeds = []Needs{
	Count.Needs(),
	Sum.Needs(),
	Var.Needs(),
	Var.Needs() | Min.Needs() | Max.Needs(),
	Min.Needs() | Max.Needs(), // N only: sum and m2 columns absent
}

// checkRange compares got, a Prefix range, with want, the state merged
// directly. scale bounds the magnitude of the shifted values the prefix
// sums carry, for the tolerance of Sum and M2.
func checkRange(t *testing.T, what string, needs Needs, got, want State, scaleSum, scaleSq float64) {
	t.Helper()
	if got.Count != want.Count {
		t.Fatalf("%s: Count = %d, want %d", what, got.Count, want.Count)
	}
	if !needs.HasValues() {
		if got.N != 0 || got.Sum != 0 || got.M2 != 0 {
			t.Fatalf("%s: count-only range has values %+v", what, got)
		}
		return
	}
	if got.N != want.N {
		t.Fatalf("%s: N = %d, want %d", what, got.N, want.N)
	}
	if needs&(NeedSum|NeedM2) == 0 {
		return
	}
	const rel = 1e-12
	if d := math.Abs(got.Sum - want.Sum); !(d <= rel*(scaleSum+math.Abs(want.Sum))) {
		t.Fatalf("%s: Sum = %.17g, want %.17g", what, got.Sum, want.Sum)
	}
	if needs&NeedM2 == 0 {
		return
	}
	if d := math.Abs(got.M2 - want.M2); !(d <= 1e-9*want.M2+rel*scaleSq) {
		t.Fatalf("%s: M2 = %.17g, want %.17g (diff %g)", what, got.M2, want.M2, d)
	}
}

// scales returns the largest |v - mean| and (v - mean)^2 sums over the valid
// values: the magnitude that rounding in the prefix sums is relative to.
func scales(v []float64, ok []bool) (float64, float64) {
	var n, s float64
	for i, x := range v {
		if ok == nil || ok[i] {
			n++
			s += x
		}
	}
	if n == 0 {
		return 0, 0
	}
	mean := s / n
	var a, q float64
	for i, x := range v {
		if ok == nil || ok[i] {
			a += math.Abs(x) // Sum is rebuilt from n*shift: relative to Σ|v|
			q += (x - mean) * (x - mean)
		}
	}
	return a, q
}

// TestPrefixEvents checks every range [i, j) of random event sequences
// against the state of adding the events directly.
func TestPrefixEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var p Prefix // reused across sequences, as the executors do
	for _, shape := range shapes {
		for _, n := range []int{0, 1, 7, 120} {
			v, ok := genValues(rng, n, shape)
			if n == 7 {
				ok = nil // all valid
			}
			sa, sq := scales(v, ok)
			for _, needs := range prefixNeeds {
				name := fmt.Sprintf("%s/n=%d/%s", shape, n, needs)
				vals := v
				if !needs.HasValues() {
					vals = nil // allowed for count only
				}
				p.BuildEvents(vals, ok, needs)
				if n == 0 {
					if r := p.Range(0, 0); r != (State{}) {
						t.Errorf("%s: Range(0, 0) = %+v, want empty", name, r)
					}
				}
				for i := 0; i <= n; i++ {
					var want State
					for j := i; j <= n; j++ {
						if j > i {
							want.Add(v[j-1], ok == nil || ok[j-1])
						}
						checkRange(t, fmt.Sprintf("%s Range(%d, %d)", name, i, j), needs, p.Range(i, j), want, sa, sq)
					}
				}
			}
		}
	}
}

// tiles groups random events into tiles: each tile's state is the events'
// states merged, as tile building does. Some tiles hold only nulls.
func genTiles(rng *rand.Rand, m int, shape string) []State {
	out := make([]State, m)
	for k := range out {
		v, ok := genValues(rng, 1+rng.IntN(6), shape)
		if rng.IntN(6) == 0 {
			clear(ok)
		}
		for i := range v {
			var e State
			e.Add(v[i], ok[i])
			out[k].Merge(e)
		}
	}
	return out
}

// TestPrefixTiles checks every range [i, j) of random tile sequences
// against the tiles' states merged directly.
func TestPrefixTiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var p Prefix
	for _, shape := range shapes {
		for _, m := range []int{0, 1, 5, 80} {
			tiles := genTiles(rng, m, shape)
			count, n := make([]int64, m), make([]int64, m)
			sum, m2 := make([]float64, m), make([]float64, m)
			means := make([]float64, m)
			for k, s := range tiles {
				count[k], n[k], sum[k], m2[k] = s.Count, s.N, s.Sum, s.M2
				if s.N > 0 {
					means[k] = s.Sum / float64(s.N)
				}
			}
			// Tolerance scales: Σ|Sum| and the M2 of every event around
			// the overall mean.
			var sa float64
			for _, s := range sum {
				sa += math.Abs(s)
			}
			var all State
			for _, s := range tiles {
				all.Merge(s)
			}
			sq := all.M2
			for _, needs := range prefixNeeds {
				name := fmt.Sprintf("%s/m=%d/%s", shape, m, needs)
				cn, cs, cm := n, sum, m2
				if !needs.HasValues() {
					cn, cs, cm = nil, nil, nil
				} else if needs&(NeedSum|NeedM2) == 0 {
					cs, cm = nil, nil
				} else if needs&NeedM2 == 0 {
					cm = nil
				}
				p.BuildTiles(count, cn, cs, cm, needs)
				for i := 0; i <= m; i++ {
					var want State
					for j := i; j <= m; j++ {
						if j > i {
							want.Merge(tiles[j-1])
						}
						checkRange(t, fmt.Sprintf("%s Range(%d, %d)", name, i, j), needs, p.Range(i, j), want, sa, sq)
					}
				}
			}
		}
	}
}

// TestPrefixReuse checks that a Prefix rebuilt over a shorter sequence, or
// switched between tiles and events, forgets the previous build.
func TestPrefixReuse(t *testing.T) {
	var p Prefix
	p.BuildTiles([]int64{3, 4, 5}, []int64{3, 4, 5}, []float64{3, 4, 5}, []float64{0, 0, 0}, Var.Needs())
	if r := p.Range(0, 3); r.Count != 12 || r.N != 12 || r.Sum != 12 {
		t.Fatalf("tiles Range(0, 3) = %+v, want Count 12, N 12, Sum 12", r)
	}
	p.BuildEvents([]float64{10, 20}, []bool{true, false}, Sum.Needs())
	if r := p.Range(0, 2); r.Count != 2 || r.N != 1 || r.Sum != 10 {
		t.Fatalf("events Range(0, 2) after tiles = %+v, want Count 2, N 1, Sum 10", r)
	}
	p.BuildTiles([]int64{2}, []int64{1}, []float64{7}, nil, Sum.Needs())
	if r := p.Range(0, 1); r.Count != 2 || r.N != 1 || r.Sum != 7 {
		t.Fatalf("tiles Range(0, 1) after events = %+v, want Count 2, N 1, Sum 7", r)
	}
	p.BuildEvents(nil, nil, NeedCount)
	if r := p.Range(3, 10); r.Count != 7 {
		t.Fatalf("count-only events Range(3, 10) = %+v, want Count 7", r)
	}
}

// TestPrefixSumsIdentical: the one-pass build for sum and mean gives the
// same bits as the general build (kept for var), and Sums the same bits as
// Range, for tiles and events.
func TestPrefixSumsIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var p, q Prefix
	same := func(what string, i, j int) {
		t.Helper()
		r := p.Range(i, j)
		c, n, s := p.Sums(i, j)
		if c != r.Count || n != r.N || math.Float64bits(s) != math.Float64bits(r.Sum) {
			t.Fatalf("%s: Sums(%d, %d) = %d, %d, %v; Range %+v", what, i, j, c, n, s, r)
		}
	}
	for _, shape := range shapes {
		for _, m := range []int{0, 1, 7, 300} {
			tiles := genTiles(rng, m, shape)
			count, n := make([]int64, m), make([]int64, m)
			sum, m2 := make([]float64, m), make([]float64, m)
			for k, s := range tiles {
				count[k], n[k], sum[k], m2[k] = s.Count, s.N, s.Sum, s.M2
			}
			p.BuildTiles(count, n, sum, nil, Mean.Needs())
			q.BuildTiles(count, n, sum, m2, Var.Needs())
			for i := 0; i <= m; i++ {
				for j := i; j <= m; j++ {
					a, b := p.Range(i, j), q.Range(i, j)
					if a.Count != b.Count || a.N != b.N || math.Float64bits(a.Sum) != math.Float64bits(b.Sum) {
						t.Fatalf("%s/m=%d: Range(%d, %d) = %+v for mean, %+v for var", shape, m, i, j, a, b)
					}
					same(fmt.Sprintf("%s/m=%d tiles", shape, m), i, j)
				}
			}
			vals, valid := genValues(rng, m, shape)
			for _, needs := range prefixNeeds {
				p.BuildEvents(vals, valid, needs)
				for i := 0; i <= m; i += 1 + m/40 {
					for j := i; j <= m; j++ {
						same(fmt.Sprintf("%s/m=%d events %s", shape, m, needs), i, j)
					}
				}
			}
		}
	}
}
