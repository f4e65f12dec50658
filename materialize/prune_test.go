package materialize

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/source"
)

// TestIncrementalSkipsOldFiles: with one events file per day, an
// incremental run reads only the files that may hold events of its range
// (the watermark less the lookback, to now), and still builds exactly the
// tiles of a full backfill.
func TestIncrementalSkipsOldFiles(t *testing.T) {
	dir := t.TempDir()
	spec := sample.Default()
	spec.Events, spec.Users, spec.Merchants, spec.Days, spec.Start = 6000, 50, 10, 6, t0
	all := sample.Events(spec)
	if err := os.Mkdir(filepath.Join(dir, "events"), 0o755); err != nil {
		t.Fatal(err)
	}
	ts := all.Column("ts").Ints
	for d := range 6 {
		from, to := t0.Add(time.Duration(d)*24*time.Hour).UnixMicro(), t0.Add(time.Duration(d+1)*24*time.Hour).UnixMicro()
		var rows []int
		for i, us := range ts {
			if us >= from && us < to {
				rows = append(rows, i)
			}
		}
		if err := source.Write(filepath.Join(dir, "events", fmt.Sprintf("day-%d.parquet", d)), pick(all, rows)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := parseConfigText(t, dir, strings.Replace(incrementalConfig, "path: events.parquet", "path: events", 1))
	ctx := context.Background()
	inc := openStore(t, filepath.Join(dir, "inc"))
	day := func(d int, h int) time.Time {
		return t0.Add(time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour)
	}

	// First run at day 2, 12:00: days 0-2 and the last file (kept to learn
	// the column kinds) are read.
	st := &source.Stats{}
	if _, err := Incremental(ctx, cfg, inc, Options{Now: day(2, 12), Stats: st}); err != nil {
		t.Fatal(err)
	}
	if n := st.Files.Load(); n != 4 {
		t.Errorf("first run read %d files, want 4 (days 0-2 and the last)", n)
	}
	// Next run at day 4, 06:00: from the watermark (day 2, 12:00) less the
	// 3h lookback, so days 2-4 and the last file.
	st = &source.Stats{}
	if _, err := Incremental(ctx, cfg, inc, Options{Now: day(4, 6), Stats: st}); err != nil {
		t.Fatal(err)
	}
	if n := st.Files.Load(); n != 4 {
		t.Errorf("second run read %d files, want 4 (days 2-4 and the last)", n)
	}
	full := openStore(t, filepath.Join(dir, "full"))
	if _, err := Backfill(ctx, cfg, full, Options{Now: day(4, 6)}); err != nil {
		t.Fatal(err)
	}
	got, want := allTiles(t, cfg, inc), allTiles(t, cfg, full)
	for id := range want {
		if want[id].Len() == 0 || !reflect.DeepEqual(got[id], want[id]) {
			t.Errorf("%s: incremental tiles (%d) differ from a full backfill (%d)", id, got[id].Len(), want[id].Len())
		}
	}
}

// pick returns rows of t.
func pick(t *source.Table, rows []int) *source.Table {
	out := &source.Table{Rows: len(rows)}
	for _, c := range t.Columns {
		nc := &source.Column{Name: c.Name, Kind: c.Kind}
		for _, i := range rows {
			switch c.Kind {
			case source.String:
				nc.Strs = append(nc.Strs, c.Strs[i])
			case source.Float64:
				nc.Floats = append(nc.Floats, c.Floats[i])
			default:
				nc.Ints = append(nc.Ints, c.Ints[i])
			}
			if c.Valid != nil {
				nc.Valid = append(nc.Valid, c.Valid[i])
			}
		}
		out.Columns = append(out.Columns, nc)
	}
	return out
}
