package snappy

import (
	"bytes"
	"math/rand/v2"
	"testing"

	ksnappy "github.com/klauspost/compress/snappy"
	"github.com/parquet-go/parquet-go/format"
)

// TestRoundTrip: blocks this codec writes decode with the reference Snappy
// decoder and back, and it decodes the reference encoder's blocks; empty,
// incompressible and repetitive inputs, into buffers too small and large
// enough.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	inputs := [][]byte{nil, {0}, bytes.Repeat([]byte("tile"), 5000)}
	for _, n := range []int{1, 100, 70_000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		inputs = append(inputs, b)
	}
	var c Codec
	for _, in := range inputs {
		for _, dst := range [][]byte{nil, make([]byte, 0, 2*len(in)+64)} {
			enc, err := c.Encode(dst, in)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := ksnappy.Decode(nil, enc)
			if err != nil || !bytes.Equal(ref, in) {
				t.Fatalf("%d bytes: the reference decoder reads back %d bytes (%v)", len(in), len(ref), err)
			}
			dec, err := c.Decode(dst, ksnappy.Encode(nil, in))
			if err != nil || !bytes.Equal(dec, in) {
				t.Fatalf("%d bytes: decoded %d bytes of the reference encoding (%v)", len(in), len(dec), err)
			}
		}
	}
	if _, err := c.Decode(nil, []byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("a corrupt block decoded without error")
	}
	if c.String() != "SNAPPY" || c.CompressionCodec() != format.Snappy {
		t.Errorf("codec %s, code %v", c.String(), c.CompressionCodec())
	}
}
