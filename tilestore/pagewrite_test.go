package tilestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tessera-fe/tessera/internal/cputime"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tessera-fe/tessera/aggregate"
)

// TestWriteTilesMatchesWriter: the objects writeTiles writes hold what
// parquet-go's writer writes for the same tiles in defaultFormat (schema,
// metadata, row groups, encodings, codecs, statistics and rows), and are
// described alike, for every key type and set of value columns, for
// objects of one row, of a partial last row group, and of a slice [lo, hi)
// of a set; a page's CRC is right where parquet-go checks it. The chunks
// it hands over as it writes make up the object, in order, each of at
// least streamChunk bytes but the last.
func TestWriteTilesMatchesWriter(t *testing.T) {
	defer func(n int) { streamChunk = n }(streamChunk)
	streamChunk = 256
	for _, needs := range encodeNeeds {
		for _, stringKeys := range []bool{false, true} {
			for _, rows := range [][]row{manyGroupRows(needs, stringKeys, 45, 70, 1), mixedRows(needs, stringKeys)} {
				set := setOf(needs, stringKeys, rows)
				if set.Sum != nil {
					set.Sum[3], set.Sum[4] = math.Inf(1), math.Inf(-1)
				}
				for _, sp := range [][2]int{{0, set.Len()}, {0, 1}, {17, 17 + 2*RowGroupRows + 5}} {
					name := fmt.Sprintf("needs %s, string keys %v, %d tiles [%d, %d)", needs, stringKeys, len(rows), sp[0], sp[1])
					var chunks [][]byte
					got, o, err := encodeObjectTo("x.parquet", set, sp[0], sp[1], hour, &sink{emit: func(c []byte) { chunks = append(chunks, bytes.Clone(c)) }})
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if !bytes.Equal(bytes.Join(chunks, nil), got) {
						t.Fatalf("%s: %d chunks of %d bytes in all do not make up the object of %d bytes", name, len(chunks), len(bytes.Join(chunks, nil)), len(got))
					}
					for i, c := range chunks[:len(chunks)-1] {
						if len(c) < streamChunk {
							t.Fatalf("%s: chunk %d of %d holds %d bytes, under %d", name, i, len(chunks), len(c), streamChunk)
						}
					}
					if sp[1]-sp[0] > 2*RowGroupRows && len(chunks) < 2 {
						t.Fatalf("%s: the object came in %d chunk", name, len(chunks))
					}
					want, wo, err := encodeObjectAs("x.parquet", set, sp[0], sp[1], hour, defaultFormat)
					if err != nil {
						t.Fatalf("%s: parquet-go: %v", name, err)
					}
					sameFile(t, name, got, want)
					// Described from its row groups, as each was written, the
					// object's range and keys are those of all its tiles (keys
					// straddle row groups here).
					if from, to := startRange(set, sp[0], sp[1], hour); o.From != from || o.To != to || o.Keys != distinctKeys(set, sp[0], sp[1]) {
						t.Fatalf("%s: described with range [%d, %d) and %d keys, its tiles span [%d, %d) and hold %d keys", name, o.From, o.To, o.Keys, from, to, distinctKeys(set, sp[0], sp[1]))
					}
					if o.Rows != wo.Rows || o.MinKey != wo.MinKey || o.MaxKey != wo.MaxKey || o.From != wo.From || o.To != wo.To ||
						o.Keys != wo.Keys || len(o.RowGroups) != len(wo.RowGroups) || o.Bytes != int64(len(got)) ||
						o.SHA256 != sha256Hex(got) || o.CRC32C != crc32cHex(got) {
						t.Fatalf("%s: described as %+v, parquet-go's as %+v", name, o, wo)
					}
					for i, g := range o.RowGroups {
						w := wo.RowGroups[i]
						if g.Rows != w.Rows || g.MinKey != w.MinKey || g.MaxKey != w.MaxKey || g.From != w.From || g.To != w.To ||
							g.CRC32C != crc32cHex(got[g.Offset:g.Offset+g.Length]) || g.SHA256 != "" {
							t.Fatalf("%s: row group %d described as %+v, parquet-go's as %+v", name, i, g, w)
						}
					}
					if o.Footer <= 0 || o.FooterCRC32C != crc32cHex(got[o.Footer:]) || o.FooterSHA256 != "" {
						t.Fatalf("%s: footer at %d", name, o.Footer)
					}
					// A flipped byte in a page fails its CRC.
					bad := bytes.Clone(got)
					bad[o.RowGroups[0].Offset+o.RowGroups[0].Length-1] ^= 0x40
					f, err := parquet.OpenFile(bytes.NewReader(bad), int64(len(bad)))
					if err == nil {
						_, err = readAllErr(f)
					}
					if err == nil {
						t.Fatalf("%s: a damaged page reads back", name)
					}
				}
			}
		}
	}
}

// TestStartDictionary: bucket starts take a dictionary when it takes at
// most half a byte a row (n/16 distinct starts, not one more) and the rows'
// buckets number no more than the rows; never off the grid, never on a
// grid of no width, never for ranges that overflow.
func TestStartDictionary(t *testing.T) {
	const n = 1024
	starts := func(distinct int, step int64) []int64 {
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(i%distinct) * step * hour
		}
		return v
	}
	for _, c := range []struct {
		name  string
		vals  []int64
		width int64
		want  bool
	}{
		{"n/16 distinct", starts(n/16, 1), hour, true},
		{"n/16+1 distinct", starts(n/16+1, 1), hour, false},
		{"buckets as many as rows", starts(n/16, (n-1)/(n/16-1)), hour, true},
		{"a bucket more than rows", append(starts(n/16, 1)[:n-1], n*hour), hour, false},
		{"off the grid", append(starts(n/16, 1)[:n-1], hour/2), hour, false},
		{"no width", starts(n/16, 1), 0, false},
		{"the whole int64 range", append(starts(2, 1)[:n-2], math.MinInt64, math.MaxInt64), 1, false},
		{"too few rows", starts(2, 1)[:63], hour, false},
	} {
		w := &pageWriter{width: c.width}
		if got := w.startDictionary(c.vals); got != c.want {
			t.Fatalf("%s: dictionary %v, want %v", c.name, got, c.want)
		}
		if !c.want {
			continue
		}
		// The dictionary: the distinct starts ascending; the indexes
		// give back every start.
		var dict []int64
		for i := 0; i < len(w.dict); i += 8 {
			dict = append(dict, int64(binary.LittleEndian.Uint64(w.dict[i:])))
		}
		if !slices.IsSorted(dict) || len(slices.Compact(slices.Clone(dict))) != len(dict) {
			t.Fatalf("%s: dictionary %v", c.name, dict)
		}
		for i, v := range c.vals {
			if dict[w.ids[i]] != v {
				t.Fatalf("%s: row %d is %d, indexes %d", c.name, i, v, dict[w.ids[i]])
			}
		}
	}
}

// mixedRows makes tiles in row groups of both kinds for bucket starts
// (see pageWriter.startDictionary): 200 keys over the same 40 hours, whose
// groups take a dictionary; then 3 keys over 1500 hours each, and 30 keys
// over 100 hours (a dictionary of 100 starts for 1024 rows: just over half
// a byte a row), whose groups do not.
func mixedRows(needs aggregate.Needs, stringKeys bool) []row {
	rows := manyGroupRows(needs, stringKeys, 200, 40, 1)
	for i, batch := range [][]row{manyGroupRows(needs, stringKeys, 3, 1500, 2), manyGroupRows(needs, stringKeys, 30, 100, 3)} {
		shift := int64(200 + 3*i) // keys after those before
		for _, r := range batch {
			if stringKeys {
				k, _ := strconv.ParseInt(r.StrKey[1:], 10, 64)
				r.StrKey = fmt.Sprintf("k%05d", k+shift)
			} else {
				r.IntKey += 7 * shift
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// TestWriteTilesStartDictionary: bucket starts are dictionary indexes in
// exactly the row groups where the dictionary takes at most half a byte a
// row and the starts span no more buckets than rows, and the object is
// smaller for it; every reader reads the tiles back,
// through the fast path and parquet-go's; a damaged dictionary page fails
// its CRC.
func TestWriteTilesStartDictionary(t *testing.T) {
	needs := aggregate.NeedCount | aggregate.NeedSum
	for _, stringKeys := range []bool{false, true} {
		rows := mixedRows(needs, stringKeys)
		set := setOf(needs, stringKeys, rows)
		data, o, err := encodeObject("d.parquet", set, 0, set.Len(), hour)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		col := lookupColumns(f.Schema()).start
		dicts := 0
		for g, rg := range f.Metadata().RowGroups {
			md := rg.Columns[col].MetaData
			a := int(o.RowGroups[g].Offset) // rows of group g: those before it
			first := 0
			for _, p := range o.RowGroups[:g] {
				first += int(p.Rows)
			}
			distinct := map[int64]bool{}
			starts := set.Start[first : first+int(rg.NumRows)]
			for _, s := range starts {
				distinct[s] = true
			}
			span := (slices.Max(starts)-slices.Min(starts))/hour + 1
			want := len(distinct)*16 <= int(rg.NumRows) && span <= rg.NumRows
			if got := md.DictionaryPageOffset > 0; got != want || (got && !slices.Contains(md.Encoding, format.RLEDictionary)) {
				t.Fatalf("string keys %v: row group %d (%d rows, %d distinct starts) at %d: dictionary %v, want %v (encodings %v)",
					stringKeys, g, rg.NumRows, len(distinct), a, got, want, md.Encoding)
			}
			if want {
				dicts++
			}
		}
		if dicts == 0 || dicts == len(o.RowGroups) {
			t.Fatalf("string keys %v: %d of %d row groups take a dictionary; the test needs both kinds", stringKeys, dicts, len(o.RowGroups))
		}
		deltas, _, err := encodeObjectAs("d.parquet", set, 0, set.Len(), hour, defaultFormat)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) >= len(deltas) {
			t.Fatalf("string keys %v: %d bytes with dictionaries, %d without", stringKeys, len(data), len(deltas))
		}
		sameFile(t, "dictionary starts", data, deltas)
		m := &Manifest{TileSet: "d", Needs: needs, StringKeys: stringKeys, Grid: hourGrid}
		out := newSet(needs, stringKeys)
		if err := decodeObject(m, o, data, everything, nil, out); err != nil {
			t.Fatal(err)
		}
		equalRows(t, "decoded", out, rows)

		// The decoder reads dictionary pages through its fast path.
		var dictEnd int64
		for gi, rg := range f.Metadata().RowGroups {
			md := rg.Columns[col].MetaData
			if md.DictionaryPageOffset == 0 {
				continue
			}
			dictEnd = md.DataPageOffset // the dictionary page ends there
			pages := f.RowGroups()[gi].ColumnChunks()[col].Pages()
			p, err := pages.ReadPage()
			if err != nil {
				t.Fatal(err)
			}
			if idx, d, ok := dictionaryValues(p, encoding.Int64); !ok || len(idx) != int(rg.NumRows) || d.Kind() != encoding.Int64 {
				t.Fatalf("string keys %v: row group %d: a dictionary page the fast path does not take (%v)", stringKeys, gi, ok)
			}
			parquet.Release(p)
			pages.Close()
			break
		}
		// A flipped bit in the last byte of the first dictionary page.
		bad := bytes.Clone(data)
		bad[dictEnd-1] ^= 0x10
		if err := decodeObject(m, o, bad, everything, nil, newSet(needs, stringKeys)); err == nil || !strings.Contains(err.Error(), "CRC") && !strings.Contains(err.Error(), "crc") {
			t.Fatalf("string keys %v: a damaged dictionary page decodes", stringKeys)
		}
	}
}

// TestWriteTilesNaN: a NaN sum reads back as NaN and stays out of the
// column's statistics.
func TestWriteTilesNaN(t *testing.T) {
	needs := aggregate.NeedCount | aggregate.NeedSum
	set := setOf(needs, false, manyGroupRows(needs, false, 3, 10, 1))
	for i := range set.Sum {
		set.Sum[i] = math.NaN()
	}
	set.Sum[5] = 2.5
	data, _, err := encodeObject("nan.parquet", set, 0, set.Len(), hour)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := readAllErr(f)
	if err != nil {
		t.Fatal(err)
	}
	col := lookupColumns(f.Schema()).sum
	for i, r := range rows {
		if v := r[col].Double(); (i == 5) != (v == 2.5) || i != 5 && !math.IsNaN(v) {
			t.Fatalf("row %d: sum %v", i, v)
		}
	}
	st := f.Metadata().RowGroups[0].Columns[col].MetaData.Statistics
	if !bytes.Equal(st.MinValue, st.MaxValue) || len(st.MinValue) != 8 {
		t.Fatalf("statistics of sums NaN but one 2.5: min %x max %x", st.MinValue, st.MaxValue)
	}
}

// readAllErr reads every row of f, or the first error.
func readAllErr(f *parquet.File) ([]parquet.Row, error) {
	var out []parquet.Row
	for _, rg := range f.RowGroups() {
		rows := rg.Rows()
		buf := make([]parquet.Row, 256)
		for {
			n, err := rows.ReadRows(buf)
			for _, r := range buf[:n] {
				out = append(out, r.Clone())
			}
			if err != nil {
				rows.Close()
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, err
			}
		}
	}
	return out, nil
}

// BenchmarkEncodeObject encodes the tiles of loadBenchTiles into objects
// as a commit does, on one core: "pages" with writeTiles, "parquet-go" with
// parquet-go's writer, in the same format. Set TESSERA_BENCH_SCALE=20M for
// the 4.56M tiles of the 20M-event sample.
func BenchmarkEncodeObject(b *testing.B) {
	bt := loadBenchTiles(b)
	set := bt.set
	for _, c := range []struct {
		name   string
		encode func(lo, hi int) ([]byte, Object, error)
	}{
		{"pages", func(lo, hi int) ([]byte, Object, error) {
			return encodeObject("bench.parquet", set, lo, hi, bt.grid.Width)
		}},
		{"parquet-go", func(lo, hi int) ([]byte, Object, error) {
			return encodeObjectAs("bench.parquet", set, lo, hi, bt.grid.Width, defaultFormat)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cputime.Process()
			for b.Loop() {
				for lo := 0; lo < set.Len(); lo += maxObjectRows {
					if _, _, err := c.encode(lo, min(lo+maxObjectRows, set.Len())); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(set.Len())*float64(b.N)/b.Elapsed().Seconds(), "tiles/s")
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
