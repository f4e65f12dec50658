// Package tessera is the library entry point for building training sets:
// OfflineQuery takes entity keys, input times and feature references, the
// same inputs as `tessera offline-query`, and returns one column per
// reference. The packages below it hold the parts: feature (definitions),
// aggregate (kernels), tile (buckets and tiles), tilestore (tiles on object
// storage), source (Parquet and CSV), offline (planner and executors) and
// materialize (backfill).
package tessera

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// PlannerOptions are the offline planner's options, named as in the
// product description.
type PlannerOptions struct {
	// UseMaterializedOfflineQuery reads tiles: every whole bucket that
	// intersects [t-W, t) is merged, so rows off a bucket boundary may see up
	// to one bucket of events after t.
	UseMaterializedOfflineQuery bool
	// AlignOfflineWindowWithMaterialization rounds windows as online serving
	// does: [floor(t-W), t), cutting the head bucket at t.
	AlignOfflineWindowWithMaterialization bool
}

// Options returns the planner options in the offline package's terms.
func (p PlannerOptions) Options() offline.Options {
	return offline.Options{Materialized: p.UseMaterializedOfflineQuery, Align: p.AlignOfflineWindowWithMaterialization}
}

// Request is an offline query.
type Request struct {
	// Inputs holds the spine's keys, one per row, as []int64 or []string,
	// under the entity's name ("user"), an entity-qualified name ("user.id")
	// or a key column name ("user_id"). Each output reads the keys of its
	// feature's entity (or grouping column).
	Inputs map[string]any
	// InputTimes holds each row's input time.
	InputTimes []time.Time
	// Outputs are feature references such as user.total_transaction_amount[7d].
	Outputs []string
	Planner PlannerOptions
	// Store holds the tiles; nil opens the config's store when a
	// materialized query needs it.
	Store *tilestore.Store
	// Stats, when set, counts the raw rows and bytes the query read.
	Stats *source.Stats
	// Partitions, when above 0, runs the query in that many key
	// partitions; 0 partitions only what would not fit in the memory limit
	// (GOMEMLIMIT, else half of RAM). SpillDir is where partitioned runs
	// spill raw events ("" is $TMPDIR).
	Partitions int
	SpillDir   string
}

// OfflineQuery computes every output for every input row, in input order.
func OfflineQuery(ctx context.Context, cfg *feature.Config, req Request) (*offline.Result, error) {
	times := make([]int64, len(req.InputTimes))
	for i, t := range req.InputTimes {
		times[i] = t.UnixMicro()
	}
	refs := make([]feature.Ref, len(req.Outputs))
	for i, o := range req.Outputs {
		r, err := feature.ParseRef(o)
		if err != nil {
			return nil, err
		}
		refs[i] = r
	}
	keysFor := func(f *feature.Feature) (string, tile.Keys, error) {
		for _, name := range []string{f.Entity, f.Key} {
			for k, v := range req.Inputs {
				if k == name || strings.HasPrefix(k, name+".") {
					keys, err := keysOf(k, v, len(times))
					return k, keys, err
				}
			}
		}
		return "", tile.Keys{}, fmt.Errorf("no input for %s: give its keys under %q (or %q)", f.Name, f.Entity+".id", f.Key)
	}
	store := req.Store
	if store == nil && req.Planner.UseMaterializedOfflineQuery {
		s, err := tilestore.Open(ctx, cfg.Store)
		if err != nil {
			return nil, fmt.Errorf("open tile store %s: %w", cfg.Store, err)
		}
		defer s.Close()
		store = s
	}
	eng := &offline.Engine{Config: cfg, Events: &offline.FileEvents{Config: cfg, Stats: req.Stats}, Partitions: req.Partitions, SpillDir: req.SpillDir}
	if store != nil {
		eng.Tiles = store
	}
	return QueryByKey(ctx, eng, refs, times, keysFor, req.Planner.Options())
}

// KeysFor returns the name and the keys of the spine input a feature reads.
type KeysFor func(*feature.Feature) (name string, keys tile.Keys, err error)

// QueryByKey runs one offline query per distinct key input (features of
// different entities read different spine columns) and returns the columns
// in reference order with the stats of every run combined.
func QueryByKey(ctx context.Context, eng *offline.Engine, refs []feature.Ref, times []int64, keysFor KeysFor, opt offline.Options) (*offline.Result, error) {
	type batch struct {
		keys tile.Keys
		refs []feature.Ref
		at   []int
	}
	var batches []*batch
	byKey := map[string]*batch{}
	for i, r := range refs {
		f, err := eng.Config.Resolve(r)
		if err != nil {
			return nil, err
		}
		name, keys, err := keysFor(f)
		if err != nil {
			return nil, err
		}
		b := byKey[name]
		if b == nil {
			b = &batch{keys: keys}
			byKey[name] = b
			batches = append(batches, b)
		}
		b.refs = append(b.refs, r)
		b.at = append(b.at, i)
	}
	res := &offline.Result{Columns: make([]*offline.Column, len(refs)), Stats: offline.Stats{Rows: len(times), Mode: opt.Mode()}}
	for _, b := range batches {
		r, err := eng.Query(ctx, &offline.Spine{Keys: b.keys, Times: times}, b.refs, opt)
		if err != nil {
			return nil, err
		}
		for j, c := range r.Columns {
			res.Columns[b.at[j]] = c
		}
		res.Stats.EventsRead += r.Stats.EventsRead
		res.Stats.TilesRead += r.Stats.TilesRead
		res.Stats.Partitions = max(res.Stats.Partitions, r.Stats.Partitions)
		res.Stats.Fallback = append(res.Stats.Fallback, r.Stats.Fallback...)
		res.Stats.OffBoundary = append(res.Stats.OffBoundary, r.Stats.OffBoundary...)
	}
	return res, nil
}

func keysOf(name string, v any, n int) (tile.Keys, error) {
	var k tile.Keys
	switch x := v.(type) {
	case []int64:
		k = tile.Keys{Int: x}
	case []int:
		k.Int = make([]int64, len(x))
		for i, y := range x {
			k.Int[i] = int64(y)
		}
	case []string:
		k = tile.Keys{String: true, Str: x}
	default:
		return k, fmt.Errorf("input %s: keys must be []int64, []int or []string, not %T", name, v)
	}
	if k.Len() != n {
		return k, fmt.Errorf("input %s has %d keys but there are %d input times", name, k.Len(), n)
	}
	return k, nil
}
