// Package snappy is the Parquet SNAPPY codec at Snappy's usual speed.
//
// parquet-go's SNAPPY codec encodes with klauspost/compress/snappy, whose
// Encode is S2's "better" mode: blocks a few percent smaller for about twice
// the CPU. Parquet readers of every kind decode either; tessera writes with
// the standard speed (S2's EncodeSnappy), which made its Parquet output and
// tile objects cheaper to write (see BenchmarkTileCodec and
// source.BenchmarkWriteParquet).
package snappy

import (
	"github.com/klauspost/compress/s2"
	"github.com/parquet-go/parquet-go/format"
)

// Codec is the SNAPPY codec; its zero value is ready to use.
type Codec struct{}

// String returns the codec's name.
func (Codec) String() string { return "SNAPPY" }

// CompressionCodec returns the Parquet codec code, SNAPPY.
func (Codec) CompressionCodec() format.CompressionCodec { return format.Snappy }

// Encode compresses src as one Snappy block, into dst's storage when large
// enough.
func (Codec) Encode(dst, src []byte) ([]byte, error) {
	if s2.MaxEncodedLen(len(src)) < 0 {
		return dst[:0], s2.ErrTooLarge
	}
	return s2.EncodeSnappy(dst, src), nil
}

// Decode decompresses the Snappy block src, into dst's storage when large
// enough.
func (Codec) Decode(dst, src []byte) ([]byte, error) {
	return s2.Decode(dst, src)
}
