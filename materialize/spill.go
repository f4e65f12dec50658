package materialize

import (
	"context"
	"fmt"
	"strings"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/budget"
	"github.com/tessera-fe/tessera/internal/spill"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// Working memory of the in-memory backfill per event: the source columns,
// then each tile set's keys, composite sort keys and values with their
// radix buffers. It sizes partitions, not an exact figure.
const (
	bytesPerEvent       = 32
	bytesPerEventPerSet = 64
)

// partitionsFor returns how many key partitions a backfill of sets reads
// source src in: opt.Partitions when set, else 1 when the in-memory build
// fits in the memory limit, else enough for each partition to.
func partitionsFor(src *feature.Source, sets []*feature.TileSet, covers map[string]tilestore.Range, opt Options) (int, error) {
	if opt.Partitions > 0 {
		return opt.Partitions, nil
	}
	// Only the files an incremental run reads count.
	rows, _, err := source.Rows(src.Path, readOptions(src, sets, covers, opt).Time)
	if err != nil {
		return 0, err
	}
	return budget.Parts(rows * int64(bytesPerEvent+bytesPerEventPerSet*len(sets))), nil
}

// spilled is one tile set's events of a source read in partitions: the keys
// in a dictionary, the events on disk by key hash.
type spilled struct {
	ts    *feature.TileSet
	spec  offline.EventSpec
	cover tilestore.Range
	dict  *tile.Dict
	parts *spill.Partitions
}

// spillSource streams the source once and writes each tile set's events in
// its cover to parts partitions by key hash. It returns the events read.
func spillSource(ctx context.Context, src *feature.Source, sets []*feature.TileSet, covers map[string]tilestore.Range, parts int, opt Options) ([]*spilled, int64, error) {
	out := make([]*spilled, len(sets))
	closeAll := func() {
		for _, s := range out {
			if s != nil && s.parts != nil {
				s.parts.Close()
			}
		}
	}
	for i, ts := range sets {
		spec := offline.EventSpec{Source: ts.Source, Key: ts.Key, Value: ts.Value}
		if ts.Filter != nil {
			spec.Filter = *ts.Filter
		}
		p, err := spill.Create(opt.SpillDir, parts, ts.Value != "")
		if err != nil {
			closeAll()
			return nil, 0, err
		}
		out[i] = &spilled{ts: ts, spec: spec, cover: covers[ts.ID], parts: p}
	}
	var events int64
	var ids []int32
	part := func(id int32) int { return hashPart(id, parts) }
	err := source.Stream(ctx, src.Path, requests(src, sets), readOptions(src, sets, covers, opt), func(_ string, t *source.Table) error {
		events += int64(t.Rows)
		for _, s := range out {
			ev := offline.EventsOf(t, s.spec, src.Timestamp, nil)
			if s.dict == nil {
				s.dict = tile.NewDict(ev.Keys.String)
			}
			ids = addKeys(s.dict, &ev.Keys, ids[:0])
			if err := s.parts.AddEvents(ev, ids, part, s.cover.From, s.cover.To); err != nil {
				return err
			}
		}
		t.Release() // the events are on their way to disk: decode the next piece here
		return nil
	})
	if err != nil {
		closeAll()
		return nil, 0, err
	}
	return out, events, nil
}

// addKeys appends the id of each key of k to ids, adding new keys to d.
// New string keys are copied, so that the dictionary does not keep whole
// decoded pages of a source file alive.
func addKeys(d *tile.Dict, k *tile.Keys, ids []int32) []int32 {
	if !k.String {
		return d.AddAll(k, ids)
	}
	base := len(ids)
	ids = d.LookupAll(k, ids)
	one := &tile.Keys{String: true, Str: make([]string, 1)}
	var tmp [1]int32
	for i, id := range ids[base:] {
		if id < 0 {
			one.Str[0] = strings.Clone(k.Str[i])
			ids[base+i] = d.AddAll(one, tmp[:0])[0]
		}
	}
	return ids
}

// hashPart spreads key ids over parts partitions.
func hashPart(id int32, parts int) int {
	return int((uint64(uint32(id)) * 0x9E3779B97F4A7C15 >> 32) % uint64(parts))
}

// commitParts returns the commit's parts: each builds one partition's tiles
// from its spilled events.
func (s *spilled) commitParts() []func() (*tile.Set, error) {
	out := make([]func() (*tile.Set, error), s.parts.Len())
	for p := range out {
		out[p] = func() (*tile.Set, error) {
			rec, err := s.parts.Read(p)
			if err != nil {
				return nil, fmt.Errorf("build tiles of %s from spilled events: %w", s.ts.ID, err)
			}
			return tile.Build(rec.Events(s.dict), s.ts.Grid, s.ts.Needs, s.cover.From, s.cover.To), nil
		}
	}
	return out
}
