package tessera_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

// sliceTable returns rows [lo, hi) of t.
func sliceTable(t *source.Table, lo, hi int) *source.Table {
	out := &source.Table{Rows: hi - lo}
	for _, c := range t.Columns {
		n := &source.Column{Name: c.Name, Kind: c.Kind}
		switch {
		case c.Ints != nil:
			n.Ints = c.Ints[lo:hi]
		case c.Floats != nil:
			n.Floats = c.Floats[lo:hi]
		case c.Strs != nil:
			n.Strs = c.Strs[lo:hi]
		case c.Bools != nil:
			n.Bools = c.Bools[lo:hi]
		}
		if c.Valid != nil {
			n.Valid = c.Valid[lo:hi]
		}
		out.Columns = append(out.Columns, n)
	}
	return out
}

// TestPartitionedEqualsInMemory runs the larger-than-memory path (sources
// streamed file by file, events spilled to disk by key partition, tiles
// committed partition by partition, queries run key range by key range)
// and checks it gives exactly what the in-memory path gives: the same tiles
// in every tile set and bit-identical outputs in every planner mode, for
// int and string keys, with nothing left in the spill directory.
func TestPartitionedEqualsInMemory(t *testing.T) {
	ctx := context.Background()
	for _, str := range []bool{false, true} {
		w := newWorld(t, str, strings.Replace(sample.Config(), "path: events.parquet", "path: events", 1))
		all, err := source.Read(filepath.Join(w.dir, "events.parquet"), nil, source.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(w.dir, "events"), 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 3 {
			part := sliceTable(all, all.Rows*f/3, all.Rows*(f+1)/3)
			if err := source.Write(filepath.Join(w.dir, "events", fmt.Sprintf("part-%d.parquet", f)), part); err != nil {
				t.Fatal(err)
			}
		}
		spillDir := t.TempDir()
		now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		inMem := openStore(t, filepath.Join(w.dir, "mem"))
		if _, err := materialize.Backfill(ctx, w.cfg, inMem, materialize.Options{Now: now}); err != nil {
			t.Fatal(err)
		}
		parted := openStore(t, filepath.Join(w.dir, "parted"))
		sum, err := materialize.Backfill(ctx, w.cfg, parted, materialize.Options{Now: now, Partitions: 4, SpillDir: spillDir})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sum.Sets {
			if s.Partitions != 4 {
				t.Fatalf("tile set %s: summary says %d partitions, want 4", s.TileSet, s.Partitions)
			}
		}
		if sum.Events != int64(all.Rows) {
			t.Fatalf("partitioned backfill read %d events, want %d", sum.Events, all.Rows)
		}
		for _, ts := range w.cfg.TileSets() {
			ma, _ := inMem.Manifest(ctx, ts.ID)
			mb, _ := parted.Manifest(ctx, ts.ID)
			everything := tilestore.Range{From: math.MinInt64, To: math.MaxInt64}
			a, err := inMem.Load(ctx, ma, everything, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := parted.Load(ctx, mb, everything, nil)
			if err != nil {
				t.Fatal(err)
			}
			if a.Len() == 0 || a.Len() != b.Len() || fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("str %v tile set %s: %d tiles in memory, %d in partitions, or different values", str, ts.ID, a.Len(), b.Len())
			}
			if len(mb.Objects) < 4 {
				t.Errorf("tile set %s: %d objects after a backfill in 4 partitions", ts.ID, len(mb.Objects))
			}
		}
		for _, m := range modes {
			want := w.query(t, inMem, sample.Features(), m, nil)
			got, err := tessera.OfflineQuery(ctx, w.cfg, tessera.Request{
				Inputs: w.inputs(), InputTimes: w.times, Outputs: sample.Features(), Planner: m, Store: parted,
				Partitions: 3, SpillDir: spillDir,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.Stats.Partitions != 3 || want.Stats.Partitions != 1 {
				t.Fatalf("%s: stats say %d and %d partitions, want 3 and 1", m.Options().Mode(), got.Stats.Partitions, want.Stats.Partitions)
			}
			for c, col := range got.Columns {
				for r, v := range col.Values {
					wv := want.Columns[c].Values[r]
					if math.Float64bits(v) != math.Float64bits(wv) || (col.Valid != nil && col.Valid[r] != want.Columns[c].Valid[r]) {
						t.Fatalf("str %v %s %s row %d: %v in partitions, %v in memory", str, m.Options().Mode(), col.Name, r, v, wv)
					}
				}
			}
		}
		if left, _ := os.ReadDir(spillDir); len(left) != 0 {
			t.Fatalf("spill directory keeps %d entries after the runs", len(left))
		}
	}
}
