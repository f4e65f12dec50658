package materialize

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/budget"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// Committer publishes tiles; *tilestore.Store is one. The tiles of a
// commit are lent for the call: a backfill frees them once Commit returns
// (they may lie outside the Go heap), so a Committer must not keep them.
type Committer interface {
	Commit(ctx context.Context, c tilestore.Commit) (*tilestore.Manifest, error)
}

// Options select what a backfill builds.
type Options struct {
	// Features limits the backfill to the tile sets serving these features;
	// empty means every materialized feature.
	Features []string
	// From and To bound the event times tiled, rounded out to whole buckets.
	// From defaults to the beginning of time (or the tile set's
	// backfill_start_time); To to the start of the bucket holding Now.
	From, To *time.Time
	// Now is the current time; zero means time.Now().
	Now time.Time
	// Stats counts the raw data read; may be nil.
	Stats *source.Stats
	// Progress, when set, is told of each step: a source read or a tile set
	// committed, out of the total number of steps.
	Progress func(step string, done, total int)
	// Partitions, when above 0, reads every source in that many key
	// partitions spilled to disk; 0 does so only for sources whose events
	// would not fit in the memory limit (GOMEMLIMIT, else half of RAM).
	Partitions int
	// SpillDir is where partitioned backfills spill events; "" is the
	// system temporary directory ($TMPDIR).
	SpillDir string
}

// SetSummary says what one tile set's backfill committed.
type SetSummary struct {
	TileSet  string
	Features []string
	Cover    tilestore.Range
	Tiles    int
	Version  int64
	// Partitions is how many key partitions the events were spilled in to
	// stay under the memory limit; 1 when they were built in memory.
	Partitions int
}

// Summary says what a backfill did.
type Summary struct {
	Events int64 // raw events read
	Tiles  int64 // tiles written
	Sets   []SetSummary
}

// Backfill reads each source the selected tile sets use once, builds their
// tiles over the backfill range and, once every source has been read without
// error, commits each tile set. Re-running it over the same events and range
// commits the same tiles.
func Backfill(ctx context.Context, cfg *feature.Config, store Committer, opt Options) (*Summary, error) {
	sets, err := selectSets(cfg, opt.Features)
	if err != nil {
		return nil, err
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	// Check every range first: a bad range leaves the store as it was.
	covers := make(map[string]tilestore.Range, len(sets))
	for _, ts := range sets {
		cover, err := coverOf(ts, opt, now)
		if err != nil {
			return nil, err
		}
		covers[ts.ID] = cover
	}
	return buildAndCommit(ctx, cfg, store, sets, covers, opt, "backfill")
}

// buildAndCommit reads each source of sets once, builds every tile set over
// its range in covers and, only once every source has been read without
// error, commits each tile set: a bad source file leaves the store as it was.
// what names the operation in errors.
func buildAndCommit(ctx context.Context, cfg *feature.Config, store Committer, sets []*feature.TileSet, covers map[string]tilestore.Range, opt Options, what string) (*Summary, error) {
	bySource := map[string][]*feature.TileSet{}
	var sources []string
	for _, ts := range sets {
		if bySource[ts.Source] == nil {
			sources = append(sources, ts.Source)
		}
		bySource[ts.Source] = append(bySource[ts.Source], ts)
	}
	slices.Sort(sources)
	total := len(sources) + len(sets)
	done := 0
	step := func(s string) {
		done++
		if opt.Progress != nil {
			opt.Progress(s, done, total)
		}
	}
	type built struct {
		ts         *feature.TileSet
		stringKeys bool
		tiles      *tile.Set
		release    func()                      // frees tiles once committed (see tile.Builder.FinishScratch)
		parts      []func() (*tile.Set, error) // instead of tiles, for a source read in key partitions
	}
	partitions := func(b built) int { return max(1, len(b.parts)) }
	var todo []built
	sum := &Summary{}
	var spills []*spilled
	var spilledBuilders []*tile.Builder
	defer func() {
		for _, s := range spills {
			s.parts.Close()
		}
		for _, b := range spilledBuilders {
			b.Close()
		}
		for _, b := range todo {
			if b.release != nil {
				b.release()
			}
		}
	}()
	for _, name := range sources {
		src := cfg.Sources[name]
		parts, err := partitionsFor(src, bySource[name], covers, opt)
		if err != nil {
			return sum, fmt.Errorf("%s: read source %s: %w", what, name, err)
		}
		if parts > 1 {
			// Larger than memory: stream the files into builders that
			// keep what fits and spill the rest to disk, in groups of
			// contiguous keys built one at a time at commit time.
			builders, stringKeys, n, err := streamSource(ctx, src, bySource[name], covers, opt, true)
			switch {
			case err == nil:
				sum.Events += n
				for i, ts := range bySource[name] {
					spilledBuilders = append(spilledBuilders, builders[i])
					todo = append(todo, built{ts: ts, stringKeys: stringKeys[i], parts: builders[i].Parts()})
				}
				step("read " + name)
				continue
			case !errors.Is(err, errNotNumbered):
				return sum, fmt.Errorf("%s: read source %s: %w", what, name, err)
			}
			// The files' statistics do not bound the keys and times (or
			// the keys are strings): spill the events themselves by key
			// hash, and build each partition's tiles at commit time.
			sp, n, err := spillSource(ctx, src, bySource[name], covers, parts, opt)
			if err != nil {
				return sum, fmt.Errorf("%s: read source %s: %w", what, name, err)
			}
			spills = append(spills, sp...)
			sum.Events += n
			for _, s := range sp {
				str := s.dict != nil && s.dict.String
				todo = append(todo, built{ts: s.ts, stringKeys: str, parts: s.commitParts()})
			}
			step("read " + name)
			continue
		}
		sets := bySource[name]
		builders, stringKeys, n, err := streamSource(ctx, src, sets, covers, opt, false)
		sum.Events += n
		if err != nil {
			return sum, fmt.Errorf("%s: read source %s: %w", what, name, err)
		}
		for i, ts := range sets {
			tiles, release := builders[i].FinishScratch()
			todo = append(todo, built{ts: ts, stringKeys: stringKeys[i], tiles: tiles, release: release})
		}
		step("read " + name)
	}
	for i := range todo {
		b := &todo[i]
		ts, cover := b.ts, covers[b.ts.ID]
		m, err := store.Commit(ctx, tilestore.Commit{
			TileSet: ts.ID, Needs: ts.Needs, StringKeys: b.stringKeys, Grid: ts.Grid,
			Features: ts.Features, Cover: cover, Tiles: b.tiles, Parts: b.parts,
		})
		if err != nil {
			return sum, fmt.Errorf("%s: commit tile set %s: %w", what, ts.ID, err)
		}
		var n int
		if b.parts != nil {
			n = committedRows(m, cover)
		} else {
			n = b.tiles.Len()
		}
		if b.release != nil {
			b.tiles = nil
			b.release()
			b.release = nil
		}
		sum.Tiles += int64(n)
		sum.Sets = append(sum.Sets, SetSummary{TileSet: ts.ID, Features: ts.Features, Cover: cover, Tiles: n, Version: m.Version, Partitions: partitions(*b)})
		step("commit " + ts.ID)
	}
	return sum, nil
}

// errNotNumbered says that a source read in spilling builders does not
// allow them: its files' statistics do not bound its keys and times.
var errNotNumbered = errors.New("the files' statistics do not bound the keys and times")

// streamSource reads the files of src in turn, handing each file's events
// to a builder per tile set of sets while the next file decodes. When the
// files' statistics bound the keys and times (Parquet files usually carry
// them), the builders sort each file's events into key ranges as it
// arrives. It returns the builders, whether each set's keys are strings and
// the events read.
//
// With spill, each builder holds its share of the memory limit and spills
// the rest under opt.SpillDir; a source whose statistics do not allow that
// returns an error wrapping errNotNumbered, having read as little of it as
// it could.
func streamSource(ctx context.Context, src *feature.Source, sets []*feature.TileSet, covers map[string]tilestore.Range, opt Options, spill bool) (builders []*tile.Builder, stringKeys []bool, n int64, err error) {
	ro := readOptions(src, sets, covers, opt)
	rows, _, err := source.Rows(src.Path, ro.Time)
	if err != nil {
		return nil, nil, 0, err
	}
	tlo, thi, timed := source.Bounds(src.Path, src.Timestamp, ro.Time)
	builders = make([]*tile.Builder, len(sets))
	defer func() {
		if err != nil {
			for _, b := range builders {
				if b != nil {
					b.Close()
				}
			}
		}
	}()
	specs := make([]offline.EventSpec, len(sets))
	for i, ts := range sets {
		cover := covers[ts.ID]
		builders[i] = tile.NewBuilder(ts.Grid, ts.Needs, cover.From, cover.To)
		klo, khi, ok := source.Bounds(src.Path, ts.Key, ro.Time)
		if ok && timed {
			builders[i].Expect(klo, khi, tlo, thi, int(rows))
		} else if spill {
			return nil, nil, 0, errNotNumbered
		}
		if spill {
			builders[i].Spill(opt.SpillDir, budget.Free()/2/int64(len(sets)), opt.Partitions)
		}
		specs[i] = offline.EventSpec{Source: ts.Source, Key: ts.Key, Value: ts.Value}
		if ts.Filter != nil {
			specs[i].Filter = *ts.Filter
		}
	}
	stringKeys = make([]bool, len(sets))
	err = source.Stream(ctx, src.Path, requests(src, sets), ro, func(file string, t *source.Table) error {
		n += int64(t.Rows)
		for i, b := range builders {
			ev := offline.EventsOf(t, specs[i], src.Timestamp, nil)
			if t.Rows > 0 || n == 0 {
				stringKeys[i] = ev.Keys.String
			}
			b.Add(ev)
			if err := b.Err(); err != nil {
				if errors.Is(err, tile.ErrNotNumbered) {
					return fmt.Errorf("%s: %w: %w", file, errNotNumbered, err)
				}
				return fmt.Errorf("%s: %w", file, err)
			}
		}
		// The next files decode into this one's memory, unless a builder
		// keeps it: fresh memory costs a page fault per 4 KiB when first
		// written, which on a virtual machine cost a third of a backfill's
		// time. (Collecting the garbage after each file, as this did
		// before, let the runtime hand the memory back to the kernel.)
		if !kept(builders) {
			t.Release()
		}
		return nil
	})
	return builders, stringKeys, n, err
}

// kept reports whether some builder holds on to the files' columns.
func kept(builders []*tile.Builder) bool {
	return slices.ContainsFunc(builders, (*tile.Builder).KeepsBatches)
}

// readOptions reads only the files that may hold events in some cover of
// sets: an incremental run skips the files of older days unread.
func readOptions(src *feature.Source, sets []*feature.TileSet, covers map[string]tilestore.Range, opt Options) source.Options {
	r := &source.TimeRange{Column: src.Timestamp, From: math.MaxInt64, To: math.MinInt64}
	for _, ts := range sets {
		c := covers[ts.ID]
		r.From, r.To = min(r.From, c.From), max(r.To, c.To)
	}
	return source.Options{Stats: opt.Stats, Time: r}
}

// committedRows counts the tiles of m's objects inside cover: what a
// commit in parts wrote.
func committedRows(m *tilestore.Manifest, cover tilestore.Range) int {
	n := int64(0)
	for _, o := range m.Objects {
		if cover.From <= o.From && o.To <= cover.To {
			n += o.Rows
		}
	}
	return int(n)
}

// selectSets returns the tile sets serving the named features (all when
// names is empty).
func selectSets(cfg *feature.Config, names []string) ([]*feature.TileSet, error) {
	all := cfg.TileSets()
	if len(all) == 0 {
		return nil, fmt.Errorf("%s declares no materialized feature: add `materialization: {bucket_duration: 1h}` to a feature", cfg.File)
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []*feature.TileSet
	for _, n := range names {
		if cfg.Features[n] == nil {
			return nil, fmt.Errorf("unknown feature %q; features are: %v", n, cfg.FeatureNames())
		}
		ts := cfg.TileSetOf(n)
		if ts == nil {
			return nil, fmt.Errorf("feature %s is not materialized: add `materialization: {bucket_duration: 1h}` to it in %s", n, cfg.File)
		}
		// Features sharing a tile set share it once (TileSetOf may return a
		// new value for each feature: compare IDs).
		if !slices.ContainsFunc(out, func(o *feature.TileSet) bool { return o.ID == ts.ID }) {
			out = append(out, ts)
		}
	}
	return out, nil
}

// requests lists the columns the tile sets of one source read.
func requests(src *feature.Source, sets []*feature.TileSet) []source.Request {
	req := []source.Request{{Name: src.Timestamp, Role: source.Time}}
	add := func(name string, role source.Role) {
		for _, r := range req {
			if r.Name == name && r.Role == role {
				return
			}
		}
		req = append(req, source.Request{Name: name, Role: role})
	}
	for _, ts := range sets {
		add(ts.Key, source.Key)
		if ts.Value != "" {
			add(ts.Value, source.Value)
		}
		if ts.Filter != nil {
			add(ts.Filter.Column, source.Text)
		}
	}
	return req
}

// coverOf returns the bucket range a backfill of ts proves, per DESIGN.md:
// From rounded down, To rounded up to whole buckets.
func coverOf(ts *feature.TileSet, opt Options, now time.Time) (tilestore.Range, error) {
	from := int64(math.MinInt64)
	if ts.BackfillStart != nil {
		from = ts.Grid.Ceil(*ts.BackfillStart)
	}
	if opt.From != nil {
		from = ts.Grid.Floor(opt.From.UnixMicro())
	}
	to := ts.Grid.Floor(now.UnixMicro())
	if opt.To != nil {
		to = ts.Grid.Ceil(opt.To.UnixMicro())
	}
	if from >= to {
		return tilestore.Range{}, fmt.Errorf("backfill of %s: empty range [%s, %s): --from must be before --to (and before now)",
			ts.ID, fmtTime(from), fmtTime(to))
	}
	return tilestore.Range{From: from, To: to}, nil
}

func fmtTime(us int64) string {
	if us == math.MinInt64 {
		return "beginning of time"
	}
	return time.UnixMicro(us).UTC().Format(time.RFC3339)
}
