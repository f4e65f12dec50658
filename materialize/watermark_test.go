package materialize

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

const incrementalConfig = `sources:
  transactions: {path: events.parquet, timestamp: ts}
entities:
  user: {key: user_id}
  merchant: {key: merchant_id}
features:
  user.total:
    source: transactions
    aggregation: sum
    value: amount
    windows: [1d, all]
    materialization: {bucket_duration: 1h, backfill_schedule: 15m, backfill_lookback_duration: 3h}
  merchant.declined:
    source: transactions
    aggregation: count
    filter: {column: status, equals: declined}
    windows: [1d]
    materialization: {bucket_duration: 30m, backfill_schedule: "0 * * * *", backfill_lookback_duration: 3h}
`

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// writeEvents writes the events with ts < until, leaving out the late ones
// (late[i] true) unless withLate.
func writeEvents(t *testing.T, dir string, all *source.Table, until time.Time, late []bool, withLate bool) {
	t.Helper()
	ts := all.Column("ts").Ints
	var keep []int
	for i := range all.Rows {
		if ts[i] < until.UnixMicro() && (withLate || !late[i]) {
			keep = append(keep, i)
		}
	}
	out := pick(all, keep)
	if err := source.Write(filepath.Join(dir, "events.parquet"), out); err != nil {
		t.Fatal(err)
	}
}

func parseConfig(t *testing.T, dir string) *feature.Config {
	t.Helper()
	return parseConfigText(t, dir, incrementalConfig)
}

// parseConfigText writes text as the directory's config and parses it.
func parseConfigText(t *testing.T, dir, text string) *feature.Config {
	t.Helper()
	path := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := feature.Parse(path, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func openStore(t *testing.T, dir string) *tilestore.Store {
	t.Helper()
	s, err := tilestore.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// allTiles returns every tile and the coverage of each tile set.
func allTiles(t *testing.T, cfg *feature.Config, s *tilestore.Store) map[string]*tile.Set {
	t.Helper()
	out := map[string]*tile.Set{}
	for _, ts := range cfg.TileSets() {
		m, err := s.Manifest(context.Background(), ts.ID)
		if err != nil || m == nil {
			t.Fatalf("manifest of %s: %v %v", ts.ID, m, err)
		}
		set, err := s.Load(context.Background(), m, tilestore.Range{From: math.MinInt64, To: math.MaxInt64}, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[ts.ID] = set
	}
	return out
}

func watermarks(t *testing.T, cfg *feature.Config, s *tilestore.Store) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, ts := range cfg.TileSets() {
		m, err := s.Manifest(context.Background(), ts.ID)
		if err != nil {
			t.Fatal(err)
		}
		if wm, ok := Watermark(m); ok {
			out[ts.ID] = wm
		}
	}
	return out
}

// failingStore fails the commit numbered failAt (1-based), as a crash
// between two tile sets' commits would.
type failingStore struct {
	*tilestore.Store
	commits atomic.Int32
	failAt  int32
}

var errCrash = errors.New("simulated crash")

func (f *failingStore) Commit(ctx context.Context, c tilestore.Commit) (*tilestore.Manifest, error) {
	if f.commits.Add(1) == f.failAt {
		return nil, errCrash
	}
	return f.Store.Commit(ctx, c)
}

// TestIncrementalEqualsFullBackfill runs the scheduler's backfill, stops,
// adds events (some late, inside the lookback), crashes half-way through a
// run, runs again, and checks that the tiles equal one clean full backfill
// and that the watermarks advanced and never skipped work.
func TestIncrementalEqualsFullBackfill(t *testing.T) {
	dir := t.TempDir()
	spec := sample.Default()
	spec.Events, spec.Users, spec.Merchants, spec.Days, spec.Start = 6000, 50, 10, 6, t0
	all := sample.Events(spec)
	cfg := parseConfig(t, dir)
	ctx := context.Background()

	day2 := t0.Add(48*time.Hour + 20*time.Minute)
	day4 := t0.Add(96*time.Hour + 50*time.Minute)
	// Late events: times in the two hours before day2's bucket, arriving
	// only after the first run.
	late := make([]bool, all.Rows)
	nLate := 0
	for i, us := range all.Column("ts").Ints {
		if us >= day2.Add(-2*time.Hour).UnixMicro() && us < day2.Add(-20*time.Minute).UnixMicro() && i%3 == 0 {
			late[i] = true
			nLate++
		}
	}
	if nLate == 0 {
		t.Fatal("no late events in the sample")
	}

	inc := &failingStore{Store: openStore(t, filepath.Join(dir, "inc"))}
	writeEvents(t, dir, all, day2, late, false)
	if _, err := Incremental(ctx, cfg, inc, Options{Now: day2}); err != nil {
		t.Fatal(err)
	}
	wm1 := watermarks(t, cfg, inc.Store)
	for id, wm := range wm1 {
		ts := tileSetByID(cfg, id)
		if wm != ts.Grid.Floor(day2.UnixMicro()) {
			t.Errorf("%s: watermark %s after the first run, want %s", id, time.UnixMicro(wm).UTC(), day2)
		}
	}
	// Up to date: nothing to do, nothing committed.
	sum, err := Incremental(ctx, cfg, inc, Options{Now: day2})
	if err != nil || len(sum.Sets) != 0 {
		t.Fatalf("second run at the same time committed %v (%v)", sum.Sets, err)
	}

	// More events, and the late ones; the next run crashes after its first commit.
	writeEvents(t, dir, all, day4, late, true)
	inc.failAt = inc.commits.Load() + 2
	if _, err := Incremental(ctx, cfg, inc, Options{Now: day4}); !errors.Is(err, errCrash) {
		t.Fatalf("crashing run: %v", err)
	}
	wmCrash := watermarks(t, cfg, inc.Store)
	advanced := 0
	for id := range wm1 {
		if wmCrash[id] > wm1[id] {
			advanced++
		}
	}
	if advanced != 1 {
		t.Fatalf("after the crash %d tile sets advanced, want 1: %v -> %v", advanced, wm1, wmCrash)
	}
	// Restart: resumes each tile set from its own watermark.
	sched := &Scheduler{Config: cfg, Store: inc, Now: func() time.Time { return day4 }}
	run := sched.RunOnce(ctx, []string{cfg.TileSets()[0].ID, cfg.TileSets()[1].ID})
	if run.Err != nil {
		t.Fatal(run.Err)
	}
	for _, s := range run.Summary.Sets {
		lb := lookbackOf(cfg, tileSetByID(cfg, s.TileSet))
		if want := tileSetByID(cfg, s.TileSet).Grid.Floor(wmCrash[s.TileSet] - lb); s.Cover.From != want {
			t.Errorf("%s resumed from %s, want its watermark minus the lookback %s", s.TileSet, time.UnixMicro(s.Cover.From).UTC(), time.UnixMicro(want).UTC())
		}
	}

	full := openStore(t, filepath.Join(dir, "full"))
	if _, err := Backfill(ctx, cfg, full, Options{Now: day4}); err != nil {
		t.Fatal(err)
	}
	got, want := allTiles(t, cfg, inc.Store), allTiles(t, cfg, full)
	for id := range want {
		if want[id].Len() == 0 {
			t.Fatalf("%s: no tiles", id)
		}
		if !reflect.DeepEqual(got[id], want[id]) {
			t.Errorf("%s: incremental tiles (%d) differ from a full backfill (%d)", id, got[id].Len(), want[id].Len())
		}
	}
	if g, w := watermarks(t, cfg, inc.Store), watermarks(t, cfg, full); !reflect.DeepEqual(g, w) {
		t.Errorf("watermarks %v, full backfill %v", g, w)
	}
}

func tileSetByID(cfg *feature.Config, id string) *feature.TileSet {
	for _, ts := range cfg.TileSets() {
		if ts.ID == id {
			return ts
		}
	}
	return nil
}

// TestSchedulerLoop runs the loop on a fake clock: a catch-up run at start,
// then runs as the schedules come due, until the context ends.
func TestSchedulerLoop(t *testing.T) {
	dir := t.TempDir()
	spec := sample.Default()
	spec.Events, spec.Users, spec.Merchants, spec.Days, spec.Start = 500, 10, 5, 1, t0
	cfg := parseConfig(t, dir)
	writeEvents(t, dir, sample.Events(spec), t0.Add(48*time.Hour), make([]bool, spec.Events), true)
	st := openStore(t, filepath.Join(dir, "store"))
	// The clock starts at 10:59:59.9 and jumps as the scheduler sleeps.
	var clock atomic.Int64
	clock.Store(t0.Add(11*time.Hour - 100*time.Millisecond).UnixMicro())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs []Run
	var slept []time.Duration
	s := &Scheduler{Config: cfg, Store: st,
		Now: func() time.Time { return time.UnixMicro(clock.Load()).UTC() },
		Sleep: func(ctx context.Context, d time.Duration) error {
			slept = append(slept, d)
			clock.Add(d.Microseconds())
			return ctx.Err()
		},
		After: func(r Run) {
			runs = append(runs, r)
			clock.Add(int64(8 * time.Minute / time.Microsecond))
			if len(runs) == 4 {
				cancel()
			}
		}}
	if err := s.Loop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("loop: %v", err)
	}
	if len(runs) != 4 {
		t.Fatalf("%d runs", len(runs))
	}
	if len(runs[0].TileSets) != 2 || runs[0].Err != nil {
		t.Errorf("catch-up run: %+v", runs[0])
	}
	for _, r := range runs {
		if r.Err != nil {
			t.Errorf("run at %s: %v", r.Start, r.Err)
		}
	}
	// 10:59:59.9 catch-up (both), clock 11:07:59.9; the cron set is due at
	// 11:00 (run at once), the 15m set at 11:14:59.9.
	if len(runs[1].TileSets) != 1 || !runs[1].Start.Equal(t0.Add(11*time.Hour+8*time.Minute-100*time.Millisecond)) {
		t.Errorf("second run: %v at %s", runs[1].TileSets, runs[1].Start)
	}
	if len(slept) == 0 {
		t.Error("the loop never waited")
	}
	wm := watermarks(t, cfg, st)
	if len(wm) != 2 {
		t.Errorf("watermarks %v", wm)
	}
}
