package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

// TestMain lets tests run the real main (exit code and error printing
// included) by starting the test binary again with TESSERA_RUN_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("TESSERA_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// output is what one in-process run of the CLI printed.
type output struct{ stdout, stderr string }

// run executes the CLI in process with args and returns what it printed.
func run(t *testing.T, args ...string) (output, error) {
	t.Helper()
	root := newRoot()
	var o, e bytes.Buffer
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return output{o.String(), e.String()}, err
}

// mustRun is run for commands that must succeed.
func mustRun(t *testing.T, args ...string) output {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("tessera %s: %v\nstderr:\n%s", strings.Join(args, " "), err, out.stderr)
	}
	return out
}

const testConfig = `sources:
  transactions:
    path: events.parquet
    timestamp: ts
entities:
  user: {key: user_id}
  merchant: {key: merchant_id}
features:
  user.total_amount:
    source: transactions
    aggregation: sum
    value: amount
    windows: [1d, 7d, all]
    materialization: {bucket_duration: 1h}
  user.mean_amount:
    source: transactions
    aggregation: mean
    value: amount
    windows: [1d, 7d]
    materialization: {bucket_duration: 1h}
  user.max_amount:
    source: transactions
    aggregation: max
    value: amount
    windows: [1d]
    materialization: {bucket_duration: 1h}
  merchant.count_tx:
    source: transactions
    aggregation: count
    windows: [1d, 7d]
    materialization: {bucket_duration: 1h}
  merchant.declined:
    source: transactions
    aggregation: count
    filter: {column: status, equals: declined}
    windows: [1d, 7d]
    materialization: {bucket_duration: 1h}
`

// refs are the feature windows the tests query, of two entities.
var refs = []string{
	"user.total_amount[1d]", "user.total_amount[all]", "user.mean_amount[7d]", "user.max_amount[1d]",
	"merchant.count_tx[1d]", "merchant.count_tx[7d]", "merchant.declined[7d]",
}

// fixture is a small sample written to a directory with its config.
type fixture struct {
	dir, config string
	cfg         *feature.Config
	spine       *source.Table // user_id, merchant_id, ts, is_fraud, note
}

// dataStart is the first event time of the fixture's sample.
var dataStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	spec := sample.Default()
	spec.Events, spec.SpineRows, spec.Users, spec.Merchants, spec.Days = 4000, 240, 60, 12, 20
	spec.Start = dataStart
	events := sample.Events(spec)
	if err := source.Write(filepath.Join(dir, "events.parquet"), events); err != nil {
		t.Fatal(err)
	}
	s := sample.Spine(spec, events)
	// Duplicates (in reverse order, at the end), an unknown user, a row
	// exactly on a bucket boundary and a label column of text.
	uid, mid, ts, fraud := s.Column("user_id").Ints, s.Column("merchant_id").Ints, s.Column("ts").Ints, s.Column("is_fraud").Bools
	for i := 19; i >= 0; i-- {
		uid, mid, ts, fraud = append(uid, uid[i]), append(mid, mid[i]), append(ts, ts[i]), append(fraud, fraud[i])
	}
	uid, mid, ts, fraud = append(uid, 999_999), append(mid, mid[0]), append(ts, ts[0]), append(fraud, false)
	uid, mid, ts, fraud = append(uid, uid[1]), append(mid, mid[1]), append(ts, dataStart.Add(10*24*time.Hour).UnixMicro()), append(fraud, true)
	note := make([]string, len(uid))
	for i := range note {
		note[i] = "row " + strconv.Itoa(i)
	}
	spine := &source.Table{Rows: len(uid), Columns: []*source.Column{
		{Name: "user_id", Kind: source.Int64, Ints: uid},
		{Name: "merchant_id", Kind: source.Int64, Ints: mid},
		{Name: "ts", Kind: source.Timestamp, Ints: ts},
		{Name: "is_fraud", Kind: source.Bool, Bools: fraud},
		{Name: "note", Kind: source.String, Strs: note},
	}}
	f := &fixture{dir: dir, config: filepath.Join(dir, "tessera.yaml"), spine: spine}
	f.writeConfig(t, testConfig)
	return f
}

func (f *fixture) writeConfig(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(f.config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := feature.Parse(f.config, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
}

func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

// writeSpineCSV writes the spine as CSV by hand: times as text in two
// formats (RFC 3339 and "2006-01-02 15:04:05.000000"), keys as integers.
func (f *fixture) writeSpineCSV(t *testing.T, name string, header []string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(strings.Join(header, ",") + "\n")
	s := f.spine
	for i := range s.Rows {
		tm := time.UnixMicro(s.Column("ts").Ints[i]).UTC()
		at := tm.Format(time.RFC3339Nano)
		if i%3 == 1 {
			at = tm.Format("2006-01-02 15:04:05.000000")
		}
		fmt.Fprintf(&b, "%d,%d,%s,%t,%s\n", s.Column("user_id").Ints[i], s.Column("merchant_id").Ints[i], at,
			s.Column("is_fraud").Bools[i], s.Column("note").Strs[i])
	}
	p := f.path(name)
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) writeSpineParquet(t *testing.T, name string) string {
	t.Helper()
	p := f.path(name)
	if err := source.Write(p, f.spine); err != nil {
		t.Fatal(err)
	}
	return p
}

// expect computes refs through the library API over the fixture's spine.
func (f *fixture) expect(t *testing.T, store string, outputs []string, opt tessera.PlannerOptions) *offline.Result {
	t.Helper()
	var st *tilestore.Store
	if opt.UseMaterializedOfflineQuery {
		s, err := tilestore.Open(context.Background(), store)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		st = s
	}
	times := make([]time.Time, f.spine.Rows)
	for i, us := range f.spine.Column("ts").Ints {
		times[i] = time.UnixMicro(us).UTC()
	}
	res, err := tessera.OfflineQuery(context.Background(), f.cfg, tessera.Request{
		Inputs:     map[string]any{"user.id": f.spine.Column("user_id").Ints, "merchant.id": f.spine.Column("merchant_id").Ints},
		InputTimes: times, Outputs: outputs, Planner: opt, Store: st,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkOutput reads a query's output file and checks that it holds every
// spine row in input order with every spine column, then one column per
// reference, named as requested, equal to the library's values.
func checkOutput(t *testing.T, path string, spine *source.Table, spineCols []string, want *offline.Result) {
	t.Helper()
	got, err := source.Read(path, nil, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range got.Columns {
		names = append(names, c.Name)
	}
	wantNames := slices.Clone(spineCols)
	for _, c := range want.Columns {
		wantNames = append(wantNames, c.Name)
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("%s: columns %q, want %q", path, names, wantNames)
	}
	if got.Rows != spine.Rows {
		t.Fatalf("%s: %d rows, want %d (every spine row, duplicates included)", path, got.Rows, spine.Rows)
	}
	// Read again in the roles that parse text, so CSV and Parquet compare alike.
	req := []source.Request{{Name: spineCols[0], Role: source.Key}, {Name: spineCols[1], Role: source.Key},
		{Name: spineCols[2], Role: source.Time}, {Name: spineCols[3], Role: source.Text}, {Name: spineCols[4], Role: source.Text}}
	for _, c := range want.Columns {
		req = append(req, source.Request{Name: c.Name, Role: source.Value})
	}
	typed, err := source.Read(path, req, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for r := range spine.Rows {
		for j, c := range spine.Columns {
			w, _ := c.Text(r)
			g, _ := typed.Columns[j].Text(r)
			if c.Kind == source.Int64 {
				g = strconv.FormatInt(typed.Columns[j].Ints[r], 10)
			}
			if g != w {
				t.Fatalf("%s: row %d column %s = %q, want %q (spine rows in input order)", path, r, spineCols[j], g, w)
			}
		}
		for k, wc := range want.Columns {
			gc := typed.Columns[len(spineCols)+k]
			wv := wc.Valid == nil || wc.Valid[r]
			gv := !gc.IsNull(r)
			if gv != wv || (wv && gc.Floats[r] != wc.Values[r]) {
				t.Fatalf("%s: row %d %s = %v (valid %v), library gives %v (valid %v)", path, r, wc.Name, gc.Floats[r], gv, wc.Values[r], wv)
			}
		}
	}
}

var summaryRE = regexp.MustCompile(`(?m)^offline-query: (\d+) rows x (\d+) features, mode (\S+), [0-9.]+s \(`)

// checkSummary checks the summary line and returns the lines after it.
func checkSummary(t *testing.T, stderr string, rows, features int, mode string) {
	t.Helper()
	m := summaryRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary line on stderr:\n%s", stderr)
	}
	if m[1] != strconv.Itoa(rows) || m[2] != strconv.Itoa(features) || m[3] != mode {
		t.Fatalf("summary %q: want %d rows x %d features, mode %s", m[0], rows, features, mode)
	}
}

func TestDemoTiny(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out := mustRun(t, "demo", "--events", "5000", "--rows", "500", "--naive-rows", "100", "--dir", dir)
	for _, want := range []string{
		"1. sample: 5000 transactions", "500 spine rows",
		"2. backfill: 5000 events",
		"3. training set: 500 rows x",
		"First rows (exact | materialized)",
		"tessera offline-query --spine spine.parquet",
	} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.stdout)
		}
	}
	// The timing table: a header and one row per mode with rows, seconds,
	// rows/s and the ratio to naive.
	for _, mode := range []string{"naive per-row scan", "exact sweep", "materialized", "materialized+align"} {
		rows := "500"
		if mode == "naive per-row scan" {
			rows = "100"
		}
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(mode) + `\s+` + rows + `\s+[0-9.]+\s+[0-9]+\s+[0-9.]+x\s*$`)
		if !re.MatchString(out.stdout) {
			t.Errorf("demo timing table lacks a row for %s with %s rows:\n%s", mode, rows, out.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*mode\s+rows\s+seconds\s+rows/s\s+vs naive\s*$`).MatchString(out.stdout) {
		t.Errorf("demo timing table lacks its header:\n%s", out.stdout)
	}
	for _, name := range []string{"events.parquet", "spine.parquet", "tessera.yaml", ".tessera/tilesets"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("demo did not write %s: %v", name, err)
		}
	}
	// The config it wrote works with the other verbs.
	list := mustRun(t, "--config", filepath.Join(dir, "tessera.yaml"), "aggregate", "list")
	if !strings.Contains(list.stdout, "user.total_transaction_amount") {
		t.Errorf("aggregate list over the demo store lacks its tile sets:\n%s", list.stdout)
	}
}

func TestBackfillListQuery(t *testing.T) {
	f := newFixture(t)
	store := f.path(".tessera")

	out := mustRun(t, "--config", f.config, "aggregate", "list")
	if !strings.Contains(out.stderr, "no tile sets in "+store) {
		t.Errorf("list of an empty store: stderr %q", out.stderr)
	}

	out = mustRun(t, "--config", f.config, "aggregate", "backfill")
	if !regexp.MustCompile(`(?m)^backfill: 4000 events read, \d+ tiles written to 3 tile sets in [0-9.]+s`).MatchString(out.stderr) {
		t.Errorf("backfill summary:\n%s", out.stderr)
	}

	out = mustRun(t, "--config", f.config, "aggregate", "list")
	lines := strings.Split(strings.TrimSpace(out.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TILE SET") {
		t.Fatalf("list: want a header and 3 tile sets:\n%s", out.stdout)
	}
	for _, want := range []string{"user.max_amount,user.mean_amount,user.total_amount", "merchant.count_tx", "merchant.declined"} {
		found := false
		for _, l := range lines[1:] {
			fields := strings.Fields(l)
			// KEYS is "<distinct keys> int": exact after one full backfill
			if len(fields) == 10 && fields[1] == want && fields[2] == "1h" && fields[3] == "[-inf," &&
				regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(fields[5]) && fields[6] == "int" && fields[9] == "v1" {
				found = true
			}
		}
		if !found {
			t.Errorf("list lacks a 1h tile set serving %s covering [-inf, ...) at v1:\n%s", want, out.stdout)
		}
	}

	spineCols := []string{"user_id", "merchant_id", "ts", "is_fraud", "note"}
	spines := map[string]string{
		"csv":     f.writeSpineCSV(t, "spine.csv", spineCols),
		"parquet": f.writeSpineParquet(t, "spine.parquet"),
	}
	wantMat := f.expect(t, store, refs, tessera.PlannerOptions{UseMaterializedOfflineQuery: true})
	for _, sp := range []string{"csv", "parquet"} {
		for _, of := range []string{"csv", "parquet"} {
			t.Run(sp+"-to-"+of, func(t *testing.T) {
				dst := f.path("out-" + sp + "." + of)
				args := []string{"--config", f.config, "offline-query", "--spine", spines[sp], "--output", dst, "--materialized"}
				for _, r := range refs {
					args = append(args, "--feature", r)
				}
				out := mustRun(t, args...)
				checkSummary(t, out.stderr, f.spine.Rows, len(refs), "materialized")
				// Every spine row but the one at midnight is off the hourly
				// boundaries: one leakage line per tile set read.
				off := 0
				for _, us := range f.spine.Column("ts").Ints {
					if us%int64(time.Hour/time.Microsecond) != 0 {
						off++
					}
				}
				if off != f.spine.Rows-1 {
					t.Fatalf("fixture: %d of %d spine rows off the hour, want all but one", off, f.spine.Rows)
				}
				leak := fmt.Sprintf("leakage: %d rows are off a 1h bucket boundary of ", off)
				if n := strings.Count(out.stderr, leak); n != 3 {
					t.Errorf("materialized without --align: %d lines %q, want 3 (one per tile set):\n%s", n, leak, out.stderr)
				}
				if strings.Contains(out.stderr, "fallback") {
					t.Errorf("fully backfilled store fell back:\n%s", out.stderr)
				}
				checkOutput(t, dst, f.spine, spineCols, wantMat)
			})
		}
	}
	for _, m := range []struct {
		mode  string
		flags []string
		opt   tessera.PlannerOptions
	}{
		{"exact", nil, tessera.PlannerOptions{}},
		{"aligned", []string{"--align"}, tessera.PlannerOptions{AlignOfflineWindowWithMaterialization: true}},
		{"materialized+align", []string{"--materialized", "--align"}, tessera.PlannerOptions{UseMaterializedOfflineQuery: true, AlignOfflineWindowWithMaterialization: true}},
	} {
		t.Run(m.mode, func(t *testing.T) {
			dst := f.path("out-" + m.mode + ".parquet")
			args := append([]string{"--config", f.config, "offline-query", "--spine", spines["csv"], "-o", dst}, m.flags...)
			for _, r := range refs {
				args = append(args, "-f", r)
			}
			out := mustRun(t, args...)
			checkSummary(t, out.stderr, f.spine.Rows, len(refs), m.mode)
			if strings.Contains(out.stderr, "leakage") {
				t.Errorf("mode %s reports leakage:\n%s", m.mode, out.stderr)
			}
			checkOutput(t, dst, f.spine, spineCols, f.expect(t, store, refs, m.opt))
		})
	}
}

func TestQueryFallback(t *testing.T) {
	f := newFixture(t)
	full, part := f.path("full"), f.path("part")
	mustRun(t, "--config", f.config, "--store", full, "aggregate", "backfill")
	mustRun(t, "--config", f.config, "--store", part, "aggregate", "backfill",
		"--from", "2026-01-05T00:30:00Z", "--to", "2026-01-12T00:00:00Z")
	spine := f.writeSpineParquet(t, "spine.parquet")
	args := []string{"--config", f.config, "--store", part, "offline-query", "--spine", spine, "--output", f.path("out.parquet"), "--materialized"}
	for _, r := range refs {
		args = append(args, "--feature", r)
	}
	out := mustRun(t, args...)
	checkSummary(t, out.stderr, f.spine.Rows, len(refs), "materialized")
	// The partial store covers [2026-01-05T00:00, 2026-01-12T00:00): the rest fell back.
	for _, want := range []string{
		"fallback: transactions.user_id.amount.1h-",
		"[-inf, 2026-01-05T00:00:00Z) not covered by tiles, computed from raw events",
		"[2026-01-12T00:00:00Z, ",
		"fallback: transactions.merchant_id.count.1h-",
	} {
		if !strings.Contains(out.stderr, want) {
			t.Errorf("fallback summary lacks %q:\n%s", want, out.stderr)
		}
	}
	// Identical to a fully backfilled store.
	checkOutput(t, f.path("out.parquet"), f.spine, []string{"user_id", "merchant_id", "ts", "is_fraud", "note"},
		f.expect(t, full, refs, tessera.PlannerOptions{UseMaterializedOfflineQuery: true}))

	args[3] = full
	out = mustRun(t, args...)
	if strings.Contains(out.stderr, "fallback") {
		t.Errorf("fully backfilled store fell back:\n%s", out.stderr)
	}
}

func TestQueryKeyAndTimeColumns(t *testing.T) {
	f := newFixture(t)
	mustRun(t, "--config", f.config, "aggregate", "backfill")
	cols := []string{"uid", "mid", "at", "label", "comment"}
	spine := f.writeSpineCSV(t, "spine.csv", cols)
	userRefs := []string{"user.total_amount[7d]", "user.mean_amount[7d]"}
	dst := f.path("out.csv")
	args := []string{"--config", f.config, "offline-query", "--spine", spine, "--output", dst, "--materialized", "--align",
		"--feature", userRefs[0], "--feature", userRefs[1]}

	_, err := run(t, args...)
	if err == nil || !strings.Contains(err.Error(), `has no time column "ts" (columns: uid, mid, at, label, comment); name it with --time-column`) {
		t.Fatalf("spine without ts: got %v", err)
	}
	_, err = run(t, append(args, "--time-column", "at")...)
	if err == nil || !strings.Contains(err.Error(), `has no key column "user_id" for user.total_amount[7d]`) || !strings.Contains(err.Error(), "--key-column") {
		t.Fatalf("spine without user_id: got %v", err)
	}
	out := mustRun(t, append(args, "--time-column", "at", "--key-column", "uid")...)
	checkSummary(t, out.stderr, f.spine.Rows, 2, "materialized+align")
	checkOutput(t, dst, f.spine, cols, f.expect(t, f.path(".tessera"), userRefs,
		tessera.PlannerOptions{UseMaterializedOfflineQuery: true, AlignOfflineWindowWithMaterialization: true}))
}

func TestUsageErrors(t *testing.T) {
	f := newFixture(t)
	spine := f.writeSpineParquet(t, "spine.parquet")
	q := func(extra ...string) []string {
		return append([]string{"--config", f.config, "offline-query"}, extra...)
	}
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing spine", q("--output", f.path("o.csv"), "--feature", refs[0]), []string{"--spine, --output and at least one --feature are required"}},
		{"missing feature", q("--spine", spine, "--output", f.path("o.csv")), []string{"at least one --feature"}},
		{"unknown feature", q("--spine", spine, "--output", f.path("o.csv"), "--feature", "user.total_amout[7d]"),
			[]string{`feature "user.total_amout" is not defined`, "did you mean user.total_amount?",
				"defined features: merchant.count_tx, merchant.declined, user.max_amount, user.mean_amount, user.total_amount"}},
		{"window not declared", q("--spine", spine, "--output", f.path("o.csv"), "--feature", "user.total_amount[30d]"),
			[]string{"user.total_amount has no window 30d", "declared: 1d, 7d, all", "add 30d under windows"}},
		{"reference without window", q("--spine", spine, "--output", f.path("o.csv"), "--feature", "user.total_amount"),
			[]string{"has no window: add one in brackets, e.g. user.total_amount[7d]"}},
		{"bad output extension", q("--spine", spine, "--output", f.path("o.txt"), "--feature", refs[0]),
			[]string{"name a .parquet or .csv file"}},
		{"unknown flag", q("--spine", spine, "--bogus"), []string{"unknown flag: --bogus"}},
		{"bad --from", []string{"--config", f.config, "aggregate", "backfill", "--from", "yesterday"},
			[]string{`--from "yesterday": want an RFC 3339 time such as 2026-01-01T00:00:00Z`}},
		{"bad --to", []string{"--config", f.config, "aggregate", "backfill", "--to", "2026-01-01"},
			[]string{`--to "2026-01-01": want an RFC 3339 time`}},
		{"backfill unknown feature", []string{"--config", f.config, "aggregate", "backfill", "--feature", "user.nope"},
			[]string{"--feature user.nope", "features are: merchant.count_tx,"}},
		{"extra argument", []string{"--config", f.config, "aggregate", "list", "extra"}, []string{`tessera aggregate list takes no arguments, got "extra"`}},
		{"bad --memory-limit", []string{"--config", f.config, "--memory-limit", "lots", "aggregate", "backfill"}, []string{`--memory-limit: "lots" is not a size; write e.g. 2GiB`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := run(t, c.args...)
			if err == nil {
				t.Fatal("no error")
			}
			var u usageError
			if !errors.As(err, &u) {
				t.Errorf("error %q is not a usage error (exit code 2)", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := os.Stat(f.path(".tessera")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed command created the store: %v", err)
	}
}

// TestMainErrors runs the real binary's main: an error prints once as
// "tessera: <message>", with exit code 2 for usage errors and 1 otherwise.
func TestMainErrors(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--config", f.config, "offline-query", "--output", "o.csv"}, 2,
			"tessera: --spine, --output and at least one --feature are required\n"},
		{[]string{"--config", f.path("missing.yaml"), "aggregate", "list"}, 1,
			"tessera: no config at " + f.path("missing.yaml") + ": write one (see README.md) or pass --config FILE; `tessera demo` writes an example\n"},
		{[]string{"--config", f.config, "offline-query", "--spine", f.path("none.csv"), "--output", f.path("o.csv"), "--feature", refs[0]}, 1, ""},
	} {
		cmd := exec.Command(os.Args[0], c.args...)
		cmd.Env = append(os.Environ(), "TESSERA_RUN_MAIN=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != c.code {
			t.Errorf("tessera %s: got %v, want exit code %d", strings.Join(c.args, " "), err, c.code)
		}
		if strings.Count(stderr.String(), "tessera:") != 1 || !strings.HasPrefix(stderr.String(), "tessera: ") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("tessera %s: stderr %q: want one line starting with \"tessera: \"", strings.Join(c.args, " "), stderr.String())
		}
		if c.stderr != "" && stderr.String() != c.stderr {
			t.Errorf("tessera %s: stderr %q, want %q", strings.Join(c.args, " "), stderr.String(), c.stderr)
		}
		if stdout.Len() != 0 {
			t.Errorf("tessera %s: printed %q on stdout", strings.Join(c.args, " "), stdout.String())
		}
	}
}

func TestHelp(t *testing.T) {
	out := mustRun(t, "--help")
	for _, want := range []string{"Usage:\n  tessera [command]", "aggregate", "offline-query", "demo", "--config", "--store", "Start with 'tessera demo'"} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("tessera --help lacks %q:\n%s", want, out.stdout)
		}
	}
	out = mustRun(t, "offline-query", "--help")
	for _, want := range []string{"t-W <= ts < t", "--materialized", "--align", "--key-column", "--time-column", "--spine", "--output", "Examples:", "leakage"} {
		if !strings.Contains(out.stdout, want) {
			t.Errorf("tessera offline-query --help lacks %q:\n%s", want, out.stdout)
		}
	}
	root := newRoot()
	for _, c := range root.Commands() {
		if c.Short == "" || strings.HasSuffix(c.Short, ".") {
			t.Errorf("command %s: short help %q: want a phrase without a final period", c.Name(), c.Short)
		}
		for _, sub := range c.Commands() {
			if sub.Short == "" || (sub.Long == "" && sub.Runnable() && sub.Name() != "list") {
				t.Errorf("command %s %s lacks help text", c.Name(), sub.Name())
			}
		}
	}
	for _, args := range [][]string{{"aggregate", "backfill", "--help"}, {"aggregate", "list", "--help"}, {"demo", "--help"}} {
		out := mustRun(t, args...)
		if !strings.Contains(out.stdout, "Usage:") || !strings.Contains(out.stdout, "Global Flags:") {
			t.Errorf("tessera %s: %s", strings.Join(args, " "), out.stdout)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"2GiB": 2 << 30, "512MiB": 512 << 20, "1.5KiB": 1536, "1073741824": 1 << 30, "10B": 10, "1TiB": 1 << 40} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1GiB", "2GB", "0", "1e30TiB"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) succeeded", bad)
		}
	}
}
