package tile

import "math/bits"

// radixDigit is the width of one LSD radix pass: 2^11 counters fit in L1.
const radixDigit = 11

// SortByKey sorts idx by keys (keys[i] belongs to idx[i]), stably, with an
// LSD radix sort: O(n * passes), where passes covers the bits of the largest
// key only. keys and idx are reordered in place; tmpK and tmpI are scratch of
// at least len(keys) (nil: allocated). The payload may be any type: carrying
// the values themselves rather than row numbers lets the caller read them in
// order afterwards instead of gathering at random.
func SortByKey[T any](keys []uint64, idx []T, tmpK []uint64, tmpI []T) {
	n := len(keys)
	if n < 2 {
		return
	}
	var hi uint64
	for _, k := range keys {
		hi |= k
	}
	width := bits.Len64(hi)
	if width == 0 {
		return
	}
	if cap(tmpK) < n {
		tmpK = make([]uint64, n)
	}
	if cap(tmpI) < n {
		tmpI = make([]T, n)
	}
	tmpK, tmpI = tmpK[:n], tmpI[:n]
	srcK, srcI, dstK, dstI := keys, idx, tmpK, tmpI
	var count [1 << radixDigit]int
	for shift := 0; shift < width; shift += radixDigit {
		clear(count[:])
		for _, k := range srcK {
			count[(k>>shift)&(1<<radixDigit-1)]++
		}
		sum := 0
		for d, c := range count {
			count[d] = sum
			sum += c
		}
		for i, k := range srcK {
			d := (k >> shift) & (1<<radixDigit - 1)
			p := count[d]
			count[d]++
			dstK[p] = k
			dstI[p] = srcI[i]
		}
		srcK, srcI, dstK, dstI = dstK, dstI, srcK, srcI
	}
	if &srcK[0] != &keys[0] {
		copy(keys, srcK)
		copy(idx, srcI)
	}
}
