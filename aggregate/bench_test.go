package aggregate

import (
	"math/rand/v2"
	"testing"
)

const benchPoints = 1 << 20

func benchInput() ([]float64, []bool, [][2]int) {
	rng := rand.New(rand.NewPCG(11, 12))
	vals := make([]float64, benchPoints)
	valid := make([]bool, benchPoints)
	for k := range vals {
		vals[k] = 1e3 + rng.NormFloat64()*50
		valid[k] = rng.IntN(10) != 0
	}
	// Sliding windows of 1..2000 points whose ends advance together, as a
	// sweep over a key's sorted spine rows does.
	qs := make([][2]int, benchPoints)
	for k := range qs {
		j := k + 1
		qs[k] = [2]int{max(0, j-1-rng.IntN(2000)), j}
		if k > 0 && qs[k][0] < qs[k-1][0] {
			qs[k][0] = qs[k-1][0]
		}
	}
	return vals, valid, qs
}

// BenchmarkPrefixRange builds prefix sums for var over 1M events and answers
// 1M monotone range queries; rows/s counts points built plus queries.
func BenchmarkPrefixRange(b *testing.B) {
	vals, valid, qs := benchInput()
	var p Prefix
	var sink float64
	b.ReportAllocs()
	loops := 0
	for b.Loop() {
		p.BuildEvents(vals, valid, Var.Needs())
		for _, q := range qs {
			st := p.Range(q[0], q[1])
			sink += st.M2
		}
		loops++
	}
	b.ReportMetric(float64(len(vals)+len(qs))*float64(loops)/b.Elapsed().Seconds(), "rows/s")
	if sink < 0 {
		b.Fatal("negative M2")
	}
}

// BenchmarkExtreme runs a sliding max over 1M points (10% invalid) with one
// query per point.
func BenchmarkExtreme(b *testing.B) {
	vals, valid, qs := benchInput()
	var e Extreme
	var sink float64
	b.ReportAllocs()
	loops := 0
	for b.Loop() {
		e.Reset(vals, valid, true)
		for _, q := range qs {
			v, _ := e.Query(q[0], q[1])
			sink += v
		}
		loops++
	}
	b.ReportMetric(float64(len(qs))*float64(loops)/b.Elapsed().Seconds(), "rows/s")
	if sink == 0 {
		b.Fatal("no values")
	}
}

// BenchmarkAdd folds 1M values into one state.
func BenchmarkAdd(b *testing.B) {
	vals, valid, _ := benchInput()
	b.ReportAllocs()
	loops := 0
	var s State
	for b.Loop() {
		s = State{}
		for k, v := range vals {
			s.Add(v, valid[k])
		}
		loops++
	}
	b.ReportMetric(float64(len(vals))*float64(loops)/b.Elapsed().Seconds(), "rows/s")
	if s.Count != benchPoints {
		b.Fatalf("Count = %d", s.Count)
	}
}
