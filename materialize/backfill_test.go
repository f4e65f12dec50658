package materialize_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

var (
	day0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now  = time.Date(2026, 2, 1, 12, 34, 0, 0, time.UTC)
)

// eventTimes are the test events' times: every 7 minutes over ten days,
// plus events exactly on hour boundaries and one after now.
func eventTimes() []int64 {
	var ts []int64
	for t := day0; t.Before(day0.Add(10 * 24 * time.Hour)); t = t.Add(7 * time.Minute) {
		ts = append(ts, t.UnixMicro())
	}
	for h := range 48 {
		ts = append(ts, day0.Add(time.Duration(h)*time.Hour).UnixMicro())
	}
	return append(ts, now.Add(time.Hour).UnixMicro())
}

const baseConfig = `sources:
  tx:
    path: events.parquet
    timestamp: ts
entities:
  user: {key: user_id}
features:
  user.total:
    source: tx
    aggregation: sum
    value: amount
    windows: [1d, 7d]
    materialization: {bucket_duration: 1h}
  user.mean:
    source: tx
    aggregation: mean
    value: amount
    windows: [1d]
    materialization: {bucket_duration: 1h}
  user.count_2h:
    source: tx
    aggregation: count
    windows: [1d]
    materialization: {bucket_duration: 2h}
  user.declined:
    source: tx
    aggregation: count
    filter: {column: status, equals: declined}
    windows: [1d]
    materialization: {bucket_duration: 1h}
  user.raw_max:
    source: tx
    aggregation: max
    value: amount
    windows: [1d]
`

// setup writes the events and the config (baseConfig with edits applied)
// to a directory and opens its store.
func setup(t *testing.T, config string) (*feature.Config, *tilestore.Store, []int64) {
	t.Helper()
	dir := t.TempDir()
	ts := eventTimes()
	n := len(ts)
	uid, amount, status := make([]int64, n), make([]float64, n), make([]string, n)
	for i := range n {
		uid[i] = int64(i % 5)
		amount[i] = float64(i%13) + 0.5
		status[i] = "approved"
		if i%9 == 0 {
			status[i] = "declined"
		}
	}
	err := source.Write(filepath.Join(dir, "events.parquet"), &source.Table{Rows: n, Columns: []*source.Column{
		{Name: "user_id", Kind: source.Int64, Ints: uid},
		{Name: "ts", Kind: source.Timestamp, Ints: ts},
		{Name: "amount", Kind: source.Float64, Floats: amount},
		{Name: "status", Kind: source.String, Strs: status},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, store := openConfig(t, dir, config)
	return cfg, store, ts
}

// openConfig writes config as dir/tessera.yaml, parses it and opens its
// store, closed when the test ends.
func openConfig(t *testing.T, dir, config string) (*feature.Config, *tilestore.Store) {
	t.Helper()
	path := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := feature.Parse(path, []byte(config))
	if err != nil {
		t.Fatal(err)
	}
	store, err := tilestore.Open(context.Background(), cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return cfg, store
}

func backfill(t *testing.T, cfg *feature.Config, store *tilestore.Store, opt materialize.Options) *materialize.Summary {
	t.Helper()
	if opt.Now.IsZero() {
		opt.Now = now
	}
	sum, err := materialize.Backfill(context.Background(), cfg, store, opt)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func manifests(t *testing.T, store *tilestore.Store) map[string]*tilestore.Manifest {
	t.Helper()
	ms, err := store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tilestore.Manifest{}
	for _, m := range ms {
		out[m.TileSet] = m
	}
	return out
}

// tileSetOf returns the manifest of the tile set serving a feature.
func tileSetOf(t *testing.T, cfg *feature.Config, store *tilestore.Store, name string) *tilestore.Manifest {
	t.Helper()
	m := manifests(t, store)[cfg.TileSetOf(name).ID]
	if m == nil {
		t.Fatalf("no tile set for %s in the store", name)
	}
	return m
}

// tiledEvents loads a tile set whole and returns its event count and the
// range of its bucket starts.
func tiledEvents(t *testing.T, store *tilestore.Store, m *tilestore.Manifest) (count, first, last int64) {
	t.Helper()
	set, err := store.Load(context.Background(), m, tilestore.Range{From: math.MinInt64, To: math.MaxInt64}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, last = math.MaxInt64, math.MinInt64
	for i, c := range set.Count {
		count += c
		first, last = min(first, set.Start[i]), max(last, set.Start[i])
	}
	return count, first, last
}

func countIn(ts []int64, from, to time.Time) int64 {
	var n int64
	for _, t := range ts {
		if from.UnixMicro() <= t && t < to.UnixMicro() {
			n++
		}
	}
	return n
}

func TestBackfillIsIdempotent(t *testing.T) {
	cfg, store, _ := setup(t, baseConfig)
	first := backfill(t, cfg, store, materialize.Options{})
	if len(first.Sets) != 3 {
		t.Fatalf("want 3 tile sets (1h sum+count, 2h count, 1h declined count), got %d", len(first.Sets))
	}
	before := manifests(t, store)
	files := storeFiles(t, cfg.Store)
	second := backfill(t, cfg, store, materialize.Options{})
	after := manifests(t, store)
	for id, m := range before {
		a := after[id]
		if a.Version != m.Version || !reflect.DeepEqual(a.Objects, m.Objects) || !slices.Equal(a.Coverage, m.Coverage) {
			t.Errorf("tile set %s: second backfill changed it: v%d %v -> v%d %v", id, m.Version, m.Objects, a.Version, a.Objects)
		}
	}
	for i, s := range second.Sets {
		if s.Version != first.Sets[i].Version || s.Tiles != first.Sets[i].Tiles {
			t.Errorf("tile set %s: second backfill reports v%d with %d tiles, first v%d with %d", s.TileSet, s.Version, s.Tiles, first.Sets[i].Version, first.Sets[i].Tiles)
		}
	}
	if got := storeFiles(t, cfg.Store); !slices.Equal(got, files) {
		t.Errorf("second backfill wrote files: before %v, after %v", files, got)
	}
}

func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBackfillSelectsFeatures(t *testing.T) {
	cfg, store, _ := setup(t, baseConfig)
	sum := backfill(t, cfg, store, materialize.Options{Features: []string{"user.mean", "user.total"}})
	if len(sum.Sets) != 1 || sum.Sets[0].TileSet != cfg.TileSetOf("user.total").ID ||
		!slices.Equal(sum.Sets[0].Features, []string{"user.mean", "user.total"}) {
		t.Fatalf("features sharing a tile set: got %+v", sum.Sets)
	}
	if ms := manifests(t, store); len(ms) != 1 {
		t.Fatalf("store holds %d tile sets, want only the selected one", len(ms))
	}
	sum = backfill(t, cfg, store, materialize.Options{Features: []string{"user.declined"}})
	if len(sum.Sets) != 1 || sum.Sets[0].TileSet != cfg.TileSetOf("user.declined").ID {
		t.Fatalf("got %+v", sum.Sets)
	}
	if ms := manifests(t, store); len(ms) != 2 {
		t.Fatalf("store holds %d tile sets, want 2", len(ms))
	}

	for _, c := range []struct {
		features []string
		want     string
	}{
		{[]string{"user.nope"}, `unknown feature "user.nope"; features are: [user.count_2h user.declined user.mean user.raw_max user.total]`},
		{[]string{"user.raw_max"}, "feature user.raw_max is not materialized: add `materialization: {bucket_duration: 1h}` to it in"},
	} {
		_, err := materialize.Backfill(context.Background(), cfg, store, materialize.Options{Features: c.features, Now: now})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Backfill(%v): got %v, want %q", c.features, err, c.want)
		}
	}
}

func TestBackfillRangeRoundsToBuckets(t *testing.T) {
	cfg, store, ts := setup(t, baseConfig)
	from, to := day0.Add(24*time.Hour+30*time.Minute), day0.Add(48*time.Hour+70*time.Minute)
	sum := backfill(t, cfg, store, materialize.Options{From: &from, To: &to})
	for _, c := range []struct {
		feature  string
		from, to time.Time // rounded out to whole buckets
	}{
		{"user.total", day0.Add(24 * time.Hour), day0.Add(50 * time.Hour)},    // 1h: 00:30 -> 00:00, 01:10 -> 02:00
		{"user.count_2h", day0.Add(24 * time.Hour), day0.Add(50 * time.Hour)}, // 2h: the same boundaries
	} {
		m := tileSetOf(t, cfg, store, c.feature)
		want := []tilestore.Range{{From: c.from.UnixMicro(), To: c.to.UnixMicro()}}
		if !slices.Equal(m.Coverage, want) {
			t.Errorf("%s: coverage %v, want %v", c.feature, m.Coverage, want)
		}
		n, first, last := tiledEvents(t, store, m)
		if want := countIn(ts, c.from, c.to); n != want {
			t.Errorf("%s: tiles count %d events, want the %d in the rounded range", c.feature, n, want)
		}
		if first < c.from.UnixMicro() || last >= c.to.UnixMicro() {
			t.Errorf("%s: tiles from %v to %v lie outside the range", c.feature, time.UnixMicro(first).UTC(), time.UnixMicro(last).UTC())
		}
	}
	for _, s := range sum.Sets {
		if s.Cover.From != day0.Add(24*time.Hour).UnixMicro() {
			t.Errorf("summary of %s: cover %v", s.TileSet, s.Cover)
		}
	}

	// An empty range is an error that names the range and the fix.
	late := now.Add(48 * time.Hour)
	_, err := materialize.Backfill(context.Background(), cfg, store, materialize.Options{From: &late, Now: now})
	if err == nil || !strings.Contains(err.Error(), "empty range") || !strings.Contains(err.Error(), "--from must be before --to") {
		t.Errorf("backfill from after now: got %v", err)
	}
}

func TestBackfillDefaultRange(t *testing.T) {
	// The grid origin sits at half past: buckets start at hh:30.
	cfg, store, ts := setup(t, strings.Replace(baseConfig, "windows: [1d, 7d]\n    materialization: {bucket_duration: 1h}",
		"windows: [1d, 7d]\n    materialization: {bucket_duration: 1h, bucket_start: 2020-01-01T00:30:00Z}", 1))
	backfill(t, cfg, store, materialize.Options{})
	for _, c := range []struct {
		feature string
		to      time.Time // start of the bucket holding now (12:34)
	}{
		{"user.total", time.Date(2026, 2, 1, 12, 30, 0, 0, time.UTC)},
		{"user.count_2h", time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)},
	} {
		m := tileSetOf(t, cfg, store, c.feature)
		// From the beginning of time: one pass over the source proves that
		// no earlier event exists.
		want := []tilestore.Range{{From: math.MinInt64, To: c.to.UnixMicro()}}
		if !slices.Equal(m.Coverage, want) {
			t.Errorf("%s: coverage %v, want %v", c.feature, m.Coverage, want)
		}
		n, _, _ := tiledEvents(t, store, m)
		if want := int64(len(ts) - 1); n != want { // all but the event after now
			t.Errorf("%s: tiles count %d events, want %d", c.feature, n, want)
		}
	}
}

func TestBackfillStartTime(t *testing.T) {
	for _, c := range []struct {
		name, start string
		from        time.Time // coverage start: backfill_start_time rounded up to a bucket
	}{
		{"on a boundary", "2026-01-04T00:00:00Z", day0.Add(72 * time.Hour)},
		{"mid-bucket", "2026-01-04T00:20:00Z", day0.Add(73 * time.Hour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			config := strings.Replace(baseConfig, "windows: [1d, 7d]\n    materialization: {bucket_duration: 1h}",
				"windows: [1d, 7d]\n    materialization: {bucket_duration: 1h, backfill_start_time: "+c.start+"}", 1)
			config = strings.Replace(config, "windows: [1d]\n    materialization: {bucket_duration: 1h}\n  user.count_2h",
				"windows: [1d]\n    materialization: {bucket_duration: 1h, backfill_start_time: "+c.start+"}\n  user.count_2h", 1)
			cfg, store, ts := setup(t, config)
			backfill(t, cfg, store, materialize.Options{Features: []string{"user.total"}})
			m := tileSetOf(t, cfg, store, "user.total")
			to := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
			if want := []tilestore.Range{{From: c.from.UnixMicro(), To: to.UnixMicro()}}; !slices.Equal(m.Coverage, want) {
				t.Errorf("coverage %v, want %v", m.Coverage, want)
			}
			n, first, _ := tiledEvents(t, store, m)
			if want := countIn(ts, c.from, to); n != want || first < c.from.UnixMicro() {
				t.Errorf("tiles hold %d events from %v; want %d, none before %v", n, time.UnixMicro(first).UTC(), want, c.from)
			}
			// --from before backfill_start_time wins: the user asked for it.
			from := day0
			backfill(t, cfg, store, materialize.Options{Features: []string{"user.total"}, From: &from})
			m = tileSetOf(t, cfg, store, "user.total")
			if n, _, _ := tiledEvents(t, store, m); n != countIn(ts, day0, to) {
				t.Errorf("with --from %v: tiles hold %d events, want %d", from, n, countIn(ts, day0, to))
			}
		})
	}
}

func TestBackfillReadsEachSourceOnce(t *testing.T) {
	cfg, store, ts := setup(t, baseConfig)
	var stats source.Stats
	sum := backfill(t, cfg, store, materialize.Options{Stats: &stats})
	if len(sum.Sets) != 3 {
		t.Fatalf("want 3 tile sets over one source, got %d", len(sum.Sets))
	}
	if f, r := stats.Files.Load(), stats.Rows.Load(); f != 1 || r != int64(len(ts)) {
		t.Errorf("3 tile sets over one source read %d files and %d rows, want 1 file and %d rows", f, r, len(ts))
	}
	if sum.Events != int64(len(ts)) {
		t.Errorf("summary says %d events read, want %d", sum.Events, len(ts))
	}
	var steps []string
	backfill(t, cfg, store, materialize.Options{Progress: func(step string, done, total int) {
		if total != 4 || done != len(steps)+1 {
			t.Errorf("progress step %q: %d of %d, want %d of 4", step, done, total, len(steps)+1)
		}
		steps = append(steps, step)
	}})
	if len(steps) != 4 || steps[0] != "read tx" {
		t.Errorf("progress steps %q: want a read of tx and 3 commits", steps)
	}
}

// TestBackfillHeaderOnlyCSV: a CSV file with only a header (whose key
// column reads as integers) beside files of string keys changes nothing:
// every event becomes a tile, whichever file comes first.
func TestBackfillHeaderOnlyCSV(t *testing.T) {
	for _, empty := range []string{"a.csv", "z.csv"} {
		dir := t.TempDir()
		data := filepath.Join(dir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{
			empty:   "user_id,ts\n",
			"b.csv": "user_id,ts\nu1,2026-01-01T00:10:00Z\nu2,2026-01-01T00:20:00Z\nu1,2026-01-01T03:00:00Z\n",
		}
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(data, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		config := "sources:\n  tx: {path: data, timestamp: ts}\nentities:\n  user: {key: user_id}\n" +
			"features:\n  user.n: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 1h}}\n"
		cfg, store := openConfig(t, dir, config)
		if sum := backfill(t, cfg, store, materialize.Options{}); sum.Events != 3 || sum.Tiles != 3 {
			t.Fatalf("empty file %s: %d events, %d tiles; want 3 events in 3 tiles", empty, sum.Events, sum.Tiles)
		}
	}
}
