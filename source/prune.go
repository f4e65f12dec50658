package source

import (
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// TimeRange says a read needs only the rows whose time column lies in
// [From, To) (microseconds since the epoch): Read and Stream then skip,
// unread, the Parquet files whose column statistics prove they hold no such
// row. Rows outside the range in the files that are read are still returned.
type TimeRange struct {
	Column   string
	From, To int64
}

// pruneFiles drops the files that r proves hold no wanted row, keeping the
// last file in any case so that a read still learns the columns' kinds.
// Files whose statistics cannot tell (CSV, missing statistics, a column that
// is not a timestamp) are kept.
func pruneFiles(files []string, r *TimeRange) []string {
	if r == nil || (r.From == math.MinInt64 && r.To == math.MaxInt64) {
		return files
	}
	var out []string
	for i, name := range files {
		if i == len(files)-1 || mayHold(name, r) {
			out = append(out, name)
		}
	}
	return out
}

// mayHold reports whether the Parquet file name may hold a row with its
// time column in r.
func mayHold(name string, r *TimeRange) bool {
	if strings.ToLower(filepath.Ext(name)) != ".parquet" {
		return true
	}
	lo, hi, ok := timeBounds(name, r.Column)
	return !ok || (hi >= r.From && lo < r.To)
}

// Bounds returns the least and greatest value, as Read gives them, of an
// integer or timestamp column (microseconds) over the files that path names
// and r does not prune, from the Parquet files' row group statistics,
// reading no rows. ok is false when some file cannot tell: a CSV file,
// statistics missing, or a column of another kind. Statistics come from the
// files' writers: a reader must not trust them with correctness.
func Bounds(path, column string, r *TimeRange) (lo, hi int64, ok bool) {
	files, err := expand(path)
	if err != nil {
		return 0, 0, false
	}
	lo, hi = math.MaxInt64, math.MinInt64
	for _, name := range pruneFiles(files, r) {
		if strings.ToLower(filepath.Ext(name)) != ".parquet" {
			return 0, 0, false
		}
		a, b, ok := statBounds(name, column, false)
		if !ok {
			return 0, 0, false
		}
		lo, hi = min(lo, a), max(hi, b)
	}
	return lo, hi, lo <= hi
}

// timeBounds returns the least and greatest value of a timestamp column of
// a Parquet file, in microseconds, from its row groups' statistics.
func timeBounds(name, column string) (lo, hi int64, ok bool) {
	return statBounds(name, column, true)
}

// statBounds returns the least and greatest value of a timestamp column
// (in microseconds), or when onlyTime is false of an integer column too, of
// a Parquet file from its row groups' statistics.
func statBounds(name, column string, onlyTime bool) (lo, hi int64, ok bool) {
	f, err := os.Open(name)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, false
	}
	defer func() {
		if recover() != nil {
			ok = false // a damaged footer: let the read report it
		}
	}()
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, 0, false
	}
	col := pf.Root().Column(column)
	if col == nil || !col.Leaf() {
		return 0, 0, false
	}
	pt, err := typeOf(col)
	if err != nil || pt.conv == convInt96 || !(pt.kind == Timestamp || !onlyTime && pt.kind == Int64 && (pt.conv == convNone || pt.conv == convUint32)) {
		return 0, 0, false
	}
	int32s := col.Type().Kind() == parquet.Int32
	lo, hi = math.MaxInt64, math.MinInt64
	for _, rg := range pf.RowGroups() {
		if rg.NumRows() == 0 {
			continue
		}
		chunk, isFile := rg.ColumnChunks()[col.Index()].(*parquet.FileColumnChunk)
		if !isFile {
			return 0, 0, false
		}
		mn, mx, has := chunk.Bounds()
		if !has || mn.IsNull() || mx.IsNull() {
			return 0, 0, false
		}
		var a, b int64
		switch {
		case pt.conv == convUint32:
			a, b = int64(mn.Uint32()), int64(mx.Uint32())
		case int32s:
			a, b = toMicros(int64(mn.Int32()), pt.conv), toMicros(int64(mx.Int32()), pt.conv)
		default:
			a, b = toMicros(mn.Int64(), pt.conv), toMicros(mx.Int64(), pt.conv)
		}
		if a > b { // statistics in another order (e.g. signed for unsigned)
			return 0, 0, false
		}
		lo, hi = min(lo, a), max(hi, b)
	}
	return lo, hi, lo <= hi
}

// toMicros converts a stored timestamp to microseconds, rounding so that a
// bound never shrinks (saturating on overflow).
func toMicros(v int64, c conversion) int64 {
	switch c {
	case convMillis:
		return satMul(v, 1000)
	case convNanos:
		if v < 0 {
			return v/1000 - 1
		}
		return v / 1000
	case convDate:
		return satMul(v, 86_400_000_000)
	}
	return v
}

func satMul(v, m int64) int64 {
	if v > math.MaxInt64/m {
		return math.MaxInt64
	}
	if v < math.MinInt64/m {
		return math.MinInt64
	}
	return v * m
}
