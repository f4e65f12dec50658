package tilestore

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/tile"
)

// splitSample returns the tiles of a small sample, enough for a commit to
// split them three ways: until t ends, GOMAXPROCS is 3 and
// minParallelRows 2000.
func splitSample(t *testing.T) *tile.Set {
	t.Helper()
	old, procs := minParallelRows, runtime.GOMAXPROCS(3)
	minParallelRows = 2000
	t.Cleanup(func() { minParallelRows = old; runtime.GOMAXPROCS(procs) })
	spec := sample.Default()
	spec.Events, spec.SpineRows = 30_000, 10
	set := sampleTiles(t, spec, "user_id")
	if set.Len() < 3*minParallelRows {
		t.Fatalf("only %d tiles: the test needs enough to split", set.Len())
	}
	return set
}

// TestParallelCommitSplits: a large commit is split into one object per
// core, written concurrently, and loads back exactly, verified clean.
func TestParallelCommitSplits(t *testing.T) {
	set := splitSample(t)
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

// TestParallelCheck: a large commit is checked a run of tiles per core, and
// a defect anywhere, at the first tile of a run too (its order against the
// tile before, in the run before), fails it with the first defect in tile
// order.
func TestParallelCheck(t *testing.T) {
	set := splitSample(t)
	n := set.Len()
	c := Commit{TileSet: "checked", Needs: set.Needs, Grid: hourGrid, Cover: Range{math.MinInt64, math.MaxInt64}, Tiles: set}
	if _, err := checkCommit(&c); err != nil {
		t.Fatalf("%d tiles of the sample: %v", n, err)
	}
	run := n / 3 // the first tile of the second core's run
	for _, bad := range []struct {
		what string
		at   int
		set  func(s *tile.Set, i int)
		msg  string
	}{
		{"a run's first tile before the tile ahead of it", run, func(s *tile.Set, i int) { s.Keys.Int[i], s.Start[i] = s.Keys.Int[i-1], s.Start[i-1] }, "is not after tile"},
		{"an unaligned start in the last run", n - 2, func(s *tile.Set, i int) { s.Start[i]++ }, "is not a bucket boundary"},
	} {
		broken := *set
		broken.Keys.Int, broken.Start = slices.Clone(set.Keys.Int), slices.Clone(set.Start)
		bad.set(&broken, bad.at)
		// A second defect later on: the error must name the first.
		broken.Start[n-1]++
		c.Tiles = &broken
		_, err := checkCommit(&c)
		if err == nil || !strings.Contains(err.Error(), bad.msg) || !strings.Contains(err.Error(), fmt.Sprintf("tile %d ", bad.at)) {
			t.Fatalf("%s (tile %d): %v", bad.what, bad.at, err)
		}
	}
}
