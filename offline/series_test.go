package offline

import (
	"cmp"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

// TestEventSeriesParts: splitting a large input over cores gives the same
// series as one part.
func TestEventSeriesParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ev := &tile.Events{}
	for range 700_000 {
		ev.Keys.Int = append(ev.Keys.Int, rng.Int64N(5000))
		ev.TS = append(ev.TS, rng.Int64N(1e12)-5e11)
		ev.Values = append(ev.Values, float64(rng.IntN(1000)))
		ev.Valid = append(ev.Valid, rng.IntN(10) != 0)
	}
	dict := tile.NewDict(false)
	dict.AddAll(&tile.Keys{Int: ev.Keys.Int[:300_000]}, nil) // some keys are not in the spine
	needs := aggregate.Mean.Needs()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	one := eventSeries(ev, dict, needs)
	runtime.GOMAXPROCS(4)
	four := eventSeries(ev, dict, needs)
	if !reflect.DeepEqual(one, four) {
		t.Fatal("series differ between 1 and 4 parts")
	}
	for g := range dict.Len() {
		seg := one.pos[one.first[g]:one.end[g]]
		for i := 1; i < len(seg); i++ {
			if seg[i-1] > seg[i] {
				t.Fatalf("key %d not sorted by time", g)
			}
		}
	}
}

// TestRenumber: keys renumbered in the order of their tile runs keep their
// segments, take the tiles front to back, and the spine index built with
// the ranks equals one built from renumbered ids.
func TestRenumber(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	ev := &tile.Events{}
	for range 20_000 {
		ev.Keys.Int = append(ev.Keys.Int, rng.Int64N(2000)*3)
		ev.TS = append(ev.TS, rng.Int64N(1e11))
		ev.Values = append(ev.Values, float64(rng.IntN(100)))
	}
	set := tile.Build(ev, tile.Grid{Width: 3600e6}, aggregate.Sum.Needs(), math.MinInt64, math.MaxInt64)
	dict := tile.NewDict(false)
	spineKeys := &tile.Keys{Int: append(slices.Clone(ev.Keys.Int[:5000]), -1, -4)} // two keys without tiles
	ids := dict.AddAll(spineKeys, nil)
	s := tileSeries(set, dict)
	first, end := slices.Clone(s.first), slices.Clone(s.end)
	rank := s.renumber()
	if rank == nil {
		t.Fatal("a series read in place was not renumbered")
	}
	seen := make([]bool, dict.Len())
	for g, r := range rank {
		if seen[r] {
			t.Fatalf("rank %d given twice", r)
		}
		seen[r] = true
		if s.first[r] != first[g] || s.end[r] != end[g] {
			t.Fatalf("key %d: segment [%d, %d) became [%d, %d)", g, first[g], end[g], s.first[r], s.end[r])
		}
	}
	for r := 1; r < dict.Len(); r++ {
		if s.end[r] > s.first[r] && s.first[r] < s.end[r-1] {
			t.Fatalf("new id %d's tiles start at %d, before the end %d of id %d's", r, s.first[r], s.end[r-1], r-1)
		}
	}
	if s.end[dict.Len()-1] != s.first[dict.Len()-1] || s.end[dict.Len()-2] != s.first[dict.Len()-2] {
		t.Fatal("keys without tiles are not numbered last")
	}
	times := make([]int64, len(ids))
	for i := range times {
		times[i] = rng.Int64N(1e11)
	}
	renumbered := make([]int32, len(ids))
	for i, id := range ids {
		renumbered[i] = rank[id]
	}
	got := newRankedIndex(times, ids, rank, dict.Len())
	want := newSpineIndex(times, renumbered, dict.Len())
	if !slices.Equal(got.order, want.order) || !slices.Equal(got.off, want.off) || !slices.Equal(got.at, want.at) {
		t.Fatal("ranked index differs from the index of renumbered ids")
	}
	// A gathered series (not read in place) keeps its ids.
	shuffled := &tile.Set{Needs: set.Needs}
	for _, i := range rng.Perm(set.Len()) {
		shuffled.Append(set.Keys.Int[i], "", set.Start[i], set.State(i))
	}
	if tileSeries(shuffled, dict).renumber() != nil {
		t.Fatal("a gathered series was renumbered")
	}
}

// TestEventSeriesOrder: every key's events, in time order and input order
// among equal times, with their values and nulls, whether the key id and
// the time span fit one 64-bit sort key (narrow spans) or not (times across
// most of int64), on one core and on several.
func TestEventSeriesOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, span := range []int64{50, 1e12, math.MaxInt64} {
		ev := &tile.Events{}
		for range 300_000 {
			ev.Keys.Int = append(ev.Keys.Int, rng.Int64N(3000))
			ts := rng.Int64N(span)
			if span == math.MaxInt64 && rng.IntN(2) == 0 {
				ts = -ts
			}
			ev.TS = append(ev.TS, ts)
			ev.Values = append(ev.Values, float64(rng.IntN(1000)))
			ev.Valid = append(ev.Valid, rng.IntN(10) != 0)
		}
		dict := tile.NewDict(false)
		dict.AddAll(&tile.Keys{Int: ev.Keys.Int[:100_000]}, nil)
		// The reference: each key's events, stably sorted by time.
		want := make([][]int, dict.Len())
		all := dict.LookupAll(&ev.Keys, nil)
		for i, id := range all {
			if id >= 0 {
				want[id] = append(want[id], i)
			}
		}
		for _, rows := range want {
			slices.SortStableFunc(rows, func(a, b int) int { return cmp.Compare(ev.TS[a], ev.TS[b]) })
		}
		for _, procs := range []int{1, 3} {
			prev := runtime.GOMAXPROCS(procs)
			s := eventSeries(ev, dict, aggregate.Mean.Needs())
			runtime.GOMAXPROCS(prev)
			for g, rows := range want {
				a, b := s.first[g], s.end[g]
				if int(b-a) != len(rows) {
					t.Fatalf("span %d, %d cores: key %d has %d events, want %d", span, procs, g, b-a, len(rows))
				}
				for j, r := range rows {
					at := int(a) + j
					v := ev.Values[r]
					if !ev.Valid[r] {
						v = 0
					}
					if s.pos[at] != ev.TS[r] || s.vals[at] != v || s.valid[at] != ev.Valid[r] {
						t.Fatalf("span %d, %d cores: key %d event %d is (%d, %v, %v), want (%d, %v, %v)",
							span, procs, g, j, s.pos[at], s.vals[at], s.valid[at], ev.TS[r], v, ev.Valid[r])
					}
				}
			}
		}
	}
}

// TestSplitKeyRuns: the runs found on two cores equal those of one scan,
// with a run across the middle, and an order broken at the middle found.
func TestSplitKeyRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	const n = 1 << 19
	keys := make([]int64, n)
	start := make([]int64, n)
	k, s := int64(0), int64(0)
	for i := range n {
		if i == n/2 || rng.IntN(7) != 0 || i == 0 { // the middle continues a run
			s += 1 + rng.Int64N(3)
		} else {
			k += 1 + rng.Int64N(2)
			s = rng.Int64N(5)
		}
		keys[i], start[i] = k, s
	}
	if keys[n/2] != keys[n/2-1] {
		t.Fatal("test data: no run across the middle")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	for _, c := range []struct {
		name   string
		broken bool
	}{{"sorted", false}, {"broken at the middle", true}} {
		st := slices.Clone(start)
		if c.broken {
			st[n/2] = st[n/2-1]
		}
		ws, wk, wsorted := keyRuns(keys, st, nil, nil)
		gs, gk, gsorted := splitKeyRuns(keys, st, nil, nil)
		if gsorted != wsorted || gsorted == c.broken {
			t.Fatalf("%s: sorted %v, one scan %v", c.name, gsorted, wsorted)
		}
		if gsorted && (!slices.Equal(gs, ws) || !slices.Equal(gk, wk)) {
			t.Fatalf("%s: %d runs, one scan %d", c.name, len(gs), len(ws))
		}
	}
}

// TestTimeBounds: the bounds and off-boundary count of a spine scanned on
// two cores equal those of one scan.
func TestTimeBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	g := tile.Grid{Width: 3600e6}
	times := make([]int64, 300_001)
	for i := range times {
		times[i] = rng.Int64N(1<<45) - 1<<44
		if i%3 == 0 {
			times[i] = g.Floor(times[i])
		}
	}
	times[len(times)-1] = 1 << 46 // the greatest, in the second half
	var lo, hi int64 = math.MaxInt64, math.MinInt64
	off := 0
	for _, x := range times {
		lo, hi = min(lo, x), max(hi, x)
		if !g.OnBoundary(x) {
			off++
		}
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	if glo, ghi, goff := timeBounds(times, g); glo != lo || ghi != hi || goff != off {
		t.Fatalf("timeBounds = %d, %d, %d; want %d, %d, %d", glo, ghi, goff, lo, hi, off)
	}
}
