package tile

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

func TestDictInt(t *testing.T) {
	d := NewDict(false)
	ids := d.AddAll(&Keys{Int: []int64{30, -2, 30, 7, -2}}, []int32{99})
	if want := []int32{99, 0, 1, 0, 2, 1}; !slices.Equal(ids, want) {
		t.Fatalf("AddAll = %v, want %v (appended, first-seen order)", ids, want)
	}
	ids = d.AddAll(&Keys{Int: []int64{7, 5}}, nil)
	if !slices.Equal(ids, []int32{2, 3}) || d.Len() != 4 {
		t.Fatalf("second AddAll = %v, Len %d; want [2 3], 4", ids, d.Len())
	}
	for id, k := range []int64{30, -2, 7, 5} {
		if got := d.IntKey(int32(id)); got != k {
			t.Errorf("IntKey(%d) = %d, want %d", id, got, k)
		}
	}
	if got := d.LookupAll(&Keys{Int: []int64{5, 6, 30}}, nil); !slices.Equal(got, []int32{3, -1, 0}) {
		t.Errorf("LookupAll = %v, want [3 -1 0]", got)
	}
	if got := d.AddAll(&Keys{String: true, Str: []string{"30"}}, nil); !slices.Equal(got, []int32{-1}) || d.Len() != 4 {
		t.Errorf("AddAll of string keys in an int dict = %v, Len %d; want [-1], 4", got, d.Len())
	}
	if got := d.LookupAll(&Keys{String: true, Str: []string{"30", "x"}}, nil); !slices.Equal(got, []int32{-1, -1}) {
		t.Errorf("LookupAll of string keys in an int dict = %v, want all -1", got)
	}
	// key order -2 < 5 < 7 < 30; ids 1, 3, 2, 0
	if got := d.Ranks(); !slices.Equal(got, []int32{3, 0, 2, 1}) {
		t.Errorf("Ranks = %v, want [3 0 2 1]", got)
	}
	if d.Len() != 4 {
		t.Errorf("lookups changed Len to %d", d.Len())
	}
}

func TestDictString(t *testing.T) {
	d := NewDict(true)
	ids := d.AddAll(&Keys{String: true, Str: []string{"b", "", "a", "b", "B"}}, nil)
	if want := []int32{0, 1, 2, 0, 3}; !slices.Equal(ids, want) {
		t.Fatalf("AddAll = %v, want %v", ids, want)
	}
	if d.StrKey(3) != "B" || d.StrKey(1) != "" {
		t.Errorf("StrKey(3), StrKey(1) = %q, %q", d.StrKey(3), d.StrKey(1))
	}
	// byte order: "" < "B" < "a" < "b"
	if got := d.Ranks(); !slices.Equal(got, []int32{3, 0, 2, 1}) {
		t.Errorf("Ranks = %v, want [3 0 2 1]", got)
	}
	if got := d.LookupAll(&Keys{String: true, Str: []string{"a", "c"}}, []int32{7}); !slices.Equal(got, []int32{7, 2, -1}) {
		t.Errorf("LookupAll = %v, want [7 2 -1]", got)
	}
	if got := d.LookupAll(&Keys{Int: []int64{0}}, nil); !slices.Equal(got, []int32{-1}) {
		t.Errorf("LookupAll of int keys in a string dict = %v, want [-1]", got)
	}
	if e := NewDict(true); e.Len() != 0 || len(e.Ranks()) != 0 {
		t.Errorf("empty dict: Len %d, Ranks %v", e.Len(), e.Ranks())
	}
}

func TestGroupBy(t *testing.T) {
	ids := []int32{2, 0, -1, 2, 1, 0, -1, 2}
	order, offsets := GroupBy(ids, 4)
	if want := []int32{0, 2, 3, 6, 6}; !slices.Equal(offsets, want) {
		t.Fatalf("offsets = %v, want %v", offsets, want)
	}
	// rows of each id in their original order; rows with id -1 left out
	if want := []int32{1, 5, 4, 0, 3, 7}; !slices.Equal(order, want) {
		t.Fatalf("order = %v, want %v", order, want)
	}
	order, offsets = GroupBy(nil, 0)
	if len(order) != 0 || !slices.Equal(offsets, []int32{0}) {
		t.Errorf("GroupBy(nil, 0) = %v, %v", order, offsets)
	}
}

// TestDictAddAllParts: splitting a large AddAll over cores gives the same ids,
// in first-appearance order, as one part, for both key kinds and for a
// dictionary that already holds keys.
func TestDictAddAllParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 4*minAddPerPart + 123
	ints := make([]int64, n)
	strs := make([]string, n)
	for i := range ints {
		if i%2 == 0 {
			ints[i] = rng.Int64N(50_000) // repeats within and across parts
		} else {
			ints[i] = int64(rng.Uint64())
		}
		strs[i] = strconv.FormatInt(ints[i]%70_000, 36)
	}
	for _, str := range []bool{false, true} {
		k := &Keys{String: str, Int: ints}
		if str {
			k = &Keys{String: true, Str: strs}
		}
		pre := &Keys{String: str, Int: ints[n-1000:]}
		if str {
			pre = &Keys{String: true, Str: strs[n-1000:]}
		}
		add := func(procs int) (*Dict, []int32) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			d := NewDict(str)
			d.AddAll(pre, nil)
			return d, d.AddAll(k, []int32{-7})
		}
		d1, ids1 := add(1)
		d4, ids4 := add(4)
		if !slices.Equal(ids1, ids4) {
			t.Fatalf("str=%v: ids differ between 1 and 4 parts", str)
		}
		if ids4[0] != -7 || len(ids4) != n+1 {
			t.Fatalf("str=%v: AddAll did not append to ids (len %d, first %d)", str, len(ids4), ids4[0])
		}
		if d1.Len() != d4.Len() {
			t.Fatalf("str=%v: Len %d vs %d", str, d1.Len(), d4.Len())
		}
		for id := range d4.Len() {
			if str && d1.StrKey(int32(id)) != d4.StrKey(int32(id)) || !str && d1.IntKey(int32(id)) != d4.IntKey(int32(id)) {
				t.Fatalf("str=%v: key of id %d differs", str, id)
			}
		}
		if got := d4.LookupAll(k, nil); !slices.Equal(got, ids4[1:]) {
			t.Fatalf("str=%v: LookupAll disagrees with AddAll", str)
		}
	}
}

func BenchmarkDictAddAll(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	zipf := rand.NewZipf(rng, 1.1, 1, 400_000)
	keys := make([]int64, 2_000_000)
	for i := range keys {
		keys[i] = int64(zipf.Uint64()) * 7919
	}
	ids := make([]int32, 0, len(keys))
	b.ReportAllocs()
	runs := 0
	for b.Loop() {
		ids = NewDict(false).AddAll(&Keys{Int: keys}, ids[:0])
		runs++
	}
	b.ReportMetric(float64(runs*len(keys))/b.Elapsed().Seconds(), "rows/s")
}
