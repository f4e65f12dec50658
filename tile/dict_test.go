package tile

import (
	"slices"
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
