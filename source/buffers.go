package source

import (
	"sync"

	"github.com/tessera-fe/tessera/internal/hugepage"
)

// buffers holds the column memory of tables that Stream handed out and
// their reader released, for the next files to decode into: memory fresh
// from the kernel costs a page fault per 4 KiB when first written, which on
// a virtual machine can cost more than decoding into it. Only columns free
// of pointers come back. A nil *buffers allocates afresh.
//
// The columns it makes afresh ask for huge pages until they are decoded
// into (see internal/hugepage): in a fresh process the first files' columns
// are otherwise most of a backfill's page faults.
type buffers struct {
	mu         sync.Mutex
	freeInts   [][]int64
	freeFloats [][]float64
	freeBools  [][]bool
}

// fresh returns a new slice of n elements, with huge pages asked for under
// it where b is not nil, and adds the withdrawal of the request to
// written: the decoder calls them once it has written the column through,
// so that the request does not outlive the writing (the kernel could
// otherwise fill memory the runtime gave back with huge pages again).
func fresh[T any](b *buffers, n int, written *hugepage.Requests) []T {
	if b == nil {
		return make([]T, n)
	}
	return hugepage.MakeIn[T](written, n)
}

// int64s returns a slice of n integers, not zeroed when reused: the
// decoder writes every row. See fresh for written.
func (b *buffers) int64s(n int, written *hugepage.Requests) []int64 {
	if b != nil {
		if s, ok := take(&b.mu, &b.freeInts, n); ok {
			return s
		}
	}
	return fresh[int64](b, n, written)
}

// float64s is int64s for floats.
func (b *buffers) float64s(n int, written *hugepage.Requests) []float64 {
	if b != nil {
		if s, ok := take(&b.mu, &b.freeFloats, n); ok {
			return s
		}
	}
	return fresh[float64](b, n, written)
}

// bools is int64s for booleans.
func (b *buffers) bools(n int, written *hugepage.Requests) []bool {
	if b != nil {
		if s, ok := take(&b.mu, &b.freeBools, n); ok {
			return s
		}
	}
	return fresh[bool](b, n, written)
}

// take removes from free the smallest slice that holds n elements and
// returns it cut to n.
func take[T any](mu *sync.Mutex, free *[][]T, n int) ([]T, bool) {
	mu.Lock()
	defer mu.Unlock()
	best := -1
	for i, s := range *free {
		if cap(s) >= n && (best < 0 || cap(s) < cap((*free)[best])) {
			best = i
		}
	}
	if best < 0 {
		return nil, false
	}
	s := (*free)[best]
	last := len(*free) - 1
	(*free)[best] = (*free)[last]
	(*free)[last] = nil
	*free = (*free)[:last]
	return s[:n], true
}

// maxFree bounds the slices of each kind kept for reuse: a few files'
// columns, as many as Stream decodes ahead. A full pool keeps the larger.
const maxFree = 4

// put takes back the pointer-free columns of t.
func (b *buffers) put(t *Table) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range t.Columns {
		if c == nil {
			continue
		}
		keep(&b.freeInts, c.Ints)
		keep(&b.freeFloats, c.Floats)
		keep(&b.freeBools, c.Bools)
		keep(&b.freeBools, c.Valid)
		c.Ints, c.Floats, c.Bools, c.Valid = nil, nil, nil, nil
	}
	t.Columns = nil
}

// keep adds s to free, or, when free is full, in place of its smallest
// slice if s is larger.
func keep[T any](free *[][]T, s []T) {
	if cap(s) == 0 {
		return
	}
	if len(*free) < maxFree {
		*free = append(*free, s)
		return
	}
	small := 0
	for i, f := range *free {
		if cap(f) < cap((*free)[small]) {
			small = i
		}
	}
	if cap(s) > cap((*free)[small]) {
		(*free)[small] = s
	}
}
