package aggregate

import (
	"math/rand/v2"
	"testing"
)

// bruteExtreme is the oracle for Extreme.Query.
func bruteExtreme(vals []float64, valid []bool, isMax bool, i, j int) (float64, bool) {
	var best float64
	found := false
	for k := i; k < j; k++ {
		if valid != nil && !valid[k] {
			continue
		}
		if !found || (isMax && vals[k] > best) || (!isMax && vals[k] < best) {
			best, found = vals[k], true
		}
	}
	return best, found
}

// genExtremeInput returns n random values with many ties, and a validity
// mask with runs of invalid points (nil one time in four).
func genExtremeInput(rng *rand.Rand, n int) ([]float64, []bool) {
	vals := make([]float64, n)
	for k := range vals {
		vals[k] = float64(rng.IntN(20)) - 10
	}
	if rng.IntN(4) == 0 {
		return vals, nil
	}
	valid := make([]bool, n)
	for k := 0; k < n; {
		run := 1 + rng.IntN(8)
		on := rng.IntN(3) != 0
		for ; run > 0 && k < n; run, k = run-1, k+1 {
			valid[k] = on
		}
	}
	return vals, valid
}

// monotoneQueries returns q queries with non-decreasing i and j, i <= j <= n.
func monotoneQueries(rng *rand.Rand, n, q int) [][2]int {
	out := make([][2]int, q)
	i, j := 0, 0
	for k := range out {
		j = min(n, j+rng.IntN(4))
		i = min(j, i+rng.IntN(4))
		if rng.IntN(10) == 0 { // occasionally jump ahead
			j = min(n, j+rng.IntN(30))
		}
		out[k] = [2]int{i, j}
	}
	return out
}

func checkQuery(t *testing.T, e *Extreme, vals []float64, valid []bool, isMax bool, i, j int) {
	t.Helper()
	got, ok := e.Query(i, j)
	want, wok := bruteExtreme(vals, valid, isMax, i, j)
	if ok != wok || (ok && got != want) {
		t.Fatalf("max=%v Query(%d, %d) = %v, %v; want %v, %v", isMax, i, j, got, ok, want, wok)
	}
}

// TestExtremeMonotone checks sweeps with non-decreasing i and j against
// brute force, for min and max, reusing one Extreme as executors do.
func TestExtremeMonotone(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var e Extreme
	for range 300 {
		n := rng.IntN(150)
		vals, valid := genExtremeInput(rng, n)
		for _, isMax := range []bool{false, true} {
			e.Reset(vals, valid, isMax)
			for _, q := range monotoneQueries(rng, n, 1+rng.IntN(200)) {
				checkQuery(t, &e, vals, valid, isMax, q[0], q[1])
			}
		}
	}
}

// TestExtremeJBackwards checks the contract-breaking case: when j goes
// backwards (a new key's sweep without Reset, or a caller's mistake) the
// answer is still right.
func TestExtremeJBackwards(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var e Extreme
	for range 200 {
		n := 1 + rng.IntN(100)
		vals, valid := genExtremeInput(rng, n)
		for _, isMax := range []bool{false, true} {
			e.Reset(vals, valid, isMax)
			pi, pj := 0, 0
			for range 100 {
				var i, j int
				if pj > 0 && rng.IntN(3) == 0 {
					j = rng.IntN(pj) // j backwards; i anywhere up to j
					i = rng.IntN(j + 1)
				} else { // follow the contract from the previous query
					j = pj + rng.IntN(n-pj+1)
					i = pi + rng.IntN(j-pi+1)
				}
				checkQuery(t, &e, vals, valid, isMax, i, j)
				pi, pj = i, j
			}
		}
	}
}

// TestExtremeLongSweep drives the deque past its compaction threshold: a
// minimum over increasing values keeps every point in the deque, and runs of
// invalid points empty the window.
func TestExtremeLongSweep(t *testing.T) {
	const n = 6000
	vals := make([]float64, n)
	valid := make([]bool, n)
	for k := range vals {
		vals[k] = float64(k)
		valid[k] = (k/1500)%2 == 0 || k%1500 > 1400
	}
	for _, isMax := range []bool{false, true} {
		var e Extreme
		e.Reset(vals, valid, isMax)
		for i := 0; i < n; i++ {
			j := min(n, i+1+(i%7)*3)
			checkQuery(t, &e, vals, valid, isMax, i, j)
		}
	}
}

func TestExtremeEdges(t *testing.T) {
	var e Extreme
	e.Reset(nil, nil, true)
	if v, ok := e.Query(0, 0); ok {
		t.Errorf("Query(0, 0) over no points = %v, true; want none", v)
	}
	vals := []float64{3, -1, 4, 1, -5, 9}
	e.Reset(vals, []bool{false, false, false, false, false, false}, false)
	if v, ok := e.Query(0, 6); ok {
		t.Errorf("Query over invalid points = %v, true; want none", v)
	}
	e.Reset(vals, nil, false)
	for _, q := range [][3]float64{{0, 1, 3}, {0, 2, -1}, {2, 4, 1}, {2, 5, -5}, {5, 6, 9}} {
		if v, ok := e.Query(int(q[0]), int(q[1])); !ok || v != q[2] {
			t.Errorf("min Query(%v, %v) = %v, %v; want %v", q[0], q[1], v, ok, q[2])
		}
	}
	if v, ok := e.Query(6, 6); ok {
		t.Errorf("empty window Query(6, 6) = %v, true; want none", v)
	}
}
