package tilestore

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

// encodeRows is the reference encoder: tiles [lo, hi) of ts written row by
// row through Writer.WriteRows, the writer cutting row groups at
// MaxRowsPerRowGroup. encodeObjectAs must write the same file.
func encodeRows(ts *tile.Set, lo, hi int, f objectFormat) ([]byte, error) {
	schema := tileSchema(ts.Needs, ts.Keys.String, f)
	cols := lookupColumns(schema)
	ncols := len(schema.Columns())
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, schema,
		parquet.Compression(f.codec),
		parquet.MaxRowsPerRowGroup(int64(rowGroupRows(hi-lo))),
		parquet.SortingWriterConfig(parquet.SortingColumns(parquet.Ascending(colKey), parquet.Ascending(colStart))),
		parquet.KeyValueMetadata("tessera.schema_version", strconv.Itoa(SchemaVersion)),
		parquet.KeyValueMetadata("tessera.needs", ts.Needs.String()),
		parquet.CreatedBy("tessera", "", ""),
	)
	for i := lo; i < hi; i++ {
		row := make(parquet.Row, ncols)
		set := func(col int, v parquet.Value) {
			if col >= 0 {
				row[col] = v.Level(0, 0, col)
			}
		}
		if ts.Keys.String {
			set(cols.key, parquet.ByteArrayValue([]byte(ts.Keys.Str[i])))
		} else {
			set(cols.key, parquet.Int64Value(ts.Keys.Int[i]))
		}
		set(cols.start, parquet.Int64Value(ts.Start[i]))
		set(cols.count, parquet.Int64Value(ts.Count[i]))
		if cols.n >= 0 {
			set(cols.n, parquet.Int64Value(ts.N[i]))
		}
		for _, c := range []struct {
			col  int
			vals []float64
		}{{cols.sum, ts.Sum}, {cols.m2, ts.M2}, {cols.min, ts.Min}, {cols.max, ts.Max}} {
			if c.col >= 0 {
				set(c.col, parquet.DoubleValue(c.vals[i]))
			}
		}
		if _, err := w.WriteRows([]parquet.Row{row}); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeNeeds are the sets of state columns the encoding tests cover: count
// alone, sum, every column, and a min/max column without sum.
var encodeNeeds = []aggregate.Needs{
	aggregate.NeedCount,
	aggregate.NeedCount | aggregate.NeedSum,
	aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedM2 | aggregate.NeedMin | aggregate.NeedMax,
	aggregate.NeedCount | aggregate.NeedMax,
}

// TestEncodeMatchesRows checks that the column-wise encoder writes, byte for
// byte, what the row-by-row reference writes (so the same schema, row groups,
// encodings, codecs, statistics, sorting columns and key/value metadata), for
// every format, key type and set of value columns, for objects of one row,
// of a partial last row group, and of a slice [lo, hi) of a set.
func TestEncodeMatchesRows(t *testing.T) {
	formats := append(benchFormats[:len(benchFormats):len(benchFormats)], struct {
		name string
		f    objectFormat
	}{"dictionary", objectFormat{codec: &parquet.Snappy, ints: &parquet.RLEDictionary, floats: &parquet.RLEDictionary}})
	for _, needs := range encodeNeeds {
		for _, stringKeys := range []bool{false, true} {
			rows := manyGroupRows(needs, stringKeys, 45, 70, 1) // 3150 tiles
			set := setOf(needs, stringKeys, rows)
			for _, f := range formats {
				for _, span := range [][2]int{{0, set.Len()}, {0, 1}, {17, 17 + 2*RowGroupRows + 5}} {
					name := fmt.Sprintf("%s, needs %s, string keys %v, tiles [%d, %d)", f.name, needs, stringKeys, span[0], span[1])
					got, o, err := encodeObjectAs("x.parquet", set, span[0], span[1], hour, f.f)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					want, err := encodeRows(set, span[0], span[1], f.f)
					if err != nil {
						t.Fatalf("%s: reference: %v", name, err)
					}
					if o.Rows != int64(span[1]-span[0]) || len(o.RowGroups) != (span[1]-span[0]+RowGroupRows-1)/RowGroupRows {
						t.Fatalf("%s: object of %d rows in %d row groups", name, o.Rows, len(o.RowGroups))
					}
					if !bytes.Equal(got, want) {
						sameFile(t, name, got, want) // says what differs
						t.Fatalf("%s: %d bytes differ from the reference's %d", name, len(got), len(want))
					}
				}
			}
		}
	}
}

// sameFile fails the test on the first difference of schema, metadata or rows
// between Parquet files got and want.
func sameFile(t *testing.T, name string, got, want []byte) {
	t.Helper()
	open := func(data []byte) *parquet.File {
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: open: %v", name, err)
		}
		return f
	}
	gf, wf := open(got), open(want)
	gm, wm := gf.Metadata(), wf.Metadata()
	if !reflect.DeepEqual(gm.Schema, wm.Schema) || !reflect.DeepEqual(gm.KeyValueMetadata, wm.KeyValueMetadata) ||
		gm.NumRows != wm.NumRows || gm.CreatedBy != wm.CreatedBy || len(gm.RowGroups) != len(wm.RowGroups) {
		t.Fatalf("%s: file metadata differs:\n got %+v\nwant %+v", name, gm, wm)
	}
	for i := range gm.RowGroups {
		g, w := gm.RowGroups[i], wm.RowGroups[i]
		if g.NumRows != w.NumRows || !reflect.DeepEqual(g.SortingColumns, w.SortingColumns) {
			t.Fatalf("%s: row group %d: %d rows sorted by %v, want %d rows sorted by %v", name, i, g.NumRows, g.SortingColumns, w.NumRows, w.SortingColumns)
		}
		for c := range g.Columns {
			gc, wc := g.Columns[c].MetaData, w.Columns[c].MetaData
			if gc.Type != wc.Type || gc.Codec != wc.Codec || gc.NumValues != wc.NumValues ||
				!sameEncodings(gc.Encoding, wc.Encoding) && !startDictionaryFor(gc, wc) || !reflect.DeepEqual(gc.Statistics, wc.Statistics) {
				t.Fatalf("%s: row group %d column %v:\n got %+v\nwant %+v", name, i, gc.PathInSchema, gc, wc)
			}
		}
	}
	gr, wr := readAll(t, name, gf), readAll(t, name, wf)
	if !reflect.DeepEqual(gr, wr) {
		t.Fatalf("%s: rows differ", name)
	}
}

// startDictionaryFor reports whether column chunk got holds as dictionary
// indexes the bucket starts that want holds as deltas (writeTiles chooses
// per row group; parquet-go's writer does not).
func startDictionaryFor(got, want format.ColumnMetaData) bool {
	return got.PathInSchema[0] == colStart && got.DictionaryPageOffset > 0 &&
		sameEncodings(got.Encoding, []format.Encoding{format.Plain, format.RLEDictionary}) &&
		sameEncodings(want.Encoding, []format.Encoding{format.DeltaBinaryPacked})
}

func sameEncodings(a, b []format.Encoding) bool {
	set := func(e []format.Encoding) map[format.Encoding]bool {
		m := map[format.Encoding]bool{}
		for _, x := range e {
			m[x] = true
		}
		return m
	}
	return reflect.DeepEqual(set(a), set(b))
}

func readAll(t *testing.T, name string, f *parquet.File) []parquet.Row {
	t.Helper()
	rows, err := readAllErr(f)
	if err != nil {
		t.Fatalf("%s: read rows: %v", name, err)
	}
	return rows
}
