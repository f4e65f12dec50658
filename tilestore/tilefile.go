package tilestore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/internal/snappy"
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

// objectFormat is how new tile objects encode and compress their pages.
// Readers decode whatever an object uses: Parquet records the encoding of
// each page and the codec of each column chunk.
type objectFormat struct {
	codec compress.Codec
	// ints encodes the INT64 columns (key, bucket_start, count, n); nil
	// keeps Parquet's default (PLAIN).
	ints encoding.Encoding
	// floats encodes the DOUBLE columns; nil keeps PLAIN.
	floats encoding.Encoding
}

// defaultFormat is the format of new tile objects: DELTA_BINARY_PACKED integer
// columns (sorted keys and starts, small counts; writeTiles, which writes
// them, stores the starts of heavy keys' row groups as dictionary indexes
// instead, see pageWriter.startDictionary) in Snappy-compressed pages,
// encoded at Snappy's usual speed (internal/snappy). On 4.56M tiles (20M
// sample events, 4h, count and sum; BenchmarkTileCodec, one run): writing
// takes half the CPU of Zstandard at its fastest level (0.61 s against
// 1.20 s; compression is most of the encoding of these small pages) and a
// full load 7% less, for objects 31% larger (8.0 bytes a tile instead of
// 6.1; still a tenth of the events' Parquet). parquet-go's own SNAPPY
// encodes in S2's slower "better" mode (0.73 s, 7.2 bytes). PLAIN integers
// compress worse for no gain; BYTE_STREAM_SPLIT on the doubles loads faster
// but makes objects 40% larger; parquet-go's LZ4_RAW does not read back what
// it writes. Objects written with another codec (older objects used
// Zstandard) read as before: each column chunk names its codec.
var defaultFormat = objectFormat{codec: snappy.Codec{}, ints: &parquet.DeltaBinaryPacked}

// tileFormat is the format new tile objects are written in: defaultFormat,
// whose pages writeTiles writes itself; tests set others, which parquet-go's
// writer writes.
var tileFormat = defaultFormat

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
	colKey   = "key"
	colStart = "bucket_start"
	colCount = "count"
	colN     = "n"
	colSum   = "sum"
	colM2    = "m2"
	colMin   = "min"
	colMax   = "max"
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

func tileSchema(needs aggregate.Needs, stringKeys bool, f objectFormat) *parquet.Schema {
	ints := func(n parquet.Node) parquet.Node {
		if f.ints != nil {
			return parquet.Encoded(n, f.ints)
		}
		return n
	}
	g := parquet.Group{
		colStart: ints(parquet.Timestamp(parquet.Microsecond)),
		colCount: ints(parquet.Int(64)),
	}
	if stringKeys {
		g[colKey] = parquet.String()
	} else {
		g[colKey] = ints(parquet.Int(64))
	}
	for _, c := range valueColumns(needs) {
		switch {
		case c == colN:
			g[c] = ints(parquet.Int(64))
		case f.floats != nil:
			g[c] = parquet.Encoded(parquet.Leaf(parquet.DoubleType), f.floats)
		default:
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
	return encodeObjectTo(name, ts, lo, hi, width, nil)
}

// encodeObjectTo is encodeObject that writes the object through sk (see
// sink): its emit is handed every byte, in order, before the object is
// described, so that the store can take them while the rest encode.
func encodeObjectTo(name string, ts *tile.Set, lo, hi int, width int64, sk *sink) ([]byte, Object, error) {
	if hi <= lo || tileFormat != defaultFormat {
		data, o, err := encodeObjectAs(name, ts, lo, hi, width, tileFormat)
		if err == nil && sk != nil && sk.emit != nil {
			sk.emit(data)
		}
		return data, o, err
	}
	data, groups, footer, err := writeTiles(ts, lo, hi, width, sk)
	if err != nil {
		return nil, Object{}, fmt.Errorf("encode tile object %s: %w", name, err)
	}
	o := describeObject(name, data, ts, lo, hi)
	if err := describeSpans(data, groups, footer, &o, ts, lo, width); err != nil {
		return nil, Object{}, fmt.Errorf("encode tile object %s: %w", name, err)
	}
	return data, o, nil
}

// encodeObjectAs is encodeObject in format f.
//
// Rows go to the writer one row group at a time, column by column: each
// column of the group is copied into a typed column buffer in bulk and the
// buffer written with WriteRowGroup, which re-encodes it column-wise. Row
// groups hold rowGroupRows(hi-lo) rows, as MaxRowsPerRowGroup would cut them.
// Feeding the writer's ColumnWriters parquet.Values directly allocates less
// but cost 60% more CPU in a 20M-event backfill (2.0 s against 1.25 s).
func encodeObjectAs(name string, ts *tile.Set, lo, hi int, width int64, f objectFormat) ([]byte, Object, error) {
	schema := tileSchema(ts.Needs, ts.Keys.String, f)
	cols := lookupColumns(schema)
	groupRows := rowGroupRows(hi - lo)
	sorting := parquet.SortingColumns(parquet.Ascending(colKey), parquet.Ascending(colStart))
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, schema,
		parquet.Compression(f.codec),
		parquet.MaxRowsPerRowGroup(int64(groupRows)),
		parquet.SortingWriterConfig(sorting),
		parquet.KeyValueMetadata("tessera.schema_version", strconv.Itoa(SchemaVersion)),
		parquet.KeyValueMetadata("tessera.needs", ts.Needs.String()),
		parquet.CreatedBy("tessera", "", ""),
	)
	groupConfig, err := parquet.NewRowGroupConfig(schema, parquet.SortingRowGroupConfig(sorting),
		parquet.ColumnBufferCapacity(min(groupRows, max(hi-lo, 1))))
	if err != nil {
		return nil, Object{}, fmt.Errorf("encode tile object %s: %w", name, err)
	}
	group := parquet.NewBuffer(groupConfig)
	var scratch []byte
	for a := lo; a < hi; a += groupRows {
		b := min(a+groupRows, hi)
		group.Reset()
		scratch, err = fillGroup(group.ColumnBuffers(), cols, ts, a, b, scratch)
		if err == nil {
			_, err = w.WriteRowGroup(group)
		}
		if err != nil {
			return nil, Object{}, fmt.Errorf("encode tile object %s: rows %d to %d: %w", name, a-lo, b-lo, err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, Object{}, fmt.Errorf("encode tile object %s: %w", name, err)
	}
	data := buf.Bytes()
	obj := describeObject(name, data, ts, lo, hi)
	if err := describeRowGroups(data, &obj, ts, lo, width); err != nil {
		return nil, Object{}, fmt.Errorf("encode tile object %s: %w", name, err)
	}
	return data, obj, nil
}

// describeObject returns the description of object data holding tiles [lo,
// hi) of ts, but for its footer, its row groups and what describeSpans
// draws from them.
func describeObject(name string, data []byte, ts *tile.Set, lo, hi int) Object {
	sum := sha256.Sum256(data)
	obj := Object{
		Name:   name,
		Rows:   int64(hi - lo),
		Bytes:  int64(len(data)),
		SHA256: hex.EncodeToString(sum[:]),
		CRC32C: crc32cHex(data),
		Schema: SchemaVersion,
	}
	if hi > lo {
		obj.MinKey, obj.MaxKey = keyText(ts, lo), keyText(ts, hi-1)
	}
	return obj
}

// fillGroup copies tiles [a, b) of ts into the column buffers of one row
// group, whose column indexes are cols, and returns scratch for reuse.
func fillGroup(dst []parquet.ColumnBuffer, cols tileColumns, ts *tile.Set, a, b int, scratch []byte) ([]byte, error) {
	var err error
	if ts.Keys.String {
		scratch, err = writeStrings(dst[cols.key], ts.Keys.Str[a:b], scratch)
	} else {
		err = writeColumn(dst[cols.key], ts.Keys.Int[a:b], parquet.Int64Value)
	}
	if err != nil {
		return scratch, fmt.Errorf("column %s: %w", colKey, err)
	}
	ints := []struct {
		col  int
		name string
		vals []int64
	}{{cols.start, colStart, ts.Start}, {cols.count, colCount, ts.Count}, {cols.n, colN, ts.N}}
	for _, c := range ints {
		if c.col < 0 {
			continue
		}
		if err := writeColumn(dst[c.col], c.vals[a:b], parquet.Int64Value); err != nil {
			return scratch, fmt.Errorf("column %s: %w", c.name, err)
		}
	}
	floats := []struct {
		col  int
		name string
		vals []float64
	}{{cols.sum, colSum, ts.Sum}, {cols.m2, colM2, ts.M2}, {cols.min, colMin, ts.Min}, {cols.max, colMax, ts.Max}}
	for _, c := range floats {
		if c.col < 0 {
			continue
		}
		if err := writeColumn(dst[c.col], c.vals[a:b], parquet.DoubleValue); err != nil {
			return scratch, fmt.Errorf("column %s: %w", c.name, err)
		}
	}
	return scratch, nil
}

// writeColumn appends vals to the column buffer col: in one call when it
// takes a typed slice (plain INT64 and DOUBLE buffers do), else as values
// made by value (dictionary-encoded columns).
func writeColumn[T int64 | float64](col parquet.ColumnBuffer, vals []T, value func(T) parquet.Value) error {
	var err error
	switch w := any(col).(type) {
	case parquet.Int64Writer:
		if v, ok := any(vals).([]int64); ok {
			_, err = w.WriteInt64s(v)
			return err
		}
	case parquet.DoubleWriter:
		if v, ok := any(vals).([]float64); ok {
			_, err = w.WriteDoubles(v)
			return err
		}
	}
	values := make([]parquet.Value, 0, min(len(vals), valuesBatch))
	for len(vals) > 0 && err == nil {
		n := min(len(vals), valuesBatch)
		values = values[:0]
		for _, x := range vals[:n] {
			values = append(values, value(x).Level(0, 0, col.Column()))
		}
		_, err = col.WriteValues(values)
		vals = vals[n:]
	}
	return err
}

// valuesBatch is the values converted at a time for buffers that take no
// typed slices.
const valuesBatch = 1024

// writeStrings appends keys to the BYTE_ARRAY column buffer col, reusing
// scratch, which it returns.
func writeStrings(col parquet.ColumnBuffer, keys []string, scratch []byte) ([]byte, error) {
	if w, ok := col.(parquet.ByteArrayWriter); ok {
		// PLAIN encoding: a 4-byte little-endian length before each string.
		scratch = scratch[:0]
		for _, k := range keys {
			scratch = binary.LittleEndian.AppendUint32(scratch, uint32(len(k)))
			scratch = append(scratch, k...)
		}
		_, err := w.WriteByteArrays(scratch)
		return scratch, err
	}
	values := make([]parquet.Value, 0, len(keys))
	for _, k := range keys {
		values = append(values, parquet.ByteArrayValue([]byte(k)).Level(0, 0, col.Column()))
	}
	_, err := col.WriteValues(values)
	return scratch, err
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
	footer := size - 8 - int64(binary.LittleEndian.Uint32(data[size-8:size-4]))
	var groups []span
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
		if begin < 4 || end > footer || begin >= end {
			return fmt.Errorf("row group %d spans bytes [%d, %d) outside the data section", gi, begin, end)
		}
		groups = append(groups, span{from: begin, to: end, rows: rg.NumRows})
	}
	return describeSpans(data, groups, footer, o, ts, lo, width)
}

// describeSpans records in o the footer, which starts at byte footer of
// data, and the row groups, which span groups of data and hold tiles lo,
// lo+1, ... of ts in turn (described already, or now: see describeGroup),
// and from them the object's bucket range and distinct keys.
func describeSpans(data []byte, groups []span, footer int64, o *Object, ts *tile.Set, lo int, width int64) error {
	o.Footer = footer
	o.FooterCRC32C = crc32cHex(data[footer:])
	o.RowGroups = nil
	o.Keys = 0
	row := lo
	for _, sp := range groups {
		if !sp.described {
			sp.describeGroup(data, ts, row, width)
		}
		g := sp.group
		if row == lo {
			o.From, o.To = g.From, g.To
		}
		o.From, o.To = min(o.From, g.From), max(o.To, g.To)
		o.Keys += sp.keys
		if row > lo && sameKey(ts, row-1, row) {
			o.Keys-- // a key whose tiles straddle two groups
		}
		o.RowGroups = append(o.RowGroups, g)
		row += int(sp.rows)
	}
	if int64(row-lo) != o.Rows {
		return fmt.Errorf("row groups hold %d rows, want %d", row-lo, o.Rows)
	}
	return nil
}

// describeGroup describes the row group that sp spans in data, whose rows
// are tiles row, row+1, ... of ts: writeTiles calls it as each group is
// written, its bytes and tiles still in the core's cache (three passes over
// every group and over the whole object once it was written took 4% of a
// backfill's encoding).
func (sp *span) describeGroup(data []byte, ts *tile.Set, row int, width int64) {
	n := int(sp.rows)
	sp.group = RowGroup{Offset: sp.from, Length: sp.to - sp.from, CRC32C: crc32cHex(data[sp.from:sp.to]), Rows: sp.rows,
		MinKey: keyText(ts, row), MaxKey: keyText(ts, row+n-1)}
	sp.group.From, sp.group.To = startRange(ts, row, row+n, width)
	sp.keys = distinctKeys(ts, row, row+n)
	sp.described = true
}

// sameKey reports whether tiles i and j of ts have the same key.
func sameKey(ts *tile.Set, i, j int) bool {
	if ts.Keys.String {
		return ts.Keys.Str[i] == ts.Keys.Str[j]
	}
	return ts.Keys.Int[i] == ts.Keys.Int[j]
}

// distinctKeys returns the number of distinct keys of tiles [lo, hi) of ts,
// which are sorted by key.
func distinctKeys(ts *tile.Set, lo, hi int) int64 {
	if hi <= lo {
		return 0
	}
	n := int64(1)
	if ts.Keys.String {
		for i := lo + 1; i < hi; i++ {
			if ts.Keys.Str[i] != ts.Keys.Str[i-1] {
				n++
			}
		}
		return n
	}
	keys := ts.Keys.Int[lo:hi]
	for i := 1; i < len(keys); i++ {
		if keys[i] != keys[i-1] {
			n++
		}
	}
	return n
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

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
