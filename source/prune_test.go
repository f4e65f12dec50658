package source

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// TestTimeRangeSkipsFiles: files whose time statistics lie wholly outside
// the range are not read; the last file always is, and CSV files (no
// statistics) are.
func TestTimeRangeSkipsFiles(t *testing.T) {
	dir := t.TempDir()
	const day = int64(86_400_000_000)
	for d := range 4 {
		tab := &Table{Rows: 3, Columns: []*Column{{Name: "ts", Kind: Timestamp}, {Name: "v", Kind: Float64}}}
		for i := range 3 {
			tab.Columns[0].Ints = append(tab.Columns[0].Ints, int64(d)*day+int64(i)*day/3)
			tab.Columns[1].Floats = append(tab.Columns[1].Floats, float64(d))
		}
		if err := Write(filepath.Join(dir, fmt.Sprintf("day-%d.parquet", d)), tab); err != nil {
			t.Fatal(err)
		}
	}
	req := []Request{{"ts", Time}, {"v", Value}}
	read := func(r *TimeRange) (files []string, rows int) {
		err := Stream(context.Background(), dir, req, Options{Time: r}, func(f string, tab *Table) error {
			files = append(files, filepath.Base(f))
			rows += tab.Rows
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return files, rows
	}
	for _, c := range []struct {
		r    *TimeRange
		want string
	}{
		{nil, "[day-0.parquet day-1.parquet day-2.parquet day-3.parquet]"},
		{&TimeRange{"ts", math.MinInt64, math.MaxInt64}, "[day-0.parquet day-1.parquet day-2.parquet day-3.parquet]"},
		{&TimeRange{"ts", day, 2 * day}, "[day-1.parquet day-3.parquet]"},
		// The last event of day 1 is at 1d+16h: a range starting then holds it.
		{&TimeRange{"ts", day + 2*day/3, 2 * day}, "[day-1.parquet day-3.parquet]"},
		{&TimeRange{"ts", day + 2*day/3 + 1, 2 * day}, "[day-3.parquet]"},
		{&TimeRange{"ts", 10 * day, 11 * day}, "[day-3.parquet]"},
		{&TimeRange{"v", day, 2 * day}, "[day-0.parquet day-1.parquet day-2.parquet day-3.parquet]"}, // not a timestamp: no pruning
	} {
		if files, _ := read(c.r); fmt.Sprint(files) != c.want {
			t.Errorf("range %v: read %v, want %s", c.r, files, c.want)
		}
	}
	if rows, exact, err := Rows(dir, &TimeRange{"ts", day, 2 * day}); err != nil || !exact || rows != 6 {
		t.Errorf("Rows with a range: %d (exact %v, %v), want 6 (days 1 and 3)", rows, exact, err)
	}
	all := mustRead(t, dir, req)
	some, err := Read(dir, req, Options{Time: &TimeRange{"ts", 2 * day, 3 * day}})
	if err != nil {
		t.Fatal(err)
	}
	if all.Rows != 12 || some.Rows != 6 {
		t.Errorf("Read with a range: %d rows of %d, want 6 (days 2 and 3)", some.Rows, all.Rows)
	}
	writeFile(t, filepath.Join(dir, "day-0.csv"), "ts,v\n1970-01-01T00:00:00Z,1\n")
	if files, _ := read(&TimeRange{"ts", 10 * day, 11 * day}); fmt.Sprint(files) != "[day-0.csv day-3.parquet]" {
		t.Errorf("with a CSV: read %v, want the CSV (no statistics) and the last file", files)
	}
}

// TestBounds: the bounds of integer and timestamp columns from Parquet
// statistics are those of the values Read gives, over every file not
// pruned; other kinds and CSV files cannot tell.
func TestBounds(t *testing.T) {
	dir := t.TempDir()
	base := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	for f, shift := range []int64{0, -3, 1000} {
		writeRaw(t, filepath.Join(dir, fmt.Sprintf("part-%d.parquet", f)), []rawColumn{
			{"ms", parquet.Timestamp(parquet.Millisecond), []any{base.UnixMilli() + shift, base.UnixMilli() + 2*shift + 1}},
			{"ns", parquet.Timestamp(parquet.Nanosecond), []any{base.UnixNano() + 999, int64(-1) + shift}},
			{"day", parquet.Date(), []any{int32(19783 + shift), int32(-1)}},
			{"i32", parquet.Int(32), []any{int32(-5 + shift), int32(1 << 30)}},
			{"u32", parquet.Uint(32), []any{int32(7 + shift*shift), int32(3)}},
			{"plain", parquet.Leaf(parquet.Int64Type), []any{int64(1) - shift, int64(2) * shift}},
			{"f", parquet.Leaf(parquet.DoubleType), []any{1.5, -2.0}},
			{"s", parquet.String(), []any{"a", "b"}},
		})
	}
	tab := mustRead(t, dir, nil)
	for _, name := range []string{"ms", "ns", "day", "i32", "u32", "plain"} {
		lo, hi, ok := Bounds(dir, name, nil)
		if !ok {
			t.Errorf("%s: no bounds", name)
			continue
		}
		if want := tab.Column(name).Ints; lo != slices.Min(want) || hi != slices.Max(want) {
			t.Errorf("%s: bounds [%d, %d], want [%d, %d]", name, lo, hi, slices.Min(want), slices.Max(want))
		}
	}
	for _, name := range []string{"f", "s", "missing"} {
		if _, _, ok := Bounds(dir, name, nil); ok {
			t.Errorf("%s: bounds of a column that cannot have them", name)
		}
	}
	// Pruned files do not count: a range a second later than parts 0 and 1
	// leaves part 2 alone.
	from := base.UnixMicro() + 1_000_000
	if lo, _, ok := Bounds(dir, "ms", &TimeRange{"ms", from, from + 2000}); !ok || lo != from {
		t.Errorf("pruned bounds: lo %d (ok %v), want %d from part-2 alone", lo, ok, from)
	}
	writeFile(t, filepath.Join(dir, "extra.csv"), "plain\n5\n")
	if _, _, ok := Bounds(dir, "plain", nil); ok {
		t.Error("bounds over a CSV file")
	}
}
