package offline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/hugepage"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// Spine is the input of an offline query: one (key, input time) per row.
type Spine struct {
	Keys  tile.Keys
	Times []int64 // input times, microseconds since the epoch
}

// Column is one output column: a requested feature window's value per spine
// row, in spine order. Valid is false where the value is null (an empty
// window for mean, min, max, var, std); it is nil for count and sum, which
// are never null.
type Column struct {
	Name    string // the reference as requested, e.g. user.total_transaction_amount[7d]
	Integer bool   // the values are counts
	Values  []float64
	Valid   []bool
}

// Fallback is a bucket range of a tile set that the store did not cover and
// that was computed from raw events.
type Fallback struct {
	TileSet  string
	From, To int64 // [From, To), bucket aligned; math.MinInt64 for the beginning of time
}

// OffBoundary counts spine rows whose input time is not on a bucket
// boundary of a tile set read by a materialized query without Align: their
// values may include up to one bucket of events after the input time.
type OffBoundary struct {
	TileSet string
	Bucket  int64 // bucket width, microseconds
	Rows    int
}

// Stats says what a query read and how.
type Stats struct {
	Rows        int
	Mode        string
	EventsRead  int64 // raw events loaded (after filtering by key)
	TilesRead   int64 // tiles loaded from the store
	Fallback    []Fallback
	OffBoundary []OffBoundary
	// Partitions is the most key partitions an output group ran in to
	// stay under the memory limit; 1 when everything ran at once.
	Partitions int
}

// Result is the output of an offline query.
type Result struct {
	Columns []*Column
	Stats   Stats
}

// EventSpec names the events a feature reads: one source, grouped by one key
// column, one value column ("" for count) and an optional filter.
type EventSpec struct {
	Source string
	Key    string
	Value  string
	Filter feature.Filter // zero Column: no filter
}

// Events loads raw events. Implementations may drop events whose key is not
// in keep (when keep is non-nil); the engine never needs them.
type Events interface {
	Events(ctx context.Context, spec EventSpec, keep *tile.Dict) (*tile.Events, error)
}

// Tiles is the tile store as the planner sees it.
type Tiles interface {
	Manifest(ctx context.Context, tileSet string) (*tilestore.Manifest, error)
	Load(ctx context.Context, m *tilestore.Manifest, r tilestore.Range, keep *tilestore.KeyFilter) (*tile.Set, error)
}

// Engine runs offline queries over a feature configuration.
type Engine struct {
	Config *feature.Config
	Events Events
	Tiles  Tiles // may be nil when no query is materialized
	// Partitions, when above 0, runs each query in that many key
	// partitions; 0 chooses enough for each to fit in the memory limit
	// (GOMEMLIMIT, else half of RAM), usually 1.
	Partitions int
	// SpillDir is where a partitioned query spills raw events; "" is the
	// system temporary directory ($TMPDIR).
	SpillDir string
}

// ErrNotMaterialized is returned when a mode needs a bucket grid and the
// feature has no materialization block.
var ErrNotMaterialized = errors.New("feature is not materialized")

// Query computes the requested feature windows for every spine row.
func (e *Engine) Query(ctx context.Context, sp *Spine, refs []feature.Ref, opt Options) (*Result, error) {
	if len(sp.Times) != sp.Keys.Len() {
		return nil, fmt.Errorf("spine has %d keys but %d input times", sp.Keys.Len(), len(sp.Times))
	}
	res := &Result{Stats: Stats{Rows: len(sp.Times), Mode: opt.Mode()}}
	// A raw count reads the events a value output of the same source, key
	// and filter reads, so that one load and one sort serve both.
	countValue := map[EventSpec]string{}
	for _, ref := range refs {
		if f, err := e.Config.Resolve(ref); err == nil && f.Value != "" {
			k := EventSpec{Source: f.Source, Key: f.Key}
			if f.Filter != nil {
				k.Filter = *f.Filter
			}
			if v, ok := countValue[k]; !ok || f.Value < v {
				countValue[k] = f.Value
			}
		}
	}
	groups := map[string]*group{}
	var order []*group
	var fns []aggregate.Func // per column
	for _, ref := range refs {
		f, err := e.Config.Resolve(ref)
		if err != nil {
			return nil, err
		}
		col := &Column{Name: ref.Text, Integer: f.Aggregation == aggregate.Count}
		res.Columns = append(res.Columns, col)
		fns = append(fns, f.Aggregation)
		out := &output{fn: f.Aggregation, window: ref.Window, col: col}
		var key string
		var ts *feature.TileSet
		if opt.Materialized || opt.Align {
			ts = e.Config.TileSetOf(f.Name)
			if ts == nil {
				return nil, fmt.Errorf("%s: %w: planner mode %s needs its bucket grid; add `materialization: {bucket_duration: 1h}` to the feature in %s, or query without --materialized/--align",
					ref.Text, ErrNotMaterialized, opt.Mode(), e.Config.File)
			}
			out.grid = ts.Grid
		}
		spec := EventSpec{Source: f.Source, Key: f.Key, Value: f.Value}
		if f.Filter != nil {
			spec.Filter = *f.Filter
		}
		if spec.Value == "" {
			spec.Value = countValue[spec]
		}
		if opt.Materialized {
			key = "tiles:" + ts.ID
			// Fallback builds the tile set's tiles: read its columns (a count
			// in a value tile set reads the value column too).
			spec = EventSpec{Source: ts.Source, Key: ts.Key, Value: ts.Value}
			if ts.Filter != nil {
				spec.Filter = *ts.Filter
			}
		} else {
			key = fmt.Sprintf("events:%s\x00%s\x00%s\x00%s\x00%s", spec.Source, spec.Key, spec.Value, spec.Filter.Column, spec.Filter.Equals)
		}
		g := groups[key]
		if g == nil {
			g = &group{spec: spec, tileSet: ts}
			groups[key] = g
			order = append(order, g)
		}
		g.outs = append(g.outs, out)
		g.needs |= f.Aggregation.Needs()
	}
	defer allocColumns(res.Columns, fns, len(sp.Times))()
	keys := newSpineKeys(&sp.Keys)
	for _, g := range order {
		if err := e.runGroup(ctx, g, sp, keys, opt, &res.Stats); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// allocColumns gives each column its rows, and a valid flag a row where fns
// (per column) can be null, on every core: clearing large columns takes a
// while. It asks for huge pages under them (hugepage.Make) and returns the
// function that withdraws the request, to call once they are written.
func allocColumns(cols []*Column, fns []aggregate.Func, rows int) (written func()) {
	var req hugepage.Requests
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(runtime.GOMAXPROCS(0), len(cols))) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= len(cols) {
					return
				}
				cols[k].Values = hugepage.MakeIn[float64](&req, rows)
				if fns[k] != aggregate.Count && fns[k] != aggregate.Sum {
					cols[k].Valid = hugepage.MakeIn[bool](&req, rows)
				}
			}
		})
	}
	wg.Wait()
	return req.Written
}

// group is the outputs that read the same data.
type group struct {
	spec    EventSpec
	tileSet *feature.TileSet // nil for raw modes without a grid
	needs   aggregate.Needs
	outs    []*output
}

// groupWork is what every key partition of a group shares: the spine's
// keys as the data's kind, the manifest, and the bucket range and coverage
// gaps of the whole spine.
type groupWork struct {
	g      *group
	sp     *Spine
	strKey bool
	m      *tilestore.Manifest // materialized only; nil when never committed
	lo, hi int64               // bucket range the rows read (materialized)
	gaps   []tilestore.Range   // parts of [lo, hi) computed from raw events
	// headsOnly says the events loaded for materialized+align are already
	// only those of the rows' head buckets (see rawFilter).
	headsOnly bool
	// prefetch, when not nil, is the load of every tile of [lo, hi),
	// started before the spine's keys were numbered.
	prefetch *prefetch
}

// needsEvents reports whether the group reads raw events.
func (w *groupWork) needsEvents(opt Options) bool {
	return !opt.Materialized || opt.Align || len(w.gaps) > 0
}

func (e *Engine) runGroup(ctx context.Context, g *group, sp *Spine, keys *spineKeys, opt Options, st *Stats) error {
	w := &groupWork{g: g, sp: sp}
	if !opt.Materialized {
		strKeys, err := e.eventKeyKind(ctx, g.spec)
		if err != nil {
			return err
		}
		w.strKey = strKeys
		dict, ids := keys.as(strKeys)
		return e.runKeys(ctx, w, dict, ids, opt, st)
	}

	ts := g.tileSet
	var err error
	if e.Tiles != nil {
		w.m, err = e.Tiles.Manifest(ctx, ts.ID)
		if err != nil {
			return fmt.Errorf("read manifest of tile set %s: %w", ts.ID, err)
		}
	}
	w.strKey = sp.Keys.String
	if w.m != nil {
		w.strKey = w.m.StringKeys
	} else if w.strKey, err = e.eventKeyKind(ctx, g.spec); err != nil {
		return err
	}

	// The bucket range the rows read, and the off-boundary rows.
	// Bounds grow with t, so the earliest and latest rows bound them all.
	p := &plan{opt: opt, outs: g.outs}
	tmin, tmax, off := timeBounds(sp.Times, ts.Grid)
	w.lo, w.hi = int64(math.MaxInt64), int64(math.MinInt64)
	for _, o := range g.outs {
		l, _, _, _ := p.bounds(o, tmin, ts.Grid.Floor(tmin))
		_, h, _, _ := p.bounds(o, tmax, ts.Grid.Floor(tmax))
		w.lo, w.hi = min(w.lo, l), max(w.hi, h)
	}
	if len(sp.Times) == 0 {
		w.lo, w.hi = 0, 0
	}
	if !opt.Align && off > 0 {
		st.OffBoundary = append(st.OffBoundary, OffBoundary{TileSet: ts.ID, Bucket: ts.Grid.Width, Rows: off})
	}
	var coverage []tilestore.Range
	if w.m != nil {
		coverage = w.m.Coverage
	}
	w.gaps = Gaps(tilestore.Range{From: w.lo, To: w.hi}, coverage)
	for _, gap := range w.gaps {
		st.Fallback = append(st.Fallback, Fallback{TileSet: ts.ID, From: gap.From, To: gap.To})
	}
	// Where the sweep reads tiles alone, they load while the spine's keys
	// are numbered and grouped.
	if e.prefetches(ctx, w, opt) {
		w.prefetch = e.startLoad(ctx, w)
		defer w.prefetch.stop()
	}
	dict, ids := keys.as(w.strKey)
	return e.runKeys(ctx, w, dict, ids, opt, st)
}

// timeBounds returns the least and the greatest of times and how many are
// off the bucket boundaries of g, the halves of times counted on two cores.
func timeBounds(times []int64, g tile.Grid) (tmin, tmax int64, off int) {
	scan := func(ts []int64) (lo, hi int64, off int) {
		lo, hi = math.MaxInt64, math.MinInt64
		for _, t := range ts {
			lo, hi = min(lo, t), max(hi, t)
		}
		off, _ = g.OffBoundaries(ts)
		return lo, hi, off
	}
	if len(times) < 1<<16 || runtime.GOMAXPROCS(0) < 2 {
		return scan(times)
	}
	half := len(times) / 2
	var lo2, hi2 int64
	var off2 int
	done := make(chan struct{})
	go func() {
		lo2, hi2, off2 = scan(times[half:])
		close(done)
	}()
	tmin, tmax, off = scan(times[:half])
	<-done
	return min(tmin, lo2), max(tmax, hi2), off + off2
}

// prefetch is a tile load running on its own goroutine.
type prefetch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	set     *tile.Set
	release func() // frees set's memory (see loadTiles); nil once handed over
	err     error
}

// prefetches reports whether the group's tiles can load before the spine's
// keys are numbered: a materialized query without align and without
// fallback, in one key partition, whose spine has enough rows that the load
// would not filter by key in any case (see runPart).
func (e *Engine) prefetches(ctx context.Context, w *groupWork, opt Options) bool {
	if !opt.Materialized || opt.Align || e.Tiles == nil || w.m == nil || len(w.gaps) > 0 {
		return false
	}
	if keys, _ := w.m.Keys(); int64(len(w.sp.Times))*4 < keys {
		return false
	}
	parts, err := e.partitions(ctx, w, opt, len(w.sp.Times), false)
	return err == nil && parts == 1
}

// startLoad starts loading every tile of the group's range.
func (e *Engine) startLoad(ctx context.Context, w *groupWork) *prefetch {
	ctx, cancel := context.WithCancel(ctx)
	f := &prefetch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.set, f.release, f.err = e.loadTiles(ctx, w.m, tilestore.Range{From: w.lo, To: w.hi}, &tilestore.KeyFilter{}, true)
	}()
	return f
}

// wait returns the loaded tiles and what frees them, which the caller
// calls once done with them.
func (f *prefetch) wait() (*tile.Set, func(), error) {
	<-f.done
	release := f.release
	f.release = nil
	if release == nil {
		release = func() {}
	}
	return f.set, release, f.err
}

// stop cancels the load if it still runs, waits for it to end and frees
// its tiles unless wait handed them over.
func (f *prefetch) stop() {
	f.cancel()
	<-f.done
	if f.release != nil {
		f.release()
		f.release = nil
	}
}

// keyRanks returns the rank of each key of d in key order, the order of a
// tile set's runs.
func keyRanks(d *tile.Dict) []int32 {
	if d.String {
		return d.Ranks()
	}
	n := d.Len()
	keys := make([]uint64, n)
	ids := make([]int32, n)
	for id := range n {
		keys[id] = uint64(d.IntKey(int32(id))) ^ 1<<63 // signed order
		ids[id] = int32(id)
	}
	tile.SortByKey(keys, ids, nil, nil)
	rank := make([]int32, n)
	for r, id := range ids {
		rank[id] = int32(r)
	}
	return rank
}

// runPart computes the group's outputs for the spine rows of ids, whose keys
// are dict. events loads the raw events of dict's keys.
func (e *Engine) runPart(ctx context.Context, w *groupWork, dict *tile.Dict, ids []int32, events func(keep *tile.Dict) (*tile.Events, error), opt Options, st *Stats) error {
	g, sp := w.g, w.sp
	p := &plan{opt: opt, outs: g.outs}
	// The spine index needs no data: build it while the data loads. Where
	// the sweep reads tiles alone, it numbers the keys in the order of the
	// set's runs: by key while a prefetch loads the tiles (keyRanks), else
	// after the load (series.renumber).
	byTiles := opt.Materialized && !opt.Align
	index := make(chan *spineIndex, 1)
	if !byTiles {
		go func() { index <- newSpineIndex(sp.Times, ids, dict.Len()) }()
	}
	var ev *tile.Events
	if w.needsEvents(opt) {
		var err error
		if ev, err = events(dict); err != nil {
			return err
		}
		st.EventsRead += int64(ev.Len())
	}
	if !opt.Materialized {
		p.a = eventSeries(ev, dict, g.needs)
		p.run(<-index)
		return nil
	}

	ts := g.tileSet
	set := &tile.Set{Needs: ts.Needs, Keys: tile.Keys{String: w.strKey}}
	var ranked *spineIndex
	if w.m != nil {
		// A key filter prunes objects and row groups when the spine holds few
		// of the tile set's keys. When it holds many, checking every key of
		// the store costs more than decoding the tiles it would skip: spines
		// follow activity, so the keys they miss are mostly the tail's, with
		// few tiles (the benchmark's spine holds a third of the keys and
		// 83% of the tiles). The series ignores keys outside the spine. A
		// key partition of a query larger than memory (rows of other
		// partitions have id -1) always filters, to hold its keys' alone.
		keep := &tilestore.KeyFilter{} // nil maps: every key
		if keys, _ := w.m.Keys(); int64(dict.Len())*4 < keys || slices.Contains(ids, -1) {
			keep = keyFilter(dict)
		}
		var err error
		var release func()
		f := w.prefetch
		w.prefetch = nil
		if f != nil && keep.Int == nil && keep.Str == nil {
			// The tiles are loading: group the spine's rows meanwhile, by
			// key in key order, the order of the set's runs.
			ranked = newRankedIndex(sp.Times, ids, keyRanks(dict), dict.Len())
			p.slots = newOutSlots(ranked.order, len(sp.Times), len(p.outs))
			set, release, err = f.wait()
		} else {
			if f != nil {
				f.stop() // a filtered load reads less
			}
			// A key partition's tiles stay on the Go heap: partitions of
			// different sizes would each map memory of their own.
			set, release, err = e.loadTiles(ctx, w.m, tilestore.Range{From: w.lo, To: w.hi}, keep, !slices.Contains(ids, -1))
		}
		if err != nil {
			return fmt.Errorf("load tiles of %s: %w", ts.ID, err)
		}
		// The sweep, below, is the set's last reader.
		defer release()
		st.TilesRead += int64(set.Len())
	}
	for _, gap := range w.gaps {
		set.AppendAll(tile.Build(ev, ts.Grid, ts.Needs, gap.From, gap.To))
	}
	p.a = tileSeries(set, dict)
	if byTiles {
		if ranked != nil {
			p.a.rankBy(ranked.rank)
		} else {
			ranked = newRankedIndex(sp.Times, ids, p.a.renumber(), dict.Len())
		}
		p.run(ranked)
		return nil
	}
	si := <-index
	if opt.Align {
		heads := ev
		if !w.headsOnly {
			heads = headEvents(ev, dict, si, ts.Grid)
		}
		p.b = eventSeries(heads, dict, g.needs)
	}
	p.run(si)
	return nil
}

// scratchLoader is a Tiles that can lend the columns of a load for as long
// as its reader needs them (tilestore.Store.LoadScratch).
type scratchLoader interface {
	LoadScratch(ctx context.Context, m *tilestore.Manifest, r tilestore.Range, keep *tilestore.KeyFilter) (*tile.Set, func(), error)
}

// loadTiles loads tiles as e.Tiles.Load does and returns what frees them,
// to call once nothing reads them. With scratch, where the store can lend
// memory, their columns lie in memory that the last query's freed moments
// ago (see tilestore.Store.LoadScratch): the same query again, over tiles
// of about the same size, writes no fresh memory.
func (e *Engine) loadTiles(ctx context.Context, m *tilestore.Manifest, r tilestore.Range, keep *tilestore.KeyFilter, scratch bool) (set *tile.Set, release func(), err error) {
	if l, ok := e.Tiles.(scratchLoader); ok && scratch {
		return l.LoadScratch(ctx, m, r, keep)
	}
	set, err = e.Tiles.Load(ctx, m, r, keep)
	return set, func() {}, err
}

// eventKeyKind reports whether the events of spec have string keys, loading
// no events when the loader can say from the schema.
func (e *Engine) eventKeyKind(ctx context.Context, spec EventSpec) (bool, error) {
	if k, ok := e.Events.(interface {
		KeyKind(ctx context.Context, spec EventSpec) (bool, error)
	}); ok {
		return k.KeyKind(ctx, spec)
	}
	return false, nil
}

// Gaps returns the parts of want that the sorted, disjoint ranges of have do
// not cover.
func Gaps(want tilestore.Range, have []tilestore.Range) []tilestore.Range {
	return (&tilestore.Manifest{Coverage: have}).Gaps(want)
}

// spineKeys holds the spine's keys as dictionaries of either kind, converting
// between int and string keys when the data's kind differs from the spine's.
type spineKeys struct {
	src   *tile.Keys
	dicts [2]*tile.Dict
	ids   [2][]int32
}

func newSpineKeys(k *tile.Keys) *spineKeys { return &spineKeys{src: k} }

func (s *spineKeys) as(str bool) (*tile.Dict, []int32) {
	i := 0
	if str {
		i = 1
	}
	if s.dicts[i] == nil {
		k, bad := convertKeys(s.src, str)
		d := tile.NewDict(str)
		s.ids[i] = d.AddAll(k, make([]int32, 0, k.Len()))
		for _, r := range bad {
			s.ids[i][r] = -1 // matches no data: the row's windows are empty
		}
		s.dicts[i] = d
	}
	return s.dicts[i], s.ids[i]
}

// keyFilter returns the keys of d as a tile store key filter.
func keyFilter(d *tile.Dict) *tilestore.KeyFilter {
	f := &tilestore.KeyFilter{}
	if d.String {
		f.Str = make(map[string]struct{}, d.Len())
		for id := range d.Len() {
			f.Str[d.StrKey(int32(id))] = struct{}{}
		}
	} else {
		f.Int = make(map[int64]struct{}, d.Len())
		for id := range d.Len() {
			f.Int[d.IntKey(int32(id))] = struct{}{}
		}
	}
	return f
}

// convertKeys returns k as string keys (str) or int keys, and the rows
// whose string is not an integer: no int data can match them, so they get
// empty windows, as unknown keys do.
func convertKeys(k *tile.Keys, str bool) (out *tile.Keys, bad []int) {
	if k.String == str {
		return k, nil
	}
	out = &tile.Keys{String: str}
	if str {
		out.Str = make([]string, len(k.Int))
		for i, x := range k.Int {
			out.Str[i] = strconv.FormatInt(x, 10)
		}
		return out, nil
	}
	out.Int = make([]int64, len(k.Str))
	for i, s := range k.Str {
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			bad = append(bad, i)
		}
		out.Int[i] = x
	}
	return out, bad
}
