package tile

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tessera-fe/tessera/aggregate"
)

// TestBuilderSpillPrefold: a builder that spills folds the partitions of
// heavy keys into cells as their blocks are evicted rather than write them
// to disk, and its tiles are still Build's bit for bit, for sums, counts
// alone and states of every column: values whose sums depend on their
// order (the keys of a tile fold in arrival order), nulls, tiles of nulls
// alone and zeros of both signs. A heavy key whose first events were
// written to disk before it grew dense stays on disk (folding its later
// keys first would change its sums); partitions fold within their share of
// memory only, and none fold when that share is too small for one; the
// groups are fewer than planned, as folded keys need no room in them; a
// group built again gives the same tiles.
func TestBuilderSpillPrefold(t *testing.T) {
	rng := rand.New(rand.NewPCG(91, 92))
	const (
		hour        = int64(3600e6)
		t0          = int64(1.7e15)
		early, late = 1000, 1500 // heavy keys: from the first batch on, from the third
	)
	value := func() (float64, bool) {
		switch r := rng.IntN(100); {
		case r < 3:
			return 0, false
		case r < 5:
			return math.Copysign(0, -1), true
		default:
			return rng.NormFloat64() * 1e6, true // sums depend on the order of their terms
		}
	}
	var batches []*Events
	for b := range 5 {
		ev := &Events{}
		for range 70_000 {
			var k int64
			switch r := rng.IntN(10); {
			case r < 4:
				k = early
			case r < 8 && b >= 2:
				k = late
			default:
				k = rng.Int64N(2000)
			}
			ts := t0 + rng.Int64N(20*24*hour)
			if k == early && ts < t0+hour {
				ts += hour // the early key's first bucket gets the nulls below alone
			}
			v, ok := value()
			ev.Keys.Int, ev.TS = append(ev.Keys.Int, k), append(ev.TS, ts)
			ev.Values, ev.Valid = append(ev.Values, v), append(ev.Valid, ok)
		}
		for range 5 {
			ev.Keys.Int, ev.TS = append(ev.Keys.Int, early), append(ev.TS, t0+rng.Int64N(hour))
			ev.Values, ev.Valid = append(ev.Values, 0), append(ev.Valid, false)
		}
		batches = append(batches, ev)
	}
	joined := Concat(batches)
	g := Grid{Width: hour}
	for _, c := range []struct {
		name   string
		needs  aggregate.Needs
		memory int64
		share  int64 // 1/share of the memory for cells
		fold   bool  // whether the early key's partitions fold
	}{
		{"sums", aggregate.Mean.Needs(), 4 << 20, 4, true},
		{"counts", aggregate.Count.Needs(), 3 << 19, 2, true}, // a third of the bytes per key
		{"states", aggregate.Var.Needs() | aggregate.Min.Needs() | aggregate.Max.Needs(), 4 << 20, 4, true},
		{"no room for cells", aggregate.Mean.Needs(), 4 << 20, 1 << 20, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func(old int64) { prefoldShare = old }(prefoldShare)
			prefoldShare = c.share
			b := NewBuilder(g, c.needs, math.MinInt64, math.MaxInt64)
			b.Expect(slices.Min(joined.Keys.Int), slices.Max(joined.Keys.Int), slices.Min(joined.TS), slices.Max(joined.TS), joined.Len())
			b.Spill(t.TempDir(), c.memory, 0)
			for _, ev := range batches {
				b.Add(ev)
			}
			if err := b.Err(); err != nil {
				t.Fatal(err)
			}
			st := b.sp.disk
			parts := b.Parts() // evicts the rest: every key is on disk or folded now
			folded, foldedKeys := 0, 0
			for _, p := range st.pre {
				if p != nil {
					folded++
					foldedKeys += p.events
				}
			}
			if st.preBytes > st.maxPre || st.maxPre != c.memory/c.share {
				t.Fatalf("cells take %d bytes, %d allowed; want %d allowed", st.preBytes, st.maxPre, c.memory/c.share)
			}
			// The early key's buckets span many partitions (they weigh
			// most in the sample that cut them); the late key's share
			// partitions with light keys, which went to disk before it came.
			if c.fold != (foldedKeys >= joined.Len()/4) {
				t.Fatalf("%d keys of %d folded as evicted, in %d partitions", foldedKeys, joined.Len(), folded)
			}
			onDisk, late := 0, 0
			for d, bs := range st.blocks {
				n := 0
				for _, o := range bs {
					n += o.n
				}
				onDisk += n
				if st.pre[d] != nil && n > 0 {
					t.Fatalf("partition %d folds as evicted, after %d of its keys went to disk", d, n)
				}
				if span := b.sp.span(d); span <= maxPrefoldSpan && uint64(n) >= span {
					late++ // dense, but too late to fold
				}
			}
			if c.fold && late == 0 {
				t.Fatal("no partition grew dense after its first keys went to disk")
			}
			if onDisk+foldedKeys != joined.Len() {
				t.Fatalf("%d keys folded and %d on disk, of %d", foldedKeys, onDisk, joined.Len())
			}
			sets := buildAll(t, parts)
			// Keys that folded as they left memory need no room of their
			// own in the groups: fewer groups than planned.
			if len(sets) < 2 || c.fold != (len(sets) < b.groups) {
				t.Fatalf("built in %d groups, %d planned", len(sets), b.groups)
			}
			if err := sameBits(concatSets(sets, c.needs), Build(joined, g, c.needs, math.MinInt64, math.MaxInt64)); err != nil {
				t.Fatal(err)
			}
			// A commit may build a group again: its folded partitions
			// give the same tiles.
			for g := len(parts) - 1; g >= 0; g-- {
				s, err := parts[g]()
				if err != nil {
					t.Fatal(err)
				}
				if err := sameBits(s, sets[g]); err != nil {
					t.Fatalf("group %d built again: %v", g, err)
				}
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBuilderSpillAllFolded: when every partition folds as it leaves
// memory (a few heavy keys), nothing goes to disk, and the groups, made of
// folded partitions alone, still give Build's tiles bit for bit, whether
// their number is the builder's to choose or given.
func TestBuilderSpillAllFolded(t *testing.T) {
	rng := rand.New(rand.NewPCG(93, 94))
	const hour, t0 = int64(3600e6), int64(1.7e15)
	var batches []*Events
	for range 4 {
		ev := &Events{}
		for range 100_000 {
			ev.Keys.Int = append(ev.Keys.Int, 7+rng.Int64N(4))
			ev.TS = append(ev.TS, t0+rng.Int64N(10*24*hour))
			ev.Values = append(ev.Values, rng.NormFloat64()*1e6)
			ev.Valid = append(ev.Valid, rng.IntN(20) != 0)
		}
		batches = append(batches, ev)
	}
	joined := Concat(batches)
	g := Grid{Width: hour}
	want := Build(joined, g, aggregate.Mean.Needs(), math.MinInt64, math.MaxInt64)
	for _, groups := range []int{0, 50} {
		b := NewBuilder(g, aggregate.Mean.Needs(), math.MinInt64, math.MaxInt64)
		b.Expect(7, 10, slices.Min(joined.TS), slices.Max(joined.TS), joined.Len())
		b.Spill(t.TempDir(), 2<<20, groups)
		for _, ev := range batches {
			b.Add(ev)
		}
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		parts := b.Parts()
		if size := b.sp.disk.size; size != 0 {
			t.Fatalf("groups %d: %d bytes went to disk, want every partition folded", groups, size)
		}
		if err := sameBits(concatSets(buildAll(t, parts), aggregate.Mean.Needs()), want); err != nil {
			t.Fatalf("groups %d, built in %d: %v", groups, len(parts), err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// sameBits reports the first tile where got and want differ, to the bit.
func sameBits(got, want *Set) error {
	if got.Len() != want.Len() {
		return fmt.Errorf("%d tiles, want %d", got.Len(), want.Len())
	}
	bitsOf := func(x []float64, i int) uint64 {
		if x == nil {
			return 0
		}
		return math.Float64bits(x[i])
	}
	for i := range want.Len() {
		g, w := got.State(i), want.State(i)
		if got.Keys.Int[i] != want.Keys.Int[i] || got.Start[i] != want.Start[i] || g.Count != w.Count || g.N != w.N ||
			bitsOf(got.Sum, i) != bitsOf(want.Sum, i) || bitsOf(got.M2, i) != bitsOf(want.M2, i) ||
			bitsOf(got.Min, i) != bitsOf(want.Min, i) || bitsOf(got.Max, i) != bitsOf(want.Max, i) {
			return fmt.Errorf("tile %d: key %d, start %d, %+v; want key %d, start %d, %+v",
				i, got.Keys.Int[i], got.Start[i], g, want.Keys.Int[i], want.Start[i], w)
		}
	}
	return nil
}
