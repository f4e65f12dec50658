package tilestore

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tessera-fe/tessera/aggregate"
)

// pageHeaders returns the bytes of every page header of every column chunk
// of objects written by writeTiles and by parquet-go's writer in each of
// benchFormats, each header followed by the rest of its chunk.
func pageHeaders(t testing.TB) [][]byte {
	needs := aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedMin | aggregate.NeedMax
	var out [][]byte
	for _, stringKeys := range []bool{false, true} {
		set := setOf(needs, stringKeys, mixedRows(needs, stringKeys))
		objects := [][]byte{}
		data, _, err := encodeObject("x.parquet", set, 0, set.Len(), hour)
		if err != nil {
			t.Fatal(err)
		}
		objects = append(objects, data)
		for _, f := range benchFormats {
			data, _, err := encodeObjectAs("x.parquet", set, 0, 3000, hour, f.f)
			if err != nil {
				t.Fatal(err)
			}
			objects = append(objects, data)
		}
		for _, data := range objects {
			f, err := openParquet(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			for _, rg := range f.Metadata().RowGroups {
				for _, c := range rg.Columns {
					md := c.MetaData
					at := md.DataPageOffset
					if md.DictionaryPageOffset > 0 {
						at = md.DictionaryPageOffset
					}
					end := at + md.TotalCompressedSize
					for at < end {
						var ph format.PageHeader
						r := bytes.NewReader(data[at:end])
						if err := thrift.NewDecoder(new(thrift.CompactProtocol).NewReader(r)).Decode(&ph); err != nil {
							t.Fatal(err)
						}
						out = append(out, data[at:end])
						at = end - int64(r.Len()) + int64(ph.CompressedPageSize)
					}
				}
			}
		}
	}
	return out
}

// syntheticHeaders returns page headers that tessera's objects do not hold,
// encoded by parquet-go: a version 1 data page with statistics, a version 2
// one with statistics and uncompressed values, a sorted dictionary page, an
// index page, and sizes far from the usual.
func syntheticHeaders(t testing.TB) [][]byte {
	stats := format.Statistics{Max: []byte("zz"), Min: []byte{0}, NullCount: 3, DistinctCount: 9, MaxValue: bytes.Repeat([]byte{7}, 300), MinValue: []byte("a")}
	headers := []format.PageHeader{
		{Type: format.DataPage, UncompressedPageSize: 100, CompressedPageSize: 80, CRC: -5,
			DataPageHeader: thrift.New(format.DataPageHeader{NumValues: 10, Encoding: format.Plain, DefinitionLevelEncoding: format.RLE, RepetitionLevelEncoding: format.RLE, Statistics: stats})},
		{Type: format.DataPageV2, UncompressedPageSize: 1 << 30, CompressedPageSize: 1,
			DataPageHeaderV2: thrift.New(format.DataPageHeaderV2{NumValues: -1, NumNulls: 2, NumRows: 1 << 20, Encoding: format.DeltaBinaryPacked, DefinitionLevelsByteLength: 4, RepetitionLevelsByteLength: 5, IsCompressed: thrift.New(false), Statistics: stats})},
		{Type: format.DataPageV2, UncompressedPageSize: 8, CompressedPageSize: 8,
			DataPageHeaderV2: thrift.New(format.DataPageHeaderV2{NumValues: 1, NumRows: 1, Encoding: format.Plain, IsCompressed: thrift.New(true)})},
		{Type: format.DictionaryPage, UncompressedPageSize: 16, CompressedPageSize: 16, CRC: 1 << 30,
			DictionaryPageHeader: thrift.New(format.DictionaryPageHeader{NumValues: 2, Encoding: format.PlainDictionary, IsSorted: true})},
		{Type: format.IndexPage, UncompressedPageSize: 0, CompressedPageSize: 0, IndexPageHeader: thrift.New(format.IndexPageHeader{})},
	}
	var out [][]byte
	for _, h := range headers {
		b, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append(b, 1, 2, 3)) // what follows a header is not read
	}
	return out
}

// checkPageHeader decodes b with decodePageHeader and, when that succeeds,
// with parquet-go's reflective decoder, and fails when both succeed but
// disagree. It returns decodePageHeader's error.
func checkPageHeader(t testing.TB, b []byte) (ours error) {
	var got pageHeader
	n, err := decodePageHeader(b, &got)
	if err != nil {
		// parquet-go's decoder may try to allocate what a corrupt length
		// says: only headers ours accepts are compared.
		return err
	}
	var want format.PageHeader
	r := bytes.NewReader(b)
	if thrift.NewDecoder(new(thrift.CompactProtocol).NewReader(r)).Decode(&want) != nil {
		return nil
	}
	w := pageHeader{typ: want.Type, uncompressed: want.UncompressedPageSize, compressed: want.CompressedPageSize,
		crc: want.CRC, hasCRC: want.CRC != 0 || got.hasCRC && got.crc == 0, isCompressed: true}
	if d, ok := want.DictionaryPageHeader.Get(); ok {
		w.dict, w.dictValues, w.dictEncoding = true, d.NumValues, d.Encoding
	}
	if d, ok := want.DataPageHeaderV2.Get(); ok {
		w.v2, w.numValues, w.numNulls, w.numRows, w.encoding = true, d.NumValues, d.NumNulls, d.NumRows, d.Encoding
		w.defLength, w.repLength = d.DefinitionLevelsByteLength, d.RepetitionLevelsByteLength
		if v, set := d.IsCompressed.Get(); set {
			w.isCompressed = v
		}
	}
	if got != w || n != len(b)-r.Len() {
		t.Fatalf("header % x:\ndecoded %+v (%d bytes)\nwant    %+v (%d bytes)", b[:min(len(b), 64)], got, n, w, len(b)-r.Len())
	}
	return nil
}

// TestPageHeader checks decodePageHeader against parquet-go's decoder on
// the page headers of objects of every layout (data pages of both versions,
// dictionary pages, statistics it skips), and that each shorter prefix of a
// header is an error.
func TestPageHeader(t *testing.T) {
	headers := append(pageHeaders(t), syntheticHeaders(t)...)
	kinds := map[string]int{}
	for _, b := range headers {
		if err := checkPageHeader(t, b); err != nil {
			t.Fatalf("header % x: %v", b[:min(len(b), 64)], err)
		}
		var ph pageHeader
		n, _ := decodePageHeader(b, &ph)
		kinds[fmt.Sprintf("type %v, v2 %v, dictionary %v, crc %v", ph.typ, ph.v2, ph.dict, ph.hasCRC)]++
		for k := range n {
			if _, err := decodePageHeader(b[:k], &ph); err == nil {
				t.Fatalf("header % x: its first %d bytes decoded", b[:n], k)
			}
		}
	}
	for _, want := range []string{"type DATA_PAGE_V2, v2 true, dictionary false, crc true", "type DICTIONARY_PAGE, v2 false, dictionary true, crc true", "type DATA_PAGE, v2 false, dictionary false"} {
		found := false
		for k := range kinds {
			found = found || len(k) >= len(want) && k[:len(want)] == want
		}
		if !found {
			t.Fatalf("no header of %s among %v", want, kinds)
		}
	}
}

// FuzzPageHeader checks that decodePageHeader never panics and agrees with
// parquet-go's decoder wherever both decode.
func FuzzPageHeader(f *testing.F) {
	for i, b := range pageHeaders(f) {
		if i%7 == 0 {
			f.Add(b[:min(len(b), 80)])
		}
	}
	for _, b := range syntheticHeaders(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkPageHeader(t, b)
	})
}
