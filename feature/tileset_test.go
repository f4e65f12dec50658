package feature

import (
	"strings"
	"testing"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

func TestTileSetGrouping(t *testing.T) {
	// Each variant differs from "ref" in one part of the spec and must get its own tile set.
	cfg := `sources:
  tx: {path: tx.parquet, timestamp: ts}
  tx2: {path: tx2.parquet, timestamp: ts}
entities:
  user: {key: user_id}
features:
  user.ref: {source: tx, aggregation: sum, value: amount, windows: [1d], materialization: {bucket_duration: 1h}}
  user.same_min: {source: tx, aggregation: min, value: amount, windows: [2d], materialization: {bucket_duration: 1h, backfill_start_time: "2024-01-01T00:00:00Z"}}
  user.same_std: {source: tx, aggregation: std, value: amount, windows: [1d], materialization: {bucket_duration: 1h, backfill_start_time: "2023-01-01T00:00:00Z"}}
  user.other_source: {source: tx2, aggregation: sum, value: amount, windows: [1d], materialization: {bucket_duration: 1h}}
  user.other_key: {source: tx, key: card_id, aggregation: sum, value: amount, windows: [1d], materialization: {bucket_duration: 1h}}
  user.other_value: {source: tx, aggregation: sum, value: fee, windows: [1d], materialization: {bucket_duration: 1h}}
  user.filtered: {source: tx, aggregation: sum, value: amount, filter: {column: status, equals: ok}, windows: [1d], materialization: {bucket_duration: 1h}}
  user.filtered2: {source: tx, aggregation: sum, value: amount, filter: {column: status, equals: "no"}, windows: [1d], materialization: {bucket_duration: 1h}}
  user.other_width: {source: tx, aggregation: sum, value: amount, windows: [1d], materialization: {bucket_duration: 2h}}
  user.other_origin: {source: tx, aggregation: sum, value: amount, windows: [1d], materialization: {bucket_duration: 1h, bucket_start: "2020-01-01T00:30:00Z"}}
  user.count: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 1h}}
  user.count_alone: {source: tx, aggregation: count, windows: [1d], materialization: {bucket_duration: 30m}}
  user.plain: {source: tx, aggregation: sum, value: amount, windows: [1d]}
`
	c, err := Parse("c.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	sets := c.TileSets()
	if len(sets) != 9 {
		t.Fatalf("got %d tile sets, want 9", len(sets))
	}
	ids := map[string]bool{}
	for _, ts := range sets {
		if ids[ts.ID] {
			t.Errorf("duplicate ID %s", ts.ID)
		}
		ids[ts.ID] = true
	}
	ref := c.TileSetOf("user.ref")
	if ref.ID != c.TileSetOf("user.same_min").ID || ref.ID != c.TileSetOf("user.same_std").ID {
		t.Errorf("sum, min and std over the same column do not share a tile set")
	}
	// A count joins the value tile set of the same source, key, filter and grid.
	if c.TileSetOf("user.count").ID != ref.ID {
		t.Errorf("count does not share the amount tile set")
	}
	if want := aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedM2 | aggregate.NeedMin; ref.Needs != want {
		t.Errorf("Needs = %v, want %v", ref.Needs, want)
	}
	// user.ref has no backfill_start_time: the tile set starts at the beginning of time.
	if ref.BackfillStart != nil {
		t.Errorf("BackfillStart = %d, want nil", *ref.BackfillStart)
	}
	for _, name := range []string{"user.other_source", "user.other_key", "user.other_value", "user.filtered", "user.filtered2", "user.other_width", "user.other_origin", "user.count_alone"} {
		if ts := c.TileSetOf(name); ts == nil || ts.ID == ref.ID || len(ts.Features) != 1 || ts.Features[0] != name {
			t.Errorf("%s: tile set %+v shares with user.ref", name, ts)
		}
	}
	if got := c.TileSetOf("user.filtered"); got.Filter == nil || *got.Filter != (Filter{"status", "ok"}) {
		t.Errorf("filter = %+v", got.Filter)
	}
	if got := c.TileSetOf("user.count_alone"); got.Value != "" || got.Needs != aggregate.NeedCount || !strings.HasPrefix(got.ID, "tx.user_id.count.30m-") {
		t.Errorf("count tile set = %+v", got)
	}
	if c.TileSetOf("user.plain") != nil {
		t.Errorf("unmaterialized feature has a tile set")
	}
	// Features sharing a tile set with different backfill settings draw a warning.
	found := false
	for _, w := range c.Warnings {
		if strings.Contains(w, "share tile set "+ref.ID) && strings.Contains(w, "backfill_start_time") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning about differing backfill_start_time: %q", c.Warnings)
	}
}

func TestTileSetBackfillStartEarliest(t *testing.T) {
	cfg := base + `  user.a: {source: tx, aggregation: sum, value: v, windows: [1d], materialization: {bucket_duration: 1h, backfill_start_time: "2024-01-01T00:00:00Z"}}
  user.b: {source: tx, aggregation: max, value: v, windows: [1d], materialization: {bucket_duration: 1h, backfill_start_time: "2023-06-01T00:00:00Z"}}
`
	c, err := Parse("c.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	ts := c.TileSetOf("user.a")
	if ts.BackfillStart == nil || *ts.BackfillStart != micros("2023-06-01T00:00:00Z") {
		t.Fatalf("BackfillStart = %v, want 2023-06-01", ts.BackfillStart)
	}
	*ts.BackfillStart = 0 // must not write through to the feature
	if *c.Features["user.b"].Materialization.BackfillStart != micros("2023-06-01T00:00:00Z") {
		t.Errorf("TileSet.BackfillStart aliases the feature's field")
	}
}

func TestTileSetID(t *testing.T) {
	f := &Feature{
		Name: "user.a", Entity: "user", Source: "Raw Events/2024", Key: "User.ID", Aggregation: aggregate.Sum, Value: "amount€",
		Windows: []Window{{Day}}, Materialization: &Materialization{BucketDuration: 90 * Minute},
	}
	c := &Config{Features: map[string]*Feature{"user.a": f}}
	ts := c.TileSetOf("user.a")
	if ts == nil {
		t.Fatal("no tile set for a hand-built config")
	}
	if !strings.HasPrefix(ts.ID, "raw_events_2024.user_id.amount___.90m-") {
		t.Errorf("ID = %q", ts.ID)
	}
	for _, r := range ts.ID {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			t.Errorf("ID %q has %q", ts.ID, r)
		}
	}
	if got := idPart(strings.Repeat("x", 100)); len(got) != 32 {
		t.Errorf("idPart of a long name has length %d", len(got))
	}
	if idPart("") != "_" {
		t.Errorf("idPart(\"\") = %q", idPart(""))
	}
	// The hash separates fields: moving text between source and key changes the ID.
	a := tileSpec{source: "ab", key: "c"}
	b := tileSpec{source: "a", key: "bc"}
	if a.id(aggregate.NeedCount)[len(a.id(aggregate.NeedCount))-8:] == b.id(aggregate.NeedCount)[len(b.id(aggregate.NeedCount))-8:] {
		t.Errorf("hash does not separate fields")
	}
	// An absent filter and a filter with empty column and value differ.
	d := tileSpec{source: "s", filtered: true}
	e := tileSpec{source: "s"}
	if d.id(aggregate.NeedCount) == e.id(aggregate.NeedCount) {
		t.Errorf("filter presence does not change the ID")
	}
	// Stable across releases: a changed ID would orphan stored tiles.
	spec := tileSpec{source: "transactions", key: "user_id", value: "amount", grid: tile.Grid{Width: Hour}}
	if got, want := spec.id(aggregate.NeedCount|aggregate.NeedSum), "transactions.user_id.amount.1h-562b87ed"; got != want {
		t.Errorf("id = %q, want %q", got, want)
	}
	// More partial state is another tile set: tiles without M2 never answer a var.
	if spec.id(aggregate.Var.Needs()) == spec.id(aggregate.Sum.Needs()) {
		t.Errorf("needs do not change the ID")
	}
}
