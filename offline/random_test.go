package offline

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

const randomConfig = `
sources:
  ev: {path: events.parquet, timestamp: ts}
entities:
  user: {key: user_id}
features:
  user.acnt:     {source: ev, aggregation: count, windows: [1h, 3h, 1d, all], materialization: {bucket_duration: 30m}}
  user.total:    {source: ev, aggregation: sum,   value: amount, windows: [1h, 3h, 1d, all], materialization: {bucket_duration: 30m}}
  user.avg:      {source: ev, aggregation: mean,  value: amount, windows: [1h, 1d, all], materialization: {bucket_duration: 30m}}
  user.lo:       {source: ev, aggregation: min,   value: amount, windows: [1h, 3h, all], materialization: {bucket_duration: 30m}}
  user.hi:       {source: ev, aggregation: max,   value: amount, windows: [1h, 3h, all], materialization: {bucket_duration: 30m}}
  user.var:      {source: ev, aggregation: var,   value: amount, windows: [3h, all], materialization: {bucket_duration: 30m}}
  user.sd:       {source: ev, aggregation: std,   value: amount, windows: [3h, 1d], materialization: {bucket_duration: 30m}}
  user.declined: {source: ev, aggregation: count, filter: {column: status, equals: declined}, windows: [2h, all], materialization: {bucket_duration: 1h}}
  user.shifted:  {source: ev, aggregation: sum, value: amount, windows: [2h, 1d], materialization: {bucket_duration: 1h, bucket_start: "2026-01-01T00:10:00Z"}}
`

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

const (
	minute = int64(60_000_000)
	hour   = 60 * minute
)

// randomCase makes events and a spine full of edge cases: events on bucket
// edges and exactly at input times, null values, keys with no events,
// duplicate spine rows, unsorted rows.
func randomCase(rng *rand.Rand, str bool) ([]rawEvent, *Spine, []int64, []string) {
	nkeys := 1 + rng.IntN(6)
	nspine := 1 + rng.IntN(60)
	times := make([]int64, nspine)
	for i := range times {
		switch rng.IntN(4) {
		case 0: // on a 30m boundary
			times[i] = t0 + int64(rng.IntN(96))*30*minute
		case 1: // duplicate of an earlier row's time
			if i > 0 {
				times[i] = times[rng.IntN(i)]
				continue
			}
			fallthrough
		default:
			times[i] = t0 + rng.Int64N(48*hour)
		}
	}
	var events []rawEvent
	nev := rng.IntN(300)
	for range nev {
		var ts int64
		switch rng.IntN(5) {
		case 0:
			ts = t0 + int64(rng.IntN(96))*30*minute // bucket edge
		case 1:
			ts = times[rng.IntN(nspine)] // exactly at an input time
		case 2:
			ts = t0 + int64(rng.IntN(48))*hour + 10*minute // edge of the shifted grid
		default:
			ts = t0 - 6*hour + rng.Int64N(56*hour)
		}
		k := int64(rng.IntN(nkeys))
		e := rawEvent{ikey: k, skey: fmt.Sprintf("u%d", k), ts: ts, value: math.Round(rng.NormFloat64()*1000) / 10, valid: rng.IntN(8) != 0}
		if rng.IntN(3) == 0 {
			e.status = "declined"
		}
		events = append(events, e)
	}
	ikeys := make([]int64, nspine)
	skeys := make([]string, nspine)
	for i := range ikeys {
		ikeys[i] = int64(rng.IntN(nkeys + 2)) // some keys have no events
		skeys[i] = fmt.Sprintf("u%d", ikeys[i])
	}
	sp := &Spine{Keys: tile.Keys{String: str, Int: ikeys}, Times: times}
	if str {
		sp.Keys = tile.Keys{String: true, Str: skeys}
	}
	return events, sp, ikeys, skeys
}

func mustConfig(t testing.TB, text string) *feature.Config {
	t.Helper()
	cfg, err := feature.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// allRefs lists every declared window of every feature.
func allRefs(t testing.TB, cfg *feature.Config) []feature.Ref {
	var refs []feature.Ref
	for _, name := range cfg.FeatureNames() {
		for _, w := range cfg.Features[name].Windows {
			r, err := feature.ParseRef(fmt.Sprintf("%s[%s]", name, w))
			if err != nil {
				t.Fatal(err)
			}
			refs = append(refs, r)
		}
	}
	return refs
}

// backfill builds tiles for every tile set from the events, keeping only the
// tiles inside cover, as a store holding that coverage would.
func backfill(t testing.TB, cfg *feature.Config, ev *memEvents, cover []tilestore.Range) *memTiles {
	mt := &memTiles{sets: map[string]*tile.Set{}, cover: map[string][]tilestore.Range{}, str: ev.str}
	for _, ts := range cfg.TileSets() {
		spec := EventSpec{Source: ts.Source, Key: ts.Key, Value: ts.Value}
		if ts.Filter != nil {
			spec.Filter = *ts.Filter
		}
		events, err := ev.Events(context.Background(), spec, nil)
		if err != nil {
			t.Fatal(err)
		}
		set := &tile.Set{Needs: ts.Needs, Keys: tile.Keys{String: ev.str}}
		for _, c := range cover {
			set.AppendAll(tile.Build(events, ts.Grid, ts.Needs, c.From, c.To))
		}
		mt.sets[ts.ID] = set
		mt.cover[ts.ID] = cover
	}
	ev.loaded = 0
	return mt
}

var allModes = []Options{{}, {Align: true}, {Materialized: true}, {Materialized: true, Align: true}}

func TestRandomAgainstOracle(t *testing.T) {
	cfg := mustConfig(t, randomConfig)
	refs := allRefs(t, cfg)
	full := []tilestore.Range{{From: math.MinInt64, To: t0 + 72*hour}}
	partial := []tilestore.Range{{From: math.MinInt64, To: t0 + 4*hour}, {From: t0 + 10*hour, To: t0 + 20*hour}, {From: t0 + 30*hour, To: t0 + 72*hour}}
	late := []tilestore.Range{{From: t0 + 5*hour, To: t0 + 40*hour}}
	for seed := range 150 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		str := seed%2 == 1
		events, sp, ikeys, skeys := randomCase(rng, str)
		for ci, cover := range [][]tilestore.Range{full, partial, late, nil} {
			mem := &memEvents{str: str, events: events}
			tiles := backfill(t, cfg, mem, cover)
			if cover == nil {
				tiles = nil
			}
			eng := &Engine{Config: cfg, Events: mem}
			var lent *lentTiles
			if tiles != nil {
				eng.Tiles = tiles
				if seed%2 == 0 {
					// Loads lent and poisoned once released.
					lent = &lentTiles{memTiles: tiles}
					eng.Tiles = lent
				}
			}
			for _, opt := range allModes {
				if !opt.Materialized && ci > 0 {
					continue // raw modes do not read tiles
				}
				res, err := eng.Query(context.Background(), sp, refs, opt)
				if err != nil {
					t.Fatalf("seed %d %s: %v", seed, opt.Mode(), err)
				}
				if lent != nil && lent.released != lent.lent {
					t.Fatalf("seed %d %s: %d tile loads lent, %d released", seed, opt.Mode(), lent.lent, lent.released)
				}
				if seed%3 == 0 {
					samePartitioned(t, eng, sp, refs, opt, res, 2+seed%4, fmt.Sprintf("seed %d cover %d %s", seed, ci, opt.Mode()))
				}
				for k, ref := range refs {
					f, _ := cfg.Resolve(ref)
					col := res.Columns[k]
					for r, tm := range sp.Times {
						want, wok := oracle(events, f, ref.Window, gridOf(cfg, f), opt, str, ikeys[r], skeys[r], tm)
						got, gok := col.Values[r], col.Valid == nil || col.Valid[r]
						if wok != gok || (wok && !closeFor(f.Aggregation, got, want, 1e4)) {
							t.Fatalf("seed %d cover %d %s %s row %d (key %d, t %s): got %v (valid %v), want %v (valid %v)",
								seed, ci, opt.Mode(), ref.Text, r, ikeys[r], time.UnixMicro(tm).UTC().Format(time.RFC3339Nano), got, gok, want, wok)
						}
					}
				}
			}
		}
	}
}

// streamMem is memEvents that streams in batches, so that partitioned
// queries spill its events.
type streamMem struct{ *memEvents }

func (s streamMem) StreamEvents(ctx context.Context, spec EventSpec, keep *tile.Dict, fn func(*tile.Events) error) error {
	ev, err := s.Events(ctx, spec, keep)
	if err != nil {
		return err
	}
	// Three batches of uneven sizes, some empty.
	n := ev.Len()
	for _, cut := range [][2]int{{0, n / 3}, {n / 3, n / 3}, {n / 3, n}} {
		b := &tile.Events{Keys: tile.Keys{String: ev.Keys.String}, TS: ev.TS[cut[0]:cut[1]], Values: ev.Values[cut[0]:cut[1]], Valid: ev.Valid[cut[0]:cut[1]]}
		if b.Keys.String {
			b.Keys.Str = ev.Keys.Str[cut[0]:cut[1]]
		} else {
			b.Keys.Int = ev.Keys.Int[cut[0]:cut[1]]
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

func (s streamMem) CountEvents(context.Context, EventSpec) (int64, error) {
	return int64(len(s.events)), nil
}

// samePartitioned checks that the query run in key partitions, with events
// spilled (a streamer) or read per partition, and in one partition with
// events streamed and filtered to what the mode reads, gives want bit for
// bit.
func samePartitioned(t *testing.T, eng *Engine, sp *Spine, refs []feature.Ref, opt Options, want *Result, parts int, what string) {
	t.Helper()
	mem := eng.Events.(*memEvents)
	for _, run := range []struct {
		parts  int
		events Events
	}{{parts, mem}, {parts, streamMem{mem}}, {1, streamMem{mem}}} {
		events := run.events
		pe := *eng
		pe.Partitions, pe.Events, pe.SpillDir = run.parts, events, t.TempDir()
		got, err := pe.Query(context.Background(), sp, refs, opt)
		if err != nil {
			t.Fatalf("%s in %d partitions (%T): %v", what, parts, events, err)
		}
		for k, col := range got.Columns {
			w := want.Columns[k]
			for r := range col.Values {
				if math.Float64bits(col.Values[r]) != math.Float64bits(w.Values[r]) || (col.Valid == nil) != (w.Valid == nil) || (col.Valid != nil && col.Valid[r] != w.Valid[r]) {
					t.Fatalf("%s %s row %d in %d partitions (%T): %v, want %v as in one", what, col.Name, r, run.parts, events, col.Values[r], w.Values[r])
				}
			}
		}
		if fmt.Sprint(got.Stats.Fallback, got.Stats.OffBoundary) != fmt.Sprint(want.Stats.Fallback, want.Stats.OffBoundary) {
			t.Fatalf("%s in %d partitions: stats %v %v, want %v %v", what, run.parts, got.Stats.Fallback, got.Stats.OffBoundary, want.Stats.Fallback, want.Stats.OffBoundary)
		}
	}
}

func gridOf(cfg *feature.Config, f *feature.Feature) tile.Grid {
	if ts := cfg.TileSetOf(f.Name); ts != nil {
		return ts.Grid
	}
	return tile.Grid{}
}

// closeFor compares a computed value with the oracle's. Prefix sums round
// differently from a direct sum, so values agree to a tolerance relative to
// the magnitude of the data (scale2: the largest squared value): var is
// compared absolutely against scale2, std through its square.
func closeFor(fn aggregate.Func, got, want, scale2 float64) bool {
	switch fn {
	case aggregate.Var:
		return math.Abs(got-want) <= 1e-11*scale2
	case aggregate.Std:
		return math.Abs(got*got-want*want) <= 1e-11*scale2
	}
	return math.Abs(got-want) <= 1e-9*(1+math.Abs(want))
}
