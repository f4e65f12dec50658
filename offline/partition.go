package offline

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/tessera-fe/tessera/internal/budget"
	"github.com/tessera-fe/tessera/internal/spill"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// EventStreamer is an Events that can also hand over a spec's events a batch
// at a time and say about how many there are: a query larger than memory
// then reads the sources once, spilling the events to disk by key
// partition, instead of once per partition.
type EventStreamer interface {
	Events
	// StreamEvents calls fn with successive batches of the events of spec
	// whose key is in keep (all when nil) and that pass the filter.
	StreamEvents(ctx context.Context, spec EventSpec, keep *tile.Dict, fn func(*tile.Events) error) error
	// CountEvents returns about how many events spec's source holds,
	// before key filtering; it reads no event.
	CountEvents(ctx context.Context, spec EventSpec) (int64, error)
}

// Working memory of the in-memory path, per raw event and per tile read
// (columns, sort buffers, prefix sums), measured on the benchmark's
// sum+count+mean query; they size key partitions, not exact figures.
const (
	bytesPerEvent = 100
	bytesPerTile  = 160
)

// partitions returns how many key partitions the group's rows run as:
// Engine.Partitions when set, else enough for each to fit in memory.
// filtered says the mode keeps only a few of the keys' raw events (see
// rawFilter): they are sized as a sixteenth of the source.
func (e *Engine) partitions(ctx context.Context, w *groupWork, opt Options, nkeys int, filtered bool) (int, error) {
	parts := e.Partitions
	if parts == 0 {
		var need int64
		if s, ok := e.Events.(EventStreamer); ok && w.needsEvents(opt) {
			n, err := s.CountEvents(ctx, w.g.spec)
			if err != nil {
				return 0, err
			}
			if filtered {
				n /= 16
			}
			need += n * bytesPerEvent
		}
		if opt.Materialized && w.m != nil {
			need += w.m.Rows() * bytesPerTile
		}
		parts = budget.Parts(need)
	}
	return max(1, min(parts, nkeys, math.MaxUint16)), nil
}

// runKeys computes the group's outputs for the spine rows of ids, whose keys
// are dict: all at once when they fit in memory, else in key partitions run
// one after the other. Partitions are contiguous key ranges of about equal
// weight, spine rows and tiles (see splitKeys), so that each loads a narrow
// range of every tile object (objects are sorted by key) and holds and
// sweeps a similar share. Raw events, when the mode reads them, are read
// once and spilled to disk by partition (when Events is an EventStreamer;
// else read once per partition).
func (e *Engine) runKeys(ctx context.Context, w *groupWork, dict *tile.Dict, ids []int32, opt Options, st *Stats) error {
	streamer, _ := e.Events.(EventStreamer)
	var filter func(*tile.Events) *tile.Events
	if streamer != nil && w.needsEvents(opt) {
		filter = rawFilter(w, dict, ids, opt)
		// Without gaps, the filter keeps head-bucket events alone.
		w.headsOnly = filter != nil && len(w.gaps) == 0
	}
	parts, err := e.partitions(ctx, w, opt, dict.Len(), filter != nil)
	if err != nil {
		return err
	}
	st.Partitions = max(st.Partitions, parts)
	if parts == 1 {
		load := func(keep *tile.Dict) (*tile.Events, error) {
			if filter == nil {
				return e.Events.Events(ctx, w.g.spec, keep)
			}
			// Keep only the events the mode reads, batch by batch.
			var batches []*tile.Events
			// The filter drops keys outside keep itself: no key filter
			// (and no copy of every batch) before it.
			err := streamer.StreamEvents(ctx, w.g.spec, nil, func(ev *tile.Events) error {
				batches = append(batches, filter(ev))
				return nil
			})
			return tile.Concat(batches), err
		}
		return e.runPart(ctx, w, dict, ids, load, opt, st)
	}
	// Tiles weigh keys where they are what a partition holds; where the
	// mode reads raw events too (align, fallback), those, unknown until
	// read, follow the spine's rows.
	var m *tilestore.Manifest
	if opt.Materialized && !w.needsEvents(opt) {
		m = w.m
	}
	partOf := splitKeys(dict, ids, parts, m, w.lo, w.hi)
	var sp *spill.Partitions
	if streamer != nil && w.needsEvents(opt) {
		if sp, err = spillEvents(ctx, streamer, w.g.spec, dict, partOf, parts, e.SpillDir, filter); err != nil {
			return err
		}
		defer sp.Close()
	}
	partIDs := make([]int32, len(ids))
	remap := make([]int32, dict.Len())
	for p := range parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The partition's keys, numbered in the order of their ids in
		// dict: distinct, so one AddAll numbers them alike, at once
		// rather than a call per key.
		keys := &tile.Keys{String: dict.String}
		n := int32(0)
		for id, q := range partOf {
			remap[id] = -1
			if int(q) != p {
				continue
			}
			remap[id] = n
			n++
			if dict.String {
				keys.Str = append(keys.Str, dict.StrKey(int32(id)))
			} else {
				keys.Int = append(keys.Int, dict.IntKey(int32(id)))
			}
		}
		sub := tile.NewDict(dict.String)
		sub.AddAll(keys, nil)
		for r, id := range ids {
			partIDs[r] = -1
			if id >= 0 {
				partIDs[r] = remap[id]
			}
		}
		load := func(keep *tile.Dict) (*tile.Events, error) {
			if sp == nil {
				return e.Events.Events(ctx, w.g.spec, keep)
			}
			rec, err := sp.Read(p)
			if err != nil {
				return nil, err
			}
			return rec.Events(dict), nil
		}
		if err := e.runPart(ctx, w, sub, partIDs, load, opt, st); err != nil {
			return err
		}
	}
	return nil
}

// rawFilter returns, for a mode that reads only some raw events of its
// keys, a filter keeping those: materialized+align reads the head bucket of
// each row and the coverage gaps. It returns nil when every event of the
// keys is read.
func rawFilter(w *groupWork, dict *tile.Dict, ids []int32, opt Options) func(*tile.Events) *tile.Events {
	if !opt.Materialized || !opt.Align {
		return nil
	}
	heads := newHeadSet(newSpineIndex(w.sp.Times, ids, dict.Len()), w.g.tileSet.Grid)
	return func(ev *tile.Events) *tile.Events {
		n := ev.Len()
		evIDs := dict.LookupAll(&ev.Keys, make([]int32, 0, n))
		// Events of keys outside dict have id -1 and are dropped.
		chunks := max(1, min(runtime.GOMAXPROCS(0), n/(1<<16)))
		rows := make([][]int32, chunks)
		var wg sync.WaitGroup
		for c := range chunks {
			lo, hi := n*c/chunks, n*(c+1)/chunks
			wg.Go(func() {
				rows[c] = heads.keep(evIDs[lo:hi], ev.TS[lo:hi], w.gaps, nil)
				for i := range rows[c] {
					rows[c][i] += int32(lo)
				}
			})
		}
		wg.Wait()
		return pickEvents(ev, slices.Concat(rows...))
	}
}

// splitKeys assigns each key of dict to one of parts contiguous key ranges
// (in key order) of about equal weight: the memory a partition works in for
// its spine rows and, with m (a materialized query that reads no raw
// event), for its keys' tiles of [lo, hi) (see addTileWeights). Spine rows alone weigh partitions badly:
// the keys with most spine rows are few (heavy hitters), those with most
// tiles many, and a 100M-event query's last of five partitions held 64% of
// the tiles, and most of the memory.
func splitKeys(dict *tile.Dict, ids []int32, parts int, m *tilestore.Manifest, lo, hi int64) []uint16 {
	weight := make([]float64, dict.Len())
	for _, id := range ids {
		if id >= 0 {
			weight[id] += bytesPerSpineRow
		}
	}
	rank := dict.Ranks()
	byRank := make([]int32, len(rank))
	for id, r := range rank {
		byRank[r] = int32(id)
	}
	if m != nil {
		addTileWeights(weight, byRank, dict, m, tilestore.Range{From: lo, To: hi})
	}
	total := 0.0
	for _, w := range weight {
		total += w
	}
	partOf := make([]uint16, dict.Len())
	acc := 0.0
	p := 0
	for _, id := range byRank {
		for p < parts-1 && acc >= total*float64(p+1)/float64(parts) {
			p++
		}
		partOf[id] = uint16(p)
		acc += weight[id]
	}
	return partOf
}

// bytesPerSpineRow is a key partition's working memory per spine row of
// its own (its place in the index and its record of outputs), to weigh
// rows against tiles (bytesPerTile).
const bytesPerSpineRow = 80

// addTileWeights adds to weight[id] the memory of the tiles of r that m
// holds for key id of dict, whose ids in key order are byRank: each row
// group (each object without row groups) overlapping r spreads its tiles
// evenly over dict's keys within its key range. A key partition loads and
// decodes the row groups its keys may be in, whole, before it drops the
// tiles of other keys, so this is what it works through: a spine key alone
// in a range of many keys takes its group's whole weight. (Spreading a
// group over its own keys instead, estimated from its object's, measures
// what a partition keeps; at 100M events it left the decode work uneven,
// and the query took 2.3-3.3 s against 1.8-2.3 s.)
func addTileWeights(weight []float64, byRank []int32, dict *tile.Dict, m *tilestore.Manifest, r tilestore.Range) {
	n := len(byRank)
	// index returns the range [i, j) of ranks of the keys in [minKey, maxKey].
	var index func(minKey, maxKey string) (int, int)
	if dict.String {
		keys := make([]string, n)
		for i, id := range byRank {
			keys[i] = dict.StrKey(id)
		}
		index = func(minKey, maxKey string) (int, int) {
			i, _ := slices.BinarySearch(keys, minKey)
			j, found := slices.BinarySearch(keys, maxKey)
			if found {
				j++
			}
			return i, j
		}
	} else {
		keys := make([]int64, n)
		for i, id := range byRank {
			keys[i] = dict.IntKey(id)
		}
		index = func(minKey, maxKey string) (int, int) {
			a, err1 := strconv.ParseInt(minKey, 10, 64)
			b, err2 := strconv.ParseInt(maxKey, 10, 64)
			if err1 != nil || err2 != nil {
				return 0, 0
			}
			i, _ := slices.BinarySearch(keys, a)
			j, found := slices.BinarySearch(keys, b)
			if found {
				j++
			}
			return i, j
		}
	}
	diff := make([]float64, n+1) // tiles per key, as differences in rank order
	spread := func(minKey, maxKey string, rows int64) {
		if i, j := index(minKey, maxKey); j > i {
			share := float64(rows) * bytesPerTile / float64(j-i)
			diff[i] += share
			diff[j] -= share
		}
	}
	for _, o := range m.Objects {
		if o.Rows == 0 || !o.Range().Overlaps(r) {
			continue
		}
		if len(o.RowGroups) == 0 {
			spread(o.MinKey, o.MaxKey, o.Rows)
			continue
		}
		for _, g := range o.RowGroups {
			if g.Range().Overlaps(r) {
				spread(g.MinKey, g.MaxKey, g.Rows)
			}
		}
	}
	acc := 0.0
	for i, id := range byRank {
		acc += diff[i]
		weight[id] += max(acc, 0)
	}
}

// spillEvents reads spec's events of dict's keys once and writes each to
// its key's partition, as (dict id, time, value) with null values as NaN.
// filter, when not nil, selects the events to keep from each batch.
func spillEvents(ctx context.Context, s EventStreamer, spec EventSpec, dict *tile.Dict, partOf []uint16, parts int, dir string, filter func(*tile.Events) *tile.Events) (*spill.Partitions, error) {
	sp, err := spill.Create(dir, parts, spec.Value != "")
	if err != nil {
		return nil, err
	}
	var ids []int32
	part := func(id int32) int { return int(partOf[id]) }
	keep := dict
	if filter != nil {
		keep = nil // the filter drops other keys itself
	}
	err = s.StreamEvents(ctx, spec, keep, func(ev *tile.Events) error {
		if filter != nil {
			ev = filter(ev)
		}
		ids = dict.LookupAll(&ev.Keys, ids[:0])
		return sp.AddEvents(ev, ids, part, math.MinInt64, math.MaxInt64)
	})
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("spill events of source %s by key partition: %w", spec.Source, err)
	}
	return sp, nil
}
