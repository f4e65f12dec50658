package tilestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/internal/hugepage"
	"github.com/tessera-fe/tessera/tile"
)

// manyGroupRows makes tiles of keys [0, keys) at hours [0, hours), with
// every needs column filled, enough for several row groups.
func manyGroupRows(needs aggregate.Needs, stringKeys bool, keys, hours int, tag float64) []row {
	rng := rand.New(rand.NewPCG(uint64(keys), uint64(hours)))
	var rows []row
	for k := range keys {
		for h := range hours {
			var st aggregate.State
			for range 1 + rng.IntN(3) {
				st.Add(tag+rng.NormFloat64(), rng.IntN(5) != 0)
			}
			r := row{IntKey: int64(k)*7 - 1000, Start: int64(h) * hour, State: mask(needs, st)}
			if stringKeys {
				r.StrKey, r.IntKey = fmt.Sprintf("k%05d", k), 0
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// TestObjectFormats decodes objects written in every format a tile object
// may have been written in (the codecs and encodings new objects use, the
// ones older builds used, and dictionary-encoded pages, which take the slow
// path), for int and string keys, whole and filtered, on one core and many.
func TestObjectFormats(t *testing.T) {
	needs := aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedM2 | aggregate.NeedMin | aggregate.NeedMax
	formats := append(slices.Clone(benchFormats), struct {
		name string
		f    objectFormat
	}{"dictionary", objectFormat{codec: &parquet.Snappy, ints: &parquet.RLEDictionary, floats: &parquet.RLEDictionary}})
	for _, stringKeys := range []bool{false, true} {
		rows := manyGroupRows(needs, stringKeys, 60, 80, 3) // 4800 tiles: 5 row groups
		set := setOf(needs, stringKeys, rows)
		m := &Manifest{TileSet: "formats", Needs: needs, StringKeys: stringKeys, Grid: hourGrid}
		keep := &KeyFilter{Int: map[int64]struct{}{rows[0].IntKey: {}, rows[len(rows)-1].IntKey: {}}, Str: map[string]struct{}{rows[0].StrKey: {}, rows[len(rows)-1].StrKey: {}}}
		r := Range{10 * hour, 30 * hour}
		want := filterRows(rows, func(x row) bool {
			_, ok := keep.Int[x.IntKey]
			if stringKeys {
				_, ok = keep.Str[x.StrKey]
			}
			return ok && r.Contains(x.Start)
		})
		for _, f := range formats {
			data, o, err := encodeObjectAs("x.parquet", set, 0, set.Len(), hour, f.f)
			if err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
			if len(o.RowGroups) < 4 {
				t.Fatalf("%s: %d row groups, want several", f.name, len(o.RowGroups))
			}
			for _, workers := range []int{1, 3} {
				name := fmt.Sprintf("%s, string keys %v, %d workers", f.name, stringKeys, workers)
				ob, err := openTileObject(m, o, bytes.NewReader(data), nil)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				all := newSet(needs, stringKeys)
				if _, err := decodeObjects([]*openObject{ob}, decodeOptions{r: everything, workers: workers}, all); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				equalRows(t, name, all, rows)
				// The filter's keys looked up in its map, and walked sorted.
				for _, sorted := range []keyPruner{{}, newKeyPruner(keep, stringKeys)} {
					part := newSet(needs, stringKeys)
					if _, err := decodeObjects([]*openObject{ob}, decodeOptions{r: r, keep: keep, sorted: sorted, workers: workers}, part); err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					equalRows(t, fmt.Sprintf("%s, filtered (sorted keys %v)", name, sorted.on), part, want)
				}
			}
		}
	}
}

// TestMixedFormats loads a tile set whose objects were committed in
// different formats: readers must read what earlier builds wrote.
func TestMixedFormats(t *testing.T) {
	defer func(f objectFormat) { tileFormat = f }(tileFormat)
	s := openDir(t)
	needs := aggregate.NeedCount | aggregate.NeedSum
	rows := manyGroupRows(needs, false, 40, 60, 1)
	var want []row
	for i, f := range []objectFormat{
		{codec: &parquet.Zstd}, // what earlier builds wrote
		{codec: &parquet.Snappy, ints: &parquet.DeltaBinaryPacked},
		{codec: &parquet.Uncompressed},
	} {
		tileFormat = f
		cover := Range{int64(i*20) * hour, int64(i*20+20) * hour}
		part := filterRows(rows, func(x row) bool { return cover.Contains(x.Start) })
		want = append(want, part...)
		mustCommit(t, s, Commit{TileSet: "mixed", Needs: needs, Grid: hourGrid, Cover: cover, Tiles: setOf(needs, false, part)})
	}
	sortRows(want)
	equalRows(t, "mixed formats", mustLoad(t, s, "mixed", everything, nil), want)
	if p, err := s.Verify(context.Background(), "mixed"); err != nil || len(p) != 0 {
		t.Fatalf("Verify: %v, %v", p, err)
	}
}

// TestDecodeOrderChecks decodes objects whose tiles are out of order within
// a row group, across row groups and across objects, in parallel: each is
// an error naming the object and the row group.
func TestDecodeOrderChecks(t *testing.T) {
	needs := aggregate.NeedCount
	rows := manyGroupRows(needs, false, 30, 100, 0) // 3000 tiles: 3 row groups
	m := &Manifest{TileSet: "order", Needs: needs, Grid: hourGrid}
	for _, c := range []struct {
		name string
		swap int // tiles swap and swap+1 trade places
		msg  string
	}{
		{"within a row group", 500, "row group 0 row 501 is out of (key, bucket_start) order"},
		{"across row groups", RowGroupRows - 1, "row group 1 row 0 is out of (key, bucket_start) order"},
		{"duplicate", -1, "row group 2 row 0 is out of (key, bucket_start) order"},
	} {
		bad := slices.Clone(rows)
		if c.swap >= 0 {
			bad[c.swap], bad[c.swap+1] = bad[c.swap+1], bad[c.swap]
		} else {
			bad[2*RowGroupRows] = bad[2*RowGroupRows-1]
		}
		set := setOf(needs, false, bad)
		data, o, err := encodeObjectAs("bad.parquet", set, 0, set.Len(), hour, tileFormat)
		if err != nil {
			t.Fatal(err)
		}
		err = decodeObject(m, o, data, everything, nil, newSet(needs, false))
		if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "bad.parquet") || !strings.Contains(err.Error(), c.msg) {
			t.Fatalf("%s: decode returned %v; want a damaged-object error saying %q", c.name, err, c.msg)
		}
	}

	// Two objects that hold the same tile: Load says which.
	s := openDir(t)
	set := setOf(needs, false, rows)
	mf := mustCommit(t, s, Commit{TileSet: "dup", Needs: needs, Grid: hourGrid, Cover: Range{0, 100 * hour}, Tiles: set})
	twice := *mf
	twice.Objects = []Object{mf.Objects[0], mf.Objects[0]}
	_, err := s.Load(context.Background(), &twice, everything, nil)
	if err == nil || !strings.Contains(err.Error(), "two objects hold the tile of key -1000 at bucket start 0") {
		t.Fatalf("load of one object listed twice returned %v; want the duplicate tile named", err)
	}
}

// TestDecodeRowCountChecks decodes objects whose row counts contradict the
// manifest.
func TestDecodeRowCountChecks(t *testing.T) {
	needs := aggregate.NeedCount | aggregate.NeedSum
	rows := manyGroupRows(needs, false, 30, 100, 0)
	set := setOf(needs, false, rows)
	data, o, err := encodeObjectAs("n.parquet", set, 0, set.Len(), hour, tileFormat)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{TileSet: "rows", Needs: needs, Grid: hourGrid}
	short := o
	short.Rows--
	if err := decodeObject(m, short, data, everything, nil, newSet(needs, false)); !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "it holds 3000 tiles but the manifest lists 2999") {
		t.Fatalf("decode with a wrong row count returned %v", err)
	}
	groups := make([]bool, len(o.RowGroups))
	groups[1] = true
	fewer := o
	fewer.RowGroups = slices.Clone(o.RowGroups)
	fewer.RowGroups[1].Rows--
	if _, err := openTileObject(m, fewer, bytes.NewReader(data), groups); !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "row group 1 holds 1024 tiles, the manifest records 1023") {
		t.Fatalf("open with a wrong row group count returned %v", err)
	}
	// The manifest needs a column the object lacks.
	wider := &Manifest{TileSet: "rows", Needs: needs | aggregate.NeedMax, Grid: hourGrid}
	if _, err := openTileObject(wider, o, bytes.NewReader(data), nil); !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "missing column max") {
		t.Fatalf("open without a needed column returned %v", err)
	}
}

// TestMergeRuns checks the merge of sorted runs against a stable sort.
func TestMergeRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, nruns := range []int{2, 3, 5, 8} {
		var rows []row
		runs := []int{0}
		for range nruns {
			var run []row
			for range rng.IntN(50) {
				run = append(run, row{IntKey: rng.Int64N(20), Start: rng.Int64N(10) * hour, State: aggregate.State{Count: int64(len(rows) + len(run))}})
			}
			sortRows(run)
			rows = append(rows, run...)
			runs = append(runs, len(rows))
		}
		set := setOf(aggregate.NeedCount, false, rows)
		mergeRuns(set, runs)
		want := slices.Clone(rows)
		slices.SortStableFunc(want, func(a, b row) int {
			if c := cmpInt(a.IntKey, b.IntKey); c != 0 {
				return c
			}
			return cmpInt(a.Start, b.Start)
		})
		equalRows(t, fmt.Sprintf("%d runs", nruns), set, want)
	}
}

// TestManifestKeys counts distinct keys from the manifest alone.
func TestManifestKeys(t *testing.T) {
	s := openDir(t)
	needs := aggregate.NeedCount
	rows := manyGroupRows(needs, false, 30, 10, 0)
	m := mustCommit(t, s, Commit{TileSet: "keys", Needs: needs, Grid: hourGrid, Cover: Range{0, 10 * hour}, Tiles: setOf(needs, false, rows)})
	if n, exact := m.Keys(); n != 30 || !exact {
		t.Fatalf("one commit of 30 keys: Keys() = %d, %v", n, exact)
	}
	m, err := s.Manifest(context.Background(), "keys")
	if err != nil {
		t.Fatal(err)
	}
	if m.Objects[0].Keys != 30 {
		t.Fatalf("the manifest read back records %d keys, want 30", m.Objects[0].Keys)
	}
	// A second commit over another time range holds the same keys: the
	// count is an upper bound.
	more := manyGroupRows(needs, false, 5, 20, 0)
	more = filterRows(more, func(x row) bool { return x.Start >= 10*hour })
	m = mustCommit(t, s, Commit{TileSet: "keys", Needs: needs, Grid: hourGrid, Cover: Range{10 * hour, 20 * hour}, Tiles: setOf(needs, false, more)})
	if n, exact := m.Keys(); n != 35 || exact {
		t.Fatalf("two commits over the same keys: Keys() = %d, %v; want the bound 35, inexact", n, exact)
	}

	obj := func(lo, hi string, keys int64) Object {
		return Object{Rows: 100, MinKey: lo, MaxKey: hi, Keys: keys}
	}
	for _, c := range []struct {
		name  string
		str   bool
		objs  []Object
		n     int64
		exact bool
	}{
		{"disjoint", false, []Object{obj("10", "19", 5), obj("-5", "9", 7)}, 12, true},
		{"meeting at one key", false, []Object{obj("1", "9", 5), obj("9", "9", 1), obj("9", "20", 4)}, 8, true},
		{"overlapping", false, []Object{obj("1", "10", 5), obj("5", "20", 4)}, 9, false},
		{"inside another", false, []Object{obj("1", "100", 50), obj("2", "3", 2), obj("200", "300", 1)}, 53, false},
		{"numeric, not text, order", false, []Object{obj("9", "9", 1), obj("10", "10", 1)}, 2, true},
		{"strings", true, []Object{obj("b", "c", 2), obj("a", "b", 2)}, 3, true},
		{"written without counts", false, []Object{obj("1", "5", 0)}, 100, false},
		{"empty object", false, []Object{{Rows: 0}, obj("1", "5", 3)}, 3, true},
	} {
		m := &Manifest{StringKeys: c.str, Objects: c.objs}
		if n, exact := m.Keys(); n != c.n || exact != c.exact {
			t.Errorf("%s: Keys() = %d, %v; want %d, %v", c.name, n, exact, c.n, c.exact)
		}
	}
}

// BenchmarkMergeRuns merges the tiles of 8 commits of one week each.
func BenchmarkMergeRuns(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var rows []row
	runs := []int{0}
	for w := range int64(8) {
		for k := range int64(20_000) {
			for h := w * 42; h < (w+1)*42; h += 1 + rng.Int64N(6) {
				rows = append(rows, row{IntKey: k, Start: h * 4 * hour})
			}
		}
		runs = append(runs, len(rows))
	}
	set := setOf(aggregate.NeedCount, false, rows)
	b.ReportAllocs()
	for b.Loop() {
		s := *set
		mergeRuns(&s, runs)
	}
	b.ReportMetric(float64(len(rows))*float64(b.N)/b.Elapsed().Seconds(), "tiles/s")
}

// TestGrowTo: an empty column becomes n zeros, large enough to ask for
// huge pages until the requests are withdrawn; a column with rows keeps
// them and grows, and an absent (nil) column stays absent.
func TestGrowTo(t *testing.T) {
	var fresh hugepage.Requests
	if got := growTo([]int64{}, 5, &fresh); len(got) != 5 || got[0] != 0 || got[4] != 0 {
		t.Fatalf("empty column grown to 5: %v", got)
	}
	big := growTo([]float64{}, 1<<20, &fresh)
	if len(big) != 1<<20 || big[0] != 0 || big[len(big)-1] != 0 {
		t.Fatalf("empty column grown to 1Mi: %d values", len(big))
	}
	fresh.Written()
	if got := growTo([]float64{1.5, 2}, 4, &fresh); len(got) != 4 || got[0] != 1.5 || got[1] != 2 {
		t.Fatalf("column [1.5 2] grown to 4: %v", got)
	}
	if got := growTo([]int64(nil), 3, &fresh); got != nil {
		t.Fatalf("absent column grown to 3: %v", got)
	}
	if got := growTo([]int64{1, 2, 3}, 2, &fresh); len(got) != 3 {
		t.Fatalf("column of 3 grown to 2: %v", got)
	}
}

// TestKeyCursor: a cursor over sorted keys answers, for keys asked in
// ascending order (repeats included), what a set of the keys answers,
// whether the keys asked step over one key or many, and for string keys.
func TestKeyCursor(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := range 200 {
		var keys []int64
		for k := rng.Int64N(5); len(keys) < rng.IntN(300); k += 1 + rng.Int64N([]int64{1, 3, 1000}[iter%3]) {
			keys = append(keys, k)
		}
		set := map[int64]bool{}
		for _, k := range keys {
			set[k] = true
		}
		c := keyCursor[int64]{keys: keys}
		s := keyCursor[string]{keys: nil}
		end := int64(10)
		if len(keys) > 0 {
			end = keys[len(keys)-1] + 3
		}
		hits := 0
		for q := int64(-2); q < end; {
			if got := c.has(q); got != set[q] {
				t.Fatalf("iter %d: has(%d) = %v over %v", iter, q, got, keys)
			} else if got {
				hits++
			}
			if s.has(fmt.Sprint(q)) {
				t.Fatal("an empty cursor holds a key")
			}
			switch r := rng.IntN(4); {
			case r == 0: // ask again
			case r == 1: // a few keys on
				q += 1 + rng.Int64N(3)
			case r == 2: // far on
				q += 1 + rng.Int64N(end/4+1)
			default: // the next key held, however far
				if i, _ := slices.BinarySearch(keys, q+1); i < len(keys) {
					q = keys[i]
				} else {
					q = end
				}
			}
		}
		if len(keys) > 10 && hits == 0 {
			t.Fatalf("iter %d: no key asked was held", iter)
		}
	}
	words := []string{"ant", "bee", "cat", "dog", "eel"}
	c := keyCursor[string]{keys: words}
	for _, w := range []string{"", "ant", "ant", "b", "bee", "cow", "dog", "eel", "fox"} {
		if got, want := c.has(w), slices.Contains(words, w); got != want {
			t.Fatalf("has(%q) = %v, want %v", w, got, want)
		}
	}
}

// TestLoadScratch: a load into scratch columns returns what Load returns,
// whole, by range and by key, from objects that interleave (a commit in
// key-hash parts) and from one, though the scratch memory holds bytes no
// decode writes; loads after a release reuse the memory. A failed load has
// nothing to release.
func TestLoadScratch(t *testing.T) {
	defer func() { fillScratch = nil }()
	filled := 0
	fillScratch = func(b []byte) {
		filled++
		for i := range b {
			b[i] = 0xa5
		}
	}
	ctx := context.Background()
	s := openDir(t)
	needs := aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedM2 | aggregate.NeedMin | aggregate.NeedMax
	rows := manyGroupRows(needs, false, 300, 40, 5) // 12000 tiles
	odd := func(x row) bool { return x.IntKey%2 != 0 }
	parts := []func() (*tile.Set, error){
		func() (*tile.Set, error) { return setOf(needs, false, filterRows(rows, odd)), nil },
		func() (*tile.Set, error) {
			return setOf(needs, false, filterRows(rows, func(x row) bool { return !odd(x) })), nil
		},
	}
	mustCommit(t, s, Commit{TileSet: "parts", Needs: needs, Grid: hourGrid, Cover: Range{0, 40 * hour}, Parts: parts})
	mustCommit(t, s, Commit{TileSet: "whole", Needs: needs, Grid: hourGrid, Cover: Range{0, 40 * hour}, Tiles: setOf(needs, false, rows)})
	keys := &KeyFilter{Int: map[int64]struct{}{rows[0].IntKey: {}, rows[len(rows)/2].IntKey: {}, rows[len(rows)-1].IntKey: {}}}
	for _, id := range []string{"parts", "whole"} {
		m, err := s.Manifest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			r    Range
			keep *KeyFilter
		}{{everything, nil}, {Range{5 * hour, 17 * hour}, nil}, {everything, keys}, {Range{0, 3 * hour}, keys}} {
			for range 2 {
				want, err := s.Load(ctx, m, c.r, c.keep)
				if err != nil {
					t.Fatal(err)
				}
				got, release, err := s.LoadScratch(ctx, m, c.r, c.keep)
				if err != nil {
					t.Fatal(err)
				}
				equalRows(t, fmt.Sprintf("%s, range %v, keys %v", id, c.r, c.keep != nil), got, rowsOf(want))
				release()
			}
		}
	}
	if filled == 0 {
		t.Fatal("no load took scratch columns")
	}
	if set, release, err := s.LoadScratch(ctx, nil, everything, nil); err == nil || set != nil || release != nil {
		t.Fatalf("a load without a manifest returned %v, %v", set, err)
	}
}

// TestObjectBuffers checks that no loaded tile reads the buffer its object
// was read into, which the next load reuses: loads of int and string keys
// with freed buffers overwritten equal the tiles committed. It also checks
// that a buffer is never handed out at a size far from the one asked for.
func TestObjectBuffers(t *testing.T) {
	poisonObjectBuffers = true
	defer func() { poisonObjectBuffers = false }()
	ctx := context.Background()
	s := openDir(t)
	needs := aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedMin
	for _, str := range []bool{false, true} {
		rows := manyGroupRows(needs, str, 200, 30, 3)
		id := fmt.Sprintf("strings-%v", str)
		m := mustCommit(t, s, Commit{TileSet: id, Needs: needs, StringKeys: str, Grid: hourGrid, Cover: Range{0, 30 * hour}, Tiles: setOf(needs, str, rows)})
		for i := range 3 {
			got, err := s.Load(ctx, m, everything, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The next load overwrites the buffers this one freed.
			if _, err := s.Load(ctx, m, everything, nil); err != nil {
				t.Fatal(err)
			}
			equalRows(t, fmt.Sprintf("%s, load %d", id, i), got, rows)
		}
	}
	// Buffers wait to be reused at a size close to their own, for
	// bufferIdle, within maxBufferBytes.
	defer func(d time.Duration) { bufferIdle = d }(bufferIdle)
	bufferIdle = time.Hour
	var l bufferList
	big := l.get(1000)
	l.put(big)
	if p := l.get(300); len(*p) != 300 || p == big {
		t.Fatalf("asked for 300 bytes, got %d, or the buffer of 1000", len(*p))
	}
	if p := l.get(900); len(*p) != 900 || p != big {
		t.Fatalf("asked for 900 bytes, got %d, or not the buffer of 1000 that waits", len(*p))
	}
	if l.get(0) != nil || l.get(1<<31) != nil {
		t.Fatal("a buffer of 0 or 2^31 bytes")
	}
	a, b, c := l.get(maxBufferBytes/2), l.get(maxBufferBytes/2), l.get(maxBufferBytes/2)
	l.put(a)
	l.put(b)
	l.put(c)
	if l.bytes > maxBufferBytes || len(l.list) != 2 || l.list[0].b != b || l.list[1].b != c {
		t.Fatalf("%d buffers of %d bytes wait (the oldest dropped?), over %d", len(l.list), l.bytes, maxBufferBytes)
	}
	l.get(maxBufferBytes / 2)
	l.get(maxBufferBytes / 2)
	bufferIdle = time.Millisecond
	l = bufferList{}
	l.put(l.get(10))
	time.Sleep(50 * time.Millisecond)
	l.mu.Lock()
	waiting := len(l.list)
	l.mu.Unlock()
	if waiting != 0 {
		t.Fatalf("%d buffers still wait after their idle time", waiting)
	}
}

// TestFooterCache checks the store's parsed footers: loads of an object,
// whole or by row group, parse its footer once; a load while another holds
// it, an object of another checksum and a footer beyond the bound are
// parsed for their load alone; concurrent loads all read their tiles.
func TestFooterCache(t *testing.T) {
	ctx := context.Background()
	s := openDir(t)
	needs := aggregate.NeedCount | aggregate.NeedSum
	rows := manyGroupRows(needs, false, 200, 30, 2)
	m := mustCommit(t, s, Commit{TileSet: "f", Needs: needs, Grid: hourGrid, Cover: Range{0, 30 * hour}, Tiles: setOf(needs, false, rows)})
	one := &KeyFilter{Int: map[int64]struct{}{rows[0].IntKey: {}}}
	wantOne := filterRows(rows, func(x row) bool { return x.IntKey == rows[0].IntKey })
	parsed := func(want int64) {
		t.Helper()
		if got := s.footersParsed.Load(); got != want {
			t.Fatalf("%d footers parsed, want %d", got, want)
		}
	}
	for i := range 3 {
		equalRows(t, fmt.Sprintf("load %d", i), mustLoad(t, s, "f", everything, nil), rows)
		equalRows(t, fmt.Sprintf("ranged load %d", i), mustLoad(t, s, "f", everything, one), wantOne)
	}
	parsed(1)
	o := m.Objects[0]
	data, err := s.bucket.ReadAll(ctx, dataKey("f", o.Name))
	if err != nil {
		t.Fatal(err)
	}
	// Held by one load, the footer is parsed again for another.
	held, err := s.openTileObject(m, o, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	equalRows(t, "load while held", mustLoad(t, s, "f", everything, nil), rows)
	parsed(2)
	held.free()
	equalRows(t, "load once given back", mustLoad(t, s, "f", everything, nil), rows)
	parsed(2)
	// An object of the same name and another checksum is parsed anew, and
	// takes the entry's place.
	other := o
	other.CRC32C = "00000000"
	for range 2 {
		ob, err := s.openTileObject(m, other, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		ob.free()
	}
	parsed(3)
	mustLoad(t, s, "f", everything, nil)
	parsed(4)
	// Concurrent loads.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				got, err := s.Load(ctx, m, everything, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.Equal(rowsOf(got), rowsOf(setOf(needs, false, rows))) {
					t.Error("a concurrent load read other tiles")
				}
			}
		})
	}
	wg.Wait()
	// With room for one footer, a load of another object evicts the
	// least recently used, unless a load holds it; a footer beyond the
	// bound is parsed for each load.
	defer func(n int64) { maxFooterBytes = n }(maxFooterBytes)
	maxFooterBytes = o.Bytes - o.Footer
	m2 := mustCommit(t, s, Commit{TileSet: "g", Needs: needs, Grid: hourGrid, Cover: Range{0, 30 * hour}, Tiles: setOf(needs, false, rows)})
	loads := func(m *Manifest, n int) {
		t.Helper()
		for range n {
			if _, err := s.Load(ctx, m, everything, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := s.footersParsed.Load() // the concurrent loads parsed some
	loads(m, 1)
	parsed(base)
	loads(m2, 3) // evicts f's entry
	parsed(base + 1)
	loads(m, 2) // evicts g's
	parsed(base + 2)
	held, err = s.openTileObject(m, o, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	loads(m2, 2) // f's is held: g's are parsed for their loads alone
	parsed(base + 4)
	held.free()
	loads(m, 1)
	parsed(base + 4)
	if len(s.footers.files) != 1 || s.footers.bytes > maxFooterBytes {
		t.Fatalf("%d entries of %d footer bytes, over %d", len(s.footers.files), s.footers.bytes, maxFooterBytes)
	}
	maxFooterBytes = 0
	m3 := mustCommit(t, s, Commit{TileSet: "h", Needs: needs, Grid: hourGrid, Cover: Range{0, 30 * hour}, Tiles: setOf(needs, false, rows)})
	loads(m3, 2)
	parsed(base + 6)
}
