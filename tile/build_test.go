package tile

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/tessera-fe/tessera/aggregate"
)

type tileKey struct {
	ik    int64
	sk    string
	start int64
}

func compareTileKey(a, b tileKey) int {
	if c := cmp.Compare(a.ik, b.ik); c != 0 {
		return c
	}
	if c := cmp.Compare(a.sk, b.sk); c != 0 {
		return c
	}
	return cmp.Compare(a.start, b.start)
}

// bruteBuild is the oracle for Build: a map from (key, bucket) to the state
// of its events, events visited in input order.
func bruteBuild(ev *Events, g Grid, from, to int64) map[tileKey]aggregate.State {
	out := make(map[tileKey]aggregate.State)
	for i, ts := range ev.TS {
		if ts < from || ts >= to {
			continue
		}
		k := tileKey{start: refFloor(g, ts)}
		if ev.Keys.String {
			k.sk = ev.Keys.Str[i]
		} else {
			k.ik = ev.Keys.Int[i]
		}
		st := out[k]
		v := 0.0
		if ev.Values != nil {
			v = ev.Values[i]
		}
		st.Add(v, ev.Valid == nil || ev.Valid[i])
		out[k] = st
	}
	return out
}

func genEvents(rng *rand.Rand, n int, str bool, withValues, withValid bool) *Events {
	ev := &Events{Keys: Keys{String: str}, TS: make([]int64, n)}
	nkeys := 1 + rng.IntN(12)
	for i := range n {
		k := rng.Int64N(int64(nkeys)) - 3 // negative keys too
		if str {
			ev.Keys.Str = append(ev.Keys.Str, "k"+strconv.FormatInt(k, 10))
		} else {
			ev.Keys.Int = append(ev.Keys.Int, k*1e12) // spread, not dense
		}
		ev.TS[i] = rng.Int64N(2000) - 700 // around the epoch, both signs
	}
	if withValues {
		ev.Values = make([]float64, n)
		for i := range n {
			ev.Values[i] = math.Round(rng.NormFloat64()*100) / 4
		}
	}
	if withValid {
		ev.Valid = make([]bool, n)
		for i := range n {
			ev.Valid[i] = rng.IntN(4) != 0
		}
	}
	return ev
}

// checkColumns checks that s holds exactly the columns of its needs.
func checkColumns(t *testing.T, s *Set) {
	t.Helper()
	n := s.Len()
	want := func(name string, col int, present bool) {
		t.Helper()
		if present && col != n || !present && col != 0 {
			t.Errorf("needs %s: column %s has %d rows, want %d (present %v)", s.Needs, name, col, n, present)
		}
	}
	if s.Keys.Len() != n || len(s.Count) != n {
		t.Fatalf("keys, count columns have %d, %d rows; want %d", s.Keys.Len(), len(s.Count), n)
	}
	want("N", len(s.N), s.Needs.HasValues())
	want("Sum", len(s.Sum), s.Needs&NeedSumOrM2 != 0)
	want("M2", len(s.M2), s.Needs&aggregate.NeedM2 != 0)
	want("Min", len(s.Min), s.Needs&aggregate.NeedMin != 0)
	want("Max", len(s.Max), s.Needs&aggregate.NeedMax != 0)
}

func TestBuildRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	needsList := []aggregate.Needs{
		aggregate.Count.Needs(),
		aggregate.Sum.Needs(),
		aggregate.Min.Needs(),
		aggregate.Var.Needs() | aggregate.Min.Needs() | aggregate.Max.Needs(),
	}
	for iter := range 400 {
		str := iter%2 == 1
		needs := needsList[rng.IntN(len(needsList))]
		ev := genEvents(rng, rng.IntN(300), str, needs.HasValues(), rng.IntN(3) != 0)
		g := Grid{Width: int64(1 + rng.IntN(120)), Origin: rng.Int64N(200) - 100}
		from, to := int64(math.MinInt64), int64(math.MaxInt64)
		if rng.IntN(2) == 0 {
			from = rng.Int64N(1000) - 800
			to = from + rng.Int64N(1500)
		}
		name := fmt.Sprintf("iter %d (str %v, needs %s, grid %+v, [%d, %d))", iter, str, needs, g, from, to)

		s := Build(ev, g, needs, from, to)
		want := bruteBuild(ev, g, from, to)
		if s.Needs != needs || s.Keys.String != str {
			t.Fatalf("%s: set needs %s, string keys %v", name, s.Needs, s.Keys.String)
		}
		checkColumns(t, s)
		if s.Len() != len(want) {
			t.Fatalf("%s: %d tiles, want %d", name, s.Len(), len(want))
		}
		var prev tileKey
		for i := range s.Len() {
			k := tileKey{start: s.Start[i]}
			if str {
				k.sk = s.Keys.Str[i]
			} else {
				k.ik = s.Keys.Int[i]
			}
			if i > 0 && compareTileKey(prev, k) >= 0 {
				t.Fatalf("%s: tile %d %+v not after %+v", name, i, k, prev)
			}
			prev = k
			if !g.OnBoundary(k.start) {
				t.Fatalf("%s: tile %d starts off the grid at %d", name, i, k.start)
			}
			w, ok := want[k]
			if !ok {
				t.Fatalf("%s: unexpected tile %+v", name, k)
			}
			checkState(t, fmt.Sprintf("%s tile %+v", name, k), needs, s.State(i), w)
		}
	}
}

func checkState(t *testing.T, what string, needs aggregate.Needs, got, want aggregate.State) {
	t.Helper()
	if got.Count != want.Count {
		t.Fatalf("%s: Count = %d, want %d", what, got.Count, want.Count)
	}
	if !needs.HasValues() {
		return
	}
	if got.N != want.N {
		t.Fatalf("%s: N = %d, want %d", what, got.N, want.N)
	}
	if needs&NeedSumOrM2 != 0 && math.Abs(got.Sum-want.Sum) > 1e-9*(1+math.Abs(want.Sum)) {
		t.Fatalf("%s: Sum = %v, want %v", what, got.Sum, want.Sum)
	}
	if needs&aggregate.NeedM2 != 0 && math.Abs(got.M2-want.M2) > 1e-9*(1+want.M2) {
		t.Fatalf("%s: M2 = %v, want %v", what, got.M2, want.M2)
	}
	if got.N == 0 {
		return
	}
	if needs&aggregate.NeedMin != 0 && got.Min != want.Min {
		t.Fatalf("%s: Min = %v, want %v", what, got.Min, want.Min)
	}
	if needs&aggregate.NeedMax != 0 && got.Max != want.Max {
		t.Fatalf("%s: Max = %v, want %v", what, got.Max, want.Max)
	}
}

// TestBuildBounds checks the half-open [from, to) range and bucket edges on
// a small hand-written case.
func TestBuildBounds(t *testing.T) {
	g := Grid{Width: 10, Origin: 5}
	ev := &Events{
		Keys:   Keys{String: true, Str: []string{"b", "a", "b", "a", "a", "b", "a"}},
		TS:     []int64{-5, 15, 14, 25, 5, 35, 4},
		Values: []float64{1, 2, 3, 4, 5, 6, 7},
		Valid:  []bool{true, true, false, true, true, true, true},
	}
	// from = -5 is included; to = 35 is excluded; a@4 is in bucket -5.
	s := Build(ev, g, aggregate.Sum.Needs(), -5, 35)
	type row struct {
		key      string
		start    int64
		count, n int64
		sum      float64
	}
	want := []row{
		{"a", -5, 1, 1, 7},
		{"a", 5, 1, 1, 5},
		{"a", 15, 1, 1, 2},
		{"a", 25, 1, 1, 4},
		{"b", -5, 1, 1, 1},
		{"b", 5, 1, 0, 0},
	}
	var got []row
	for i := range s.Len() {
		got = append(got, row{s.Keys.Str[i], s.Start[i], s.Count[i], s.N[i], s.Sum[i]})
	}
	if !slices.Equal(got, want) {
		t.Errorf("Build rows\n got %v\nwant %v", got, want)
	}

	if s := Build(ev, g, aggregate.NeedCount, 35, 35); s.Len() != 0 {
		t.Errorf("empty range [35, 35) built %d tiles", s.Len())
	}
	if s := Build(&Events{}, g, aggregate.NeedCount, math.MinInt64, math.MaxInt64); s.Len() != 0 {
		t.Errorf("no events built %d tiles", s.Len())
	}
	// count-only tiles need no values
	cs := Build(&Events{Keys: Keys{Int: []int64{2, 1, 2}}, TS: []int64{0, 0, 9}}, g, aggregate.NeedCount, 0, 100)
	if !slices.Equal(cs.Keys.Int, []int64{1, 2, 2}) || !slices.Equal(cs.Start, []int64{-5, -5, 5}) ||
		!slices.Equal(cs.Count, []int64{1, 1, 1}) || cs.N != nil {
		t.Errorf("count-only Build = %+v", cs)
	}
}

func TestSetAppendState(t *testing.T) {
	s := &Set{Needs: aggregate.Var.Needs() | aggregate.Max.Needs()}
	st := aggregate.State{Count: 3, N: 2, Sum: 5, M2: 0.5, Min: -1, Max: 3}
	s.Append(7, "", 100, st)
	checkColumns(t, s)
	got := s.State(0)
	want := st
	want.Min = 0 // not kept
	if got != want {
		t.Errorf("State(0) = %+v, want %+v", got, want)
	}
	c := &Set{Needs: aggregate.NeedCount, Keys: Keys{String: true}}
	c.Append(0, "x", 5, st)
	checkColumns(t, c)
	if got := c.State(0); got != (aggregate.State{Count: 3}) {
		t.Errorf("count-only State(0) = %+v", got)
	}
	if c.Keys.Str[0] != "x" || c.Keys.Len() != 1 {
		t.Errorf("string keys = %v", c.Keys.Str)
	}
}

// TestBuildParts checks builds split over several key ranges against the
// oracle: skewed keys (one key may hold most events, so that cuts coincide),
// both key types, values with nulls, and parts that come out empty.
func TestBuildParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	needs := aggregate.Var.Needs() | aggregate.Min.Needs() | aggregate.Max.Needs()
	for iter := range 120 {
		str := iter%2 == 1
		n := 1 + rng.IntN(3000)
		ev := genEvents(rng, n, str, true, true)
		if iter%3 == 0 { // a heavy key
			for i := range n {
				switch {
				case rng.IntN(4) == 0:
				case str:
					ev.Keys.Str[i] = "k0"
				default:
					ev.Keys.Int[i] = 0
				}
			}
		}
		if iter%5 == 2 && !str { // keys too spread to enter the composite directly
			for i := range ev.Keys.Int {
				ev.Keys.Int[i] *= 100_000
			}
		}
		g := Grid{Width: int64(1 + rng.IntN(50)), Origin: rng.Int64N(20)}
		from, to := int64(math.MinInt64), int64(math.MaxInt64)
		if iter%4 == 0 {
			from, to = -300, 900
		}
		want := Build(ev, g, needs, from, to)
		if got := len(bruteBuild(ev, g, from, to)); want.Len() != got {
			t.Fatalf("iter %d: Build made %d tiles, oracle %d", iter, want.Len(), got)
		}
		for parts := 2; parts <= 5; parts++ {
			got := buildParts([]*Events{ev}, g, needs, from, to, parts)
			checkColumns(t, got)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("iter %d (str %v, %d events): %d parts built %d tiles unlike one part's %d", iter, str, n, parts, got.Len(), want.Len())
			}
		}
		// Sums without m2, min and max take a shorter path; both add a
		// tile's values in input order, as the oracle does, to the bit.
		oracle := bruteBuild(ev, g, from, to)
		sums := buildParts([]*Events{ev}, g, aggregate.Sum.Needs(), from, to, 1+iter%3)
		checkColumns(t, sums)
		for i := range sums.Len() {
			k := tileKey{start: sums.Start[i]}
			if str {
				k.sk = sums.Keys.Str[i]
			} else {
				k.ik = sums.Keys.Int[i]
			}
			w := oracle[k]
			if sums.Count[i] != w.Count || sums.N[i] != w.N || math.Float64bits(sums.Sum[i]) != math.Float64bits(w.Sum) {
				t.Fatalf("iter %d: sum tile %+v = (%d, %d, %v), want (%d, %d, %v)", iter, k, sums.Count[i], sums.N[i], sums.Sum[i], w.Count, w.N, w.Sum)
			}
		}
	}
}

// TestBuildPartsFine checks that a grid too fine to number (key, bucket)
// pairs in 64 bits falls back to the per-key path when split too.
func TestBuildPartsFine(t *testing.T) {
	ev := &Events{}
	for i := range 2000 {
		ev.Keys.Int = append(ev.Keys.Int, int64(i%37))
		ev.TS = append(ev.TS, (int64(i)*7919%2000-1000)*(math.MaxInt64/2048))
		ev.Values = append(ev.Values, float64(i%11))
	}
	needs := aggregate.Sum.Needs()
	want := bruteBuild(ev, Grid{Width: 1}, math.MinInt64, math.MaxInt64)
	for parts := 1; parts <= 3; parts++ {
		got := buildParts([]*Events{ev}, Grid{Width: 1}, needs, math.MinInt64, math.MaxInt64, parts)
		if got.Len() != len(want) {
			t.Fatalf("%d parts: %d tiles, want %d", parts, got.Len(), len(want))
		}
		for i := range got.Len() {
			k := tileKey{ik: got.Keys.Int[i], start: got.Start[i]}
			if i > 0 && (got.Keys.Int[i-1] > k.ik || got.Keys.Int[i-1] == k.ik && got.Start[i-1] >= k.start) {
				t.Fatalf("%d parts: tile %d out of order", parts, i)
			}
			checkState(t, fmt.Sprintf("%d parts tile %+v", parts, k), needs, got.State(i), want[k])
		}
	}
}

// TestBuildExtremeKeys checks int keys at the ends of int64: a narrow range
// next to MinInt64 or MaxInt64 (the composite takes key offsets), and keys
// spanning all of int64 (the composite takes dictionary ranks).
func TestBuildExtremeKeys(t *testing.T) {
	for _, keys := range [][]int64{
		{math.MinInt64, math.MinInt64 + 2, math.MinInt64 + 1, math.MinInt64},
		{math.MaxInt64, math.MaxInt64 - 3, math.MaxInt64, math.MaxInt64 - 1},
		{math.MaxInt64, math.MinInt64, 0, -1, 1, math.MinInt64, math.MaxInt64},
	} {
		ev := &Events{Keys: Keys{Int: keys}}
		for i := range keys {
			ev.TS = append(ev.TS, int64(i%3)*50)
			ev.Values = append(ev.Values, float64(i))
		}
		g := Grid{Width: 20}
		want := bruteBuild(ev, g, math.MinInt64, math.MaxInt64)
		for parts := 1; parts <= 3; parts++ {
			got := buildParts([]*Events{ev}, g, aggregate.Sum.Needs(), math.MinInt64, math.MaxInt64, parts)
			if got.Len() != len(want) {
				t.Fatalf("keys %v, %d parts: %d tiles, want %d", keys, parts, got.Len(), len(want))
			}
			for i := range got.Len() {
				k := tileKey{ik: got.Keys.Int[i], start: got.Start[i]}
				w, ok := want[k]
				if !ok || i > 0 && compareTileKey(tileKey{ik: got.Keys.Int[i-1], start: got.Start[i-1]}, k) >= 0 {
					t.Fatalf("keys %v, %d parts: tile %d %+v unexpected or out of order", keys, parts, i, k)
				}
				checkState(t, fmt.Sprintf("keys %v tile %+v", keys, k), aggregate.Sum.Needs(), got.State(i), w)
			}
		}
	}
}

func TestSplitKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		keys       []int64
		parts, max int
	}{
		{nil, 3, 1},
		{[]int64{5}, 3, 1},
		{slices.Repeat([]int64{7}, 1000), 4, 1}, // one key: one range
		{[]int64{1, 2, 3, 4, 5, 6, 7, 8}, 2, 2},
		{[]int64{9, 1, 1, 1, 1, 1, 1, 1, 1, 2}, 4, 4},
	} {
		rs := splitKeys([][]int64{tc.keys}, tc.parts)
		if len(rs) < 1 || len(rs) > tc.max || rs[0].hasLo || rs[len(rs)-1].hasHi {
			t.Fatalf("splitKeys(%v, %d) = %+v", tc.keys, tc.parts, rs)
		}
		for _, k := range tc.keys {
			in := 0
			for _, r := range rs {
				if r.has(k) {
					in++
				}
			}
			if in != 1 {
				t.Fatalf("splitKeys(%v, %d) = %+v: key %d in %d ranges", tc.keys, tc.parts, rs, k, in)
			}
		}
	}
	// Skewed keys: ranges hold about equal shares of events.
	keys := make([]int64, 200_000)
	z := rand.NewZipf(rng, 1.3, 1, 100_000)
	for i := range keys {
		keys[i] = int64(z.Uint64()) * 31
	}
	rs := splitKeys([][]int64{keys}, 2)
	if len(rs) != 2 {
		t.Fatalf("%d ranges of Zipf keys, want 2", len(rs))
	}
	lo := 0
	for _, k := range keys {
		if rs[0].has(k) {
			lo++
		}
	}
	if share := float64(lo) / float64(len(keys)); share < 0.3 || share > 0.7 {
		t.Errorf("first of two ranges holds %.0f%% of the events", 100*share)
	}
}

// TestSortByKeySplit checks the path of SortByKey that splits large inputs on
// their top bits first: sorted and stable, with a heavy key filling one
// bucket, keys sharing their top bits, and a zero-size payload.
func TestSortByKeySplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		n    int
		base uint64 // added to every key: bits all keys share
		bits uint
	}{
		{msdMin, 0, 40},
		{200_000, 0, 29},
		{200_000, 1 << 62, 25},
		{300_000, 5 << 40, 64 - 3},
	} {
		keys := make([]uint64, tc.n)
		idx := make([]int32, tc.n)
		heavy := rng.Uint64() >> (64 - tc.bits)
		for i := range keys {
			keys[i] = rng.Uint64() >> (64 - tc.bits)
			if rng.IntN(3) == 0 {
				keys[i] = heavy
			}
			keys[i] += tc.base
			idx[i] = int32(i)
		}
		orig := slices.Clone(keys)
		none := make([]struct{}, tc.n)
		alone := slices.Clone(keys)
		SortByKey(alone, none, nil, nil)
		SortByKey(keys, idx, nil, nil)
		for i := range keys {
			if keys[i] != orig[idx[i]] || alone[i] != keys[i] {
				t.Fatalf("%+v: key %d does not follow its index", tc, i)
			}
			if i > 0 && (keys[i-1] > keys[i] || keys[i-1] == keys[i] && idx[i-1] > idx[i]) {
				t.Fatalf("%+v: not sorted stably at %d", tc, i)
			}
		}
	}
}

// TestConcat: batches joined, small (on one core) or large (on several),
// hold every event of each batch in order, a batch without valid flags
// read as all valid, empty batches of the other key kind left out.
func TestConcat(t *testing.T) {
	rng := rand.New(rand.NewPCG(71, 72))
	for _, total := range []int{1000, 3 * partEvents} {
		for _, str := range []bool{false, true} {
			var batches []*Events
			var want Events
			want.Keys.String = str
			for n := 0; n < total; {
				m := min(total-n, 1+rng.IntN(total/3))
				b := genEvents(rng, m, str, true, rng.IntN(2) == 0)
				batches = append(batches, b, &Events{Keys: Keys{String: !str}})
				want.TS = append(want.TS, b.TS...)
				want.Keys.Int = append(want.Keys.Int, b.Keys.Int...)
				want.Keys.Str = append(want.Keys.Str, b.Keys.Str...)
				want.Values = append(want.Values, b.Values...)
				for i := range m {
					want.Valid = append(want.Valid, b.Valid == nil || b.Valid[i])
				}
				n += m
			}
			got := Concat(batches)
			if got.Keys.String != str || !slices.Equal(got.TS, want.TS) || !slices.Equal(got.Keys.Int, want.Keys.Int) ||
				!slices.Equal(got.Keys.Str, want.Keys.Str) || !slices.Equal(got.Values, want.Values) || !slices.Equal(got.Valid, want.Valid) {
				t.Fatalf("%d events in %d batches, string keys %v: the join differs", total, len(batches), str)
			}
		}
	}
}
