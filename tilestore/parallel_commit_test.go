package tilestore

import (
	"context"
	"math"
	"reflect"
	"runtime"
	"testing"

	"github.com/tessera-fe/tessera/internal/sample"
)

// TestParallelCommitSplits: a large commit is split into one object per
// core, written concurrently, and loads back exactly, verified clean.
func TestParallelCommitSplits(t *testing.T) {
	defer func(n int) { minParallelRows = n }(minParallelRows)
	minParallelRows = 2000
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))

	spec := sample.Default()
	spec.Events, spec.SpineRows = 30_000, 10
	set := sampleTiles(t, spec, "user_id")
	if set.Len() < 3*minParallelRows {
		t.Fatalf("only %d tiles: the test needs enough to split", set.Len())
	}
	s := openDir(t)
	m := mustCommit(t, s, Commit{TileSet: "split", Needs: set.Needs, Grid: hourGrid,
		Cover: Range{math.MinInt64, math.MaxInt64}, Tiles: set})
	if len(m.Objects) != 3 {
		t.Fatalf("%d objects, want one per core (3)", len(m.Objects))
	}
	got, err := s.Load(context.Background(), m, Range{math.MinInt64, math.MaxInt64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Keys.Int, set.Keys.Int) || !reflect.DeepEqual(got.Start, set.Start) ||
		!reflect.DeepEqual(got.Count, set.Count) || !reflect.DeepEqual(got.Sum, set.Sum) {
		t.Fatal("tiles differ after a split commit")
	}
	if n, exact := m.Keys(); !exact || n == 0 {
		t.Errorf("Keys() = %d, %v: objects split by rows touch at one key at most, so the count is exact", n, exact)
	}
	probs, err := s.Verify(context.Background(), "split")
	if err != nil || len(probs) != 0 {
		t.Fatalf("verify: %v %v", probs, err)
	}
}
