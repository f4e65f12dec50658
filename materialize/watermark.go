package materialize

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/tilestore"
)

// Store is a tile store that incremental backfills read watermarks from and
// commit to; *tilestore.Store is one.
type Store interface {
	Committer
	Manifest(ctx context.Context, tileSet string) (*tilestore.Manifest, error)
}

// Watermark returns the end of a tile set's committed coverage: every bucket
// before it that a backfill covered is tiled. ok is false when nothing is
// committed. The watermark lives in the manifest, so it is published
// atomically with the tiles it vouches for: no crash can leave one without
// the other.
func Watermark(m *tilestore.Manifest) (wm int64, ok bool) {
	if m == nil || len(m.Coverage) == 0 {
		return 0, false
	}
	return m.Coverage[len(m.Coverage)-1].To, true
}

// IncrementalCover returns the bucket range an incremental backfill of ts
// commits at now: from the watermark minus the lookback (rounded down to a
// bucket) to the start of the bucket holding now. Without a watermark it is
// the full backfill's range. ok is false when there is nothing to do: no
// bucket completed since the watermark (the lookback is re-tiled only
// together with new buckets, so a repeated run re-does nothing).
func IncrementalCover(ts *feature.TileSet, lookback int64, m *tilestore.Manifest, now time.Time) (r tilestore.Range, ok bool) {
	to := ts.Grid.Floor(now.UnixMicro())
	from := int64(math.MinInt64)
	if ts.BackfillStart != nil {
		from = ts.Grid.Ceil(*ts.BackfillStart)
	}
	if wm, has := Watermark(m); has {
		if wm >= to {
			return tilestore.Range{}, false
		}
		from = max(from, ts.Grid.Floor(wm-lookback))
	}
	if from >= to {
		return tilestore.Range{}, false
	}
	return tilestore.Range{From: from, To: to}, true
}

// lookbackOf returns the largest backfill_lookback_duration of a tile set's
// features.
func lookbackOf(cfg *feature.Config, ts *feature.TileSet) int64 {
	var lb int64
	for _, name := range ts.Features {
		if m := cfg.Features[name].Materialization; m != nil {
			lb = max(lb, m.Lookback)
		}
	}
	return lb
}

// Incremental backfills each selected tile set from its watermark: only the
// buckets completed since the last commit, plus backfill_lookback_duration of
// earlier buckets re-tiled to absorb late events. A tile set without a
// commit gets a full backfill; one already up to date is skipped, and a
// source none of whose tile sets has work is not read. opt.From and opt.To
// are ignored.
func Incremental(ctx context.Context, cfg *feature.Config, store Store, opt Options) (*Summary, error) {
	sets, err := selectSets(cfg, opt.Features)
	if err != nil {
		return nil, err
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	covers := map[string]tilestore.Range{}
	var todo []*feature.TileSet
	for _, ts := range sets {
		m, err := store.Manifest(ctx, ts.ID)
		if err != nil {
			return nil, fmt.Errorf("incremental backfill: read the watermark of tile set %s: %w", ts.ID, err)
		}
		r, ok := IncrementalCover(ts, lookbackOf(cfg, ts), m, now)
		if !ok {
			continue
		}
		covers[ts.ID] = r
		todo = append(todo, ts)
	}
	// A source none of whose tile sets has work is not read.
	return buildAndCommit(ctx, cfg, store, todo, covers, opt, "incremental backfill")
}
