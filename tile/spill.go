package tile

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"unsafe"

	"github.com/tessera-fe/tessera/aggregate"
)

// spillStore holds the blocks a spread evicted to disk when its slab was
// full, in one file; Parts reads them back a group of contiguous partitions
// at a time, cut once every count is known.
type spillStore struct {
	dir    string
	file   *os.File
	w      *bufio.Writer // evicted blocks go through it, in large writes
	size   int64         // bytes written
	blocks [][]onDisk    // per partition: its evicted blocks, in order
	values bool          // blocks hold values after their keys
	err    error         // the first write that failed

	// Per partition: the cells its keys fold into as they are evicted,
	// when they do not go to disk (see prefold); sums says which cells,
	// and the cells take preBytes of at most maxPre.
	pre              []*prefold
	sums             bool
	preBytes, maxPre int64
}

// onDisk is an evicted block: where it starts in the file and the keys it
// holds.
type onDisk struct {
	off int64
	n   int
}

// newSpillStore makes the file of s's evicted blocks in a new directory
// under dir ("" is the system temporary directory). The partitions of
// heavy keys fold into cells of the partial states of needs instead, in
// up to maxPre bytes.
func newSpillStore(s *spread, dir string, needs aggregate.Needs, maxPre int64) (*spillStore, error) {
	d, err := os.MkdirTemp(dir, "tessera-build-")
	if err != nil {
		return nil, fmt.Errorf("make a directory for spilled tiles (set TMPDIR to a disk with room): %w", err)
	}
	f, err := os.Create(filepath.Join(d, "blocks"))
	if err != nil {
		_ = os.RemoveAll(d)
		return nil, fmt.Errorf("spill tiles: %w", err)
	}
	st := &spillStore{dir: d, file: f, blocks: make([][]onDisk, len(s.base)), values: s.vals != nil,
		pre: make([]*prefold, len(s.base)), maxPre: maxPre,
		sums: sumsAlone(needs)}
	st.w = bufio.NewWriterSize(f, 1<<20)
	return st, nil
}

// cuts returns where groups groups of contiguous partitions start, the
// number of partitions last, cut where the partitions' keys on disk add up
// to about equal shares. No group is empty: where a heavy partition takes
// several shares, there are fewer groups.
func (st *spillStore) cuts(groups int) []int {
	parts := len(st.blocks)
	prefix := make([]int, parts+1) // keys of the partitions before each
	for d, bs := range st.blocks {
		prefix[d+1] = prefix[d]
		for _, o := range bs {
			prefix[d+1] += o.n
		}
		if p := st.pre[d]; p != nil { // its tiles, in keys that cost as much (see need)
			prefix[d+1] += max(1, p.weight()*bytesPerFoldedTile/bytesPerSpilledEvent)
		}
	}
	total := prefix[parts]
	held := 0 // partitions holding keys
	for d := range parts {
		if prefix[d+1] > prefix[d] {
			held++
		}
	}
	groups = max(1, min(groups, held))
	starts := []int{0}
	for g := 1; g < groups; g++ {
		// The first partition past g/groups of the keys, after the
		// partition group g-1 starts at and holding keys.
		p, _ := slices.BinarySearch(prefix[1:], total*g/groups+1)
		p = max(p, starts[g-1]+1)
		for p < parts && prefix[p+1] == prefix[p] {
			p++
		}
		if p >= parts {
			break // the rest hold no keys: fewer groups
		}
		starts = append(starts, p)
	}
	return append(starts, parts)
}

// tilesAtMost bounds the tiles that the group of partitions [lo, hi) of
// st makes: a tile per key on disk at most, and the tiles of its partitions
// folded as they left memory.
func (st *spillStore) tilesAtMost(lo, hi int) int {
	n := 0
	for d := lo; d < hi; d++ {
		for _, o := range st.blocks[d] {
			n += o.n
		}
		if p := st.pre[d]; p != nil {
			n += p.weight()
		}
	}
	return n
}

// need returns what building every group of st takes, in bytes: the
// keys on disk at bytesPerSpilledEvent each, the tiles of partitions folded
// as they left memory at bytesPerFoldedTile.
func (st *spillStore) need() int64 {
	var n int64
	for d, bs := range st.blocks {
		for _, o := range bs {
			n += int64(o.n) * bytesPerSpilledEvent
		}
		if p := st.pre[d]; p != nil {
			n += int64(p.weight()) * bytesPerFoldedTile
		}
	}
	return n
}

// write appends the first n keys (and values) of block b of s, which
// belongs to partition d, to the file.
func (st *spillStore) write(s *spread, d, b, n int) {
	if st.err != nil {
		return
	}
	lo := b * s.block
	off := st.size
	kb := bytesOf(s.keys[lo : lo+n])
	if _, err := st.w.Write(kb); err != nil {
		st.err = err
		return
	}
	size := int64(len(kb))
	if s.vals != nil {
		vb := bytesOf(s.vals[lo : lo+n])
		if _, err := st.w.Write(vb); err != nil {
			st.err = err
			return
		}
		size += int64(len(vb))
	}
	st.size += size
	st.blocks[d] = append(st.blocks[d], onDisk{off: off, n: n})
}

// flush writes what the buffer holds, before blocks are read back.
func (st *spillStore) flush() {
	if st.err == nil {
		st.err = st.w.Flush()
	}
}

// bytes returns the size of block o on disk.
func (st *spillStore) bytes(o onDisk) int64 {
	if st.values {
		return int64(o.n) * 12
	}
	return int64(o.n) * 4
}

// readChunk is the most a read of adjacent blocks takes at once: a read per
// block (a few KiB each) spent more time in system calls than the rest of
// a spilled build. (A variable for tests.)
var readChunk int64 = 4 << 20

// placed is an evicted block and the slot of a spread it goes back to.
type placed struct {
	o   onDisk
	pos int
}

// readInto reads the blocks back into the slots of s, in file order, a run
// of adjacent blocks at a time.
func (st *spillStore) readInto(s *spread, blocks []placed) error {
	slices.SortFunc(blocks, func(a, b placed) int { return cmp.Compare(a.o.off, b.o.off) })
	var buf []byte
	for i := 0; i < len(blocks); {
		from := blocks[i].o.off
		to := from + st.bytes(blocks[i].o)
		j := i + 1
		for j < len(blocks) && blocks[j].o.off == to && to+st.bytes(blocks[j].o)-from <= readChunk {
			to += st.bytes(blocks[j].o)
			j++
		}
		if int64(cap(buf)) < to-from {
			buf = make([]byte, max(to-from, readChunk))
		}
		chunk := buf[:to-from]
		if _, err := st.file.ReadAt(chunk, from); err != nil {
			return readErr(st.file, err)
		}
		for _, b := range blocks[i:j] {
			at := b.o.off - from
			kb := bytesOf(s.keys[b.pos : b.pos+b.o.n])
			at += int64(copy(kb, chunk[at:]))
			if st.values {
				copy(bytesOf(s.vals[b.pos:b.pos+b.o.n]), chunk[at:])
			}
		}
		i = j
	}
	return nil
}

func readErr(f *os.File, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read spilled tiles %s: %w", f.Name(), err)
}

// close removes the files and their directory.
func (st *spillStore) close() error {
	errs := []error{st.file.Close(), os.RemoveAll(st.dir)}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove spilled tiles %s: %w", st.dir, err)
	}
	return nil
}

// bytesOf returns the memory of a slice of fixed-size numbers as bytes: the
// spill files are read back by the process that wrote them, in its byte
// order.
func bytesOf[T uint32 | float64](x []T) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), len(x)*int(unsafe.Sizeof(x[0])))
}

// evict writes every partition's full blocks to disk, or folds them into
// its cells (see prefold), and frees them: all but the last block of each
// chain, which is still being filled.
func (s *spread) evict() {
	s.disk.choosePrefolds(s, false)
	for d, c := range s.chains {
		if len(c) <= 1 {
			continue
		}
		p := s.disk.pre[d]
		for _, b := range c[:len(c)-1] {
			s.put(p, d, int(b), s.block)
			s.free = append(s.free, b)
		}
		s.chains[d] = append(c[:0], c[len(c)-1])
	}
}

// evictAll writes every block to disk, or folds it into its partition's
// cells, the last of each chain as far as it is filled, and drops the
// slab: the keys are all on disk or folded.
func (s *spread) evictAll() {
	s.disk.choosePrefolds(s, true)
	for d, c := range s.chains {
		p := s.disk.pre[d]
		for i, b := range c {
			n := s.block
			if i == len(c)-1 {
				n = s.heads[d].pos - int(b)*s.block
			}
			if n > 0 {
				s.put(p, d, int(b), n)
			}
		}
		s.chains[d] = nil
		s.heads[d] = head{}
	}
	s.release()
	s.keys, s.vals, s.free, s.used = nil, nil, nil, 0
}

// put folds the first n keys of block b of partition d into p, or writes
// them to disk when p is nil.
func (s *spread) put(p *prefold, d, b, n int) {
	if p != nil {
		p.add(s, b*s.block, n)
	} else {
		s.disk.write(s, d, b, n)
	}
}

// loadGroup returns a spread holding the keys of partitions [lo, hi), read
// back from disk, each evicted block into a block of its own, and the cells
// of those folded as they were evicted (see prefold): the builder's own,
// which its build reads and must never change, so that the group can be
// built again. Other partitions are empty. Of each partition's blocks only
// the last may be short (evictAll wrote it), as a spread's chains have it.
// Its slab is outside the Go heap: finish releases it.
func (s *spread) loadGroup(lo, hi int) (*spread, error) {
	st := s.disk
	blocks := 0
	for d := lo; d < hi; d++ {
		blocks += len(st.blocks[d])
	}
	sub := &spread{fshift: s.fshift, table: s.table, base: s.base, weight: s.weight, block: s.block,
		heads: make([]head, len(s.base)), chains: make([][]int32, len(s.base)), pre: make([]*prefold, len(s.base))}
	copy(sub.pre[lo:hi], st.pre[lo:hi])
	// Off the heap, on huge pages, and the previous group's slab where it
	// fits (see alloc): a slab of fresh heap memory took a page fault per
	// 4 KiB as the group was read into it, most of a spilled build's time.
	sub.alloc(blocks*s.block, st.values)
	places := make([]placed, 0, blocks)
	for d := lo; d < hi; d++ {
		for _, o := range st.blocks[d] {
			sub.grow(d)
			h := &sub.heads[d]
			places = append(places, placed{o: o, pos: h.pos})
			h.pos += o.n
		}
	}
	if err := st.readInto(sub, places); err != nil {
		sub.release()
		return nil, err
	}
	return sub, nil
}
