package tilestore

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/tessera-fe/tessera/aggregate"
)

// TestChunkReader checks the chunk reader against parquet-go's page readers
// on every fixed-width column chunk of objects writeTiles wrote (delta,
// dictionary and plain pages, Snappy-compressed or not): it takes every one
// of them and decodes the same values; it leaves chunks of other layouts to
// parquet-go, and a damaged page is an error.
func TestChunkReader(t *testing.T) {
	needs := aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedM2 | aggregate.NeedMin | aggregate.NeedMax
	for _, stringKeys := range []bool{false, true} {
		set := setOf(needs, stringKeys, mixedRows(needs, stringKeys))
		data, o, err := encodeObject("x.parquet", set, 0, set.Len(), hour)
		if err != nil {
			t.Fatal(err)
		}
		m := &Manifest{TileSet: "chunks", Needs: needs, StringKeys: stringKeys, Grid: hourGrid}
		ob, err := openTileObject(m, o, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		ints := []int{ob.cols.start, ob.cols.count, ob.cols.n}
		if !stringKeys {
			ints = append(ints, ob.cols.key)
		}
		floats := []int{ob.cols.sum, ob.cols.m2, ob.cols.min, ob.cols.max}
		cr := new(chunkReader)
		dictionaries := 0
		for gi, rg := range ob.f.RowGroups() {
			rows := int(rg.NumRows())
			chunks := rg.ColumnChunks()
			for _, col := range ints {
				name := fmt.Sprintf("string keys %v, row group %d, column %d", stringKeys, gi, col)
				md := chunkMeta(ob, gi, col)
				if md.DictionaryPageOffset > 0 {
					dictionaries++
				}
				want := make([]int64, rows)
				if err := readInt64s(chunks[col], want); err != nil {
					t.Fatalf("%s: parquet-go: %v", name, err)
				}
				got := make([]int64, rows)
				if ok, err := cr.int64s(ob, md, got); !ok || err != nil {
					t.Fatalf("%s: chunk reader took it %v, error %v", name, ok, err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s: chunk reader decoded other values", name)
				}
			}
			for _, col := range floats {
				name := fmt.Sprintf("string keys %v, row group %d, column %d", stringKeys, gi, col)
				want := make([]float64, rows)
				if err := readDoubles(chunks[col], want); err != nil {
					t.Fatalf("%s: parquet-go: %v", name, err)
				}
				got := make([]float64, rows)
				if ok, err := cr.float64s(ob, chunkMeta(ob, gi, col), got); !ok || err != nil {
					t.Fatalf("%s: chunk reader took it %v, error %v", name, ok, err)
				}
				if !slices.EqualFunc(got, want, func(a, b float64) bool { return a == b || a != a && b != b }) {
					t.Fatalf("%s: chunk reader decoded other values", name)
				}
			}
		}
		if dictionaries == 0 {
			t.Fatalf("string keys %v: no dictionary chunk to read", stringKeys)
		}
		// A flipped byte in the last page of the object (the last double
		// column of the last row group) fails its CRC.
		last := len(ob.f.RowGroups()) - 1
		md := chunkMeta(ob, last, floats[len(floats)-1])
		bad := slices.Clone(data)
		bad[md.DataPageOffset+md.TotalCompressedSize-3] ^= 0x20
		badOb, err := openTileObject(m, o, bytes.NewReader(bad), nil)
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]float64, ob.f.RowGroups()[last].NumRows())
		if _, err := cr.float64s(badOb, md, dst); err == nil {
			t.Fatalf("string keys %v: a damaged page decoded", stringKeys)
		}
		// A chunk the reader cannot read whole is an error, after a chunk
		// of the same size left its bytes in the reader's buffer.
		short := *ob
		short.ra = bytes.NewReader(data[:md.DataPageOffset+md.TotalCompressedSize-1])
		if ok, err := cr.float64s(ob, md, dst); !ok || err != nil {
			t.Fatalf("string keys %v: %v, %v", stringKeys, ok, err)
		}
		if _, err := cr.float64s(&short, md, dst); err == nil {
			t.Fatalf("string keys %v: a chunk cut short decoded", stringKeys)
		}
	}
	// Chunks in parquet-go's own layout are left to it.
	set := setOf(aggregate.NeedCount|aggregate.NeedSum, false, manyGroupRows(aggregate.NeedCount|aggregate.NeedSum, false, 20, 60, 1))
	data, o, err := encodeObjectAs("x.parquet", set, 0, set.Len(), hour, objectFormat{codec: &parquet.Zstd})
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{TileSet: "chunks", Needs: aggregate.NeedCount | aggregate.NeedSum, Grid: hourGrid}
	ob, err := openTileObject(m, o, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]int64, ob.f.RowGroups()[0].NumRows())
	if ok, err := new(chunkReader).int64s(ob, chunkMeta(ob, 0, ob.cols.count), dst); ok || err != nil {
		t.Fatalf("a Zstandard chunk: taken %v, error %v", ok, err)
	}
}
