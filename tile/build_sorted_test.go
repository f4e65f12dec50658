package tile

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/tessera-fe/tessera/aggregate"
)

// TestBuildPathsAgree checks the radix path against the per-key sorted path
// on the same events, and that a grid too fine for composite numbering still
// builds correct tiles.
func TestBuildPathsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	needs := aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedM2 | aggregate.NeedMin | aggregate.NeedMax
	for _, tc := range []struct {
		grid Grid
		span int64
		n    int
	}{
		{Grid{Width: 3600e6}, 10 * 86400e6, 5000},
		{Grid{Width: 1}, math.MaxInt64 / 2, 5000},
		{Grid{Width: 3600e6, Origin: 17}, 30 * 86400e6, 700_000}, // large enough to split over cores
	} {
		ev := &Events{}
		for range tc.n {
			ev.Keys.Int = append(ev.Keys.Int, rng.Int64N(40))
			ev.TS = append(ev.TS, rng.Int64N(tc.span)-tc.span/2)
			ev.Values = append(ev.Values, float64(rng.IntN(100)))
		}
		// a few events share a bucket so that tiles merge
		ev.Keys.Int = append(ev.Keys.Int, 1, 1, 1)
		ev.TS = append(ev.TS, 7, 7, 7)
		ev.Values = append(ev.Values, 1, 2, 3)
		got := Build(ev, tc.grid, needs, math.MinInt64, math.MaxInt64)

		dict := NewDict(false)
		ids := dict.AddAll(&ev.Keys, nil)
		rank := dict.Ranks()
		byRank := make([]int32, dict.Len())
		for id, r := range rank {
			byRank[r] = int32(id)
		}
		for i := range ids {
			ids[i] = rank[ids[i]]
		}
		want := buildSorted(ev, tc.grid, needs, dict, ids, byRank, &Set{Needs: needs})
		if got.Len() != want.Len() || !reflect.DeepEqual(got.Keys.Int, want.Keys.Int) || !reflect.DeepEqual(got.Start, want.Start) || !reflect.DeepEqual(got.Count, want.Count) {
			t.Fatalf("width %d: paths disagree: %d vs %d tiles", tc.grid.Width, got.Len(), want.Len())
		}
		for i := range got.Sum {
			if math.Abs(got.Sum[i]-want.Sum[i]) > 1e-9 || got.Min[i] != want.Min[i] || got.Max[i] != want.Max[i] || math.Abs(got.M2[i]-want.M2[i]) > 1e-6 {
				t.Fatalf("width %d: tile %d differs", tc.grid.Width, i)
			}
		}
	}
}
