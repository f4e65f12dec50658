package offline

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/cputime"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// setTiles serves whole prebuilt tile sets, sorted by (key, start) as a
// store returns them, ignoring the range and key filter: a store whose
// reads cost nothing, so that a benchmark times the query alone.
type setTiles map[string]*tile.Set

func (s setTiles) Manifest(_ context.Context, id string) (*tilestore.Manifest, error) {
	set := s[id]
	if set == nil {
		return nil, nil
	}
	return &tilestore.Manifest{TileSet: id, Needs: set.Needs, StringKeys: set.Keys.String,
		Coverage: []tilestore.Range{{From: math.MinInt64, To: math.MaxInt64}}}, nil
}

func (s setTiles) Load(_ context.Context, m *tilestore.Manifest, _ tilestore.Range, _ *tilestore.KeyFilter) (*tile.Set, error) {
	return s[m.TileSet], nil
}

// sweepBenchConfig is the training set of the benchmark harness: sum, count
// and mean over 7d, 30d and all, from one tile set.
const sweepBenchConfig = `sources:
  transactions: {path: events, timestamp: ts}
entities:
  user: {key: user_id}
features:
  user.amount_sum:   {source: transactions, aggregation: sum,   value: amount, windows: [7d, 30d, all], materialization: {bucket_duration: 4h}}
  user.amount_mean:  {source: transactions, aggregation: mean,  value: amount, windows: [7d, 30d, all], materialization: {bucket_duration: 4h}}
  user.amount_count: {source: transactions, aggregation: count, windows: [7d, 30d, all], materialization: {bucket_duration: 4h}}
`

// BenchmarkMaterialized measures spine rows/s of the materialized query of
// sum, count and mean over 7d, 30d and all (9 columns) with tiles already in
// memory: dictionary, spine grouping, tile series, sweep and output. The
// size follows TESSERA_BENCH_SCALE like BenchmarkQuery.
func BenchmarkMaterialized(b *testing.B) {
	nev, nrows := benchScale()
	spec := sample.Default()
	spec.Events, spec.SpineRows, spec.Users = nev, nrows, uint64(max(1000, nev/50))
	events := sample.Events(spec)
	spt := sample.Spine(spec, events)
	cfg, err := feature.Parse("bench.yaml", []byte(sweepBenchConfig))
	if err != nil {
		b.Fatal(err)
	}
	ts := cfg.TileSets()[0]
	store := setTiles{ts.ID: tile.Build(EventsOf(events, EventSpec{Source: ts.Source, Key: ts.Key, Value: ts.Value}, "ts", nil),
		ts.Grid, ts.Needs, math.MinInt64, math.MaxInt64)}
	sp := &Spine{Keys: tile.Keys{Int: spt.Column("user_id").Ints}, Times: spt.Column("ts").Ints}
	var refs []feature.Ref
	for _, f := range []string{"amount_sum", "amount_count", "amount_mean"} {
		for _, w := range []string{"7d", "30d", "all"} {
			r, err := feature.ParseRef("user." + f + "[" + w + "]")
			if err != nil {
				b.Fatal(err)
			}
			refs = append(refs, r)
		}
	}
	eng := &Engine{Config: cfg, Events: tableEvents{t: events, ts: "ts"}, Tiles: store}
	b.ReportAllocs()
	runs := 0
	cpu0 := int64(cputime.Process())
	for b.Loop() {
		if _, err := eng.Query(context.Background(), sp, refs, Options{Materialized: true}); err != nil {
			b.Fatal(err)
		}
		runs++
	}
	b.ReportMetric(float64(int64(cputime.Process())-cpu0)/float64(runs), "cpu-ns/op")
	b.ReportMetric(float64(runs*len(sp.Times))/b.Elapsed().Seconds(), "rows/s")
}

// TestGroupByThenPos: rows grouped by id, sorted by position within an id
// (runs short and long, sorted or not), rows with id -1 left out, and the
// same result whether one or several cores share the work.
func TestGroupByThenPos(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, nkeys = 300_000, 5000
	ids := make([]int32, n)
	pos := make([]int64, n)
	for i := range ids {
		switch {
		case i%17 == 0:
			ids[i] = -1
		case i%3 == 0:
			ids[i] = int32(rng.IntN(4)) // long runs, out of order
		default:
			ids[i] = int32(rng.IntN(nkeys))
		}
		pos[i] = rng.Int64N(1<<50) - 1<<49
		if ids[i] == 7 {
			pos[i] = int64(i) // a long run already in order
		}
	}
	group := func(procs int) ([]int32, []int32, []int64) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		return groupByThenPos(ids, nil, pos, nkeys)
	}
	order, off, at := group(1)
	order4, off4, at4 := group(4)
	if !slices.Equal(off, off4) || !slices.Equal(at, at4) {
		t.Fatal("offsets or positions differ between 1 and 4 cores")
	}
	_ = order4
	seen := make([]bool, n)
	for g := range nkeys {
		for i := off[g]; i < off[g+1]; i++ {
			r := order[i]
			if ids[r] != int32(g) || at[i] != pos[r] || seen[r] {
				t.Fatalf("slot %d: row %d (id %d, pos %d) under key %d with pos %d, seen %v", i, r, ids[r], pos[r], g, at[i], seen[r])
			}
			seen[r] = true
			if i > off[g] && at[i-1] > at[i] {
				t.Fatalf("key %d not sorted by position at slot %d", g, i)
			}
		}
	}
	for r, id := range ids {
		if (id >= 0) != seen[r] {
			t.Fatalf("row %d with id %d kept %v", r, id, seen[r])
		}
	}
}

// TestTileSeriesInPlace: a set sorted by (key, start) is read in place and
// gives every spine key the same points as the gathering path, which serves
// sets that are not sorted.
func TestTileSeriesInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	ev := &tile.Events{}
	for range 50_000 {
		ev.Keys.Int = append(ev.Keys.Int, rng.Int64N(3000)*7)
		ev.TS = append(ev.TS, rng.Int64N(1e12))
		ev.Values = append(ev.Values, float64(rng.IntN(100)))
	}
	needs := aggregate.Mean.Needs() | aggregate.Max.Needs()
	set := tile.Build(ev, tile.Grid{Width: 3600e6}, needs, math.MinInt64, math.MaxInt64)
	dict := tile.NewDict(false)
	dict.AddAll(&tile.Keys{Int: ev.Keys.Int[:2000]}, nil) // some keys have no spine row
	dict.AddAll(&tile.Keys{Int: []int64{-5}}, nil)        // and a spine key no tile
	// The same tiles shuffled: not sorted, so gathered.
	perm := rng.Perm(set.Len())
	shuffled := &tile.Set{Needs: set.Needs}
	for _, i := range perm {
		shuffled.Append(set.Keys.Int[i], "", set.Start[i], set.State(i))
	}
	in := tileSeries(set, dict)
	if &in.pos[0] != &set.Start[0] {
		t.Fatal("a sorted set was copied, not read in place")
	}
	ga := tileSeries(shuffled, dict)
	for g := range dict.Len() {
		a, b := in.first[g], in.end[g]
		c, d := ga.first[g], ga.end[g]
		for _, col := range []struct{ x, y []int64 }{{in.pos, ga.pos}, {in.count, ga.count}, {in.n, ga.n}} {
			if !slices.Equal(col.x[a:b], col.y[c:d]) {
				t.Fatalf("key %d: in place %v, gathered %v", dict.IntKey(int32(g)), col.x[a:b], col.y[c:d])
			}
		}
		for _, col := range []struct{ x, y []float64 }{{in.sum, ga.sum}, {in.max, ga.max}} {
			if !slices.Equal(col.x[a:b], col.y[c:d]) {
				t.Fatalf("key %d: in place %v, gathered %v", dict.IntKey(int32(g)), col.x[a:b], col.y[c:d])
			}
		}
		if !slices.Equal(in.valid[a:b], ga.valid[c:d]) {
			t.Fatalf("key %d: valid flags differ", dict.IntKey(int32(g)))
		}
	}
	// A key whose tiles form two runs is gathered too.
	split := &tile.Set{Needs: set.Needs}
	split.AppendAll(set)
	split.Append(set.Keys.Int[0], "", set.Start[set.Len()-1]+3600e6, set.State(0))
	if s := tileSeries(split, dict); len(s.pos) == len(split.Start) && &s.pos[0] == &split.Start[0] {
		t.Fatal("a set with a key in two runs was read in place")
	}
}

// TestOutBuffer: records put in spine index order land in their input rows,
// for a layout of every kind of output (state and stored values, more
// stored values than fit one word of flags), packed and wide, with rows
// left out of the index (other key partitions), which keep their values,
// and with every row in it (full blocks).
func TestOutBuffer(t *testing.T) {
	for _, skip := range []int{5, 0} {
		testOutBuffer(t, skip)
	}
}

// junkWord fills every out buffer of the package's tests (fillWords): an
// out buffer is scratch memory that may hold another sweep's records, and
// a record a sweep fails to write must not pass for zeros.
const junkWord = 0x7ff8dead_beefcafe

func init() {
	fillWords = func(w []uint64) {
		for i := range w {
			w[i] = junkWord
		}
	}
}

// testOutBuffer runs TestOutBuffer with the rows r%skip == 0 out of the
// index (none for skip 0).
func testOutBuffer(t *testing.T, skip int) {
	rng := rand.New(rand.NewPCG(15, 16))
	const rows = 40_000
	order := make([]int32, 0, rows)
	for _, r := range rng.Perm(rows) {
		if skip == 0 || r%skip != 0 { // rows of other parts are not in the index
			order = append(order, int32(r))
		}
	}
	// Windows with every mix of functions, 70 stored values in all.
	p := &plan{}
	for k := range 100 {
		fn := aggregate.Funcs[k%len(aggregate.Funcs)]
		if k >= 30 {
			fn = aggregate.Funcs[3+k%4] // min, max, var, std
		}
		win := feature.Window{Micros: int64(1 + k%9)}
		p.outs = append(p.outs, &output{fn: fn, window: win, col: &Column{}})
	}
	p.groupSpans()
	// The state of span si at input row r.
	state := func(r, si int, wide bool) aggregate.State {
		st := aggregate.State{Count: int64(r%7 + si), Sum: float64(r) * 0.37 * float64(si+1)}
		st.N = st.Count - int64(r%3)
		if wide && r%11 == 0 {
			st.Count, st.N = 5<<32+int64(r), 4<<32+int64(si)
		}
		if st.N <= 0 {
			st.N, st.Sum = 0, 0
		}
		return st
	}
	value := func(r, k int) (float64, bool) { return float64(r)*100 + float64(k), (r+k)%3 != 0 }
	for _, c := range []struct {
		procs  int
		packed bool
	}{{1, true}, {3, true}, {2, false}} {
		p.layOut(c.packed)
		for _, o := range p.outs {
			o.col.Values = make([]float64, rows)
			o.col.Valid = nil
			if o.fn != aggregate.Count && o.fn != aggregate.Sum {
				o.col.Valid = make([]bool, rows)
			}
			// Rows of other parts hold their part's values.
			for r := 0; skip != 0 && r < rows; r += skip {
				o.col.Values[r] = -7
				if o.col.Valid != nil {
					o.col.Valid[r] = true
				}
			}
		}
		func() {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(c.procs))
			b := newOutBuffer(newOutSlots(order, rows, len(p.outs)), &p.lay)
			if b.words[0] != junkWord {
				t.Fatalf("%+v: the out buffer was not filled (see fillWords)", c)
			}
			rec := make([]uint64, p.lay.width)
			for i, r := range order {
				for si := range p.spans {
					sn := &p.spans[si]
					st := state(int(r), si, !c.packed)
					if !sn.putSums(rec, st.Count, st.N, st.Sum, c.packed) {
						t.Fatalf("state %+v does not fit", st)
					}
					for _, k := range sn.values {
						v, ok := value(int(r), k)
						p.lay.fields[k].putValue(rec, v, ok)
					}
				}
				b.put(i, rec)
			}
			cols := make([]*Column, len(p.outs))
			for k, o := range p.outs {
				cols[k] = o.col
			}
			b.copyTo(cols)
			b.release()
		}()
		for si := range p.spans {
			for _, k := range p.spans[si].outs {
				col := p.outs[k].col
				for r := range rows {
					st := state(r, si, !c.packed)
					want, wantOK := st.Value(p.outs[k].fn)
					if stored(p.outs[k].fn) {
						want, wantOK = value(r, k)
					}
					if skip != 0 && r%skip == 0 {
						want, wantOK = -7, true
					}
					got, gotOK := col.Values[r], col.Valid != nil && col.Valid[r]
					if col.Valid == nil {
						gotOK = wantOK
					}
					if math.Float64bits(got) != math.Float64bits(want) || gotOK != wantOK {
						t.Fatalf("skip %d, %+v: row %d output %d (%s) = %v, %v; want %v, %v", skip, c, r, k, p.outs[k].fn, got, gotOK, want, wantOK)
					}
				}
			}
		}
	}
	// sum, count and mean of three windows: two words a window.
	small := &plan{}
	for _, fn := range []aggregate.Func{aggregate.Sum, aggregate.Count, aggregate.Mean} {
		for w := range 3 {
			small.outs = append(small.outs, &output{fn: fn, window: feature.Window{Micros: int64(w + 1)}})
		}
	}
	small.groupSpans()
	if small.layOut(true); small.lay.width != 6 {
		t.Fatalf("sum+count+mean x3 packed: %d words a record, want 6", small.lay.width)
	}
	if small.layOut(false); small.lay.width != 9 {
		t.Fatalf("sum+count+mean x3 wide: %d words a record, want 9", small.lay.width)
	}
	// A count of 2^32 does not fit the packed layout.
	p.layOut(true)
	for si := range p.spans {
		if p.spans[si].countWord >= 0 {
			if p.spans[si].putSums(make([]uint64, p.lay.width), 1<<32, 0, 0, true) {
				t.Fatal("a count of 2^32 fits the packed layout")
			}
			break
		}
	}
}

// TestHugeCounts: windows of 2^32 events and more do not fit the packed
// record; the query sweeps again with wide counts and gets them right, for
// int and string keys, a key without tiles, and a spine long enough that
// the output is written in several blocks of rows.
func TestHugeCounts(t *testing.T) {
	cfg, err := feature.Parse("t.yaml", []byte(sweepBenchConfig))
	if err != nil {
		t.Fatal(err)
	}
	ts := cfg.TileSets()[0]
	const hour = 3600e6
	var refs []feature.Ref
	for _, s := range []string{"user.amount_count[all]", "user.amount_sum[all]", "user.amount_mean[all]"} {
		r, err := feature.ParseRef(s)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	for _, stringKeys := range []bool{false, true} {
		name := func(k int64) string { return fmt.Sprintf("user-%d", k) }
		set := &tile.Set{Needs: ts.Needs, Keys: tile.Keys{String: stringKeys}}
		for k := range int64(3) {
			for b := range int64(4) {
				c := int64(3e9) * (k + 1) // two tiles exceed 2^32
				if k == 1 {
					c = 3 + b
				}
				set.Append(k, name(k), b*4*hour, aggregate.State{Count: c, N: c - 1, Sum: float64(c) / 2})
			}
		}
		// Key 9 has no tiles. The pattern repeats over rows enough for
		// several output blocks.
		base := []int64{0, 1, 2, 1, 9}
		baseTimes := []int64{16 * hour, 16 * hour, 8 * hour, 1, 16 * hour}
		sp := &Spine{Keys: tile.Keys{String: stringKeys}}
		for r := range 50_000 {
			k := base[r%len(base)]
			if stringKeys {
				sp.Keys.Str = append(sp.Keys.Str, name(k))
			} else {
				sp.Keys.Int = append(sp.Keys.Int, k)
			}
			sp.Times = append(sp.Times, baseTimes[r%len(base)]+int64(r/len(base))%3*hour)
		}
		eng := &Engine{Config: cfg, Tiles: setTiles{ts.ID: set}}
		res, err := eng.Query(context.Background(), sp, refs, Options{Materialized: true})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := res.Columns[0].Values[0], float64(12e9); got != want {
			t.Fatalf("string keys %v: count of key 0 = %v, want %v", stringKeys, got, want)
		}
		for r := range sp.Times {
			key := base[r%len(base)]
			// Every tile of the key before the end of the row's bucket (all
			// values are exact in float64: any order of adds gives them).
			var st aggregate.State
			end := ts.Grid.Floor(sp.Times[r]-1) + ts.Grid.Width
			for i := range set.Len() {
				if (stringKeys && set.Keys.Str[i] == name(key) || !stringKeys && set.Keys.Int[i] == key) && set.Start[i] < end {
					st.Merge(set.State(i))
				}
			}
			for k, fn := range []aggregate.Func{aggregate.Count, aggregate.Sum, aggregate.Mean} {
				c := res.Columns[k]
				want, wantOK := st.Value(fn)
				if c.Values[r] != want || c.Valid != nil && c.Valid[r] != wantOK {
					t.Fatalf("string keys %v: %s row %d: %v, want %v (%v)", stringKeys, c.Name, r, c.Values[r], want, wantOK)
				}
			}
		}
	}
}

// countedTiles is setTiles whose manifest claims many keys, recording the
// key filter of every load.
type countedTiles struct {
	setTiles
	keys  int64
	loads []*tilestore.KeyFilter
}

func (c *countedTiles) Manifest(ctx context.Context, id string) (*tilestore.Manifest, error) {
	m, err := c.setTiles.Manifest(ctx, id)
	if m != nil {
		m.Objects = []tilestore.Object{{Name: "a", Rows: c.keys, Keys: c.keys, MinKey: "0", MaxKey: "1000000000"}}
	}
	return m, err
}

func (c *countedTiles) Load(ctx context.Context, m *tilestore.Manifest, r tilestore.Range, keep *tilestore.KeyFilter) (*tile.Set, error) {
	c.loads = append(c.loads, keep)
	return c.setTiles.Load(ctx, m, r, keep)
}

// TestMaterializedPrefetch: a materialized query loads its tiles while it
// groups the spine; where the spine turns out to hold few of the store's
// keys, it drops that load for one filtered by key. Both give the values
// of a query whose load never filters.
func TestMaterializedPrefetch(t *testing.T) {
	spec := sample.Default()
	spec.Events, spec.SpineRows, spec.Users = 40_000, 4_000, 400
	events := sample.Events(spec)
	spt := sample.Spine(spec, events)
	cfg, err := feature.Parse("bench.yaml", []byte(sweepBenchConfig))
	if err != nil {
		t.Fatal(err)
	}
	ts := cfg.TileSets()[0]
	set := tile.Build(EventsOf(events, EventSpec{Source: ts.Source, Key: ts.Key, Value: ts.Value}, "ts", nil),
		ts.Grid, ts.Needs, math.MinInt64, math.MaxInt64)
	sp := &Spine{Keys: tile.Keys{Int: spt.Column("user_id").Ints}, Times: spt.Column("ts").Ints}
	var refs []feature.Ref
	for _, s := range []string{"user.amount_sum[7d]", "user.amount_count[30d]", "user.amount_mean[all]"} {
		r, err := feature.ParseRef(s)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	query := func(tiles Tiles) *Result {
		eng := &Engine{Config: cfg, Events: tableEvents{t: events, ts: "ts"}, Tiles: tiles}
		res, err := eng.Query(context.Background(), sp, refs, Options{Materialized: true})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	want := query(setTiles{ts.ID: set})
	distinct := map[int64]bool{}
	for _, k := range sp.Keys.Int {
		distinct[k] = true
	}
	for _, c := range []struct {
		name     string
		keys     int64
		filtered bool
	}{
		{"the spine holds most keys", int64(len(distinct)), false},
		{"the spine holds few keys", int64(len(sp.Times)) * 2, true},
	} {
		tiles := &countedTiles{setTiles: setTiles{ts.ID: set}, keys: c.keys}
		got := query(tiles)
		if c.filtered {
			if len(tiles.loads) != 2 || tiles.loads[0].Int != nil || len(tiles.loads[1].Int) != len(distinct) {
				t.Fatalf("%s: loads %v, want one of every key, then one of the spine's %d keys", c.name, tiles.loads, len(distinct))
			}
		} else if len(tiles.loads) != 1 || tiles.loads[0].Int != nil {
			t.Fatalf("%s: loads %v, want one of every key", c.name, tiles.loads)
		}
		for k, col := range got.Columns {
			w := want.Columns[k]
			for r := range col.Values {
				if math.Float64bits(col.Values[r]) != math.Float64bits(w.Values[r]) || (col.Valid != nil && col.Valid[r] != w.Valid[r]) {
					t.Fatalf("%s: %s row %d = %v, want %v", c.name, col.Name, r, col.Values[r], w.Values[r])
				}
			}
		}
	}
}
