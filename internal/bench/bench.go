// Package bench is the benchmark harness behind `tessera bench`: it makes a
// Zipf-distributed sample at a chosen scale, backfills it, runs the same
// training set in every planner mode and prints one table of rates, ratios
// between them, peak memory and tile bytes against event bytes.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
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

// Scale sizes one benchmark run.
type Scale struct {
	Name      string
	Events    int
	Spine     int
	Users     uint64
	Merchants uint64
	NaiveRows int // default sample of spine rows for the naive baseline
}

// Scales are the sizes the harness knows.
var Scales = []Scale{
	{"1M", 1_000_000, 100_000, 50_000, 5_000, 2000},
	{"20M", 20_000_000, 2_000_000, 400_000, 20_000, 300},
	{"100M", 100_000_000, 10_000_000, 2_000_000, 50_000, 100},
}

// ScaleByName returns the scale called name.
func ScaleByName(name string) (Scale, error) {
	var names []string
	for _, s := range Scales {
		if strings.EqualFold(s.Name, name) {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Scale{}, fmt.Errorf("unknown scale %q (want one of %s)", name, strings.Join(names, ", "))
}

// Options configure a run.
type Options struct {
	Scale     Scale
	Dir       string // data, store and config; reused when it already holds this scale's data
	NaiveRows int    // spine rows the naive baseline runs on
	Out       io.Writer
	Peer      string // a peer program (bench/duckdb) run on Dir after tessera's steps; "" runs none
}

// Config is the feature configuration of the benchmark: sum, count and
// mean of the amount per user over 7d, 30d and all, sharing one tile set.
const Config = `sources:
  transactions: {path: events, timestamp: ts}
entities:
  user: {key: user_id}
features:
  user.amount_sum:   {source: transactions, aggregation: sum,   value: amount, windows: [7d, 30d, all], materialization: {bucket_duration: 4h}}
  user.amount_mean:  {source: transactions, aggregation: mean,  value: amount, windows: [7d, 30d, all], materialization: {bucket_duration: 4h}}
  user.amount_count: {source: transactions, aggregation: count, windows: [7d, 30d, all], materialization: {bucket_duration: 4h}}
`

// Row is one line of the result table.
type Row struct {
	Step    string
	Mode    string
	Windows string
	Rows    int
	Seconds float64
	PeakRSS int64  // bytes, peak resident set during the step
	Note    string // e.g. the key partitions a step ran in to stay under the memory limit
}

// Rate returns rows per second.
func (r Row) Rate() float64 { return float64(r.Rows) / r.Seconds }

// Run makes (or reuses) the data, measures every step and prints the table.
func Run(ctx context.Context, opt Options) ([]Row, error) {
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(opt.Dir, "tessera.yaml")
	if err := prepare(opt); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfgPath, []byte(Config), 0o644); err != nil {
		return nil, err
	}
	cfg, err := feature.Parse(cfgPath, []byte(Config))
	if err != nil {
		return nil, err
	}
	var rows []Row
	pending := "" // set by a step that ran in key partitions, shown in its mode
	// measureEach times f, after before (unless nil) each time. A step
	// whose first run is shorter than 3 s runs at least three times, and
	// until its runs took a second (at most 15 runs), and the median is
	// reported: one run of a few hundred milliseconds moves by 20% or more
	// with the machine's other work, a run of 20 ms by as much again, and
	// at 100M events the first materialized query after an exact one
	// reads its tiles from disk, which the exact query's events pushed out
	// of the page cache (2.2 s against 1.0 s for the next window's).
	measureEach := func(step, mode, windows string, n int, before, f func() error) error {
		var times []float64
		var peak int64
		total := 0.0
		for len(times) < 3 || total < 1 && len(times) < 15 {
			if before != nil {
				if err := before(); err != nil {
					return fmt.Errorf("%s %s: %w", step, mode, err)
				}
			}
			runtime.GC()
			resetPeak()
			start := time.Now()
			if err := f(); err != nil {
				return fmt.Errorf("%s %s: %w", step, mode, err)
			}
			times = append(times, time.Since(start).Seconds())
			total += times[len(times)-1]
			peak = max(peak, peakRSS())
			if times[0] >= 3 {
				break
			}
		}
		r := Row{Step: step, Mode: mode, Windows: windows, Rows: n, Seconds: median(times), PeakRSS: peak, Note: pending}
		pending = ""
		rows = append(rows, r)
		note := ""
		if r.Note != "" {
			note = "  (" + r.Note + ")"
		}
		fmt.Fprintf(opt.Out, "  %-9s %-20s %-22s %10d rows %8.3fs %12.0f rows/s  peak %s%s\n", r.Step, r.Mode, r.Windows, r.Rows, r.Seconds, r.Rate(), mib(r.PeakRSS), note)
		return nil
	}
	measure := func(step, mode, windows string, n int, f func() error) error {
		return measureEach(step, mode, windows, n, nil, f)
	}

	src := cfg.Sources["transactions"]
	ts := cfg.TileSets()[0]
	decodeReq := []source.Request{{Name: "ts", Role: source.Time}, {Name: "user_id", Role: source.Key}, {Name: "amount", Role: source.Value}}
	// Decode streams the files, as a backfill larger than memory does:
	// memory holds a few files' columns. A first, unmeasured pass warms
	// the process up: the first run of a process faults in fresh memory,
	// which the backfill, run next in a heap that has grown, does not
	// pay; timed cold, the decode would look slower than it is and the
	// backfill's ratio to it better.
	decode := func() error {
		return source.Stream(ctx, src.Path, decodeReq, source.Options{}, func(_ string, t *source.Table) error { t.Release(); return nil })
	}
	if err := decode(); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := measure("decode", "parquet columns", "", opt.Scale.Events, decode); err != nil {
		return nil, err
	}
	storeDir := filepath.Join(opt.Dir, "store")
	var store *tilestore.Store // the last backfill's, which the queries read
	defer func() {
		if store != nil {
			store.Close()
		}
	}()
	// Each backfill commits to a store of its own, made before its clock
	// starts.
	freshStore := func() error {
		if store != nil {
			store.Close()
			store = nil
		}
		if err := os.RemoveAll(storeDir); err != nil {
			return err
		}
		s, err := tilestore.Open(ctx, storeDir)
		store = s
		return err
	}
	backfillOpt := materialize.Options{Now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	// The backfill too runs once unmeasured first, into a scratch store,
	// for the decode's reason: timed first, it would pay for fresh memory
	// that the decode, warmed up, does not. Its time is shown beside the
	// measured one: a one-off backfill in a fresh process pays it.
	cold, err := coldBackfill(ctx, cfg, filepath.Join(opt.Dir, "store-warmup"), backfillOpt)
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	if err := measureEach("backfill", "one pass", "", opt.Scale.Events, freshStore, func() error {
		sum, err := materialize.Backfill(ctx, cfg, store, backfillOpt)
		pending = fmt.Sprintf("first run of the process %.3fs", cold.Seconds())
		if err == nil && sum.Sets[0].Partitions > 1 {
			pending += fmt.Sprintf("; spilled in %d key partitions", sum.Sets[0].Partitions)
		}
		return err
	}); err != nil {
		return nil, err
	}

	spine, err := source.Read(filepath.Join(opt.Dir, "spine.parquet"), []source.Request{{Name: "user_id", Role: source.Key}, {Name: "ts", Role: source.Time}}, source.Options{})
	if err != nil {
		return nil, err
	}
	keys := tile.Keys{Int: spine.Column("user_id").Ints}
	times := spine.Column("ts").Ints
	sets := []struct {
		name string
		refs []string
	}{
		{"sum 7d", []string{"user.amount_sum[7d]"}},
		{"sum 30d", []string{"user.amount_sum[30d]"}},
		{"sum all", []string{"user.amount_sum[all]"}},
		{"sum+count+mean x3", []string{
			"user.amount_sum[7d]", "user.amount_sum[30d]", "user.amount_sum[all]",
			"user.amount_count[7d]", "user.amount_count[30d]", "user.amount_count[all]",
			"user.amount_mean[7d]", "user.amount_mean[30d]", "user.amount_mean[all]"}},
	}
	modes := []struct {
		name string
		opt  offline.Options
	}{{"exact", offline.Options{}}, {"materialized", offline.Options{Materialized: true}}, {"materialized+align", offline.Options{Materialized: true, Align: true}}}
	for _, set := range sets {
		refs := make([]feature.Ref, len(set.refs))
		for i, s := range set.refs {
			if refs[i], err = feature.ParseRef(s); err != nil {
				return nil, err
			}
		}
		keysFor := func(n int) tessera.KeysFor {
			return func(*feature.Feature) (string, tile.Keys, error) {
				return "user_id", tile.Keys{Int: keys.Int[:n]}, nil
			}
		}
		n := opt.NaiveRows
		if n <= 0 {
			n = opt.Scale.NaiveRows
		}
		n = min(n, len(times))
		if err := measure("query", "naive (sample)", set.name, n, func() error {
			eng := &offline.Engine{Config: cfg, Events: &offline.FileEvents{Config: cfg}}
			_, err := eng.Naive(ctx, &offline.Spine{Keys: tile.Keys{Int: keys.Int[:n]}, Times: times[:n]}, refs, offline.Options{})
			return err
		}); err != nil {
			return nil, err
		}
		for _, m := range modes {
			if err := measure("query", m.name, set.name, len(times), func() error {
				eng := &offline.Engine{Config: cfg, Events: &offline.FileEvents{Config: cfg}, Tiles: store}
				res, err := tessera.QueryByKey(ctx, eng, refs, times, keysFor(len(times)), m.opt)
				if err == nil && res.Stats.Partitions > 1 {
					pending = fmt.Sprintf("%d key partitions", res.Stats.Partitions)
				}
				return err
			}); err != nil {
				return nil, err
			}
		}
	}
	// The window ratios: the three windows' materialized queries in turn,
	// so that each is timed in the same state of the process and host (run
	// as steps, one after another's exact query, the first of them caught
	// the process settling after it, and ran 30% slower at 1M).
	windows := &windowCost{}
	byWindow := map[string][]float64{}
	for windows.rounds < 3 || windows.rounds < 15 && slices.Min([]float64{sum(byWindow["7d"]), sum(byWindow["30d"]), sum(byWindow["all"])}) < 1 {
		for _, w := range []string{"7d", "30d", "all"} {
			ref, err := feature.ParseRef("user.amount_sum[" + w + "]")
			if err != nil {
				return nil, err
			}
			eng := &offline.Engine{Config: cfg, Events: &offline.FileEvents{Config: cfg}, Tiles: store}
			runtime.GC()
			start := time.Now()
			if _, err := tessera.QueryByKey(ctx, eng, []feature.Ref{ref}, times, func(*feature.Feature) (string, tile.Keys, error) { return "user_id", keys, nil }, offline.Options{Materialized: true}); err != nil {
				return nil, fmt.Errorf("query materialized sum %s: %w", w, err)
			}
			byWindow[w] = append(byWindow[w], time.Since(start).Seconds())
		}
		windows.rounds++
	}
	windows.d7, windows.d30, windows.all = median(byWindow["7d"]), median(byWindow["30d"]), median(byWindow["all"])
	man, err := store.Manifest(ctx, ts.ID)
	if err != nil {
		return nil, err
	}
	var tileBytes int64
	for _, o := range man.Objects {
		tileBytes += o.Bytes
	}
	eventBytes, err := dirBytes(src.Path)
	if err != nil {
		return nil, err
	}
	if opt.Peer != "" {
		peer, err := runPeer(ctx, opt, len(times))
		if err != nil {
			return nil, err
		}
		rows = append(rows, peer...)
	}
	summarize(opt.Out, rows, windows, man.Rows(), tileBytes, eventBytes)
	return rows, nil
}

// coldBackfill backfills cfg into a fresh store in dir, removed after, and
// returns how long it took.
func coldBackfill(ctx context.Context, cfg *feature.Config, dir string, opt materialize.Options) (time.Duration, error) {
	if err := os.RemoveAll(dir); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	store, err := tilestore.Open(ctx, dir)
	if err != nil {
		return 0, err
	}
	defer store.Close()
	runtime.GC()
	start := time.Now()
	_, err = materialize.Backfill(ctx, cfg, store, opt)
	return time.Since(start), err
}

// prepare writes the sample of the scale unless the directory holds it.
func prepare(opt Options) error {
	marker := filepath.Join(opt.Dir, "scale")
	if b, err := os.ReadFile(marker); err == nil && string(b) == opt.Scale.Name {
		return nil
	}
	fmt.Fprintf(opt.Out, "making %s events and %d spine rows in %s ...\n", opt.Scale.Name, opt.Scale.Spine, opt.Dir)
	spec := sample.Default()
	spec.Events, spec.SpineRows, spec.Users, spec.Merchants = opt.Scale.Events, opt.Scale.Spine, opt.Scale.Users, opt.Scale.Merchants
	evDir := filepath.Join(opt.Dir, "events")
	if err := os.RemoveAll(evDir); err != nil {
		return err
	}
	if err := os.MkdirAll(evDir, 0o755); err != nil {
		return err
	}
	// Files of at most 5M events, as a partitioned export would have them.
	const perFile = 5_000_000
	var spineSrc *source.Table
	for part := 0; part*perFile < spec.Events; part++ {
		ps := spec
		ps.Events = min(perFile, spec.Events-part*perFile)
		ps.Seed = spec.Seed + uint64(part)
		t := sample.Events(ps)
		if err := source.Write(filepath.Join(evDir, fmt.Sprintf("part-%03d.parquet", part)), t); err != nil {
			return err
		}
		if part == 0 {
			spineSrc = t
		}
	}
	if err := source.Write(filepath.Join(opt.Dir, "spine.parquet"), sample.Spine(spec, spineSrc)); err != nil {
		return err
	}
	return os.WriteFile(marker, []byte(opt.Scale.Name), 0o644)
}

// windowCost holds the median times of the materialized sum over 7d, 30d
// and all, run in turn for rounds rounds.
type windowCost struct {
	d7, d30, all float64
	rounds       int
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

func summarize(w io.Writer, rows []Row, windows *windowCost, tiles, tileBytes, eventBytes int64) {
	find := func(step, mode, windows string) *Row {
		for i := range rows {
			if rows[i].Step == step && rows[i].Mode == mode && (windows == "" || rows[i].Windows == windows) {
				return &rows[i]
			}
		}
		return nil
	}
	fmt.Fprintln(w)
	if d, b := find("decode", "parquet columns", ""), find("backfill", "one pass", ""); d != nil && b != nil {
		fmt.Fprintf(w, "backfill: %.0f events/s = %.0f%% of the decode-only rate (%.0f events/s)\n", b.Rate(), 100*b.Rate()/d.Rate(), d.Rate())
	}
	for _, set := range []string{"sum 7d", "sum+count+mean x3"} {
		nv, ex, mat := find("query", "naive (sample)", set), find("query", "exact", set), find("query", "materialized", set)
		if nv != nil && ex != nil && mat != nil {
			fmt.Fprintf(w, "%s: exact sweep %.1fx naive, materialized %.1fx exact, %.1fx naive\n", set, ex.Rate()/nv.Rate(), mat.Rate()/ex.Rate(), mat.Rate()/nv.Rate())
		}
	}
	if windows != nil && windows.d7 > 0 {
		fmt.Fprintf(w, "materialized cost vs window: 30d/7d = %.2f, all/7d = %.2f (time ratios; medians of %d rounds of the three in turn: %.3fs, %.3fs, %.3fs)\n",
			windows.d30/windows.d7, windows.all/windows.d7, windows.rounds, windows.d7, windows.d30, windows.all)
	}
	ratio := "no events on disk"
	if eventBytes > 0 {
		ratio = fmt.Sprintf("%.2fx", float64(tileBytes)/float64(eventBytes))
	}
	fmt.Fprintf(w, "tiles: %d tiles, %s on disk vs %s of event Parquet (%s)\n", tiles, mib(tileBytes), mib(eventBytes), ratio)
	summarizePeer(w, rows)
}

// dirBytes returns the bytes of the files under path (a file, or a
// directory; a symbolic link to either counts as what it points to: a data
// directory shared between bench directories by a link).
func dirBytes(path string) (int64, error) {
	root, err := filepath.EvalSymlinks(path)
	if err != nil {
		return 0, err
	}
	var n int64
	err = filepath.Walk(root, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return err
	})
	return n, err
}

// resetPeak resets the kernel's peak resident set of this process (Linux).
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns the peak resident set since the last reset, in bytes, or
// 0 where /proc does not tell.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// peerWindows is the feature set a peer computes: the benchmark's nine
// columns, sum, count and mean over 7d, 30d and all.
const peerWindows = "sum+count+mean x3"

// runPeer runs the peer program on the benchmark's directory with as many
// threads as tessera used, reads the JSON line it prints per formulation
// ({"engine":"duckdb","formulation":"asof","variant":...,"rows":N,"seconds":S})
// and prints and returns one row per line.
func runPeer(ctx context.Context, opt Options, spineRows int) ([]Row, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, opt.Peer, "--dir", opt.Dir, "--threads", strconv.Itoa(runtime.GOMAXPROCS(0)))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run peer %s: %w\n%s", opt.Peer, err, strings.TrimSpace(stderr.String()))
	}
	var rows []Row
	for i, line := range strings.Split(stdout.String(), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r struct {
			Engine, Formulation, Variant string
			Rows                         int
			Seconds                      float64
			PeakRSS                      int64 `json:"peak_rss"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("peer %s output line %d: %w (want one JSON object per line)", opt.Peer, i+1, err)
		}
		if r.Rows != spineRows || r.Seconds <= 0 {
			return nil, fmt.Errorf("peer %s output line %d: %d rows in %gs, want the %d spine rows", opt.Peer, i+1, r.Rows, r.Seconds, spineRows)
		}
		row := Row{Step: "peer", Mode: r.Engine + " " + r.Formulation, Windows: peerWindows, Rows: r.Rows, Seconds: r.Seconds, PeakRSS: r.PeakRSS}
		rows = append(rows, row)
		fmt.Fprintf(opt.Out, "  %-9s %-20s %-22s %10d rows %8.3fs %12.0f rows/s  peak %s  (%s)\n", row.Step, row.Mode, row.Windows, row.Rows, row.Seconds, row.Rate(), mib(row.PeakRSS), r.Variant)
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.HasPrefix(line, "check:") || strings.HasPrefix(line, "  ") {
			fmt.Fprintf(opt.Out, "  peer %s\n", line)
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("peer %s printed no results", opt.Peer)
	}
	return rows, nil
}

// summarizePeer prints tessera's speed-up over the fastest peer row for
// the exact and the materialized query of the same feature set.
func summarizePeer(w io.Writer, rows []Row) {
	var best *Row
	for i := range rows {
		if rows[i].Step == "peer" && (best == nil || rows[i].Seconds < best.Seconds) {
			best = &rows[i]
		}
	}
	if best == nil {
		return
	}
	for _, mode := range []string{"exact", "materialized"} {
		for i := range rows {
			if r := rows[i]; r.Step == "query" && r.Mode == mode && r.Windows == best.Windows {
				fmt.Fprintf(w, "%s %s: %.1fx the faster %s (%.3fs vs %.3fs)\n", mode, best.Windows, r.Rate()/best.Rate(), best.Mode, r.Seconds, best.Seconds)
			}
		}
	}
}
