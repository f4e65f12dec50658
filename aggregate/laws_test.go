package aggregate

import (
	"encoding/binary"
	"math"
	"testing"
)

// ev is one event value of a test input; ok false is a null value.
type ev struct {
	v  float64
	ok bool
}

func vals(xs ...float64) []ev {
	out := make([]ev, len(xs))
	for i, x := range xs {
		out[i] = ev{x, true}
	}
	return out
}

func null() ev { return ev{0, false} }

func addAll(evs []ev) State {
	var s State
	for _, e := range evs {
		s.Add(e.v, e.ok)
	}
	return s
}

func merged(parts ...State) State {
	var s State
	for _, p := range parts {
		s.Merge(p)
	}
	return s
}

// tolerances gives, for the values of evs, how far two evaluation orders of
// each function may drift apart by rounding alone: a few ulps per event of
// the largest magnitude involved.
type tolerances struct{ sum, mean, vr, std float64 }

func tolFor(evs []ev) tolerances {
	var n, abs, sq float64
	for _, e := range evs {
		if e.ok {
			n++
			abs += math.Abs(e.v)
			sq += e.v * e.v
		}
	}
	if n == 0 {
		return tolerances{}
	}
	const eps = 0x1p-52
	c := 8 * (n + 2) * eps
	// The floors cover subnormal results, where rounding is absolute.
	t := tolerances{sum: c*abs + 1e-300, mean: c*abs/n + 1e-300, vr: c*sq/n + 1e-290}
	t.std = math.Sqrt(t.vr)
	return t
}

func (t tolerances) of(f Func) float64 {
	switch f {
	case Sum:
		return t.sum
	case Mean:
		return t.mean
	case Var:
		return t.vr
	case Std:
		return t.std
	}
	return 0 // count, min and max are exact
}

// checkSame fails unless a and b give the same value for every function,
// within tol.
func checkSame(t *testing.T, what string, a, b State, tol tolerances) {
	t.Helper()
	if a.Count != b.Count || a.N != b.N {
		t.Errorf("%s: Count/N %d/%d, want %d/%d", what, a.Count, a.N, b.Count, b.N)
	}
	for _, f := range Funcs {
		va, oka := a.Value(f)
		vb, okb := b.Value(f)
		if oka != okb {
			t.Errorf("%s: %s ok = %v, want %v", what, f, oka, okb)
			continue
		}
		if !oka {
			continue
		}
		if d := math.Abs(va - vb); !(d <= tol.of(f)) {
			t.Errorf("%s: %s = %.17g, want %.17g (diff %g > tol %g)", what, f, va, vb, d, tol.of(f))
		}
	}
}

var lawCases = []struct {
	name    string
	a, b, c []ev
}{
	{"empty all", nil, nil, nil},
	{"single values", vals(3), vals(-2), vals(10)},
	{"one side empty", vals(1, 2, 3), nil, vals(4)},
	{"nulls only on one side", []ev{null(), null()}, vals(5, 7), []ev{null()}},
	{"nulls mixed", []ev{null(), {2, true}, null(), {4, true}}, []ev{{-1, true}, null()}, []ev{null(), {8, true}}},
	{"all nulls", []ev{null()}, []ev{null(), null()}, []ev{null()}},
	{"negative and zero", vals(-5, 0, -3), vals(0, 0), vals(-1e-3, 2e-3)},
	{"duplicates", vals(7, 7, 7), vals(7, 7), vals(7)},
	{"wide magnitudes", vals(1e-300, 1e10, -1e10), vals(3.5, 1e-5), vals(-2e8, 2e8)},
	{"large offset", vals(1e9+0.001, 1e9+0.002, 1e9+0.003), vals(1e9+0.004, 1e9+0.005), vals(1e9)},
	{"unbalanced sizes", vals(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), vals(100), vals(-4, 4)},
	{"fractions", vals(0.1, 0.2, 0.3), vals(1.0/3, 2.0/3), vals(0.7)},
}

// TestMergeLaws checks, for every function, that merging the states of parts
// equals adding every event to one state, that the empty state is the
// identity of Merge, and that merge order does not matter.
func TestMergeLaws(t *testing.T) {
	for _, tc := range lawCases {
		t.Run(tc.name, func(t *testing.T) {
			all := append(append(append([]ev(nil), tc.a...), tc.b...), tc.c...)
			tol := tolFor(all)
			a, b, c := addAll(tc.a), addAll(tc.b), addAll(tc.c)
			ab := addAll(append(append([]ev(nil), tc.a...), tc.b...))
			whole := addAll(all)

			checkSame(t, "Merge(a, b) vs Add(a ∪ b)", merged(a, b), ab, tol)
			checkSame(t, "b+a vs a+b", merged(b, a), merged(a, b), tol)
			left := merged(a, b)
			left.Merge(c)
			bc := merged(b, c)
			right := merged(a)
			right.Merge(bc)
			checkSame(t, "(a+b)+c vs a+(b+c)", left, right, tol)
			checkSame(t, "(a+b)+c vs Add(a ∪ b ∪ c)", left, whole, tol)

			for _, s := range []State{a, b, c, whole} {
				e := s
				e.Merge(State{})
				if e != s {
					t.Errorf("s.Merge(empty) = %+v, want %+v", e, s)
				}
				var z State
				z.Merge(s)
				if z != s {
					t.Errorf("empty.Merge(s) = %+v, want %+v", z, s)
				}
			}
		})
	}
}

// TestNullValues checks that null values count for count only.
func TestNullValues(t *testing.T) {
	with := addAll([]ev{{2, true}, null(), {-6, true}, null(), null(), {10, true}})
	without := addAll(vals(2, -6, 10))
	if with.Count != 6 || with.N != 3 {
		t.Fatalf("Count, N = %d, %d; want 6, 3", with.Count, with.N)
	}
	if v, ok := with.Value(Count); !ok || v != 6 {
		t.Errorf("count = %v, %v; want 6, true", v, ok)
	}
	for _, f := range []Func{Sum, Mean, Min, Max, Var, Std} {
		v, ok := with.Value(f)
		w, wok := without.Value(f)
		if ok != wok || v != w {
			t.Errorf("%s with nulls = %v, %v; without nulls = %v, %v", f, v, ok, w, wok)
		}
	}
	want := map[Func]float64{Sum: 6, Mean: 2, Min: -6, Max: 10, Var: 128.0 / 3}
	for f, w := range want {
		if v, _ := with.Value(f); math.Abs(v-w) > 1e-12 {
			t.Errorf("%s = %v, want %v", f, v, w)
		}
	}

	onlyNulls := addAll([]ev{null(), null()})
	if v, ok := onlyNulls.Value(Count); !ok || v != 2 {
		t.Errorf("count of two nulls = %v, %v; want 2, true", v, ok)
	}
	if v, ok := onlyNulls.Value(Sum); !ok || v != 0 {
		t.Errorf("sum of two nulls = %v, %v; want 0, true", v, ok)
	}
	for _, f := range []Func{Mean, Min, Max, Var, Std} {
		if v, ok := onlyNulls.Value(f); ok {
			t.Errorf("%s of only nulls = %v, want null", f, v)
		}
	}
}

// TestEmptyState checks the values of a window without events.
func TestEmptyState(t *testing.T) {
	var s State
	for _, tc := range []struct {
		f  Func
		v  float64
		ok bool
	}{
		{Count, 0, true}, {Sum, 0, true},
		{Mean, 0, false}, {Min, 0, false}, {Max, 0, false}, {Var, 0, false}, {Std, 0, false},
	} {
		v, ok := s.Value(tc.f)
		if ok != tc.ok || (ok && v != tc.v) {
			t.Errorf("%s of empty = %v, %v; want %v, %v", tc.f, v, ok, tc.v, tc.ok)
		}
	}
	if v, ok := s.Value(Func(0)); ok {
		t.Errorf("Value(Func(0)) = %v, true; want null", v)
	}
}

// TestKnownValues checks each function against hand-computed results.
func TestKnownValues(t *testing.T) {
	s := addAll(vals(2, 4, 4, 4, 5, 5, 7, 9))
	for _, tc := range []struct {
		f    Func
		want float64
	}{
		{Count, 8}, {Sum, 40}, {Mean, 5}, {Min, 2}, {Max, 9}, {Var, 4}, {Std, 2},
	} {
		v, ok := s.Value(tc.f)
		if !ok || math.Abs(v-tc.want) > 1e-12 {
			t.Errorf("%s = %v, %v; want %v", tc.f, v, ok, tc.want)
		}
	}
	one := addAll(vals(-3.5))
	if v, ok := one.Value(Var); !ok || v != 0 {
		t.Errorf("var of one value = %v, %v; want 0, true", v, ok)
	}
}

func TestParseFunc(t *testing.T) {
	for _, f := range Funcs {
		g, err := ParseFunc(f.String())
		if err != nil || g != f {
			t.Errorf("ParseFunc(%q) = %v, %v; want %v", f.String(), g, err, f)
		}
	}
	if g, err := ParseFunc("MEAN"); err != nil || g != Mean {
		t.Errorf("ParseFunc(MEAN) = %v, %v; want mean", g, err)
	}
	if _, err := ParseFunc("median"); err == nil {
		t.Error("ParseFunc(median): want an error")
	}
	if s := Func(42).String(); s != "Func(42)" {
		t.Errorf("Func(42).String() = %q", s)
	}
}

func TestNeeds(t *testing.T) {
	if Count.NeedsValue() || !Sum.NeedsValue() {
		t.Error("NeedsValue: count must not need a value, sum must")
	}
	for _, tc := range []struct {
		f    Func
		want Needs
	}{
		{Count, NeedCount}, {Sum, NeedCount | NeedSum}, {Mean, NeedCount | NeedSum},
		{Min, NeedCount | NeedMin}, {Max, NeedCount | NeedMax},
		{Var, NeedCount | NeedSum | NeedM2}, {Std, NeedCount | NeedSum | NeedM2},
	} {
		if got := tc.f.Needs(); got != tc.want {
			t.Errorf("%s.Needs() = %s, want %s", tc.f, got, tc.want)
		}
		if tc.f.Needs().HasValues() != tc.f.NeedsValue() {
			t.Errorf("%s: Needs().HasValues() disagrees with NeedsValue()", tc.f)
		}
	}
	all := Var.Needs() | Min.Needs()
	if !all.Has(Mean.Needs()) || all.Has(Max.Needs()) {
		t.Errorf("Has: %s should hold mean's needs and not max's", all)
	}
	if s := (NeedCount | NeedM2 | NeedMax).String(); s != "count,m2,max" {
		t.Errorf("Needs.String() = %q, want count,m2,max", s)
	}
}

// decodeValues turns fuzz bytes into finite values: 8 bytes per value,
// read as float64 bits. Non-finite values are dropped (the engine rejects
// them when reading), and so are magnitudes above 1e100, whose squares
// would overflow the variance's partial state.
func decodeValues(data []byte) []ev {
	var out []ev
	for len(data) >= 9 {
		v := math.Float64frombits(binary.LittleEndian.Uint64(data))
		ok := data[8]%5 != 0 // about one value in five is null
		data = data[9:]
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e100 {
			continue
		}
		out = append(out, ev{v, ok})
	}
	return out
}

func fuzzSeed(xs ...float64) []byte {
	var b []byte
	for i, x := range xs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		b = append(b, byte(i+1))
	}
	return b
}

// FuzzMerge splits a list of values at a fuzzed point and checks the merge
// laws for every function.
func FuzzMerge(f *testing.F) {
	f.Add(fuzzSeed(1, 2, 3, 4), uint8(2), uint8(1))
	f.Add(fuzzSeed(1e9+0.001, 1e9+0.002, 1e9+0.003), uint8(1), uint8(2))
	f.Add(fuzzSeed(-1, 0, 1e-300, 5e50, -5e50, 7), uint8(3), uint8(5))
	f.Add(fuzzSeed(), uint8(0), uint8(0))
	f.Add(fuzzSeed(42), uint8(0), uint8(1))
	f.Add(fuzzSeed(1e-160, -3e-160, 2e-161, 5e-324), uint8(1), uint8(3)) // subnormal variance
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint8) {
		evs := decodeValues(data)
		i, j := int(cut1), int(cut2)
		if len(evs) > 0 {
			i, j = i%(len(evs)+1), j%(len(evs)+1)
		} else {
			i, j = 0, 0
		}
		if i > j {
			i, j = j, i
		}
		tol := tolFor(evs)
		a, b, c := addAll(evs[:i]), addAll(evs[i:j]), addAll(evs[j:])
		whole := addAll(evs)
		checkSame(t, "Merge(a, b, c) vs Add(all)", merged(a, b, c), whole, tol)
		checkSame(t, "b+a vs a+b", merged(b, a), merged(a, b), tol)
		bc := merged(b, c)
		right := merged(a)
		right.Merge(bc)
		checkSame(t, "(a+b)+c vs a+(b+c)", merged(a, b, c), right, tol)
		for _, s := range []State{a, b, whole} {
			e := s
			e.Merge(State{})
			var z State
			z.Merge(s)
			if e != s || z != s {
				t.Errorf("merge with empty changed %+v: %+v, %+v", s, e, z)
			}
		}
		if whole.M2 < 0 {
			t.Errorf("M2 = %g < 0", whole.M2)
		}
	})
}
