package feature

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/aggregate"
)

func micros(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMicro()
}

func TestParseExample(t *testing.T) {
	c, err := Parse(filepath.Join("conf", "tessera.yaml"), []byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.File != filepath.Join("conf", "tessera.yaml") || c.Dir != "conf" {
		t.Errorf("File, Dir = %q, %q", c.File, c.Dir)
	}
	if want := filepath.Join("conf", ".tessera"); c.Store != want {
		t.Errorf("Store = %q, want %q", c.Store, want)
	}
	wantSources := map[string]*Source{
		"transactions": {Name: "transactions", Path: filepath.Join("conf", "data", "transactions.parquet"), Timestamp: "ts"},
	}
	if !reflect.DeepEqual(c.Sources, wantSources) {
		t.Errorf("Sources = %+v", c.Sources["transactions"])
	}
	wantEntities := map[string]*Entity{
		"user":     {Name: "user", Key: "user_id"},
		"merchant": {Name: "merchant", Key: "merchant_id"},
	}
	if !reflect.DeepEqual(c.Entities, wantEntities) {
		t.Errorf("Entities = %+v", c.Entities)
	}
	backfill := micros("2025-01-01T00:00:00Z")
	wantFeatures := map[string]*Feature{
		"user.total_transaction_amount": {
			Name: "user.total_transaction_amount", Entity: "user", Source: "transactions", Key: "user_id",
			Aggregation: aggregate.Sum, Value: "amount",
			Windows:         []Window{{7 * Day}, {30 * Day}, WindowAll},
			Materialization: &Materialization{BucketDuration: Hour},
		},
		"user.count_transactions": {
			Name: "user.count_transactions", Entity: "user", Source: "transactions", Key: "user_id",
			Aggregation: aggregate.Count,
			Windows:     []Window{{Day}, {7 * Day}},
			Materialization: &Materialization{
				BucketDuration: 10 * Minute,
				BucketStart:    micros("2020-01-01T00:00:00Z"),
				BackfillStart:  &backfill,
				Schedule:       "0 * * * *",
				Lookback:       2 * Hour,
			},
		},
		"merchant.count_declined": {
			Name: "merchant.count_declined", Entity: "merchant", Source: "transactions", Key: "merchant_id",
			Aggregation:     aggregate.Count,
			Filter:          &Filter{Column: "status", Equals: "declined"},
			Windows:         []Window{{Day}, {7 * Day}},
			Materialization: &Materialization{BucketDuration: Hour},
		},
	}
	for name, want := range wantFeatures {
		if got := c.Features[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("feature %s:\n got %+v\nwant %+v", name, got, want)
		}
	}
	if got, want := c.FeatureNames(), []string{"merchant.count_declined", "user.count_transactions", "user.total_transaction_amount"}; !slices.Equal(got, want) {
		t.Errorf("FeatureNames = %v, want %v", got, want)
	}
	// 1h is 0.6% of 7d and 10m is 0.7% of 1d; 1h of 1d is 4.2%, inside the range.
	if len(c.Warnings) != 2 ||
		!strings.HasPrefix(c.Warnings[0], filepath.Join("conf", "tessera.yaml")+":15: feature user.total_transaction_amount: bucket_duration 1h is 0.595% of the shortest window 7d") ||
		!strings.Contains(c.Warnings[1], ":21: feature user.count_transactions: bucket_duration 10m") {
		t.Errorf("Warnings = %q", c.Warnings)
	}
}

func TestExampleTileSets(t *testing.T) {
	cfg := exampleConfig + `  user.mean_transaction_amount:
    source: transactions
    aggregation: mean
    value: amount
    windows: [7d]
    materialization: {bucket_duration: 1h}
  user.std_amount_unmaterialized:
    source: transactions
    aggregation: std
    value: amount
    windows: [7d]
`
	c, err := Parse("tessera.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	sets := c.TileSets()
	if len(sets) != 3 {
		t.Fatalf("got %d tile sets, want 3: %+v", len(sets), sets)
	}
	if !slices.IsSortedFunc(sets, func(a, b *TileSet) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("tile sets not sorted by ID")
	}
	amount := c.TileSetOf("user.total_transaction_amount")
	if amount == nil || c.TileSetOf("user.mean_transaction_amount").ID != amount.ID {
		t.Fatalf("sum and mean over amount do not share a tile set")
	}
	if amount.Needs != aggregate.NeedCount|aggregate.NeedSum {
		t.Errorf("Needs = %v, want count,sum", amount.Needs)
	}
	if !slices.Equal(amount.Features, []string{"user.mean_transaction_amount", "user.total_transaction_amount"}) {
		t.Errorf("Features = %v", amount.Features)
	}
	if amount.Source != "transactions" || amount.Key != "user_id" || amount.Value != "amount" || amount.Filter != nil ||
		amount.Grid.Width != Hour || amount.Grid.Origin != 0 || amount.BackfillStart != nil {
		t.Errorf("amount tile set = %+v", amount)
	}
	if !strings.HasPrefix(amount.ID, "transactions.user_id.amount.1h-") || len(amount.ID) != len("transactions.user_id.amount.1h-")+8 {
		t.Errorf("ID = %q", amount.ID)
	}

	count := c.TileSetOf("user.count_transactions")
	if count == nil || count.Value != "" || count.Needs != aggregate.NeedCount ||
		count.Grid.Width != 10*Minute || count.Grid.Origin != micros("2020-01-01T00:00:00Z") ||
		count.BackfillStart == nil || *count.BackfillStart != micros("2025-01-01T00:00:00Z") ||
		!strings.HasPrefix(count.ID, "transactions.user_id.count.10m-") {
		t.Errorf("count tile set = %+v", count)
	}
	declined := c.TileSetOf("merchant.count_declined")
	if declined == nil || declined.Filter == nil || *declined.Filter != (Filter{"status", "declined"}) || declined.Key != "merchant_id" {
		t.Errorf("declined tile set = %+v", declined)
	}
	if c.TileSetOf("user.std_amount_unmaterialized") != nil || c.TileSetOf("no.such") != nil {
		t.Errorf("TileSetOf returned a tile set for an unmaterialized or unknown feature")
	}
	// Deterministic: a second parse gives the same IDs.
	c2, err := Parse("elsewhere/other.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for i, ts := range c2.TileSets() {
		if ts.ID != sets[i].ID {
			t.Errorf("ID %d differs between parses: %q vs %q", i, ts.ID, sets[i].ID)
		}
	}
}

// errorCase is a configuration and substrings its Parse error must contain.
type errorCase struct {
	name string
	yaml string
	want []string
}

// base declares a source and entities for the feature-level cases.
const base = `sources:
  tx: {path: tx.parquet, timestamp: ts}
entities:
  user: {key: user_id}
features:
`

func TestParseErrors(t *testing.T) {
	tests := []errorCase{
		{"unknown aggregation", base + "  user.a: {source: tx, aggregation: summ, value: v, windows: [1d]}\n",
			[]string{`c.yaml:6: feature user.a: unknown aggregation "summ" (want one of count, sum, mean, min, max, var, std)`}},
		{"missing aggregation", base + "  user.a: {source: tx, value: v, windows: [1d]}\n",
			[]string{"c.yaml:6: feature user.a: aggregation is missing; set aggregation: to one of count"}},
		{"value missing", base + "  user.a: {source: tx, aggregation: sum, windows: [1d]}\n",
			[]string{"c.yaml:6: feature user.a: sum needs a value column; set value:"}},
		{"value on count", base + "  user.a: {source: tx, aggregation: count, value: v, windows: [1d]}\n",
			[]string{"c.yaml:6: feature user.a: count takes no value (it counts events); remove value:"}},
		{"unknown source", base + "  user.a: {source: txs, aggregation: count, windows: [1d]}\n",
			[]string{`c.yaml:6: feature user.a: source "txs" is not declared under sources (declared: tx)`}},
		{"missing source", base + "  user.a: {aggregation: count, windows: [1d]}\n",
			[]string{"c.yaml:6: feature user.a: source is missing; set source: to one of the sources (declared: tx)"}},
		{"unknown entity", base + "  usr.a: {source: tx, aggregation: count, windows: [1d]}\n",
			[]string{`c.yaml:6: feature usr.a: entity "usr" is not declared under entities (declared: user)`}},
		{"name without entity", base + "  total: {source: tx, aggregation: count, windows: [1d]}\n",
			[]string{`c.yaml:6: features: feature name "total" must be <entity>.<name>`}},
		{"name with two dots", base + "  user.a.b: {source: tx, aggregation: count, windows: [1d]}\n",
			[]string{`c.yaml:6: features: feature name "user.a.b": name part "a.b"`}},
		{"bad window", base + "  user.a: {source: tx, aggregation: count, windows: [1d, 7dd]}\n",
			[]string{`c.yaml:6: feature user.a: window "7dd"`, "e.g. 30m, 1h, 7d"}},
		{"bad bucket", base + "  user.a: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 1hour}}\n",
			[]string{`c.yaml:6: feature user.a: materialization: bucket_duration: duration "1hour": unknown unit "hour"`, "e.g. 30m"}},
		{"no windows", base + "  user.a: {source: tx, aggregation: count}\n",
			[]string{"c.yaml:6: feature user.a: no windows; add windows: [7d, 30d]"}},
		{"empty windows", base + "  user.a: {source: tx, aggregation: count, windows: []}\n",
			[]string{"c.yaml:6: feature user.a: no windows"}},
		{"windows not a list", base + "  user.a: {source: tx, aggregation: count, windows: 7d}\n",
			[]string{`c.yaml:6: feature user.a: windows must be a list, e.g. windows: [7d, 30d], got "7d"`}},
		{"duplicate window", base + "  user.a:\n    source: tx\n    aggregation: count\n    windows: [7d, 30d, 1w]\n",
			[]string{"c.yaml:9: feature user.a: duplicate window 1w (same as 7d at line 9); remove one"}},
		{"duplicate all", base + "  user.a: {source: tx, aggregation: count, windows: [all, all]}\n",
			[]string{"duplicate window all"}},
		{"window shorter than bucket", base + "  user.a: {source: tx, aggregation: count, windows: [30m, 1d], materialization: {bucket_duration: 1h}}\n",
			[]string{"c.yaml:6: feature user.a: window 30m is shorter than bucket_duration 1h; use a smaller bucket_duration or a longer window"}},
		{"window not a multiple", base + "  user.a: {source: tx, aggregation: count, windows: [90m], materialization: {bucket_duration: 1h}}\n",
			[]string{"c.yaml:6: feature user.a: window 90m is not a multiple of bucket_duration 1h"}},
		{"missing bucket", base + "  user.a:\n    source: tx\n    aggregation: count\n    windows: [1d]\n    materialization: {bucket_start: 2020-01-01T00:00:00Z}\n",
			[]string{"c.yaml:10: feature user.a: materialization: bucket_duration is missing; set it, e.g. bucket_duration: 1h"}},
		{"empty materialization", base + "  user.a:\n    source: tx\n    aggregation: count\n    windows: [1d]\n    materialization:\n",
			[]string{"c.yaml:10: feature user.a: materialization needs bucket_duration"}},
		{"bucket_start not RFC 3339", base + "  user.a: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 1h, bucket_start: 2020-01-01}}\n",
			[]string{`c.yaml:6: feature user.a: materialization: bucket_start: "2020-01-01" is not an RFC 3339 time; write e.g. 2025-01-01T00:00:00Z`}},
		{"backfill_start_time not RFC 3339", base + "  user.a: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 1h, backfill_start_time: yesterday}}\n",
			[]string{`backfill_start_time: "yesterday" is not an RFC 3339 time`}},
		{"sub-microsecond bucket_start", base + "  user.a: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 1h, bucket_start: \"2020-01-01T00:00:00.0000001Z\"}}\n",
			[]string{"finer than a microsecond"}},
		{"bad schedule", base + "  user.a: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 1h, backfill_schedule: \"0 * * *\"}}\n",
			[]string{`backfill_schedule "0 * * *" is neither an interval`}},
		{"schedule out of range", base + "  user.a: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 1h, backfill_schedule: \"60 * * * *\"}}\n",
			[]string{`minute field "60": 60 is outside 0-59`}},
		{"bad lookback", base + "  user.a: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 1h, backfill_lookback_duration: 2 hours}}\n",
			[]string{`backfill_lookback_duration: duration "2 hours"`}},
		{"empty source path", "sources:\n  tx:\n    path: \"\"\n    timestamp: ts\n",
			[]string{"c.yaml:3: source tx: path is empty; set path: to a file, glob, directory or URL"}},
		{"missing source timestamp", "sources:\n  tx:\n    path: a.csv\n",
			[]string{"c.yaml:2: source tx: timestamp is empty; set timestamp: to the event time column"}},
		{"empty entity key", "entities:\n  user: {key: \"\"}\n",
			[]string{"c.yaml:2: entity user: key is empty"}},
		{"bad entity name", "entities:\n  us.er: {key: k}\n",
			[]string{`c.yaml:2: entities: entity name "us.er" may use only letters, digits, _ and -`}},
		{"unknown top-level key", "store: x\nfeaturs: {}\n",
			[]string{`c.yaml:2: top level: unknown key "featurs" (did you mean features?); valid keys: store, sources, entities, features`}},
		{"unknown feature key", base + "  user.a:\n    source: tx\n    aggregation: count\n    windws: [1d]\n",
			[]string{`c.yaml:9: feature user.a: unknown key "windws" (did you mean windows?); valid keys: source, aggregation, value, key, filter, windows, materialization`,
				"c.yaml:6: feature user.a: no windows"}},
		{"unknown materialization key", base + "  user.a: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duraton: 1h}}\n",
			[]string{`unknown key "bucket_duraton" (did you mean bucket_duration?)`}},
		{"unknown source key", "sources:\n  tx: {path: a, timestamp: ts, format: csv}\n",
			[]string{`c.yaml:2: source tx: unknown key "format"; valid keys: path, timestamp`}},
		{"duplicate feature", base + "  user.a: {source: tx, aggregation: count, windows: [1d]}\n  user.a: {source: tx, aggregation: count, windows: [7d]}\n",
			[]string{`c.yaml:7: features: duplicate key "user.a" (first defined at line 6); keep one`}},
		{"duplicate source", "sources:\n  tx: {path: a, timestamp: ts}\n  tx: {path: b, timestamp: ts}\n",
			[]string{`c.yaml:3: sources: duplicate key "tx" (first defined at line 2)`}},
		{"duplicate field", base + "  user.a:\n    source: tx\n    source: tx\n    aggregation: count\n    windows: [1d]\n",
			[]string{`c.yaml:8: feature user.a: duplicate key "source" (first defined at line 7)`}},
		{"filter without equals", base + "  user.a: {source: tx, aggregation: count, windows: [1d], filter: {column: status}}\n",
			[]string{"c.yaml:6: feature user.a: filter: equals is missing"}},
		{"filter null equals", base + "  user.a: {source: tx, aggregation: count, windows: [1d], filter: {column: status, equals: null}}\n",
			[]string{"filter: equals is missing"}},
		{"filter list equals", base + "  user.a: {source: tx, aggregation: count, windows: [1d], filter: {column: status, equals: [a, b]}}\n",
			[]string{"filter: equals must be a single value, got a list"}},
		{"filter without column", base + "  user.a: {source: tx, aggregation: count, windows: [1d], filter: {equals: x}}\n",
			[]string{"filter: column is missing"}},
		{"feature not a mapping", base + "  user.a: 7\n",
			[]string{`c.yaml:6: feature user.a must be a mapping of key: value lines, got "7"`}},
		{"features a list", "features: [a, b]\n",
			[]string{"c.yaml:1: features must be a mapping of key: value lines, got a list"}},
		{"top level a list", "- a\n- b\n",
			[]string{"c.yaml:1: the configuration must be a mapping"}},
		{"empty key", base + "  user.a: {source: tx, aggregation: count, windows: [1d], key: \"\"}\n",
			[]string{"c.yaml:6: feature user.a: key is empty"}},
		{"empty file", "", []string{"c.yaml: the configuration is empty"}},
		{"comments only", "# nothing\n", []string{"c.yaml: the configuration is empty"}},
		{"two documents", "store: a\n---\nstore: b\n", []string{"c.yaml:2: a second YAML document starts here"}},
		{"syntax error", "sources:\n  tx: {path: a\n", []string{"c.yaml: invalid YAML", "line"}},
		{"bad indentation", "features:\n  user.a:\n    source: tx\n   aggregation: count\n", []string{"c.yaml: invalid YAML", "did not find expected key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("config returned with an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain\n%s", err, w)
				}
			}
			// Every line names the file.
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "c.yaml:") {
					t.Errorf("error line %q does not start with the file name", line)
				}
			}
		})
	}
}

func TestParseJoinsAllProblems(t *testing.T) {
	cfg := base + `  user.a: {source: nope, aggregation: count, windows: [1d]}
  user.b: {source: tx, aggregation: avg, value: v, windows: [1d]}
  user.c: {source: tx, aggregation: sum, windows: [1d, 1d]}
`
	_, err := Parse("c.yaml", []byte(cfg))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 4 {
		t.Fatalf("want 4 problems, got %d:\n%s", len(lines), err)
	}
	for i, prefix := range []string{"c.yaml:6:", "c.yaml:7:", "c.yaml:8:", "c.yaml:8:"} {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d = %q, want prefix %q (sorted by line)", i, lines[i], prefix)
		}
	}
}

func TestParseWarnings(t *testing.T) {
	tests := []struct {
		name, feature string
		want          []string // substrings of the single warning; nil: no warning
	}{
		{"inside range", "{source: tx, aggregation: count, windows: [1d, all], materialization: {bucket_duration: 1h}}", nil},
		{"exactly 1%", "{source: tx, aggregation: count, windows: [100h], materialization: {bucket_duration: 1h}}", nil},
		{"exactly 10%", "{source: tx, aggregation: count, windows: [10h], materialization: {bucket_duration: 1h}}", nil},
		{"only all", "{source: tx, aggregation: count, windows: [all], materialization: {bucket_duration: 1d}}", nil},
		{"not materialized", "{source: tx, aggregation: count, windows: [1h]}", nil},
		{"too small", "{source: tx, aggregation: count, windows: [30d, 7d], materialization: {bucket_duration: 1h}}",
			[]string{"c.yaml:6: feature user.a: bucket_duration 1h is 0.595% of the shortest window 7d; 1%-10% is a good start"}},
		{"too large", "{source: tx, aggregation: count, windows: [2h, all], materialization: {bucket_duration: 1h}}",
			[]string{"bucket_duration 1h is 50% of the shortest window 2h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(base+"  user.a: "+tt.feature+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if len(c.Warnings) != 0 {
					t.Errorf("unexpected warnings %q", c.Warnings)
				}
				return
			}
			if len(c.Warnings) != 1 {
				t.Fatalf("warnings = %q, want one", c.Warnings)
			}
			for _, w := range tt.want {
				if !strings.Contains(c.Warnings[0], w) {
					t.Errorf("warning %q does not contain %q", c.Warnings[0], w)
				}
			}
		})
	}
	c, err := Parse("c.yaml", []byte("store: s3://bucket/prefix\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "no features are defined") {
		t.Errorf("warnings = %q, want one about no features", c.Warnings)
	}
}

func TestParsePaths(t *testing.T) {
	tests := []struct {
		file, store, path string
		wantStore         string
		wantPath          string
	}{
		{"tessera.yaml", "", "data/*.parquet", ".tessera", filepath.Join("data", "*.parquet")},
		{"/etc/t/tessera.yaml", "tiles", "../events", "/etc/t/tiles", "/etc/events"},
		{"/etc/t/tessera.yaml", "/var/tiles", "/data/x.csv", "/var/tiles", "/data/x.csv"},
		{"/etc/t/tessera.yaml", "s3://bucket/prefix", "s3://bucket/events/", "s3://bucket/prefix", "s3://bucket/events/"},
		{"a/b.yaml", "file:///tmp/../store", "file://x/../y", "file:///tmp/../store", "file://x/../y"},
	}
	for _, tt := range tests {
		cfg := "sources:\n  tx: {path: \"" + tt.path + "\", timestamp: ts}\n"
		if tt.store != "" {
			cfg = "store: " + tt.store + "\n" + cfg
		}
		c, err := Parse(tt.file, []byte(cfg))
		if err != nil {
			t.Errorf("%s: %v", tt.file, err)
			continue
		}
		if c.Store != tt.wantStore || c.Sources["tx"].Path != tt.wantPath {
			t.Errorf("%s, store %q, path %q: got Store %q, Path %q; want %q, %q",
				tt.file, tt.store, tt.path, c.Store, c.Sources["tx"].Path, tt.wantStore, tt.wantPath)
		}
	}
}

func TestParseFeatureDetails(t *testing.T) {
	cfg := base + `  user.amount_by_card:
    source: tx
    aggregation: MAX
    value: amount
    key: card_id
    filter: {column: is_fraud, equals: true}
    windows: [2w, 1h30m, all]
  user.n_status_3:
    source: tx
    aggregation: count
    filter: {column: status, equals: 3}
    windows: [1d]
    materialization: {bucket_duration: 1h, backfill_schedule: 15m, backfill_lookback_duration: 0}
  user.empty_status:
    source: tx
    aggregation: count
    filter: {column: status, equals: ""}
    windows: [1d]
`
	c, err := Parse("c.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	f := c.Features["user.amount_by_card"]
	if f.Key != "card_id" || f.Aggregation != aggregate.Max || f.Filter == nil || *f.Filter != (Filter{"is_fraud", "true"}) ||
		!slices.Equal(f.Windows, []Window{{2 * Week}, {90 * Minute}, WindowAll}) || f.Materialization != nil {
		t.Errorf("user.amount_by_card = %+v", f)
	}
	g := c.Features["user.n_status_3"]
	if g.Key != "user_id" || *g.Filter != (Filter{"status", "3"}) || g.Materialization.Schedule != "15m" || g.Materialization.Lookback != 0 {
		t.Errorf("user.n_status_3 = %+v %+v", g, g.Materialization)
	}
	if e := c.Features["user.empty_status"].Filter; e == nil || *e != (Filter{"status", ""}) {
		t.Errorf("user.empty_status filter = %+v", e)
	}
}

func TestParseAnchorsAndMerge(t *testing.T) {
	cfg := `sources:
  tx: {path: tx.parquet, timestamp: ts}
entities:
  user: {key: user_id}
defaults: &hourly {bucket_duration: 1h}
`
	// An unknown top-level key is an error even when it only holds anchors.
	if _, err := Parse("c.yaml", []byte(cfg)); err == nil || !strings.Contains(err.Error(), `unknown key "defaults"`) {
		t.Fatalf("err = %v", err)
	}
	cfg = `sources:
  tx: {path: tx.parquet, timestamp: ts}
entities:
  user: {key: user_id}
features:
  user.sum: &common
    source: tx
    aggregation: sum
    value: amount
    windows: [1d]
    materialization: &hourly {bucket_duration: 1h}
  user.mean:
    <<: *common
    aggregation: mean
  user.max:
    <<: [*common]
    aggregation: max
    windows: [2d]
    materialization: *hourly
`
	c, err := Parse("c.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	mean, max := c.Features["user.mean"], c.Features["user.max"]
	if mean.Aggregation != aggregate.Mean || mean.Value != "amount" || mean.Source != "tx" || mean.Materialization.BucketDuration != Hour {
		t.Errorf("user.mean = %+v", mean)
	}
	if max.Aggregation != aggregate.Max || !slices.Equal(max.Windows, []Window{{2 * Day}}) || max.Materialization.BucketDuration != Hour {
		t.Errorf("user.max = %+v", max)
	}
	ts := c.TileSetOf("user.sum")
	if ts.Needs != aggregate.NeedCount|aggregate.NeedSum|aggregate.NeedMax || len(ts.Features) != 3 {
		t.Errorf("tile set = %+v", ts)
	}
	// A self-referencing anchor must not loop.
	_, err = Parse("c.yaml", []byte("features: &a\n  user.x: *a\n"))
	if err == nil {
		t.Error("self-referencing anchor: no error")
	}
	_, err = Parse("c.yaml", []byte("features:\n  user.x: &a\n    <<: *a\n"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:3: feature user.x (merged with <<): a merge key (<<) includes the mapping it is in") {
		t.Errorf("self-merging anchor: %v", err)
	}
	// Merges fanning out through shared anchors are walked once each, not
	// once per path (which would be 16^8 walks here).
	var b strings.Builder
	b.WriteString("features:\n  user.x0: &a0 {source: s}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "  user.x%d: &a%d\n    <<: [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 16), ", "))
	}
	b.WriteString("  user.y: &b\n    <<: [*b, *b, *b, *b, *b, *b, *b, *b]\n")
	start := time.Now()
	_, err = Parse("c.yaml", []byte(b.String()))
	if err == nil {
		t.Error("fan-out merges: no error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("fan-out merges took %v", d)
	}
}

func TestResolve(t *testing.T) {
	c, err := Parse("tessera.yaml", []byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"user.total_transaction_amount[7d]", "user.total_transaction_amount[1w]", "user.total_transaction_amount[all]", "merchant.count_declined[24h]"} {
		r, err := ParseRef(s)
		if err != nil {
			t.Fatal(err)
		}
		f, err := c.Resolve(r)
		if err != nil || f != c.Features[r.Feature] {
			t.Errorf("Resolve(%s) = %v, %v", s, f, err)
		}
	}
	tests := []struct {
		ref  string
		want []string
	}{
		{"user.total_transaction_amont[7d]", []string{`feature "user.total_transaction_amont" is not defined in tessera.yaml (did you mean user.total_transaction_amount?)`,
			"defined features: merchant.count_declined, user.count_transactions, user.total_transaction_amount"}},
		{"user.total_transaction_amount[14d]", []string{"feature user.total_transaction_amount has no window 14d in tessera.yaml (declared: 7d, 30d, all)",
			"add 14d under windows of user.total_transaction_amount in the config"}},
		{"user.count_transactions[all]", []string{"has no window all", "(declared: 1d, 7d)"}},
	}
	for _, tt := range tests {
		r, err := ParseRef(tt.ref)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Resolve(r)
		if err == nil {
			t.Errorf("Resolve(%s): no error", tt.ref)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Resolve(%s) error %q does not contain %q", tt.ref, err, w)
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(exampleConfig))
	f.Add([]byte(base + "  user.a: {source: tx, aggregation: count, windows: [1d, all], materialization: {bucket_duration: 1h}}\n"))
	f.Add([]byte("features: &a\n  user.x: *a\n"))
	f.Add([]byte("features:\n  user.x: &a\n    <<: *a\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("store: [x]\nsources: 3\n"))
	f.Add([]byte("--- a\n--- b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml") {
					t.Fatalf("error line %q does not name the file", line)
				}
			}
			return
		}
		// A valid config is internally consistent.
		for name, ft := range c.Features {
			if ft.Name != name || c.Entities[ft.Entity] == nil || c.Sources[ft.Source] == nil || len(ft.Windows) == 0 || ft.Key == "" {
				t.Fatalf("inconsistent feature %+v", ft)
			}
			if ft.Aggregation.NeedsValue() == (ft.Value == "") {
				t.Fatalf("feature %s: aggregation %s with value %q", name, ft.Aggregation, ft.Value)
			}
			for _, w := range ft.Windows {
				r, err := ParseRef(name + "[" + w.String() + "]")
				if err != nil {
					t.Fatalf("ref to declared window: %v", err)
				}
				if got, err := c.Resolve(r); err != nil || got != ft {
					t.Fatalf("Resolve(%s) = %v, %v", r.Text, got, err)
				}
				if m := ft.Materialization; m != nil && !w.All() && w.Micros%m.BucketDuration != 0 {
					t.Fatalf("feature %s: window %s not a multiple of bucket %d", name, w, m.BucketDuration)
				}
			}
			if ts := c.TileSetOf(name); (ts == nil) != (ft.Materialization == nil) || ts != nil && !ts.Needs.Has(ft.Aggregation.Needs()) {
				t.Fatalf("feature %s: tile set %+v", name, ts)
			}
		}
		for _, ts := range c.TileSets() {
			for _, r := range ts.ID {
				if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
					t.Fatalf("tile set ID %q has %q", ts.ID, r)
				}
			}
		}
	})
}
