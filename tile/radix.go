package tile

import (
	"math/bits"
	"slices"

	"github.com/tessera-fe/tessera/internal/hugepage"
)

// Radix is the key types the radix sorts order: a build sorts 32-bit keys
// where the bits that vary fit, halving the traffic of 64-bit ones.
type Radix interface{ ~uint32 | ~uint64 }

// radixDigit is the width of one LSD radix pass: 2^11 counters fit in L1.
const radixDigit = 11

// msdMin is the fewest keys SortByKey splits by their top bits first, and
// msdBucket the keys it aims to leave in each bucket of that split: few
// enough that a bucket, its values and its scratch stay in a core's L2
// cache through its remaining passes.
const (
	msdMin    = 1 << 15
	msdBucket = 1 << 14
)

// SortByKey sorts idx by keys (keys[i] belongs to idx[i]), stably, with a
// radix sort: O(n * passes), where passes covers only the bits in which the
// keys differ. keys and idx are reordered in place; tmpK and tmpI are
// scratch of at least len(keys) (nil: allocated). The payload may be any
// type: carrying the values themselves rather than row numbers lets the
// caller read them in order afterwards instead of gathering at random.
//
// Large inputs needing several passes are first split on their top bits
// (one counting pass, most significant digit first, again in buckets still
// too large), then each bucket is sorted on its remaining bits by LSD passes
// that run in cache instead of streaming the whole input through memory once
// per digit.
func SortByKey[K Radix, T any](keys []K, idx []T, tmpK []K, tmpI []T) {
	n := len(keys)
	if n < 2 {
		return
	}
	width := diffWidth(keys)
	if width == 0 {
		return
	}
	if cap(tmpK) < n {
		var written func()
		tmpK, written = hugepage.Make[K](n)
		defer written()
	}
	if cap(tmpI) < n {
		var written func()
		tmpI, written = hugepage.Make[T](n)
		defer written()
	}
	tmpK, tmpI = tmpK[:n], tmpI[:n]
	if !sortMSD(keys, idx, tmpK, tmpI, width) {
		copy(keys, tmpK)
		copy(idx, tmpI)
	}
}

// sortMSD sorts keys and idx on their low width bits, stably: inputs too
// small or narrow for a split go to sortLSD; others are split on their top
// bits into tmpK, tmpI and each bucket sorted on its remaining bits the same
// way, so that a bucket too large for the cache (a heavy key) is split
// again. It reports whether the result is in keys and idx (true) or in tmpK
// and tmpI.
func sortMSD[K Radix, T any](keys []K, idx []T, tmpK []K, tmpI []T, width int) bool {
	n := len(keys)
	if n < msdMin || width <= 2*radixDigit {
		return sortLSD(keys, idx, tmpK, tmpI, width)
	}
	top := min(radixDigit, width, max(1, bits.Len(uint(n/msdBucket))))
	shift := width - top
	counts := make([]int, 1<<top+1)
	mask := K(1)<<top - 1
	for _, k := range keys {
		counts[(k>>shift)&mask+1]++
	}
	for d := range 1 << top {
		counts[d+1] += counts[d]
	}
	pos := slices.Clone(counts[:1<<top])
	for i, k := range keys {
		d := (k >> shift) & mask
		p := pos[d]
		pos[d]++
		tmpK[p] = k
		tmpI[p] = idx[i]
	}
	for d := range 1 << top {
		a, b := counts[d], counts[d+1]
		if a == b {
			continue
		}
		if sortMSD(tmpK[a:b], tmpI[a:b], keys[a:b], idx[a:b], diffWidth(tmpK[a:b])) {
			copy(keys[a:b], tmpK[a:b])
			copy(idx[a:b], tmpI[a:b])
		}
	}
	return true
}

// diffWidth returns the number of low bits in which keys differ.
func diffWidth[K Radix](keys []K) int {
	var diff K
	k0 := keys[0]
	for _, k := range keys {
		diff |= k ^ k0
	}
	return bits.Len64(uint64(diff))
}

// sortLSD sorts keys and idx on their low width bits, stably, with LSD
// passes that alternate between them and tmpK, tmpI (of the same length).
// It reports whether the sorted result is in keys and idx (true) or in tmpK
// and tmpI.
func sortLSD[K Radix, T any](keys []K, idx []T, tmpK []K, tmpI []T, width int) bool {
	srcK, srcI, dstK, dstI := keys, idx, tmpK, tmpI
	var count [1 << radixDigit]int
	inKeys := true
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
		inKeys = !inKeys
	}
	return inKeys
}

// Slots lays out, for a stable counting sort split over workers, the items
// of each worker w and digit d (counts[w][d] of them) by digit, then by
// worker: it turns counts[w][d] into worker w's first slot of digit d and
// returns each digit's first slot, the total last.
func Slots[T int | int32](counts [][]T) []T {
	if len(counts) == 0 {
		return []T{0}
	}
	digits := len(counts[0])
	starts := make([]T, digits+1)
	var sum T
	for d := range digits {
		starts[d] = sum
		for w := range counts {
			c := counts[w][d]
			counts[w][d] = sum
			sum += c
		}
	}
	starts[digits] = sum
	return starts
}
