// Package hugepage asks the kernel to back a large buffer with huge pages
// where it can (Linux, with transparent huge pages set to "madvise" or
// "always"): a buffer of hundreds of megabytes then takes one page fault per
// 2 MiB instead of one per 4 KiB the first time it is written, and fewer TLB
// misses when written at random. Where a virtual machine makes page faults
// dear, that is a large share of a backfill's time. Elsewhere Advise does
// nothing.
package hugepage

import (
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"time"
	"unsafe"
)

// hugeSize is the size of a huge page on the platforms that have them.
const hugeSize = 2 << 20

// Advise asks for huge pages under the whole 2 MiB pages inside x, before
// x is first written, and returns a function that withdraws the request,
// to call as soon as x has been written through: the request stands for
// the first touch, and left standing over memory the Go heap gives back
// to the kernel, it would let the kernel fill that memory with huge pages
// again. (The function also keeps x alive until it is dropped.) A buffer
// too small to hold a whole huge page is left alone, and so is every buffer
// where the kernel gives huge pages without being asked, or never.
func Advise[T any](x []T) (release func()) {
	b := wholePages(x)
	if len(b) == 0 || !wanted() {
		return func() {}
	}
	if !advise(b, true) {
		return func() {}
	}
	return func() { advise(b, false) }
}

// wholePages returns the bytes of the whole huge pages inside x, none when
// it holds none.
func wholePages[T any](x []T) []byte {
	if len(x) == 0 {
		return nil
	}
	all := unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), uintptr(len(x))*unsafe.Sizeof(x[0]))
	p := uintptr(unsafe.Pointer(&x[0]))
	lo := int((p+hugeSize-1)&^(hugeSize-1) - p)
	hi := int((p+uintptr(len(all)))&^(hugeSize-1) - p)
	if hi <= lo {
		return nil
	}
	return all[lo:hi]
}

// Elem is what a buffer of Scratch may hold: plain numbers, which the garbage
// collector need not scan.
type Elem interface {
	~uint8 | ~uint16 | ~uint32 | ~uint64 | ~int8 | ~int16 | ~int32 | ~int64 | ~float32 | ~float64
}

// Scratch returns a buffer of n elements outside the Go heap, on huge pages
// asked for before it is first written, and a function that frees it, which
// the caller must call once, when nothing uses the buffer any more. Its
// contents are undefined: it is for buffers whose every element is
// written before it is read, such as the slab a backfill files its events
// in.
//
// The buffer is either mapped afresh or a mapping that an earlier buffer
// of Scratch freed within the last spareIdle (see spares): a fresh mapping
// costs the kernel a cleared page per page first written (a tenth of a
// second per 250 MB on a virtual machine), which a reused one, already
// written, does not; a buffer of the Go heap costs more, a clearing pass
// and, where the heap gave the memory back to the kernel, a page fault per
// 4 KiB. Where memory cannot be mapped (another platform, a refused
// mapping) or need not be (less than a huge page), it is a zero buffer of
// the Go heap and free does nothing.
func Scratch[T Elem](n int) (x []T, free func()) {
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	if n <= 0 || size/int(unsafe.Sizeof(zero)) != n || size < hugeSize {
		return make([]T, max(n, 0)), func() {}
	}
	m := spares.take(size)
	if m == nil {
		b, unmap := mapFresh(size)
		if b == nil {
			return make([]T, n), func() {}
		}
		m = &mapping{b: b, unmap: unmap, give: reserve(int64(size))}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(m.b))), n), func() { spares.put(m) }
}

// mapping is the memory of a buffer of Scratch: its bytes, from a huge page
// boundary, what unmaps them and what takes them off the mapped bytes.
type mapping struct {
	b           []byte
	unmap, give func()
	freed       time.Time
}

// release unmaps m and takes it off the mapped bytes.
func (m *mapping) release() {
	m.unmap()
	m.give()
}

// spareIdle is how long a freed mapping waits for a buffer of Scratch to
// reuse it before it goes back to the kernel (read under spares.mu);
// maxSpares is how many wait at once (a backfill frees five per tile set:
// the slab's keys and values, the tiles' columns, and an object buffer
// per core).
var spareIdle = 3 * time.Second

const maxSpares = 16

// HoldSpares makes freed mappings wait d rather than spareIdle until
// restore is called: for tests that check a reuse, whose steps the race
// detector can slow down past spareIdle.
func HoldSpares(d time.Duration) (restore func()) {
	spares.mu.Lock()
	old := spareIdle
	spareIdle = d
	spares.mu.Unlock()
	return func() {
		spares.mu.Lock()
		spareIdle = old
		spares.mu.Unlock()
	}
}

// spares are the mappings freed by buffers of Scratch, waiting for the
// next: the builders of a backfill's sources, built one after another (or
// the next backfill of a process that runs them back to back), write their
// slabs into memory the kernel has already cleared and backed with huge
// pages once. They stay counted as mapped (Mapped), and off the memory
// limit, while they wait.
var spares spareList

type spareList struct {
	mu    sync.Mutex
	list  []*mapping
	timer *time.Timer
}

// take returns the smallest spare of size bytes up to a quarter more, nil
// when none is: a much larger spare would stay mapped, and off the memory
// limit, for the whole life of a small buffer.
func (s *spareList) take(size int) *mapping {
	s.mu.Lock()
	defer s.mu.Unlock()
	best := -1
	for i, m := range s.list {
		if n := len(m.b); n >= size && n-size <= size/4 && (best < 0 || n < len(s.list[best].b)) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	m := s.list[best]
	s.list = slices.Delete(s.list, best, best+1)
	return m
}

// put keeps m for the next buffer of Scratch, for spareIdle at most, and
// releases the oldest spare beyond maxSpares.
func (s *spareList) put(m *mapping) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m.freed = time.Now()
	s.list = append(s.list, m)
	if len(s.list) > maxSpares {
		s.list[0].release()
		s.list = slices.Delete(s.list, 0, 1)
	}
	if s.timer == nil {
		s.timer = time.AfterFunc(spareIdle, s.expire)
	}
}

// expire releases the spares that waited spareIdle, and waits for the
// others.
func (s *spareList) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer = nil
	now := time.Now()
	kept := s.list[:0]
	for _, m := range s.list {
		if now.Sub(m.freed) >= spareIdle {
			m.release()
		} else {
			kept = append(kept, m)
		}
	}
	clear(s.list[len(kept):])
	s.list = kept
	if len(kept) > 0 {
		s.timer = time.AfterFunc(spareIdle-now.Sub(kept[0].freed), s.expire)
	}
}

// Spare returns the bytes of the mappings waiting for the next buffer of
// Scratch: memory the process holds but can give back at once (Trim).
func Spare() int64 {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	n := 0
	for _, m := range spares.list {
		n += len(m.b)
	}
	return int64(n)
}

// Trim releases every spare mapping now.
func Trim() {
	spares.mu.Lock()
	defer spares.mu.Unlock()
	if spares.timer != nil {
		spares.timer.Stop()
		spares.timer = nil
	}
	for _, m := range spares.list {
		m.release()
	}
	clear(spares.list)
	spares.list = spares.list[:0]
}

var (
	mappedMu sync.Mutex
	mapped   int64 // bytes that buffers of Scratch and spares hold outside the Go heap
)

// Mapped returns the bytes that buffers of Scratch, and the spares waiting
// for the next (see Trim), hold outside the Go heap now: memory that the
// runtime's own accounting does not see.
func Mapped() int64 {
	mappedMu.Lock()
	defer mappedMu.Unlock()
	return mapped
}

// minLimit is as low as reserve takes the runtime's memory limit.
const minLimit = 64 << 20

// reserve counts size bytes mapped outside the Go heap and, where a memory
// limit is set (GOMEMLIMIT), lowers it by as much (down to minLimit), so
// that the collector keeps the heap within what the buffer leaves; it
// returns the function that undoes both.
func reserve(size int64) (give func()) {
	mappedMu.Lock()
	defer mappedMu.Unlock()
	mapped += size
	cut := int64(0)
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		cut = max(0, min(size, limit-minLimit))
		debug.SetMemoryLimit(limit - cut)
	}
	return func() {
		mappedMu.Lock()
		defer mappedMu.Unlock()
		mapped -= size
		if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
			debug.SetMemoryLimit(limit + cut)
		}
	}
}

// alignUp returns the offset of the first huge page boundary in b.
func alignUp(b []byte) int {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return int((p+hugeSize-1)&^(hugeSize-1) - p)
}

// Make returns make([]T, n), with huge pages asked for under it before it
// is first written (see Advise), and the function that withdraws the
// request, to call once it has been written through. Large buffers that a
// pass fills at once (gathered columns, sort scratch) are fresh memory in
// a fresh process: a page fault per 4 KiB otherwise.
func Make[T any](n int) (x []T, written func()) {
	x = make([]T, n)
	return x, Advise(x)
}

// Requests gathers the withdrawals of the requests of several buffers of
// Make, to make all at once when they are written; safe for concurrent
// use. The zero value is ready.
type Requests struct {
	mu   sync.Mutex
	done []func()
}

// MakeIn is Make, with the withdrawal of the request kept in r.
func MakeIn[T any](r *Requests, n int) []T {
	x, done := Make[T](n)
	r.mu.Lock()
	r.done = append(r.done, done)
	r.mu.Unlock()
	return x
}

// Written withdraws the requests kept in r.
func (r *Requests) Written() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.done {
		f()
	}
	r.done = nil
}
