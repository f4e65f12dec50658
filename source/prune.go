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

// timeBounds returns the least and greatest value of a timestamp column of
// a Parquet file, in microseconds, from its row groups' statistics.
func timeBounds(name, column string) (lo, hi int64, ok bool) {
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
	if err != nil || pt.kind != Timestamp || pt.conv == convInt96 {
		return 0, 0, false
	}
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
		a, b := toMicros(mn.Int64(), pt.conv), toMicros(mx.Int64(), pt.conv)
		if pt.conv == convDate {
			a, b = toMicros(int64(mn.Int32()), pt.conv), toMicros(int64(mx.Int32()), pt.conv)
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
