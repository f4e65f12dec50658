package tilestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/parquet-go/parquet-go"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

// RowGroupRows is the rows of one Parquet row group in a tile object of up
// to maxRowGroups*RowGroupRows tiles, so that readers can skip row groups by
// their statistics. Smaller groups prune
// finer but compress worse. On the sample's user tiles (203k tiles, 1h
// buckets, 15k Zipf keys), with 64Ki, 4Ki and 1Ki rows: 1.78, 2.16 and
// 2.67 MB; a random 1% of the keys reads 100%, 100% and 36% of that; a full
// load takes 137 ms at 4Ki and 165 ms at 1Ki (BenchmarkLoad).
const RowGroupRows = 1024

// maxRowGroups bounds the row groups of one object, and so the size of its
// record in the manifest (about 250 bytes per row group): larger objects get
// larger row groups.
const maxRowGroups = 256

// rowGroupRows returns the row group size for an object of n tiles.
func rowGroupRows(n int) int {
	return max(RowGroupRows, (n+maxRowGroups-1)/maxRowGroups)
}

// Column names of tile objects.
const (
	colKey    = "key"
	colStart  = "bucket_start"
	colCount  = "count"
	colN      = "n"
	colSum    = "sum"
	colM2     = "m2"
	colMin    = "min"
	colMax    = "max"
	rowsBatch = 1024
)

// columns returns the value columns a tile set with needs keeps, besides key,
// bucket_start and count.
func valueColumns(needs aggregate.Needs) []string {
	var cols []string
	if needs.HasValues() {
		cols = append(cols, colN)
	}
	if needs&tile.NeedSumOrM2 != 0 {
		cols = append(cols, colSum)
	}
	if needs&aggregate.NeedM2 != 0 {
		cols = append(cols, colM2)
	}
	if needs&aggregate.NeedMin != 0 {
		cols = append(cols, colMin)
	}
	if needs&aggregate.NeedMax != 0 {
		cols = append(cols, colMax)
	}
	return cols
}

func tileSchema(needs aggregate.Needs, stringKeys bool) *parquet.Schema {
	g := parquet.Group{
		colStart: parquet.Timestamp(parquet.Microsecond),
		colCount: parquet.Int(64),
	}
	if stringKeys {
		g[colKey] = parquet.String()
	} else {
		g[colKey] = parquet.Int(64)
	}
	for _, c := range valueColumns(needs) {
		if c == colN {
			g[c] = parquet.Int(64)
		} else {
			g[c] = parquet.Leaf(parquet.DoubleType)
		}
	}
	return parquet.NewSchema("tile", g)
}

// tileColumns holds the column indexes of a tile object; -1 when absent.
type tileColumns struct {
	key, start, count, n, sum, m2, min, max int
}

func lookupColumns(schema *parquet.Schema) tileColumns {
	idx := func(name string) int {
		if leaf, ok := schema.Lookup(name); ok {
			return leaf.ColumnIndex
		}
		return -1
	}
	return tileColumns{
		key: idx(colKey), start: idx(colStart), count: idx(colCount),
		n: idx(colN), sum: idx(colSum), m2: idx(colM2), min: idx(colMin), max: idx(colMax),
	}
}

// encodeObject writes tiles [lo, hi) of ts, sorted by (key, Start), as one
// Parquet object and describes it. name is recorded in the returned Object.
func encodeObject(name string, ts *tile.Set, lo, hi int, width int64) ([]byte, Object, error) {
	schema := tileSchema(ts.Needs, ts.Keys.String)
	cols := lookupColumns(schema)
	ncols := len(schema.Columns())
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, schema,
		parquet.Compression(&parquet.Zstd),
		parquet.MaxRowsPerRowGroup(int64(rowGroupRows(hi-lo))),
		parquet.SortingWriterConfig(parquet.SortingColumns(parquet.Ascending(colKey), parquet.Ascending(colStart))),
		parquet.KeyValueMetadata("tessera.schema_version", strconv.Itoa(SchemaVersion)),
		parquet.KeyValueMetadata("tessera.needs", ts.Needs.String()),
		parquet.CreatedBy("tessera", "", ""),
	)
	values := make([]parquet.Value, rowsBatch*ncols)
	rows := make([]parquet.Row, 0, rowsBatch)
	set := func(row parquet.Row, col int, v parquet.Value) {
		if col >= 0 {
			row[col] = v.Level(0, 0, col)
		}
	}
	for i := lo; i < hi; i++ {
		j := len(rows)
		row := parquet.Row(values[j*ncols : (j+1)*ncols : (j+1)*ncols])
		if ts.Keys.String {
			set(row, cols.key, parquet.ByteArrayValue([]byte(ts.Keys.Str[i])))
		} else {
			set(row, cols.key, parquet.Int64Value(ts.Keys.Int[i]))
		}
		set(row, cols.start, parquet.Int64Value(ts.Start[i]))
		set(row, cols.count, parquet.Int64Value(ts.Count[i]))
		if cols.n >= 0 {
			set(row, cols.n, parquet.Int64Value(ts.N[i]))
		}
		if cols.sum >= 0 {
			set(row, cols.sum, parquet.DoubleValue(ts.Sum[i]))
		}
		if cols.m2 >= 0 {
			set(row, cols.m2, parquet.DoubleValue(ts.M2[i]))
		}
		if cols.min >= 0 {
			set(row, cols.min, parquet.DoubleValue(ts.Min[i]))
		}
		if cols.max >= 0 {
			set(row, cols.max, parquet.DoubleValue(ts.Max[i]))
		}
		rows = append(rows, row)
		if len(rows) == rowsBatch || i == hi-1 {
			if _, err := w.WriteRows(rows); err != nil {
				return nil, Object{}, fmt.Errorf("encode tile object %s: %w", name, err)
			}
			rows = rows[:0]
		}
	}
	if err := w.Close(); err != nil {
		return nil, Object{}, fmt.Errorf("encode tile object %s: %w", name, err)
	}
	data := buf.Bytes()
	sum := sha256.Sum256(data)
	obj := Object{
		Name:   name,
		Rows:   int64(hi - lo),
		Bytes:  int64(len(data)),
		SHA256: hex.EncodeToString(sum[:]),
		Schema: SchemaVersion,
	}
	if hi > lo {
		obj.From, obj.To = startRange(ts, lo, hi, width)
		obj.MinKey, obj.MaxKey = keyText(ts, lo), keyText(ts, hi-1)
	}
	if err := describeRowGroups(data, &obj, ts, lo, width); err != nil {
		return nil, Object{}, fmt.Errorf("encode tile object %s: %w", name, err)
	}
	return data, obj, nil
}

// startRange returns [smallest start, largest start + width) of tiles [lo, hi).
func startRange(ts *tile.Set, lo, hi int, width int64) (from, to int64) {
	from, to = ts.Start[lo], ts.Start[lo]
	for i := lo; i < hi; i++ {
		from = min(from, ts.Start[i])
		to = max(to, ts.Start[i])
	}
	return from, satAdd(to, width)
}

// describeRowGroups records in o the footer and row groups of the encoded
// object data, whose rows are tiles lo, lo+1, ... of ts.
func describeRowGroups(data []byte, o *Object, ts *tile.Set, lo int, width int64) error {
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	size := int64(len(data))
	footerLen := int64(binary.LittleEndian.Uint32(data[size-8 : size-4]))
	o.Footer = size - 8 - footerLen
	o.FooterSHA256 = sha256Hex(data[o.Footer:])
	o.RowGroups = nil
	row := lo
	for gi, rg := range f.Metadata().RowGroups {
		begin, end := int64(math.MaxInt64), int64(0)
		for _, c := range rg.Columns {
			md := c.MetaData
			start := md.DataPageOffset
			if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < start {
				start = md.DictionaryPageOffset
			}
			begin = min(begin, start)
			end = max(end, start+md.TotalCompressedSize)
		}
		if rg.NumRows == 0 {
			continue
		}
		if begin < 4 || end > o.Footer || begin >= end {
			return fmt.Errorf("row group %d spans bytes [%d, %d) outside the data section", gi, begin, end)
		}
		n := int(rg.NumRows)
		g := RowGroup{Offset: begin, Length: end - begin, SHA256: sha256Hex(data[begin:end]), Rows: rg.NumRows,
			MinKey: keyText(ts, row), MaxKey: keyText(ts, row+n-1)}
		g.From, g.To = startRange(ts, row, row+n, width)
		o.RowGroups = append(o.RowGroups, g)
		row += n
	}
	if int64(row-lo) != o.Rows {
		return fmt.Errorf("row groups hold %d rows, want %d", row-lo, o.Rows)
	}
	return nil
}

func keyText(ts *tile.Set, i int) string {
	if ts.Keys.String {
		return ts.Keys.Str[i]
	}
	return strconv.FormatInt(ts.Keys.Int[i], 10)
}

// KeyFilter selects grouping keys. A nil *KeyFilter, or a nil map for the tile
// set's key type, keeps every key.
type KeyFilter struct {
	Int map[int64]struct{}
	Str map[string]struct{}
}

// errCorrupt marks objects whose content contradicts the manifest.
var errCorrupt = errors.New("tile object is damaged")

// decodeObject appends to out the tiles of object o (bytes data) whose bucket
// start lies in r and whose key keep selects. It checks the object's schema
// against the manifest, its row count and its sort order.
func decodeObject(m *Manifest, o Object, data []byte, r Range, keep *KeyFilter, out *tile.Set) error {
	return decodeFile(m, o, bytes.NewReader(data), nil, r, keep, out)
}

// decodeFile decodes the object o read through ra, like decodeObject. With
// groups non-nil it reads only the row groups i with groups[i] set, and ra
// need serve only their bytes, the footer and the leading magic.
func decodeFile(m *Manifest, o Object, ra io.ReaderAt, groups []bool, r Range, keep *KeyFilter, out *tile.Set) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("read tile object %s of tile set %s: %w: %s", o.Name, m.TileSet, errCorrupt, fmt.Sprintf(format, args...))
	}
	f, err := parquet.OpenFile(ra, o.Bytes, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fail("%v", err)
	}
	if groups != nil && len(f.RowGroups()) != len(groups) {
		return fail("it has %d row groups, the manifest records %d", len(f.RowGroups()), len(groups))
	}
	cols := lookupColumns(f.Schema())
	if cols.key < 0 || cols.start < 0 || cols.count < 0 {
		return fail("missing key, bucket_start or count column")
	}
	want := map[string]int{colN: cols.n, colSum: cols.sum, colM2: cols.m2, colMin: cols.min, colMax: cols.max}
	for _, c := range valueColumns(m.Needs) {
		if want[c] < 0 {
			return fail("missing column %s that the manifest's needs (%s) require", c, m.Needs)
		}
	}
	var (
		total   int64
		intKeys []int64
		strKeys []string
		start   []int64
		count   []int64
		n       []int64
		sum     []float64
		m2      []float64
		mins    []float64
		maxs    []float64
	)
	// Keys arrive sorted, so keep is consulted once per distinct key.
	var (
		haveLast           bool
		lastInt            int64
		lastStr            string
		lastKeep           bool
		prevInt            int64
		prevStr            string
		prevStart          int64
		havePrev           bool
		intFilter          = keep != nil && keep.Int != nil && !m.StringKeys
		strFilter          = keep != nil && keep.Str != nil && m.StringKeys
		needN, needSum     = out.Needs.HasValues(), out.Needs&tile.NeedSumOrM2 != 0
		needM2, needMinMax = out.Needs&aggregate.NeedM2 != 0, [2]bool{out.Needs&aggregate.NeedMin != 0, out.Needs&aggregate.NeedMax != 0}
	)
	for gi, rg := range f.RowGroups() {
		rows := rg.NumRows()
		if groups != nil {
			if !groups[gi] {
				continue
			}
			if rows != o.RowGroups[gi].Rows {
				return fail("row group %d holds %d tiles, the manifest records %d", gi, rows, o.RowGroups[gi].Rows)
			}
		}
		chunks := rg.ColumnChunks()
		var err error
		if m.StringKeys {
			if strKeys, err = readStrings(chunks[cols.key], strKeys[:0]); err != nil {
				return fail("row group %d column key: %v (does the tile set use int keys?)", gi, err)
			}
		} else if intKeys, err = readInt64s(chunks[cols.key], intKeys[:0]); err != nil {
			return fail("row group %d column key: %v (does the tile set use string keys?)", gi, err)
		}
		if start, err = readInt64s(chunks[cols.start], start[:0]); err != nil {
			return fail("row group %d column bucket_start: %v", gi, err)
		}
		if count, err = readInt64s(chunks[cols.count], count[:0]); err != nil {
			return fail("row group %d column count: %v", gi, err)
		}
		lengths := []int{len(start), len(count)}
		if m.StringKeys {
			lengths = append(lengths, len(strKeys))
		} else {
			lengths = append(lengths, len(intKeys))
		}
		if needN {
			if n, err = readInt64s(chunks[cols.n], n[:0]); err != nil {
				return fail("row group %d column n: %v", gi, err)
			}
			lengths = append(lengths, len(n))
		}
		readF := func(col int, name string, dst []float64) ([]float64, error) {
			d, err := readDoubles(chunks[col], dst[:0])
			if err != nil {
				return nil, fail("row group %d column %s: %v", gi, name, err)
			}
			lengths = append(lengths, len(d))
			return d, nil
		}
		if needSum {
			if sum, err = readF(cols.sum, colSum, sum); err != nil {
				return err
			}
		}
		if needM2 {
			if m2, err = readF(cols.m2, colM2, m2); err != nil {
				return err
			}
		}
		if needMinMax[0] {
			if mins, err = readF(cols.min, colMin, mins); err != nil {
				return err
			}
		}
		if needMinMax[1] {
			if maxs, err = readF(cols.max, colMax, maxs); err != nil {
				return err
			}
		}
		for _, l := range lengths {
			if int64(l) != rows {
				return fail("row group %d has %d rows but a column holds %d values", gi, rows, l)
			}
		}
		total += rows
		for i := range int(rows) {
			// Sort order (key, bucket_start), strictly increasing.
			if havePrev {
				var c int
				if m.StringKeys {
					c = compareStr(prevStr, strKeys[i])
				} else {
					c = cmpInt(prevInt, intKeys[i])
				}
				if c > 0 || (c == 0 && prevStart >= start[i]) {
					return fail("row group %d row %d is out of (key, bucket_start) order", gi, i)
				}
			}
			havePrev = true
			if m.StringKeys {
				prevStr = strKeys[i]
			} else {
				prevInt = intKeys[i]
			}
			prevStart = start[i]
			if start[i] < o.From || start[i] >= o.To {
				return fail("row group %d row %d: bucket_start %d outside the object's range [%d, %d) in the manifest", gi, i, start[i], o.From, o.To)
			}

			if !r.Contains(start[i]) {
				continue
			}
			switch {
			case intFilter:
				if !haveLast || lastInt != intKeys[i] {
					_, lastKeep = keep.Int[intKeys[i]]
					lastInt, haveLast = intKeys[i], true
				}
			case strFilter:
				if !haveLast || lastStr != strKeys[i] {
					_, lastKeep = keep.Str[strKeys[i]]
					lastStr, haveLast = strKeys[i], true
				}
			default:
				lastKeep = true
			}
			if !lastKeep {
				continue
			}
			if m.StringKeys {
				out.Keys.Str = append(out.Keys.Str, strKeys[i])
			} else {
				out.Keys.Int = append(out.Keys.Int, intKeys[i])
			}
			out.Start = append(out.Start, start[i])
			out.Count = append(out.Count, count[i])
			if needN {
				out.N = append(out.N, n[i])
			}
			if needSum {
				out.Sum = append(out.Sum, sum[i])
			}
			if needM2 {
				out.M2 = append(out.M2, m2[i])
			}
			if needMinMax[0] {
				out.Min = append(out.Min, mins[i])
			}
			if needMinMax[1] {
				out.Max = append(out.Max, maxs[i])
			}
		}
	}
	if groups == nil && total != o.Rows {
		return fail("it holds %d tiles but the manifest lists %d", total, o.Rows)
	}
	return nil
}

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readValues calls fn for each value of a column chunk, page by page.
func readValues(cc parquet.ColumnChunk, fn func(parquet.Value) error) error {
	pages := cc.Pages()
	defer pages.Close()
	buf := make([]parquet.Value, 1024)
	for {
		p, err := pages.ReadPage()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		vr := p.Values()
		for {
			k, err := vr.ReadValues(buf)
			for _, v := range buf[:k] {
				if v.IsNull() {
					parquet.Release(p)
					return errors.New("null value in a required column")
				}
				if ferr := fn(v); ferr != nil {
					parquet.Release(p)
					return ferr
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				parquet.Release(p)
				return err
			}
		}
		parquet.Release(p)
	}
}

func readInt64s(cc parquet.ColumnChunk, dst []int64) ([]int64, error) {
	if k := cc.Type().Kind(); k != parquet.Int64 {
		return nil, fmt.Errorf("type %s, want INT64", k)
	}
	err := readValues(cc, func(v parquet.Value) error { dst = append(dst, v.Int64()); return nil })
	return dst, err
}

func readDoubles(cc parquet.ColumnChunk, dst []float64) ([]float64, error) {
	if k := cc.Type().Kind(); k != parquet.Double {
		return nil, fmt.Errorf("type %s, want DOUBLE", k)
	}
	err := readValues(cc, func(v parquet.Value) error { dst = append(dst, v.Double()); return nil })
	return dst, err
}

func readStrings(cc parquet.ColumnChunk, dst []string) ([]string, error) {
	if k := cc.Type().Kind(); k != parquet.ByteArray {
		return nil, fmt.Errorf("type %s, want BYTE_ARRAY (string)", k)
	}
	err := readValues(cc, func(v parquet.Value) error { dst = append(dst, string(v.ByteArray())); return nil })
	return dst, err
}
