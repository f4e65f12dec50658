package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

// storeState is every file of a store directory with its content hash, and
// the manifest version of each tile set.
type storeState struct {
	files    map[string]string
	versions map[string]int64
}

func snapshot(t *testing.T, dir string) storeState {
	t.Helper()
	st := storeState{files: map[string]string{}, versions: map[string]int64{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		st.files[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tilestore.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		st.versions[m.TileSet] = m.Version
	}
	return st
}

func sameState(t *testing.T, before, after storeState) {
	t.Helper()
	for k, v := range before.versions {
		if after.versions[k] != v {
			t.Errorf("tile set %s: manifest version %d after the failed backfill, %d before", k, after.versions[k], v)
		}
	}
	for k, v := range before.files {
		if after.files[k] != v {
			t.Errorf("store file %s changed or vanished", k)
		}
	}
	for k := range after.files {
		if _, ok := before.files[k]; !ok {
			t.Errorf("store file %s appeared", k)
		}
	}
	if len(before.files) == 0 || len(before.versions) == 0 {
		t.Fatal("the store was empty before the failed backfill: nothing was checked")
	}
}

// events returns a fresh copy of the fixture's sample events.
func goodEvents(t *testing.T, f *fixture) *source.Table {
	t.Helper()
	ev, err := source.Read(f.path("events.parquet"), nil, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func withoutColumn(t *source.Table, name string) *source.Table {
	out := &source.Table{Rows: t.Rows}
	for _, c := range t.Columns {
		if c.Name != name {
			out.Columns = append(out.Columns, c)
		}
	}
	return out
}

// nulled returns the table with row i of column name null.
func nulled(tb *source.Table, name string, i int) *source.Table {
	c := tb.Column(name)
	if c.Valid == nil {
		c.Valid = make([]bool, tb.Rows)
		for j := range c.Valid {
			c.Valid[j] = true
		}
	}
	c.Valid[i] = false
	return tb
}

// csvLines rewrites field name of the given 1-based file lines of a CSV text.
func csvLines(text, name string, value string, lines ...int) string {
	ls := strings.Split(text, "\n")
	header := strings.Split(ls[0], ",")
	col := -1
	for j, h := range header {
		if h == name {
			col = j
		}
	}
	for _, n := range lines {
		fields := strings.Split(ls[n-1], ",")
		fields[col] = value
		ls[n-1] = strings.Join(fields, ",")
	}
	return strings.Join(ls, "\n")
}

// TestBadEvents checks that each kind of bad source file fails the backfill
// with an error naming the file and the row or column, and leaves the store
// exactly as it was.
func TestBadEvents(t *testing.T) {
	type bad struct {
		name string
		file string // events.parquet or events.csv
		// write writes the bad file over the good one.
		write func(t *testing.T, f *fixture, path string)
		want  []string
	}
	parquet := func(mk func(t *testing.T, f *fixture) *source.Table) func(*testing.T, *fixture, string) {
		return func(t *testing.T, f *fixture, path string) {
			if err := source.Write(path, mk(t, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	raw := func(mk func(good []byte) []byte) func(*testing.T, *fixture, string) {
		return func(t *testing.T, f *fixture, path string) {
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, mk(good), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	text := func(mk func(good string) string) func(*testing.T, *fixture, string) {
		return raw(func(good []byte) []byte { return []byte(mk(string(good))) })
	}
	cases := []bad{
		{"parquet missing column", "events.parquet",
			parquet(func(t *testing.T, f *fixture) *source.Table { return withoutColumn(goodEvents(t, f), "amount") }),
			[]string{`value column "amount" is not in source transactions`, "columns: user_id int64, merchant_id int64, ts timestamp, status string", "events.parquet"}},
		{"parquet string value column", "events.parquet",
			parquet(func(t *testing.T, f *fixture) *source.Table {
				ev := goodEvents(t, f)
				c := ev.Column("amount")
				c.Kind, c.Strs, c.Floats = source.String, make([]string, ev.Rows), nil
				for i := range c.Strs {
					c.Strs[i] = "12.50"
				}
				return ev
			}),
			[]string{`value column "amount" of source transactions is string, want int64 or float64`, "events.parquet"}},
		{"parquet null key", "events.parquet",
			parquet(func(t *testing.T, f *fixture) *source.Table { return nulled(goodEvents(t, f), "user_id", 41) }),
			[]string{"events.parquet", `row 42, column "user_id": the key is null`}},
		{"parquet null timestamp", "events.parquet",
			parquet(func(t *testing.T, f *fixture) *source.Table { return nulled(goodEvents(t, f), "ts", 7) }),
			[]string{"events.parquet", `row 8, column "ts": the time is null`}},
		{"parquet NaN value", "events.parquet",
			parquet(func(t *testing.T, f *fixture) *source.Table {
				ev := goodEvents(t, f)
				ev.Column("amount").Floats[2999] = math.NaN()
				ev.Column("amount").Valid[2999] = true
				return ev
			}),
			[]string{"events.parquet", `row 3000, column "amount": value is NaN`}},
		{"parquet infinite value", "events.parquet",
			parquet(func(t *testing.T, f *fixture) *source.Table {
				ev := goodEvents(t, f)
				ev.Column("amount").Floats[0] = math.Inf(-1)
				ev.Column("amount").Valid[0] = true
				return ev
			}),
			[]string{"events.parquet", `row 1, column "amount": value is -Inf`}},
		{"parquet truncated", "events.parquet",
			raw(func(good []byte) []byte { return good[:len(good)/2] }),
			[]string{"events.parquet", "not a readable Parquet file (truncated or corrupt?)"}},
		{"parquet footer only", "events.parquet",
			raw(func(good []byte) []byte { return append([]byte("PAR1"), good[len(good)-64:]...) }),
			[]string{"events.parquet", "Parquet"}},
		{"parquet empty file", "events.parquet",
			raw(func([]byte) []byte { return nil }),
			[]string{"events.parquet", "not a readable Parquet file"}},
		{"parquet no rows", "events.parquet",
			parquet(func(t *testing.T, f *fixture) *source.Table {
				ev := goodEvents(t, f)
				ev.Rows = 0
				for _, c := range ev.Columns {
					c.Ints, c.Floats, c.Strs = c.Ints[:0], c.Floats[:0], c.Strs[:0]
					if c.Valid != nil {
						c.Valid = c.Valid[:0]
					}
				}
				return ev
			}),
			[]string{"events.parquet", "the file has no rows"}},
		{"csv missing column", "events.csv",
			text(func(good string) string { return strings.Replace(good, "amount", "amt", 1) }),
			[]string{`value column "amount" is not in source transactions; columns: user_id int64, merchant_id int64, ts timestamp, amt float64, status string`, "events.csv"}},
		{"csv text in value column", "events.csv",
			text(func(good string) string { return csvLines(good, "amount", "twelve", 3) }),
			[]string{`value column "amount" of source transactions is string, want int64 or float64`, "events.csv"}},
		{"csv text in value column past the sampled rows", "events.csv",
			text(func(good string) string { return csvLines(good, "amount", "twelve", 2500) }),
			[]string{"events.csv", `line 2500, column "amount": "twelve" is not a number`}},
		{"csv empty key", "events.csv",
			text(func(good string) string { return csvLines(good, "user_id", "", 17) }),
			[]string{"events.csv", `line 17, column "user_id": the key is empty`}},
		{"csv empty timestamp", "events.csv",
			text(func(good string) string { return csvLines(good, "ts", "", 1234) }),
			[]string{"events.csv", `line 1234, column "ts": the time is empty`}},
		{"csv unparsable timestamp", "events.csv",
			text(func(good string) string { return csvLines(good, "ts", "31/01/2026", 3001) }),
			[]string{"events.csv", `line 3001, column "ts": cannot read "31/01/2026" as a time`}},
		{"csv NaN past the sampled rows", "events.csv",
			text(func(good string) string { return csvLines(good, "amount", "NaN", 2000) }),
			[]string{"events.csv", `line 2000, column "amount": value "NaN" is not finite`}},
		{"csv short line", "events.csv",
			text(func(good string) string { return csvLines(good, "status", "declined\n1,2", 100) }),
			[]string{"events.csv", "line 101", "wrong number of fields"}},
		{"csv empty file", "events.csv",
			raw(func([]byte) []byte { return nil }),
			[]string{"events.csv", "the file has no rows, not even a header line"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			path := f.path(c.file)
			if c.file != "events.parquet" {
				if err := source.Write(path, goodEvents(t, f)); err != nil {
					t.Fatal(err)
				}
				f.writeConfig(t, strings.Replace(testConfig, "events.parquet", c.file, 1))
			}
			mustRun(t, "--config", f.config, "aggregate", "backfill")
			before := snapshot(t, f.path(".tessera"))
			c.write(t, f, path)
			_, err := run(t, "--config", f.config, "aggregate", "backfill")
			if err == nil {
				t.Fatal("backfill of a bad file succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			sameState(t, before, snapshot(t, f.path(".tessera")))
		})
	}
}

// TestBadSecondSource checks that a bad file in one source leaves the tile
// sets of the other sources unchanged too, even when their events changed.
func TestBadSecondSource(t *testing.T) {
	f := newFixture(t)
	ev := goodEvents(t, f)
	if err := source.Write(f.path("wires.csv"), ev); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(testConfig, "sources:\n", "sources:\n  wires:\n    path: wires.csv\n    timestamp: ts\n", 1)
	f.writeConfig(t, strings.Replace(cfg, "features:\n", `features:
  user.wires:
    source: wires
    aggregation: sum
    value: amount
    windows: [1d]
    materialization: {bucket_duration: 1h}
`, 1))
	mustRun(t, "--config", f.config, "aggregate", "backfill")
	before := snapshot(t, f.path(".tessera"))
	if len(before.versions) != 4 {
		t.Fatalf("want 4 tile sets, got %v", before.versions)
	}
	// The transactions change (fewer events) and the wires go bad.
	ev.Rows = 3000
	for _, c := range ev.Columns {
		c.Ints, c.Floats, c.Strs = c.Ints[:min(len(c.Ints), 3000)], c.Floats[:min(len(c.Floats), 3000)], c.Strs[:min(len(c.Strs), 3000)]
		if c.Valid != nil {
			c.Valid = c.Valid[:3000]
		}
	}
	if err := source.Write(f.path("events.parquet"), ev); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(f.path("wires.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.path("wires.csv"), []byte(csvLines(string(good), "ts", "", 3500)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = run(t, "--config", f.config, "aggregate", "backfill")
	if err == nil || !strings.Contains(err.Error(), `wires.csv: line 3500, column "ts": the time is empty`) {
		t.Fatalf("got %v", err)
	}
	sameState(t, before, snapshot(t, f.path(".tessera")))
}

// TestBadSpine checks offline-query's errors for bad spines: each names the
// file and the column or row, and no output file is written.
func TestBadSpine(t *testing.T) {
	f := newFixture(t)
	mustRun(t, "--config", f.config, "aggregate", "backfill")
	cols := []string{"user_id", "merchant_id", "ts", "is_fraud", "note"}
	good := f.writeSpineCSV(t, "good.csv", cols)
	goodText, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		text string
		want []string
	}{
		{"missing time column", strings.Replace(string(goodText), ",ts,", ",time,", 1),
			[]string{"bad.csv", `has no time column "ts" (columns: user_id, merchant_id, time, is_fraud, note); name it with --time-column`}},
		{"missing key column", strings.Replace(string(goodText), "merchant_id", "shop", 1),
			[]string{"bad.csv", `has no key column "merchant_id" for merchant.count_tx[1d]`, "--key-column"}},
		{"unparsable time", csvLines(string(goodText), "ts", "yesterday", 5),
			[]string{"bad.csv", `line 5, column "ts": cannot read "yesterday" as a time`}},
		{"empty time", csvLines(string(goodText), "ts", "", 9),
			[]string{"bad.csv", `line 9, column "ts": the time is empty`}},
		{"empty key", csvLines(string(goodText), "user_id", "", 12),
			[]string{"bad.csv", `line 12, column "user_id": the key is empty`}},
		{"empty file", "", []string{"bad.csv", "the file has no rows"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			spine := f.path("bad.csv")
			if err := os.WriteFile(spine, []byte(c.text), 0o644); err != nil {
				t.Fatal(err)
			}
			dst := f.path("out.parquet")
			_, err := run(t, "--config", f.config, "offline-query", "--spine", spine, "--output", dst, "--materialized",
				"--feature", "user.total_amount[1d]", "--feature", "merchant.count_tx[1d]")
			if err == nil {
				t.Fatal("query over a bad spine succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := os.Stat(dst); err == nil {
				t.Errorf("a failed query wrote %s", dst)
			}
		})
	}
	t.Run("truncated parquet", func(t *testing.T) {
		p := f.writeSpineParquet(t, "spine.parquet")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b[:len(b)-10], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = run(t, "--config", f.config, "offline-query", "--spine", p, "--output", f.path("o.csv"), "--feature", "user.total_amount[1d]")
		if err == nil || !strings.Contains(err.Error(), "spine.parquet: not a readable Parquet file (truncated or corrupt?)") {
			t.Errorf("got %v", err)
		}
	})
}
