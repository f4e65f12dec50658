package tessera_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
	"github.com/tessera-fe/tessera/tilestore"
)

// world is a sample written to Parquet files, with its config and spine.
type world struct {
	dir   string
	cfg   *feature.Config
	spine *source.Table
	times []time.Time
}

func newWorld(t *testing.T, str bool, config string) *world {
	t.Helper()
	dir := t.TempDir()
	spec := sample.Default()
	spec.Events, spec.SpineRows, spec.Users, spec.Merchants, spec.Days = 20_000, 1_500, 300, 40, 40
	spec.StringKeys = str
	events := sample.Events(spec)
	spine := sample.Spine(spec, events)
	if err := source.Write(filepath.Join(dir, "events.parquet"), events); err != nil {
		t.Fatal(err)
	}
	w := &world{dir: dir, spine: spine}
	w.cfg = writeConfig(t, dir, config)
	for _, us := range spine.Column("ts").Ints {
		w.times = append(w.times, time.UnixMicro(us).UTC())
	}
	return w
}

func writeConfig(t *testing.T, dir, text string) *feature.Config {
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

func (w *world) inputs() map[string]any {
	u, m := w.spine.Column("user_id"), w.spine.Column("merchant_id")
	in := map[string]any{"merchant.id": m.Ints}
	if u.Kind == source.String {
		in["user.id"] = u.Strs
	} else {
		in["user.id"] = u.Ints
	}
	return in
}

func (w *world) backfill(t *testing.T, store *tilestore.Store, from, to *time.Time) {
	t.Helper()
	_, err := materialize.Backfill(context.Background(), w.cfg, store, materialize.Options{From: from, To: to, Now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) query(t *testing.T, store *tilestore.Store, outputs []string, opt tessera.PlannerOptions, stats *source.Stats) *offline.Result {
	t.Helper()
	res, err := tessera.OfflineQuery(context.Background(), w.cfg, tessera.Request{
		Inputs: w.inputs(), InputTimes: w.times, Outputs: outputs, Planner: opt, Store: store, Stats: stats,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
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

var modes = []tessera.PlannerOptions{
	{},
	{AlignOfflineWindowWithMaterialization: true},
	{UseMaterializedOfflineQuery: true},
	{UseMaterializedOfflineQuery: true, AlignOfflineWindowWithMaterialization: true},
}

func sameColumns(t *testing.T, what string, got, want *offline.Result) {
	t.Helper()
	for c := range want.Columns {
		g, w := got.Columns[c], want.Columns[c]
		for r := range w.Values {
			gv, wv := g.Valid == nil || g.Valid[r], w.Valid == nil || w.Valid[r]
			if gv != wv || (wv && math.Abs(g.Values[r]-w.Values[r]) > 1e-9*(1+math.Abs(w.Values[r]))) {
				t.Fatalf("%s: %s row %d: got %v (valid %v), want %v (valid %v)", what, w.Name, r, g.Values[r], gv, w.Values[r], wv)
			}
		}
	}
}

// TestPipelineAgainstNaive runs the whole pipeline (Parquet sources, a
// backfill into a store on disk, queries through the library API) and
// compares every planner mode with the naive per-row scan, for int and
// string keys.
func TestPipelineAgainstNaive(t *testing.T) {
	for _, str := range []bool{false, true} {
		w := newWorld(t, str, sample.Config())
		store := openStore(t, filepath.Join(w.dir, ".tessera"))
		w.backfill(t, store, nil, nil)
		for _, m := range modes {
			got := w.query(t, store, sample.Features(), m, nil)
			eng := &offline.Engine{Config: w.cfg, Events: &offline.FileEvents{Config: w.cfg}}
			want := naive(t, eng, w, sample.Features(), m.Options())
			sameColumns(t, m.Options().Mode(), got, want)
			if m.UseMaterializedOfflineQuery && len(got.Stats.Fallback) != 0 {
				t.Errorf("%s: fell back to raw events after a full backfill: %v", m.Options().Mode(), got.Stats.Fallback)
			}
		}
	}
}

func naive(t *testing.T, eng *offline.Engine, w *world, outputs []string, opt offline.Options) *offline.Result {
	t.Helper()
	res := &offline.Result{}
	times := make([]int64, len(w.times))
	for i, tm := range w.times {
		times[i] = tm.UnixMicro()
	}
	for _, o := range outputs {
		ref, err := feature.ParseRef(o)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := w.cfg.Resolve(ref)
		c := w.spine.Column(f.Key)
		keys := tile.Keys{String: c.Kind == source.String, Int: c.Ints, Str: c.Strs}
		r, err := eng.Naive(context.Background(), &offline.Spine{Keys: keys, Times: times}, []feature.Ref{ref}, opt)
		if err != nil {
			t.Fatal(err)
		}
		res.Columns = append(res.Columns, r.Columns...)
	}
	return res
}

// TestFallbackEqualsFullBackfill: a store that holds only part of the time
// range answers exactly as a fully backfilled one, and says which ranges
// fell back.
func TestFallbackEqualsFullBackfill(t *testing.T) {
	w := newWorld(t, false, sample.Config())
	full := openStore(t, filepath.Join(w.dir, "full"))
	w.backfill(t, full, nil, nil)
	part := openStore(t, filepath.Join(w.dir, "part"))
	from := time.Date(2026, 1, 12, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 1, 25, 7, 0, 0, 0, time.UTC)
	w.backfill(t, part, &from, &to)
	empty := openStore(t, filepath.Join(w.dir, "empty"))
	for _, m := range modes[2:] {
		want := w.query(t, full, sample.Features(), m, nil)
		for name, store := range map[string]*tilestore.Store{"part": part, "empty": empty} {
			got := w.query(t, store, sample.Features(), m, nil)
			sameColumns(t, name+" "+m.Options().Mode(), got, want)
			if len(got.Stats.Fallback) == 0 {
				t.Errorf("%s: no fallback reported", name)
			}
		}
	}
}

// TestSameBucketRowsAgree: materialized values depend on the input time only
// through its bucket.
func TestSameBucketRowsAgree(t *testing.T) {
	w := newWorld(t, false, sample.Config())
	store := openStore(t, filepath.Join(w.dir, ".tessera"))
	w.backfill(t, store, nil, nil)
	// Move every input time elsewhere in its hour: materialized values must not move.
	orig := w.query(t, store, sample.Features(), modes[2], nil)
	hour := time.Hour
	for i, tm := range w.times {
		w.times[i] = tm.Truncate(hour).Add(time.Duration(i%59+1) * time.Minute)
	}
	moved := w.query(t, store, sample.Features(), modes[2], nil)
	sameColumns(t, "moved within bucket", moved, orig)
}

// TestAlignedWindowsExact: with t and W on bucket boundaries, the
// materialized answer is the exact one.
func TestAlignedWindowsExact(t *testing.T) {
	w := newWorld(t, false, sample.Config())
	store := openStore(t, filepath.Join(w.dir, ".tessera"))
	w.backfill(t, store, nil, nil)
	for i, tm := range w.times {
		w.times[i] = tm.Truncate(12 * time.Hour) // a boundary of every bucket in the config
	}
	exact := w.query(t, store, sample.Features(), modes[0], nil)
	for _, m := range modes[1:] {
		sameColumns(t, m.Options().Mode(), w.query(t, store, sample.Features(), m, nil), exact)
	}
}

// TestNewWindowReadsNoRawEvent: adding a window to a backfilled feature
// answers from tiles alone: no raw row or byte is read (the events file is
// even removed).
func TestNewWindowReadsNoRawEvent(t *testing.T) {
	w := newWorld(t, false, sample.Config())
	store := openStore(t, filepath.Join(w.dir, ".tessera"))
	w.backfill(t, store, nil, nil)
	before := w.query(t, store, []string{"user.total_transaction_amount[7d]"}, modes[2], nil)

	w.cfg = writeConfig(t, w.dir, strings.Replace(sample.Config(), "windows: [7d, 30d, all]", "windows: [7d, 14d, 30d, all]", 1))
	if err := os.Rename(filepath.Join(w.dir, "events.parquet"), filepath.Join(w.dir, "moved.parquet")); err != nil {
		t.Fatal(err)
	}
	var stats source.Stats
	res := w.query(t, store, []string{"user.total_transaction_amount[14d]", "user.total_transaction_amount[7d]", "user.mean_transaction_amount[7d]"}, modes[2], &stats)
	if stats.Rows.Load() != 0 || stats.Bytes.Load() != 0 || res.Stats.EventsRead != 0 {
		t.Fatalf("read %d raw rows, %d bytes, %d events", stats.Rows.Load(), stats.Bytes.Load(), res.Stats.EventsRead)
	}
	if res.Stats.TilesRead == 0 {
		t.Fatal("read no tiles")
	}
	sameColumns(t, "7d after adding 14d", &offline.Result{Columns: res.Columns[1:2]}, before)
	// 14d lies between 7d and 30d for sums of non-negative amounts.
	for r := range res.Columns[0].Values {
		if res.Columns[0].Values[r] < res.Columns[1].Values[r]-1e-9 {
			t.Fatalf("row %d: 14d sum %v < 7d sum %v", r, res.Columns[0].Values[r], res.Columns[1].Values[r])
		}
	}
}
