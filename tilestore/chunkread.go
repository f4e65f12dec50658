package tilestore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/format"
)

// chunkReader decodes the fixed-width column chunks of tile objects laid out
// as writeTiles writes them (one DATA_PAGE_V2 of dense values, after a PLAIN
// dictionary page for RLE_DICTIONARY; Snappy or no compression) straight
// into the set's columns, without parquet-go's page readers: those cost
// about 7 µs a column chunk in setting up, decoding headers reflectively
// and copying values out of their buffers, most of the load of a store of
// small row groups (405k tiles in 396 row groups of the 1M sample). Chunks
// of any other layout are left to parquet-go (ok false). One per core: it
// keeps its buffers from chunk to chunk.
type chunkReader struct {
	raw, page, dict []byte
	ids             []int32
}

// int64s decodes INT64 chunk md of object ob into dst, which holds its rows.
func (r *chunkReader) int64s(ob *openObject, md *format.ColumnMetaData, dst []int64) (ok bool, err error) {
	if md.Type != format.Int64 {
		return false, nil
	}
	return r.fixed(ob, md, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 8*len(dst)), true)
}

// float64s decodes DOUBLE chunk md of object ob into dst, which holds its
// rows.
func (r *chunkReader) float64s(ob *openObject, md *format.ColumnMetaData, dst []float64) (ok bool, err error) {
	if md.Type != format.Double {
		return false, nil
	}
	return r.fixed(ob, md, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 8*len(dst)), false)
}

// fixed decodes a chunk of 8-byte values into out, their little-endian
// bytes; ints says they are INT64 (which may be delta-encoded).
func (r *chunkReader) fixed(ob *openObject, md *format.ColumnMetaData, out []byte, ints bool) (bool, error) {
	rows := len(out) / 8
	if !littleEndian || ob.ra == nil || md.NumValues != int64(rows) || rows == 0 ||
		(md.Codec != format.Snappy && md.Codec != format.Uncompressed) {
		return false, nil
	}
	start := md.DataPageOffset
	if md.DictionaryPageOffset > 0 {
		start = md.DictionaryPageOffset
	}
	size := md.TotalCompressedSize
	if start < 0 || size <= 0 || size > 1<<30 {
		return false, nil
	}
	r.raw = growBytes(r.raw, int(size))
	if n, err := ob.ra.ReadAt(r.raw, start); n != len(r.raw) {
		return false, fmt.Errorf("column chunk of bytes [%d, %d): read %d bytes: %v", start, start+size, n, err)
	}
	chunk := r.raw
	var dict []byte // PLAIN values of the dictionary page, if any
	ph, body, rest, err := r.next(chunk)
	if err != nil {
		return false, err
	}
	if ph.typ == format.DictionaryPage {
		if !ph.dict || (ph.dictEncoding != format.Plain && ph.dictEncoding != format.PlainDictionary) {
			return false, nil
		}
		if dict, err = decompress(&r.dict, md.Codec, body, int(ph.uncompressed), true); err != nil {
			return false, err
		}
		if len(dict) != 8*int(ph.dictValues) {
			return false, fmt.Errorf("dictionary page holds %d bytes for %d values", len(dict), ph.dictValues)
		}
		if ph, body, rest, err = r.next(rest); err != nil {
			return false, err
		}
	}
	if ph.typ != format.DataPageV2 || !ph.v2 || len(rest) != 0 || ph.numNulls != 0 ||
		ph.defLength != 0 || ph.repLength != 0 {
		return false, nil // another layout: one for parquet-go
	}
	if ph.numValues != int32(rows) || ph.numRows != int32(rows) {
		return false, fmt.Errorf("page holds %d values, the row group %d rows", ph.numValues, rows)
	}
	compressed := md.Codec == format.Snappy && ph.isCompressed
	switch {
	case ph.encoding == format.Plain && dict == nil:
		if compressed {
			if n, err := s2.DecodedLen(body); err != nil || n != len(out) {
				return false, fmt.Errorf("page of %d values decompresses to %d bytes (%v)", rows, n, err)
			}
			if _, err := s2.Decode(out, body); err != nil {
				return false, fmt.Errorf("decompress a page: %w", err)
			}
			return true, nil
		}
		if len(body) != len(out) {
			return false, fmt.Errorf("page holds %d bytes for %d values", len(body), rows)
		}
		copy(out, body)
		return true, nil
	case ph.encoding == format.DeltaBinaryPacked && ints && dict == nil:
		page, err := decompress(&r.page, md.Codec, body, int(ph.uncompressed), compressed)
		if err != nil {
			return false, err
		}
		dst := unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(out))), rows)
		got, err := new(delta.BinaryPackedEncoding).DecodeInt64(dst[:0:rows], page)
		if err != nil {
			return false, err
		}
		if len(got) != rows || unsafe.SliceData(got) != unsafe.SliceData(dst) {
			return false, fmt.Errorf("page holds %d values, the row group %d rows", len(got), rows)
		}
		return true, nil
	case (ph.encoding == format.RLEDictionary || ph.encoding == format.PlainDictionary) && dict != nil:
		page, err := decompress(&r.page, md.Codec, body, int(ph.uncompressed), compressed)
		if err != nil {
			return false, err
		}
		if r.ids, err = new(rle.DictionaryEncoding).DecodeInt32(r.ids[:0], page); err != nil {
			return false, err
		}
		if len(r.ids) < rows {
			return false, fmt.Errorf("page holds %d dictionary indexes, the row group %d rows", len(r.ids), rows)
		}
		if uintptr(unsafe.Pointer(unsafe.SliceData(dict)))%8 != 0 {
			// An uncompressed dictionary page lies anywhere in the chunk:
			// align its values (growBytes aligns) to read them as words.
			r.dict = growBytes(r.dict, len(dict))
			copy(r.dict, dict)
			dict = r.dict
		}
		words := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(dict))), len(dict)/8)
		dst := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(out))), rows)
		for i, k := range r.ids[:rows] {
			if uint(k) >= uint(len(words)) {
				return false, fmt.Errorf("value %d: dictionary index %d out of range [0, %d)", i, k, len(words))
			}
			dst[i] = words[k]
		}
		return true, nil
	}
	return false, nil
}

// next splits the page at the front of b into its header, its body (its
// CRC checked) and what follows.
func (r *chunkReader) next(b []byte) (ph pageHeader, body, rest []byte, err error) {
	at, err := decodePageHeader(b, &ph)
	if err != nil {
		return ph, nil, nil, fmt.Errorf("decode a page header: %w", err)
	}
	n := int(ph.compressed)
	if n < 0 || n > len(b)-at || ph.uncompressed < 0 {
		return ph, nil, nil, fmt.Errorf("page of %d bytes in %d", n, len(b)-at)
	}
	body = b[at : at+n]
	if ph.hasCRC && uint32(ph.crc) != crc32.ChecksumIEEE(body) {
		return ph, nil, nil, fmt.Errorf("page CRC mismatch")
	}
	return ph, body, b[at+n:], nil
}

// decompress returns body decompressed into *buf (body itself when it is
// not compressed), checked to be size bytes.
func decompress(buf *[]byte, codec format.CompressionCodec, body []byte, size int, compressed bool) ([]byte, error) {
	if !compressed || codec == format.Uncompressed {
		if len(body) != size {
			return nil, fmt.Errorf("page holds %d bytes, its header says %d", len(body), size)
		}
		return body, nil
	}
	if n, err := s2.DecodedLen(body); err != nil || n != size {
		return nil, fmt.Errorf("page decompresses to %d bytes, its header says %d (%v)", n, size, err)
	}
	*buf = growBytes(*buf, size)
	out, err := s2.Decode(*buf, body)
	if err != nil {
		return nil, fmt.Errorf("decompress a page: %w", err)
	}
	return out, nil
}

// growBytes returns b with length n, reusing its memory when large
// enough; new memory is aligned to 8 bytes, for reading as words.
func growBytes(b []byte, n int) []byte {
	if cap(b) < n {
		words := make([]uint64, (n+n/4+7)/8)
		b = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), 8*len(words))
	}
	return b[:n]
}

// littleEndian reports whether the machine stores words as Parquet does:
// the chunk reader reads values as words, and leaves the chunks of other
// machines to parquet-go.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1
