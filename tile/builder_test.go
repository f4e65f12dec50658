package tile

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/internal/hugepage"
)

// TestBuilder: tiles built from batches as they arrive equal Build's of the
// batches joined, bit for bit, whether the builder was told the batches'
// keys and times exactly, loosely, wrongly (a key or a time outside, in the
// first batch or a later one) or not at all; with int and string keys,
// empty batches, a time range that drops events, and dense or spread keys.
func TestBuilder(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	const (
		none = iota
		exact
		loose
		keyOutside
		timeOutside
		modes
	)
	for iter := range 400 {
		str := iter%7 == 3
		mode := iter % modes
		needs := aggregate.Sum.Needs()
		if iter%3 == 0 {
			needs = aggregate.Var.Needs() | aggregate.Min.Needs() | aggregate.Max.Needs()
		}
		g := Grid{Width: int64(1 + rng.IntN(50)), Origin: rng.Int64N(20)}
		nb := 1 + rng.IntN(5)
		batches := make([]*Events, nb)
		for i := range batches {
			n := rng.IntN(800)
			if rng.IntN(6) == 0 {
				n = 0
			}
			batches[i] = genEvents(rng, n, str, true, iter%2 == 0)
			if !str && iter%4 == 1 { // dense keys
				for j := range batches[i].Keys.Int {
					batches[i].Keys.Int[j] /= 1e12
				}
			}
		}
		from, to := int64(math.MinInt64), int64(math.MaxInt64)
		if iter/modes%2 == 0 { // with every mode
			from, to = -300, 900
			// Events at either edge of [from, to) and just outside it.
			if ev := batches[0]; ev.Len() > 0 {
				for _, ts := range []int64{from - 1, from, to - 1, to} {
					if ev.Keys.String {
						ev.Keys.Str = append(ev.Keys.Str, ev.Keys.Str[0])
					} else {
						ev.Keys.Int = append(ev.Keys.Int, ev.Keys.Int[0])
					}
					ev.TS = append(ev.TS, ts)
					ev.Values = append(ev.Values, 1.5)
					if ev.Valid != nil {
						ev.Valid = append(ev.Valid, true)
					}
				}
			}
		}
		joined := Concat(batches)
		want := Build(joined, g, needs, from, to)

		b := NewBuilder(g, needs, from, to)
		streams := false
		if mode != none && joined.Len() > 0 && !str {
			kmin, kmax := slices.Min(joined.Keys.Int), slices.Max(joined.Keys.Int)
			tmin, tmax := slices.Min(joined.TS), slices.Max(joined.TS)
			switch mode {
			case loose:
				kmin, kmax, tmin, tmax = kmin-1e6, kmax+5, tmin-1000, tmax+77
			case keyOutside:
				kmax--
			case timeOutside: // the earliest events a bucket before
				tmin += g.Width
			}
			// Told too few events at times: the spread outgrows its room.
			b.Expect(kmin, kmax, tmin, tmax, joined.Len()>>rng.IntN(4))
			// Where the expectation is right and some event is kept, the
			// batches are scanned as they arrive.
			streams = (mode == exact || mode == loose) && max(tmin, from) <= min(tmax, to-1) && batches[0].Len() > 0 &&
				spreads(g, kmin, kmax, max(tmin, from), min(tmax, to-1))
			if mode == timeOutside && from != math.MinInt64 {
				streams = false // tmin may lie outside [from, to): either way is right
			}
		}
		for _, ev := range batches {
			b.Add(ev)
		}
		if streams && !b.streaming {
			t.Fatalf("iter %d (mode %d): the batches were not scanned as they arrived", iter, mode)
		}
		if (mode == keyOutside || mode == timeOutside && from == math.MinInt64) && b.streaming {
			t.Fatalf("iter %d (mode %d): an event outside the expectation went unnoticed", iter, mode)
		}
		got := b.Finish()
		checkColumns(t, got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("iter %d (mode %d, str %v, %d events in %d batches): builder made %d tiles, Build %d, or they differ",
				iter, mode, str, joined.Len(), nb, got.Len(), want.Len())
		}
	}
}

// TestBuilderParallelScan is TestBuilder with batches of a few hundred
// events filed on several cores where they are most of the events told
// (see scansInParallel): the same tiles, bit for bit, and batches whose
// events break the expectation are noticed before any is filed.
func TestBuilderParallelScan(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("batches are filed on several cores only where there are several")
	}
	defer func(n int) { parallelScanEvents = n }(parallelScanEvents)
	parallelScanEvents = 64
	before := parallelScans.Load()
	TestBuilder(t)
	if parallelScans.Load() == before {
		t.Fatal("no batch was filed on several cores")
	}
}

// spreads reports whether the composite keys of the expected keys and
// times fit a spread: the widest the streamed build takes.
func spreads(g Grid, kmin, kmax, tmin, tmax int64) bool {
	nb := uint64(floorDiv(tmax-g.Origin, g.Width)-floorDiv(tmin-g.Origin, g.Width)) + 1
	return fitsComposite(kmin, kmax, nb) && bits.Len64((uint64(kmax)-uint64(kmin))*nb+nb-1) <= 32+fineBits
}

// TestBuilderLarge: large batches, built on several cores (when there
// are), with long runs of one (key, bucket) and values whose sums depend on
// their order, equal Build's tiles bit for bit; so do they when a large
// batch late in the stream breaks the expectation.
func TestBuilderLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(53, 54))
	z := rand.NewZipf(rng, 1.3, 1, 5000)
	var batches []*Events
	for q, n := range []int{2*partEvents + 5, partEvents / 3, 3 * partEvents / 2} {
		ev := &Events{TS: make([]int64, n), Values: make([]float64, n)}
		for i := range n {
			ev.Keys.Int = append(ev.Keys.Int, int64(z.Uint64()))
			ev.TS[i] = int64(q)*1000 + rng.Int64N(5000)
			ev.Values[i] = rng.NormFloat64() * 1e3
		}
		batches = append(batches, ev)
	}
	joined := Concat(batches)
	g := Grid{Width: 2000}
	needs := aggregate.Mean.Needs()
	want := Build(joined, g, needs, math.MinInt64, math.MaxInt64)
	for _, late := range []bool{false, true} {
		told := joined
		if late { // told of the first two batches only; the third holds a greater key
			told = Concat(batches[:2])
			batches[2].Keys.Int[len(batches[2].Keys.Int)/2] = slices.Max(told.Keys.Int) + 1
			joined = Concat(batches)
			want = Build(joined, g, needs, math.MinInt64, math.MaxInt64)
		}
		b := NewBuilder(g, needs, math.MinInt64, math.MaxInt64)
		b.Expect(slices.Min(told.Keys.Int), slices.Max(told.Keys.Int), slices.Min(told.TS), slices.Max(joined.TS), joined.Len())
		for _, ev := range batches {
			b.Add(ev)
		}
		if b.streaming == late {
			t.Fatalf("late %v: streaming %v at the end", late, b.streaming)
		}
		got := b.Finish()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("late %v: builder made %d tiles, Build %d, or they differ", late, got.Len(), want.Len())
		}
	}
}

// TestBuilderSpillOffHeap: a builder that spills with slabs large enough to
// lie outside the Go heap (its streaming slab, each group's, the second
// group's perhaps the first's, unzeroed) builds Build's tiles, reading its
// groups back in runs cut short; it frees every slab; and a group whose
// blocks cannot be read back fails, freeing its slab too.
func TestBuilderSpillOffHeap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("slabs are mapped outside the Go heap on Linux only")
	}
	old := readChunk
	readChunk = 100 << 10 // runs of a few blocks
	defer func() { readChunk = old }()
	rng := rand.New(rand.NewPCG(63, 64))
	const n = 2 << 20
	z := rand.NewZipf(rng, 1.2, 4, 200_000)
	ev := &Events{Keys: Keys{Int: make([]int64, n)}, TS: make([]int64, n), Values: make([]float64, n), Valid: make([]bool, n)}
	for i := range n {
		ev.Keys.Int[i], ev.TS[i] = int64(z.Uint64()), rng.Int64N(30*86400e6)
		ev.Values[i], ev.Valid[i] = float64(rng.IntN(1e4))/100, rng.IntN(40) != 0
	}
	g, needs := Grid{Width: 3600e6}, aggregate.Mean.Needs()
	want := Build(ev, g, needs, math.MinInt64, math.MaxInt64)
	hugepage.Trim()
	base := hugepage.Mapped()
	spilled := func() *Builder {
		b := NewBuilder(g, needs, math.MinInt64, math.MaxInt64)
		b.Expect(slices.Min(ev.Keys.Int), slices.Max(ev.Keys.Int), 0, 30*86400e6, n)
		b.Spill(t.TempDir(), 32<<20, 2)
		for q := range 4 {
			lo, hi := n*q/4, n*(q+1)/4
			b.Add(&Events{Keys: Keys{Int: ev.Keys.Int[lo:hi]}, TS: ev.TS[lo:hi], Values: ev.Values[lo:hi], Valid: ev.Valid[lo:hi]})
		}
		if err := b.Err(); err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := spilled()
	if hugepage.Mapped() <= base {
		t.Fatal("the streaming slab is not mapped outside the heap")
	}
	parts := b.Parts()
	if len(parts) != 2 {
		t.Fatalf("%d groups, want 2", len(parts))
	}
	// The second group's tiles take over the first's columns (room for
	// the larger group was made at once), and the builder lets go of them
	// once it built the last group.
	first, err := parts[0]()
	if err != nil {
		t.Fatal(err)
	}
	if b.partCols == nil {
		t.Fatal("the first group's columns are not kept for the next")
	}
	second, err := parts[1]()
	if err != nil {
		t.Fatal(err)
	}
	if &second.Start[0] != &first.Start[0] || b.partCols != nil {
		t.Fatalf("groups of %d then %d tiles: the second's columns are the first's %v, still held %v", first.Len(), second.Len(), &second.Start[0] == &first.Start[0], b.partCols != nil)
	}
	if got := concatSets(buildAll(t, parts), needs); !reflect.DeepEqual(got, want) {
		t.Fatalf("spilled builder made %d tiles, Build %d, or they differ", got.Len(), want.Len())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	hugepage.Trim()
	if got := hugepage.Mapped(); got != base {
		t.Fatalf("%d bytes mapped after the build, %d before", got, base)
	}

	// A spill file cut short: the group fails and frees its slab.
	b = spilled()
	parts = b.Parts()
	if err := os.Truncate(b.sp.disk.file.Name(), b.sp.disk.size/3); err != nil {
		t.Fatal(err)
	}
	if _, err := parts[len(parts)-1](); err == nil || !strings.Contains(err.Error(), "read spilled tiles") {
		t.Fatalf("a truncated spill file: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	hugepage.Trim()
	if got := hugepage.Mapped(); got != base {
		t.Fatalf("%d bytes mapped after a failed group, %d before", got, base)
	}
}

// TestBuilderDirtySlab: a builder whose slab is the memory an earlier
// builder freed, full of what that one filed (other keys, NaNs for its
// null values), builds the same tiles as Build.
func TestBuilderDirtySlab(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("slabs are mapped outside the Go heap on Linux only")
	}
	defer hugepage.HoldSpares(time.Minute)()
	rng := rand.New(rand.NewPCG(57, 58))
	const n = 1 << 20
	events := func(nulls bool) *Events {
		ev := &Events{Keys: Keys{Int: make([]int64, n)}, TS: make([]int64, n), Values: make([]float64, n), Valid: make([]bool, n)}
		for i := range n {
			ev.Keys.Int[i], ev.TS[i] = rng.Int64N(3000), rng.Int64N(1e6)
			ev.Values[i], ev.Valid[i] = rng.NormFloat64(), !nulls && rng.IntN(10) != 0
		}
		return ev
	}
	g, needs := Grid{Width: 5000}, aggregate.Var.Needs()|aggregate.Min.Needs()|aggregate.Max.Needs()
	hugepage.Trim()
	streamedBuilder(t, g, needs, 2999, 1e6, n, events(true)).Finish() // its slab, every value NaN, waits for the next
	mapped := hugepage.Mapped()
	ev := events(false)
	b := streamedBuilder(t, g, needs, 2999, 1e6, n, ev)
	if got := hugepage.Mapped(); got != mapped {
		t.Fatalf("the slab was mapped afresh (%d bytes mapped, %d before), not taken from the spares", got, mapped)
	}
	if got, want := b.Finish(), Build(ev, g, needs, math.MinInt64, math.MaxInt64); !reflect.DeepEqual(got, want) {
		t.Fatalf("builder on a dirty slab made %d tiles, Build %d, or they differ", got.Len(), want.Len())
	}
	hugepage.Trim()
}

// streamedBuilder returns a builder of all time on grid g, told to expect
// n events of keys [0, kmax] and times [0, tmax], once it took ev as it
// arrived (it fails t otherwise).
func streamedBuilder(t *testing.T, g Grid, needs aggregate.Needs, kmax, tmax int64, n int, ev *Events) *Builder {
	t.Helper()
	b := NewBuilder(g, needs, math.MinInt64, math.MaxInt64)
	b.Expect(0, kmax, 0, tmax, n)
	b.Add(ev)
	if !b.streaming {
		t.Fatal("not streamed")
	}
	return b
}

// TestBuilderFinishScratch: FinishScratch's tiles lie in memory that the
// tiles of an earlier build freed, left as they were, and are still Build's
// bit for bit, for every layout of state columns; release gives the memory
// back to the spares, not to the heap or the kernel.
func TestBuilderFinishScratch(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("scratch is mapped outside the Go heap on Linux only")
	}
	defer hugepage.HoldSpares(time.Minute)()
	rng := rand.New(rand.NewPCG(63, 64))
	const n = 1 << 19
	g := Grid{Width: 5000}
	for _, needs := range []aggregate.Needs{aggregate.NeedCount, aggregate.Mean.Needs(), aggregate.Var.Needs() | aggregate.Min.Needs() | aggregate.Max.Needs()} {
		events := func(n int) *Events {
			ev := &Events{Keys: Keys{Int: make([]int64, n)}, TS: make([]int64, n), Values: make([]float64, n), Valid: make([]bool, n)}
			for i := range n {
				ev.Keys.Int[i], ev.TS[i] = rng.Int64N(100_000), rng.Int64N(2e6)
				ev.Values[i], ev.Valid[i] = rng.NormFloat64(), rng.IntN(10) != 0
			}
			return ev
		}
		build := func(ev *Events) (*Set, func()) {
			return streamedBuilder(t, g, needs, 99_999, 2e6, n, ev).FinishScratch()
		}
		hugepage.Trim()
		base := hugepage.Mapped()
		// Other events, a tenth more: a few more tiles, whose memory the
		// second build's take.
		first, release := build(events(n + n/10))
		spare := hugepage.Spare()
		release()
		if first.Len() == 0 || hugepage.Spare() < spare+int64(first.Len())*8 {
			t.Fatalf("needs %s: release of %d tiles gave %d bytes to the spares", needs, first.Len(), hugepage.Spare()-spare)
		}
		mapped := hugepage.Mapped()
		ev := events(n)
		got, release := build(ev)
		if m := hugepage.Mapped(); m != mapped {
			t.Fatalf("needs %s: %d bytes mapped after the second build, %d before: its memory was not the spares'", needs, m, mapped)
		}
		if want := Build(ev, g, needs, math.MinInt64, math.MaxInt64); !reflect.DeepEqual(got, want) {
			t.Fatalf("needs %s: FinishScratch on dirty memory made %d tiles, Build %d, or they differ", needs, got.Len(), want.Len())
		}
		release()
		if m := hugepage.Mapped(); m != mapped {
			t.Fatalf("needs %s: %d bytes mapped after release, %d before", needs, m, mapped)
		}
		hugepage.Trim()
		if m := hugepage.Mapped(); m != base {
			t.Fatalf("needs %s: %d bytes still mapped after Trim, %d at first", needs, m, base)
		}
	}
}

// TestBuilderWideHeavy: with millions of keys, a heavy key's buckets and
// its neighbours' fill one partition whose range outgrows a core's cache of
// cells (the 100M sample: half of the events in one partition); folded
// through cells all the same, it gives Build's tiles bit for bit.
func TestBuilderWideHeavy(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	const n, keys, day = 300_000, 2 << 20, int64(86400e6)
	z := rand.NewZipf(rng, 1.2, 4, keys-1)
	ev := &Events{Keys: Keys{Int: make([]int64, n)}, TS: make([]int64, n), Values: make([]float64, n), Valid: make([]bool, n)}
	for i := range n {
		ev.Keys.Int[i], ev.TS[i] = int64(z.Uint64()), rng.Int64N(90*day)
		ev.Values[i], ev.Valid[i] = float64(rng.IntN(10000))/100, rng.IntN(50) != 0
	}
	g, needs := Grid{Width: 4 * 3600e6}, aggregate.Mean.Needs()|aggregate.Max.Needs()
	b := NewBuilder(g, needs, 0, 90*day)
	b.Expect(0, keys-1, 0, 90*day-1, n)
	b.Add(ev)
	if !b.streaming {
		t.Fatal("not streamed")
	}
	wide := false
	for d := range b.sp.chains {
		if span := b.sp.span(d); span > cellKeys && foldsThroughCells(b.sp.len(d, nil), span) {
			wide = true
		}
	}
	if !wide {
		t.Fatal("no partition wider than the cache is folded through cells: the test misses its case")
	}
	if got, want := b.Finish(), Build(ev, g, needs, 0, 90*day); !reflect.DeepEqual(got, want) {
		t.Fatalf("builder made %d tiles, Build %d, or they differ", got.Len(), want.Len())
	}
}

// TestBuilderShare: the sample of a first batch in no key order stands for
// most of the events to come, however small the batch; that of a batch
// sorted by key, for its share of the events.
func TestBuilderShare(t *testing.T) {
	rng := rand.New(rand.NewPCG(59, 60))
	const n, keys = 20000, 10000
	b := NewBuilder(Grid{Width: 10}, aggregate.Sum.Needs(), math.MinInt64, math.MaxInt64)
	b.Expect(0, keys-1, 0, 999, 20*n)
	random := &Events{Keys: Keys{Int: make([]int64, n)}, TS: make([]int64, n), Values: make([]float64, n)}
	sorted := &Events{Keys: Keys{Int: make([]int64, n)}, TS: make([]int64, n), Values: make([]float64, n)}
	for i := range n {
		random.Keys.Int[i], random.TS[i] = rng.Int64N(keys), rng.Int64N(1000)
		sorted.Keys.Int[i], sorted.TS[i] = int64(i*keys/(20*n)), rng.Int64N(1000)
	}
	b.begin(random)
	if !b.streaming {
		t.Fatal("not streamed")
	}
	if got := b.share(random, 20*n, b.sample(random)); got != maxShare {
		t.Errorf("a batch in no key order stands for %.3f of the events, want %.2f", got, maxShare)
	}
	if got := b.share(sorted, 20*n, b.sample(sorted)); got < 0.04 || got > 0.06 {
		t.Errorf("the first 5%% of the events sorted by key stand for %.3f of them, want 0.05", got)
	}
	// A stray key at the end of the range spans it without standing for
	// the keys between: the keys the sample missed keep a tenth.
	sorted.Keys.Int[0] = keys - 1
	if got := b.share(sorted, 20*n, b.sample(sorted)); got > maxShare {
		t.Errorf("a sorted batch with a stray key stands for %.3f of the events, want at most %.2f", got, maxShare)
	}
	b.Close()
}

// TestBuilderEmptyBatchOfOtherKind: an empty batch that says the other key
// kind (a CSV file with only a header reads as integers), first or between
// others, changes nothing: the tiles are those of the batches with events,
// and an empty batch alone gives no tiles of its kind.
func TestBuilderEmptyBatchOfOtherKind(t *testing.T) {
	rng := rand.New(rand.NewPCG(55, 56))
	g := Grid{Width: 10}
	needs := aggregate.Sum.Needs()
	for _, str := range []bool{true, false} {
		full := genEvents(rng, 500, str, true, false)
		other := &Events{Keys: Keys{String: !str}}
		want := Build(full, g, needs, math.MinInt64, math.MaxInt64)
		for _, order := range [][]*Events{{other, full}, {full, other}, {other, full, other}} {
			for _, expect := range []bool{false, true} {
				b := NewBuilder(g, needs, math.MinInt64, math.MaxInt64)
				if expect && !str {
					b.Expect(slices.Min(full.Keys.Int), slices.Max(full.Keys.Int), slices.Min(full.TS), slices.Max(full.TS), full.Len())
				}
				for _, ev := range order {
					b.Add(ev)
				}
				if got := b.Finish(); !reflect.DeepEqual(got, want) {
					t.Fatalf("string keys %v, expect %v: %d tiles of kind %v, want %d", str, expect, got.Len(), got.Keys.String, want.Len())
				}
			}
			if j := Concat(order); j.Keys.String != str || j.Len() != full.Len() {
				t.Fatalf("Concat: %d events, string keys %v; want %d, %v", j.Len(), j.Keys.String, full.Len(), str)
			}
		}
		b := NewBuilder(g, needs, math.MinInt64, math.MaxInt64)
		b.Add(other)
		if got := b.Finish(); got.Len() != 0 || got.Keys.String != !str {
			t.Fatalf("an empty batch alone: %d tiles, string keys %v", got.Len(), got.Keys.String)
		}
	}
}

// TestSpreadSort: keys added to a spread beyond the room it was sized for
// come out of sortParts sorted within each partition, stably (values say
// the input order), each partition holding exactly its keys, with its
// distinct keys counted; a partition of a heavy range comes out folded, a
// state per distinct key in key order, summed in input order, through
// cells of a count, n and sum alone for those needs, of a whole state else.
func TestSpreadSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(55, 56))
	const width = 22
	key := func(i int) uint64 {
		if i%3 == 0 {
			return rng.Uint64N(64) // a heavy range, many repeats
		}
		return rng.Uint64N(1 << width)
	}
	// Room for fewer keys than come (the slab grows), and for more (many
	// partitions, a few keys each); slabs on the heap and, from 2 MiB,
	// mapped outside it, growing too.
	for ci, c := range []struct{ n, room int }{{0, 1 << 16}, {1, 1 << 16}, {5000, 1 << 16}, {1 << 17, 1 << 16}, {1 << 17, 1 << 20}, {1 << 20, 1 << 19}, {1 << 20, 1 << 19}} {
		n := c.n
		needs, sumOnly := aggregate.Sum.Needs(), ci%2 == 0
		if !sumOnly {
			needs |= aggregate.Min.Needs()
		}
		var sample []uint64
		for i := range n / 10 {
			sample = append(sample, key(i))
		}
		hugepage.Trim() // a spare would take the slab's place
		mapped := hugepage.Mapped()
		s := newSpread(width, c.room, sample, 0.1, true, 0, 1)
		if s == nil {
			t.Fatal("a 22-bit key does not fit a spread")
		}
		if runtime.GOOS == "linux" && c.room >= 1<<19 && hugepage.Mapped() <= mapped {
			t.Fatalf("room %d: the slab is not mapped outside the heap", c.room)
		}
		// Filed in chunks of several sizes, some skipped.
		var in []uint64
		var cs []uint64
		var vals []float64
		put := func() {
			s.file(cs, vals, nil)
			cs, vals = cs[:0], vals[:0]
		}
		for i := range n {
			c := key(i)
			in = append(in, c)
			cs, vals = append(cs, c), append(vals, float64(i))
			if rng.IntN(5) == 0 {
				cs, vals = append(cs, skipped), append(vals, -1)
			}
			if rng.IntN(1000) == 0 {
				put()
			}
		}
		put()
		tiles := s.sortParts(2, needs)
		var got []uint64
		folded := 0
		for d := range s.chains {
			ft := s.folded[d]
			if st := s.summed[d]; st != nil {
				if !sumOnly || ft != nil {
					t.Fatalf("n %d: partition %d folded through the cells of other needs (%s)", n, d, needs)
				}
				for _, x := range st {
					ft = append(ft, cellTile{off: x.off, st: aggregate.State{Count: x.count, N: x.n, Sum: x.sum}})
				}
			} else if ft != nil && sumOnly {
				t.Fatalf("n %d: partition %d folded through whole states for a sum", n, d)
			}
			if ft != nil {
				// Folded through cells: a tile per distinct key, in
				// key order, with the count and the in-order sum of
				// its values.
				folded++
				for i, tl := range ft {
					c := s.composite(d, tl.off)
					if p, _ := s.part(c); p != d || i > 0 && tl.off <= ft[i-1].off {
						t.Fatalf("n %d: folded partition %d: key %d out of place", n, d, c)
					}
					var want aggregate.State
					for j, k := range in {
						if k == c {
							addEvent(&want, float64(j), true, sumOnly)
						}
					}
					if tl.st != want {
						t.Fatalf("n %d: folded partition %d, key %d: state %+v, want %+v", n, d, c, tl.st, want)
					}
					for range tl.st.Count {
						got = append(got, c)
					}
				}
				if tiles[d] != len(ft) {
					t.Fatalf("n %d: partition %d counted %d tiles, holds %d", n, d, tiles[d], len(ft))
				}
				continue
			}
			distinct := 0
			prev, prevV := uint64(0), -1.0
			s.each(d, s.len(d, nil), func(lo, hi int) {
				for i := lo; i < hi; i++ {
					c := s.composite(d, s.keys[i])
					if p, _ := s.part(c); p != d {
						t.Fatalf("n %d: key %d in partition %d", n, c, d)
					}
					switch {
					case distinct > 0 && c < prev:
						t.Fatalf("n %d: partition %d not sorted", n, d)
					case distinct > 0 && c == prev && s.vals[i] < prevV:
						t.Fatalf("n %d: partition %d not stable", n, d)
					case distinct == 0 || c != prev:
						distinct++
					}
					if c != in[int(s.vals[i])] {
						t.Fatalf("n %d: value %v moved off its key", n, s.vals[i])
					}
					prev, prevV = c, s.vals[i]
					got = append(got, c)
				}
			})
			if tiles[d] != distinct {
				t.Fatalf("n %d: partition %d counted %d distinct keys, holds %d", n, d, tiles[d], distinct)
			}
		}
		if c.n >= 1<<17 && c.room >= 1<<20 && folded == 0 {
			t.Fatalf("n %d: the heavy range was sorted, not folded through cells", n)
		}
		slices.Sort(in)
		if !slices.Equal(got, in) {
			t.Fatalf("n %d: the spread holds %d keys, want the %d added", n, len(got), len(in))
		}
		s.release()
		if s.keys != nil || s.vals != nil {
			t.Fatalf("n %d: a released spread keeps its slab", n)
		}
	}
}

// TestBuilderSpill: a builder holding far less memory than its events
// evicts blocks to disk as batches arrive and builds in groups; the groups'
// tiles, in order, are Build's of the batches joined, bit for bit, with
// values or counts only, and Close leaves no file behind. A builder that
// cannot number the batches, or meets one outside its expectation, stops
// with an error and holds nothing.
func TestBuilderSpill(t *testing.T) {
	rng := rand.New(rand.NewPCG(57, 58))
	for iter := range 6 {
		needs := aggregate.Sum.Needs()
		switch iter % 3 {
		case 1:
			needs = aggregate.Count.Needs()
		case 2:
			needs = aggregate.Var.Needs() | aggregate.Min.Needs() | aggregate.Max.Needs()
		}
		g := Grid{Width: 3600e6, Origin: 0}
		z := rand.NewZipf(rng, 1.2, 4, 20_000)
		var batches []*Events
		for range 2 + rng.IntN(3) {
			n := 60_000 + rng.IntN(60_000)
			ev := &Events{TS: make([]int64, n), Values: make([]float64, n), Valid: make([]bool, n)}
			for i := range n {
				ev.Keys.Int = append(ev.Keys.Int, int64(z.Uint64())*3+100)
				ev.TS[i] = 1.7e15 + rng.Int64N(40*86400e6)
				ev.Values[i] = math.Round(rng.NormFloat64()*1000) / 8
				ev.Valid[i] = rng.IntN(50) != 0
			}
			batches = append(batches, ev)
		}
		joined := Concat(batches)
		from, to := int64(math.MinInt64), int64(math.MaxInt64)
		if iter%2 == 1 {
			from, to = 1.7e15+5*86400e6, 1.7e15+30*86400e6
		}
		want := Build(joined, g, needs, from, to)

		dir := t.TempDir()
		b := NewBuilder(g, needs, from, to)
		b.Expect(slices.Min(joined.Keys.Int), slices.Max(joined.Keys.Int), slices.Min(joined.TS), slices.Max(joined.TS), joined.Len())
		b.Spill(dir, 1<<20, 0)
		for _, ev := range batches {
			b.Add(ev)
		}
		if err := b.Err(); err != nil {
			t.Fatalf("iter %d: %v", iter, err)
		}
		evicted := 0
		for _, bs := range b.sp.disk.blocks {
			evicted += len(bs)
		}
		if evicted == 0 {
			t.Fatalf("iter %d: nothing evicted to disk as batches arrived", iter)
		}
		parts := b.Parts()
		if len(parts) < 2 {
			t.Fatalf("iter %d: %d events in 1 MB built in %d group", iter, joined.Len(), len(parts))
		}
		sets := buildAll(t, parts)
		for _, s := range sets {
			checkColumns(t, s)
		}
		got := concatSets(sets, needs)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("iter %d: spilled build made %d tiles in %d groups, Build %d, or they differ", iter, got.Len(), len(parts), want.Len())
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("iter %d: %d files left in the spill directory", iter, len(left))
		}
	}

	// Stops: string keys, no expectation, a batch outside it.
	str := genEvents(rng, 100, true, true, false)
	ints := genEvents(rng, 100, false, true, false)
	outside := genEvents(rng, 100, false, true, false)
	outside.Keys.Int[50] = slices.Max(ints.Keys.Int) + 1
	for name, c := range map[string]struct {
		expect  bool
		batches []*Events
	}{
		"string keys":    {true, []*Events{str}},
		"no expectation": {false, []*Events{ints}},
		"outside":        {true, []*Events{ints, outside}},
	} {
		dir := t.TempDir()
		b := NewBuilder(Grid{Width: 10}, aggregate.Sum.Needs(), math.MinInt64, math.MaxInt64)
		if c.expect {
			b.Expect(slices.Min(ints.Keys.Int), slices.Max(ints.Keys.Int), -1000, 2000, 200)
		}
		b.Spill(dir, 1<<20, 0)
		for _, ev := range c.batches {
			b.Add(ev)
		}
		if b.Err() == nil {
			t.Fatalf("%s: no error", name)
		}
		if _, err := b.Parts()[0](); err == nil {
			t.Fatalf("%s: Parts built", name)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("%s: %d files left after the builder stopped", name, len(left))
		}
	}
}

// buildAll builds every part of a builder, in order, and keeps a copy of
// each: a part's columns are valid until the next part is built.
func buildAll(t *testing.T, parts []func() (*Set, error)) []*Set {
	t.Helper()
	var sets []*Set
	for g, p := range parts {
		s, err := p()
		if err != nil {
			t.Fatalf("part %d of %d: %v", g+1, len(parts), err)
		}
		sets = append(sets, concatSets([]*Set{s}, s.Needs))
	}
	return sets
}

// concatSets joins sets of one kind, in order.
func concatSets(sets []*Set, needs aggregate.Needs) *Set {
	out := &Set{Needs: needs}
	n := 0
	for _, s := range sets {
		n += s.Len()
	}
	out.alloc(n)
	j := 0
	for _, s := range sets {
		for i := range s.Len() {
			st := s.State(i)
			out.Keys.Int[j] = s.Keys.Int[i]
			out.putState(j, s.Start[i], &st)
			j++
		}
	}
	return out
}

// TestSpreadSortedBatches: when each batch holds its own range of keys
// (files sorted by key), the partitions cut from the first batch still
// share out the later batches' events: none holds more than a few times
// its even share.
func TestSpreadSortedBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(59, 60))
	const batches, per = 10, 60_000
	var all []*Events
	for q := range batches {
		ev := &Events{TS: make([]int64, per)}
		for i := range per {
			ev.Keys.Int = append(ev.Keys.Int, int64(q*1000+rng.IntN(1000)))
			ev.TS[i] = rng.Int64N(100 * 3600e6)
		}
		all = append(all, ev)
	}
	joined := Concat(all)
	b := NewBuilder(Grid{Width: 3600e6}, aggregate.Count.Needs(), math.MinInt64, math.MaxInt64)
	b.Expect(0, batches*1000-1, 0, 100*3600e6, joined.Len())
	for _, ev := range all {
		b.Add(ev)
	}
	if !b.streaming {
		t.Fatal("not streamed")
	}
	parts, most := len(b.sp.chains), 0
	for d := range parts {
		most = max(most, b.sp.len(d, nil))
	}
	if even := joined.Len() / parts; most > 4*even {
		t.Fatalf("the fullest of %d partitions holds %d events, %.1f times its even share", parts, most, float64(most)/float64(even))
	}
	if got, want := b.Finish(), Build(joined, Grid{Width: 3600e6}, aggregate.Count.Needs(), math.MinInt64, math.MaxInt64); !reflect.DeepEqual(got, want) {
		t.Fatal("tiles differ from Build's")
	}
}

// TestSpillCuts: groups of partitions hold about equal counts, none is
// empty, and a heavy partition late in key order leaves fewer groups.
func TestSpillCuts(t *testing.T) {
	for _, c := range []struct {
		counts []int
		groups int
		want   []int
		folded map[int]int // partition -> tiles of its cells, for those folded as evicted
	}{
		{[]int{10, 10, 10, 10}, 2, []int{0, 2, 4}, nil},
		{[]int{10, 10, 10, 10}, 4, []int{0, 1, 2, 3, 4}, nil},
		{[]int{0, 10, 0, 10, 0}, 2, []int{0, 3, 5}, nil},
		{[]int{100, 1, 1, 1}, 4, []int{0, 1, 2, 3, 4}, nil},
		{[]int{1, 1, 1, 100}, 4, []int{0, 3, 4}, nil},
		{[]int{5, 0, 0}, 3, []int{0, 3}, nil},
		{[]int{0, 0}, 2, []int{0, 2}, nil},
		// A folded partition weighs its tiles, at what a tile costs a
		// group's build against a key on disk: 68 tiles as much as 60 keys.
		{[]int{0, 10, 10, 10, 10}, 2, []int{0, 1, 5}, map[int]int{0: 68}},
		{[]int{10, 10, 0, 10, 10}, 3, []int{0, 2, 3, 5}, map[int]int{2: 68}},
		{[]int{0, 0}, 2, []int{0, 1, 2}, map[int]int{0: 1, 1: 1}},
	} {
		st := &spillStore{blocks: make([][]onDisk, len(c.counts)), pre: make([]*prefold, len(c.counts))}
		for d, n := range c.counts {
			if n > 0 {
				st.blocks[d] = []onDisk{{n: n}}
			}
		}
		for d, tiles := range c.folded {
			p := &prefold{sums: newSumCells(tiles + 3)}
			for k := range tiles {
				p.sums[k].count = 1
			}
			st.pre[d] = p
		}
		got := st.cuts(c.groups)
		if !slices.Equal(got, c.want) {
			t.Errorf("counts %v, folded %v, in %d groups: cuts %v, want %v", c.counts, c.folded, c.groups, got, c.want)
		}
	}
}

// TestBuilderCloseFrees: a builder given up before Finish frees, on Close,
// the buffer it filed its events in outside the Go heap; so does Finish.
func TestBuilderCloseFrees(t *testing.T) {
	const n = 1 << 20 // a slab of several MiB: mapped where the platform maps
	ev := &Events{Keys: Keys{Int: make([]int64, n)}, TS: make([]int64, n), Values: make([]float64, n)}
	for i := range n {
		ev.Keys.Int[i], ev.TS[i], ev.Values[i] = int64(i%5000), int64(i)*1000, float64(i)
	}
	hugepage.Trim()
	before := hugepage.Mapped()
	for _, finish := range []bool{false, true} {
		b := NewBuilder(Grid{Width: 3600e6}, aggregate.Sum.Needs(), math.MinInt64, math.MaxInt64)
		b.Expect(0, 4999, 0, int64(n)*1000, n)
		b.Add(ev)
		if !b.streaming {
			t.Fatal("not streamed")
		}
		if runtime.GOOS == "linux" && hugepage.Mapped() <= before {
			t.Fatal("the slab is not mapped outside the heap")
		}
		if finish {
			if got := b.Finish(); got.Len() == 0 {
				t.Fatal("no tiles")
			}
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		hugepage.Trim() // a freed slab waits, mapped, for the next
		if got := hugepage.Mapped(); got != before {
			t.Fatalf("finish %v: %d bytes still mapped after Close, %d before", finish, got, before)
		}
	}
}

// TestFoldSumsBits: a partition folded through cells of a count, n and sum
// gives each tile the bits that State.Add's order gives, for values whose
// sums are delicate: negative zeros alone, zeros of both signs, nulls
// alone, infinities of both signs (whose sum is NaN), and huge values that
// overflow.
func TestFoldSumsBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(73, 74))
	const width, n = 8, 20_000
	pool := []float64{0, math.Copysign(0, -1), 1.5, 1e308, -1e308, math.Inf(1), math.Inf(-1), math.NaN()}
	s := newSpread(width, n, nil, 0, true, 0, 1)
	var cs []uint64
	var vals []float64
	for range n {
		k := rng.Uint64N(1 << width)
		v := pool[rng.IntN(len(pool))]
		switch {
		case k%7 == 0: // negative zeros alone
			v = math.Copysign(0, -1)
		case k%11 == 0: // nulls alone
			v = math.NaN()
		case k%13 == 0: // zeros of either sign
			v = pool[rng.IntN(2)]
		}
		cs, vals = append(cs, k), append(vals, v)
	}
	s.file(cs, vals, nil)
	s.sortParts(1, aggregate.Sum.Needs())
	checked := 0
	for d := range s.chains {
		for _, x := range s.summed[d] {
			c := s.composite(d, x.off)
			var want aggregate.State
			for i, k := range cs {
				if k == c {
					addEvent(&want, vals[i], true, true)
				}
			}
			if x.count != want.Count || x.n != want.N || math.Float64bits(x.sum) != math.Float64bits(want.Sum) {
				t.Fatalf("key %d: count %d, n %d, sum %v (%x); State.Add gives %d, %d, %v (%x)",
					c, x.count, x.n, x.sum, math.Float64bits(x.sum), want.Count, want.N, want.Sum, math.Float64bits(want.Sum))
			}
			checked++
		}
	}
	if checked != 1<<width {
		t.Fatalf("%d tiles folded through sum cells, want all %d keys'", checked, 1<<width)
	}
}

// TestBuilderEmptyRange: a builder of an empty time range, however its
// ends compare (to at MinInt64, where to-1 wraps), keeps no event, as Build.
func TestBuilderEmptyRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(95, 96))
	ev := genEvents(rng, 500, false, true, true)
	for i := range ev.Keys.Int {
		ev.Keys.Int[i] %= 50 // dense: the batch is numbered as it arrives
	}
	kmin, kmax := slices.Min(ev.Keys.Int), slices.Max(ev.Keys.Int)
	tmin, tmax := slices.Min(ev.TS), slices.Max(ev.TS)
	for _, r := range [][2]int64{{5, math.MinInt64}, {math.MinInt64, math.MinInt64}, {100, 100}, {100, -100}} {
		g := Grid{Width: 7}
		b := NewBuilder(g, aggregate.Sum.Needs(), r[0], r[1])
		b.Expect(kmin, kmax, tmin, tmax, ev.Len())
		b.Add(ev)
		if b.streaming {
			t.Fatalf("range [%d, %d): the batch was numbered as it arrived, with no event to keep", r[0], r[1])
		}
		if got, want := b.Finish(), Build(ev, g, aggregate.Sum.Needs(), r[0], r[1]); got.Len() != 0 || want.Len() != 0 {
			t.Fatalf("range [%d, %d): builder made %d tiles, Build %d; want none", r[0], r[1], got.Len(), want.Len())
		}
	}
}
