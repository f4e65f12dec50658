package tilestore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/tile"
)

// sampleTiles builds the tiles (count, sum and min of amount per 1h bucket)
// of the sample transactions grouped by keyColumn.
func sampleTiles(t testing.TB, spec sample.Spec, keyColumn string) *tile.Set {
	t.Helper()
	return buildTiles(spec, keyColumn, hourGrid, aggregate.NeedCount|aggregate.NeedSum|aggregate.NeedMin)
}

const (
	everythingFrom = -1 << 62
	everythingTo   = 1 << 62
)

// TestRowGroupPruningSample loads a 1% sample of the keys of realistic tile
// sets and checks that it reads a small share of the bytes a full load reads,
// through verified ranged reads, with the same tiles. A random 1% of
// long-tailed keys touches most row groups: the bound is loose there and
// tight for a contiguous 1% of the keys (a key range).
func TestRowGroupPruningSample(t *testing.T) {
	for _, c := range []struct {
		key                string
		maxRandom, maxSpan float64
	}{{"merchant_id", 0.35, 0.1}, {"user_id", 0.6, 0.1}} {
		t.Run(c.key, func(t *testing.T) { testPruningSample(t, c.key, c.maxRandom, c.maxSpan) })
	}
}

func testPruningSample(t *testing.T, keyColumn string, maxRandom, maxSpan float64) {
	ctx := context.Background()
	set := sampleTiles(t, sample.Default(), keyColumn)
	s := openDir(t)
	id := "sample." + keyColumn + ".amount.1h"
	m := mustCommit(t, s, Commit{TileSet: id, Needs: set.Needs, Grid: hourGrid, Cover: everything, Tiles: set})
	groups := 0
	for _, o := range m.Objects {
		groups += len(o.RowGroups)
	}
	b0 := s.BytesRead()
	all, err := s.Load(ctx, m, everything, nil)
	if err != nil {
		t.Fatal(err)
	}
	bytesAll := s.BytesRead() - b0
	allRows := rowsOf(all)
	keys := slices.Compact(slices.Clone(set.Keys.Int))
	t.Logf("%d tiles of %d keys: %d bytes in %d row groups", set.Len(), len(keys), totalBytes(m), groups)

	rng := rand.New(rand.NewPCG(42, 1))
	for _, contiguous := range []bool{false, true} {
		keep := &KeyFilter{Int: map[int64]struct{}{}}
		for i, k := range keys {
			if contiguous && i >= len(keys)/2 && i < len(keys)/2+len(keys)/100 || !contiguous && rng.IntN(100) == 0 {
				keep.Int[k] = struct{}{}
			}
		}
		b0 := s.BytesRead()
		part, err := s.Load(ctx, m, everything, keep)
		if err != nil {
			t.Fatal(err)
		}
		bytesPart := s.BytesRead() - b0
		what, limit := "random 1%", maxRandom
		if contiguous {
			what, limit = "contiguous 1%", maxSpan
		}
		equalRows(t, what, part, filterRows(allRows, func(x row) bool { _, ok := keep.Int[x.IntKey]; return ok }))
		ratio := float64(bytesPart) / float64(bytesAll)
		t.Logf("%s of the keys (%d keys, %d tiles): read %d of %d bytes (%.1f%%)", what, len(keep.Int), part.Len(), bytesPart, bytesAll, 100*ratio)
		if ratio > limit {
			t.Fatalf("%s of the keys read %d bytes, %.0f%% of a full load (%d); want at most %.0f%%: row group pruning does not work", what, bytesPart, 100*ratio, bytesAll, 100*limit)
		}
	}
}

// TestRangedLoadStringKeys prunes row groups of string keys, whose order is
// byte-wise, and combines a key filter with a time range.
func TestRangedLoadStringKeys(t *testing.T) {
	s := openDir(t)
	needs := aggregate.NeedCount | aggregate.NeedMax
	rng := rand.New(rand.NewPCG(5, 5))
	var rows []row
	for k := range 300 {
		for h := range int64(60) {
			rows = append(rows, row{StrKey: fmt.Sprintf("k%04d", k*7%300), Start: h * hour, State: aggregate.State{Count: h + 1, N: 1, Max: rng.NormFloat64()}})
		}
	}
	sortRows(rows)
	m := mustCommit(t, s, Commit{TileSet: "str", Needs: needs, StringKeys: true, Grid: hourGrid, Cover: Range{0, 60 * hour}, Tiles: setOf(needs, true, rows)})
	if len(m.Objects) != 1 || len(m.Objects[0].RowGroups) < 4 {
		t.Fatalf("objects %d, row groups %d: want one object of several row groups", len(m.Objects), len(m.Objects[0].RowGroups))
	}
	keep := &KeyFilter{Str: map[string]struct{}{"k0005": {}, "k0150": {}, "zzz": {}}}
	r := Range{10 * hour, 20 * hour}
	b0 := s.BytesRead()
	got := mustLoad(t, s, "str", r, keep)
	if read := s.BytesRead() - b0; read*2 > m.Objects[0].Bytes {
		t.Fatalf("read %d of %d bytes for two keys", read, m.Objects[0].Bytes)
	}
	equalRows(t, "two keys, ten hours", got, filterRows(rows, func(x row) bool {
		_, ok := keep.Str[x.StrKey]
		return ok && r.Contains(x.Start)
	}))
}
