package online

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// Tiles is the tile store as online serving reads it; *tilestore.Store is one.
type Tiles interface {
	Manifest(ctx context.Context, tileSet string) (*tilestore.Manifest, error)
	Load(ctx context.Context, m *tilestore.Manifest, r tilestore.Range, keep *tilestore.KeyFilter) (*tile.Set, error)
}

// view is the committed state of one tile set held in memory: its coverage
// and, per key, its tiles sorted by bucket start. A view is immutable once
// built; a refresh swaps in a new one.
type view struct {
	set      *feature.TileSet
	version  int64 // manifest version; 0 when nothing is committed
	strKeys  bool  // the manifest's key type; meaningful when version > 0
	coverage []tilestore.Range
	keys     map[string]*series
}

// series is one key's tiles, with prefix sums that answer count, sum,
// mean, var and std over any range of them in O(1).
type series struct {
	start  []int64
	state  []aggregate.State
	prefix aggregate.Prefix
}

// watermark returns the end of the coverage, or math.MinInt64 when nothing
// is covered.
func (v *view) watermark() int64 {
	if len(v.coverage) == 0 {
		return math.MinInt64
	}
	return v.coverage[len(v.coverage)-1].To
}

// covered reports whether bucket start b is covered.
func (v *view) covered(b int64) bool {
	i, _ := slices.BinarySearchFunc(v.coverage, b, func(r tilestore.Range, b int64) int {
		switch {
		case r.To <= b:
			return -1
		case r.From > b:
			return 1
		}
		return 0
	})
	return i < len(v.coverage) && v.coverage[i].Contains(b)
}

// loadView reads a tile set's newest manifest and all its tiles.
func loadView(ctx context.Context, tiles Tiles, set *feature.TileSet, old *view) (*view, error) {
	m, err := tiles.Manifest(ctx, set.ID)
	if err != nil {
		return nil, fmt.Errorf("read manifest of tile set %s: %w", set.ID, err)
	}
	if m == nil {
		return &view{set: set, keys: map[string]*series{}}, nil
	}
	if old != nil && old.version == m.Version {
		return old, nil
	}
	ts, err := tiles.Load(ctx, m, tilestore.Range{From: math.MinInt64, To: math.MaxInt64}, nil)
	if err != nil {
		return nil, fmt.Errorf("load tiles of tile set %s: %w", set.ID, err)
	}
	v := &view{set: set, version: m.Version, strKeys: m.StringKeys, coverage: m.Coverage, keys: map[string]*series{}}
	var cur *series
	prev := ""
	for i := range ts.Len() {
		k := keyText(&ts.Keys, i)
		if cur == nil || k != prev {
			cur = v.keys[k]
			if cur == nil {
				cur = &series{}
				v.keys[k] = cur
			}
			prev = k
		}
		cur.start = append(cur.start, ts.Start[i])
		cur.state = append(cur.state, ts.State(i))
	}
	for _, sr := range v.keys {
		sr.build(set.Needs)
	}
	return v, nil
}

func (s *series) build(needs aggregate.Needs) {
	n := len(s.state)
	count, nn := make([]int64, n), make([]int64, n)
	sum, m2 := make([]float64, n), make([]float64, n)
	for i, st := range s.state {
		count[i], nn[i], sum[i], m2[i] = st.Count, st.N, st.Sum, st.M2
	}
	s.prefix.BuildTiles(count, nn, sum, m2, needs)
}

func keyText(k *tile.Keys, i int) string {
	if k.String {
		return k.Str[i]
	}
	return strconv.FormatInt(k.Int[i], 10)
}

// rangeState returns the state of the tiles with lo <= start < hi; Min and
// Max are filled only when extremes is set.
func (s *series) rangeState(lo, hi int64, extremes bool) aggregate.State {
	if s == nil {
		return aggregate.State{}
	}
	i, _ := slices.BinarySearch(s.start, lo)
	j, _ := slices.BinarySearch(s.start, hi)
	if i >= j {
		return aggregate.State{}
	}
	st := s.prefix.Range(i, j)
	if extremes {
		first := true
		for _, t := range s.state[i:j] {
			if t.N == 0 {
				continue
			}
			if first {
				st.Min, st.Max, first = t.Min, t.Max, false
				continue
			}
			st.Min, st.Max = math.Min(st.Min, t.Min), math.Max(st.Max, t.Max)
		}
	}
	return st
}
