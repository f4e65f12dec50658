package tilestore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"

	"github.com/tessera-fe/tessera/internal/hugepage"
	"github.com/tessera-fe/tessera/tile"
)

// Decoding runs in three steps. Objects are opened (footer, schema, row
// counts) one by one; the output columns are then grown once by the rows of
// every selected row group, and the row groups are decoded concurrently, each
// straight into its own region of the output, checked and filtered in place;
// last, the regions are checked against each other (sort order across row
// groups) and moved together where filtering left gaps.

// openObject is a tile object opened for decoding.
type openObject struct {
	m      *Manifest
	o      Object
	ra     io.ReaderAt // the object's bytes, as f reads them
	f      *parquet.File
	cols   tileColumns
	groups []int  // row groups to decode, in file order
	free   func() // gives back the buffer the object was read into
}

// fail returns an error naming the object that says it is damaged.
func (ob *openObject) fail(format string, args ...any) error {
	return corrupt(ob.m, ob.o, format, args...)
}

func corrupt(m *Manifest, o Object, format string, args ...any) error {
	return fmt.Errorf("read tile object %s of tile set %s: %w: %s", o.Name, m.TileSet, errCorrupt, fmt.Sprintf(format, args...))
}

// openTileObject opens the object o read through ra and checks its schema
// against the manifest m and its row counts against o. With groups non-nil
// it selects only the row groups i with groups[i] set, and ra need serve
// only their bytes, the footer and the leading magic; otherwise it selects
// every row group, which must hold o.Rows tiles in all.
func openTileObject(m *Manifest, o Object, ra io.ReaderAt, groups []bool) (*openObject, error) {
	f, err := openParquet(ra, o.Bytes)
	if err != nil {
		return nil, corrupt(m, o, "%v", err)
	}
	return checkTileObject(m, o, f, ra, groups)
}

// openParquet parses the footer of the Parquet file of size bytes that ra
// reads.
func openParquet(ra io.ReaderAt, size int64) (*parquet.File, error) {
	return parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
}

// checkTileObject is openTileObject for f, the file of object o, whose
// bytes ra reads.
func checkTileObject(m *Manifest, o Object, f *parquet.File, ra io.ReaderAt, groups []bool) (*openObject, error) {
	ob := &openObject{m: m, o: o, ra: ra, f: f, cols: lookupColumns(f.Schema()), free: func() {}}
	rgs := f.RowGroups()
	if groups != nil && len(rgs) != len(groups) {
		return nil, ob.fail("it has %d row groups, the manifest records %d", len(rgs), len(groups))
	}
	cols := ob.cols
	if cols.key < 0 || cols.start < 0 || cols.count < 0 {
		return nil, ob.fail("missing key, bucket_start or count column")
	}
	want := map[string]int{colN: cols.n, colSum: cols.sum, colM2: cols.m2, colMin: cols.min, colMax: cols.max}
	for _, c := range valueColumns(m.Needs) {
		if want[c] < 0 {
			return nil, ob.fail("missing column %s that the manifest's needs (%s) require", c, m.Needs)
		}
	}
	var total int64
	for gi, rg := range rgs {
		rows := rg.NumRows()
		if groups != nil {
			if !groups[gi] {
				continue
			}
			if rows != o.RowGroups[gi].Rows {
				return nil, ob.fail("row group %d holds %d tiles, the manifest records %d", gi, rows, o.RowGroups[gi].Rows)
			}
		}
		total += rows
		if rows > 0 {
			ob.groups = append(ob.groups, gi)
		}
	}
	if groups == nil && total != o.Rows {
		return nil, ob.fail("it holds %d tiles but the manifest lists %d", total, o.Rows)
	}
	return ob, nil
}

// decodeUnit is one row group to decode into the rows [off, off+rows) of
// the output.
type decodeUnit struct {
	ob   *openObject
	rg   int
	rows int
	off  int
	kept int // rows kept after filtering, moved to the front of the region
	// The first and last tile of the row group, before filtering, for the
	// sort order check across row groups.
	firstInt, lastInt     int64
	firstStr, lastStr     string
	firstStart, lastStart int64
	err                   error
}

// decodeOptions select what a decode keeps.
type decodeOptions struct {
	ctx  context.Context // nil: not cancellable
	r    Range
	keep *KeyFilter
	// sorted holds keep's keys of the kind of the tiles, sorted (see
	// keyPruner); when it is off (its zero value), keep's map is
	// consulted instead.
	sorted keyPruner
	// workers bounds the row groups decoded at once; 0 means GOMAXPROCS.
	workers int
	// scratch, when set, takes the numeric columns of a set that starts
	// empty from scratch memory (see Store.LoadScratch).
	scratch *scratchColumns
}

// decodeObjects appends to out the tiles of the opened objects, in their
// order, whose bucket start lies in opt.r and whose key opt.keep selects. It
// checks every column's type and length and the (key, bucket_start) order
// within each object, and that every bucket start lies in the object's range
// in the manifest. It returns the number of tiles each object contributed.
// On error out's columns hold garbage past their original length.
func decodeObjects(obs []*openObject, opt decodeOptions, out *tile.Set) ([]int, error) {
	base := out.Len()
	var units []decodeUnit
	off := base
	for _, ob := range obs {
		for _, gi := range ob.groups {
			n := int(ob.f.RowGroups()[gi].NumRows())
			units = append(units, decodeUnit{ob: ob, rg: gi, rows: n, off: off})
			off += n
		}
	}
	var fresh hugepage.Requests
	growSet(out, off, &fresh, opt.scratch)
	defer fresh.Written()
	workers := opt.workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	forEach(len(units), workers, func(i int) {
		if opt.ctx != nil && opt.ctx.Err() != nil {
			units[i].err = fmt.Errorf("load tiles of tile set %s: %w", units[i].ob.m.TileSet, opt.ctx.Err())
			return
		}
		decodeRowGroup(&units[i], opt, out)
	})
	for i := range units {
		if units[i].err != nil {
			return nil, units[i].err
		}
	}
	// Order across the row groups of one object, then gather the regions.
	kept := make([]int, len(obs))
	at, obi := base, -1
	for i := range units {
		u := &units[i]
		if i > 0 && units[i-1].ob == u.ob {
			p := &units[i-1]
			var c int
			if u.ob.m.StringKeys {
				c = compareStr(p.lastStr, u.firstStr)
			} else {
				c = cmpInt(p.lastInt, u.firstInt)
			}
			if c > 0 || (c == 0 && p.lastStart >= u.firstStart) {
				return nil, u.ob.fail("row group %d row 0 is out of (key, bucket_start) order", u.rg)
			}
		}
		if obi < 0 || obs[obi] != u.ob {
			obi++
			for obs[obi] != u.ob {
				obi++
			}
		}
		kept[obi] += u.kept
		if u.off != at {
			moveRows(out, at, u.off, u.kept)
		}
		at += u.kept
	}
	truncateSet(out, at)
	return kept, nil
}

// forEach calls fn(i) for i in [0, n) on up to workers goroutines, handing
// out indexes in increasing order.
func forEach(n, workers int, fn func(i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// decodeRowGroup decodes unit u into its region of out and filters it in
// place; errors go to u.err.
func decodeRowGroup(u *decodeUnit, opt decodeOptions, out *tile.Set) {
	ob, m := u.ob, u.ob.m
	gi, rows, lo := u.rg, u.rows, u.off
	hi := lo + rows
	chunks := ob.f.RowGroups()[gi].ColumnChunks()
	fail := func(col string, err error) {
		u.err = ob.fail("row group %d column %s: %v", gi, col, err)
	}
	var (
		intKeys []int64
		strKeys []string
	)
	cr := chunkReaders.Get().(*chunkReader)
	defer chunkReaders.Put(cr)
	if m.StringKeys {
		strKeys = out.Keys.Str[lo:hi]
		if err := readStrings(chunks[ob.cols.key], strKeys); err != nil {
			fail(colKey, fmt.Errorf("%w (does the tile set use int keys?)", err))
			return
		}
	} else {
		intKeys = out.Keys.Int[lo:hi]
		if err := readInt64Chunk(cr, ob, gi, ob.cols.key, chunks[ob.cols.key], intKeys); err != nil {
			fail(colKey, fmt.Errorf("%w (does the tile set use string keys?)", err))
			return
		}
	}
	start := out.Start[lo:hi]
	for _, c := range []struct {
		dst  []int64
		col  int
		name string
	}{{start, ob.cols.start, colStart}, {out.Count, ob.cols.count, colCount}, {out.N, ob.cols.n, colN}} {
		if c.dst == nil {
			continue
		}
		if c.col != ob.cols.start {
			c.dst = c.dst[lo:hi]
		}
		if err := readInt64Chunk(cr, ob, gi, c.col, chunks[c.col], c.dst); err != nil {
			fail(c.name, err)
			return
		}
	}
	for _, c := range []struct {
		dst  []float64
		col  int
		name string
	}{{out.Sum, ob.cols.sum, colSum}, {out.M2, ob.cols.m2, colM2}, {out.Min, ob.cols.min, colMin}, {out.Max, ob.cols.max, colMax}} {
		if c.dst == nil {
			continue
		}
		if err := readDoubleChunk(cr, ob, gi, c.col, chunks[c.col], c.dst[lo:hi]); err != nil {
			fail(c.name, err)
			return
		}
	}
	if m.StringKeys {
		u.firstStr, u.lastStr = strKeys[0], strKeys[rows-1]
	} else {
		u.firstInt, u.lastInt = intKeys[0], intKeys[rows-1]
	}
	u.firstStart, u.lastStart = start[0], start[rows-1]

	// Sort order (key, bucket_start), strictly increasing, and every start
	// inside the object's range.
	o := ob.o
	for i := range rows {
		if start[i] < o.From || start[i] >= o.To {
			u.err = ob.fail("row group %d row %d: bucket_start %d outside the object's range [%d, %d) in the manifest", gi, i, start[i], o.From, o.To)
			return
		}
		if i == 0 {
			continue
		}
		var c int
		if m.StringKeys {
			c = compareStr(strKeys[i-1], strKeys[i])
		} else {
			c = cmpInt(intKeys[i-1], intKeys[i])
		}
		if c > 0 || (c == 0 && start[i-1] >= start[i]) {
			u.err = ob.fail("row group %d row %d is out of (key, bucket_start) order", gi, i)
			return
		}
	}

	// Filter in place. Keys arrive sorted, so keep is consulted once per
	// distinct key.
	r, keep := opt.r, opt.keep
	intFilter := keep != nil && keep.Int != nil && !m.StringKeys
	strFilter := keep != nil && keep.Str != nil && m.StringKeys
	timeFilter := !(r.From <= o.From && o.To <= r.To)
	if !intFilter && !strFilter && !timeFilter {
		u.kept = rows
		return
	}
	var (
		w                  int
		haveLast, lastKeep bool
		lastInt            int64
		lastStr            string
	)
	// The filter's keys, sorted, are walked along with the tiles' (a map
	// lookup per key missed the cache: 5% of a 100M-event query's CPU).
	ints := keyCursor[int64]{keys: opt.sorted.ints}
	strs := keyCursor[string]{keys: opt.sorted.strs}
	for i := range rows {
		if timeFilter && !r.Contains(start[i]) {
			continue
		}
		switch {
		case intFilter:
			if !haveLast || intKeys[i] != lastInt {
				if opt.sorted.on {
					lastKeep = ints.has(intKeys[i])
				} else {
					_, lastKeep = keep.Int[intKeys[i]]
				}
				lastInt, haveLast = intKeys[i], true
			}
		case strFilter:
			if !haveLast || strKeys[i] != lastStr {
				if opt.sorted.on {
					lastKeep = strs.has(strKeys[i])
				} else {
					_, lastKeep = keep.Str[strKeys[i]]
				}
				lastStr, haveLast = strKeys[i], true
			}
		default:
			lastKeep = true
		}
		if !lastKeep {
			continue
		}
		if w != i {
			moveRows(out, lo+w, lo+i, 1)
		}
		w++
	}
	u.kept = w
}

// growSet extends every present column of s to n rows; fresh gathers the
// huge page requests of new columns (see growTo). With sc, the new numeric
// columns are scratch memory that sc frees.
func growSet(s *tile.Set, n int, fresh *hugepage.Requests, sc *scratchColumns) {
	if s.Keys.String {
		s.Keys.Str = growTo(s.Keys.Str, n, fresh)
	} else {
		s.Keys.Int = growNum(s.Keys.Int, n, fresh, sc)
	}
	s.Start = growNum(s.Start, n, fresh, sc)
	s.Count = growNum(s.Count, n, fresh, sc)
	s.N = growNum(s.N, n, fresh, sc)
	s.Sum = growNum(s.Sum, n, fresh, sc)
	s.M2 = growNum(s.M2, n, fresh, sc)
	s.Min = growNum(s.Min, n, fresh, sc)
	s.Max = growNum(s.Max, n, fresh, sc)
}

// scratchColumns frees the columns of scratch memory of a set.
type scratchColumns struct{ frees []func() }

// release frees the columns; nothing may read them afterwards.
func (sc *scratchColumns) release() {
	for _, f := range sc.frees {
		f()
	}
	sc.frees = nil
}

// growNum is growTo for a numeric column: with sc, an empty column becomes
// scratch memory, whose contents are undefined (a decode writes every row
// before anything reads it).
func growNum[T hugepage.Elem](col []T, n int, fresh *hugepage.Requests, sc *scratchColumns) []T {
	if sc != nil && col != nil && len(col) == 0 && n > 0 {
		x, free := hugepage.Scratch[T](n)
		sc.frees = append(sc.frees, free)
		if fillScratch != nil {
			fillScratch(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), len(x)*int(unsafe.Sizeof(x[0]))))
		}
		return x
	}
	return growTo(col, n, fresh)
}

// fillScratch, when set, fills every new scratch column: tests set it to
// fill them with bytes no decode writes, as reused scratch memory may hold.
var fillScratch func([]byte)

// growTo returns col extended to length n; a nil col (an absent column)
// stays nil.
//
// An empty col is replaced by a new slice: make leaves memory fresh from
// the operating system as it is, already zero, where slices.Grow clears
// the whole extension, touching every page before the decode writes it.
// Of a 20M-event query's tile load that clearing took a tenth of the CPU.
// The new slice asks for huge pages until fresh's requests are withdrawn,
// once the decode has written it: a page fault per 2 MiB rather than per
// 4 KiB where the memory is fresh from the kernel (a warm 20M-event
// materialized query took 14-17k faults before, 5-7k after).
func growTo[T any](col []T, n int, fresh *hugepage.Requests) []T {
	if col == nil || len(col) >= n {
		return col
	}
	if len(col) == 0 {
		return hugepage.MakeIn[T](fresh, n)
	}
	return slices.Grow(col, n-len(col))[:n]
}

// truncateSet cuts every present column of s to n rows. When that leaves
// most of a large allocation unused (a filtered load), the columns are
// copied to fit, so that the result does not pin the memory.
func truncateSet(s *tile.Set, n int) {
	shrink := cap(s.Start) > 4096 && n < cap(s.Start)/2
	s.Keys.Int = cut(s.Keys.Int, n, shrink)
	s.Keys.Str = cut(s.Keys.Str, n, shrink)
	s.Start = cut(s.Start, n, shrink)
	s.Count = cut(s.Count, n, shrink)
	s.N = cut(s.N, n, shrink)
	s.Sum = cut(s.Sum, n, shrink)
	s.M2 = cut(s.M2, n, shrink)
	s.Min = cut(s.Min, n, shrink)
	s.Max = cut(s.Max, n, shrink)
	if s.Keys.String {
		// Strings past n would stay reachable through the backing array.
		clear(s.Keys.Str[n:cap(s.Keys.Str)])
	}
}

func cut[T any](col []T, n int, shrink bool) []T {
	if col == nil {
		return nil
	}
	if shrink {
		return append(make([]T, 0, n), col[:n]...)
	}
	return col[:n]
}

// moveRows copies rows [from, from+n) of s to [to, to+n), overlapping or not.
func moveRows(s *tile.Set, to, from, n int) {
	if s.Keys.String {
		copy(s.Keys.Str[to:to+n], s.Keys.Str[from:from+n])
	} else {
		copy(s.Keys.Int[to:to+n], s.Keys.Int[from:from+n])
	}
	copy(s.Start[to:to+n], s.Start[from:from+n])
	copy(s.Count[to:to+n], s.Count[from:from+n])
	if s.N != nil {
		copy(s.N[to:to+n], s.N[from:from+n])
	}
	if s.Sum != nil {
		copy(s.Sum[to:to+n], s.Sum[from:from+n])
	}
	if s.M2 != nil {
		copy(s.M2[to:to+n], s.M2[from:from+n])
	}
	if s.Min != nil {
		copy(s.Min[to:to+n], s.Min[from:from+n])
	}
	if s.Max != nil {
		copy(s.Max[to:to+n], s.Max[from:from+n])
	}
}

// decodeObject appends to out the tiles of object o (bytes data) whose bucket
// start lies in r and whose key keep selects. It checks the object's schema
// against the manifest, its row count and its sort order.
func decodeObject(m *Manifest, o Object, data []byte, r Range, keep *KeyFilter, out *tile.Set) error {
	ob, err := openTileObject(m, o, bytes.NewReader(data), nil)
	if err != nil {
		return err
	}
	n := out.Len()
	if _, err := decodeObjects([]*openObject{ob}, decodeOptions{r: r, keep: keep, sorted: newKeyPruner(keep, m.StringKeys)}, out); err != nil {
		truncateSet(out, n)
		return err
	}
	return nil
}

// keyCursor answers whether sorted keys hold each of keys that come in
// ascending order, walking them once: from where the last key was found,
// in growing steps, then by bisection.
type keyCursor[T cmp.Ordered] struct {
	keys []T
	j    int // the first of keys not below the last key asked
}

// has reports whether the keys hold k, which is not below the last key
// asked.
func (c *keyCursor[T]) has(k T) bool {
	keys, lo := c.keys, c.j
	if lo < len(keys) && keys[lo] < k {
		hi := lo + 1
		for step := 1; hi < len(keys) && keys[hi] < k; step *= 2 {
			lo = hi
			hi = lo + step
		}
		hi = min(hi, len(keys))
		// keys[lo] < k, and k <= keys[hi] where hi < len(keys).
		i, _ := slices.BinarySearch(keys[lo+1:hi], k)
		lo += 1 + i
	}
	c.j = lo
	return lo < len(keys) && keys[lo] == k
}

// errNull reports a null in a column that tile objects require.
var errNull = errors.New("null value in a required column")

// readPages calls page for each page of a column chunk, in order, with the
// number of values before it; fallback handles pages whose values are not
// plain and dense (dictionary-encoded or with nulls) one value at a time.
func readPages(cc parquet.ColumnChunk, want int, page func(p parquet.Page, at int) (int, error)) error {
	pages := cc.Pages()
	defer pages.Close()
	at := 0
	for {
		p, err := pages.ReadPage()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		n, err := page(p, at)
		parquet.Release(p)
		if err != nil {
			return err
		}
		at += n
	}
	if at != want {
		return fmt.Errorf("it holds %d values, the row group %d rows", at, want)
	}
	return nil
}

// plainValues returns the values of p when they are stored densely (no
// dictionary, no nulls, no repetition) in the kind given, else ok false.
func plainValues(p parquet.Page, kind encoding.Kind) (v encoding.Values, ok bool) {
	if p.Dictionary() != nil || p.NumNulls() != 0 || p.RepetitionLevels() != nil {
		return v, false
	}
	v = p.Data()
	return v, v.Kind() == kind
}

// dictionaryValues returns the dictionary indexes of p and its
// dictionary's values when p is dictionary-encoded, dense (no nulls, no
// repetition) and its dictionary holds values of the kind given; else ok
// false.
func dictionaryValues(p parquet.Page, kind encoding.Kind) (idx []int32, dict encoding.Values, ok bool) {
	d := p.Dictionary()
	if d == nil || p.NumNulls() != 0 || p.RepetitionLevels() != nil {
		return nil, dict, false
	}
	v := p.Data()
	if dict = d.Page().Data(); dict.Kind() != kind || v.Kind() != encoding.Int32 {
		return nil, dict, false
	}
	return v.Int32(), dict, true
}

// eachValue calls fn for each value of page p, failing on nulls.
func eachValue(p parquet.Page, fn func(i int, v parquet.Value) error) (int, error) {
	var buf [256]parquet.Value
	vr := p.Values()
	n := 0
	for {
		k, err := vr.ReadValues(buf[:])
		for _, v := range buf[:k] {
			if v.IsNull() {
				return n, errNull
			}
			if ferr := fn(n, v); ferr != nil {
				return n, ferr
			}
			n++
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func errTooMany(n int) error {
	return fmt.Errorf("it holds more values than the row group's %d rows", n)
}

// chunkReaders hold the buffers of chunkReader, one per core at work.
var chunkReaders = sync.Pool{New: func() any { return new(chunkReader) }}

// readInt64Chunk decodes INT64 column col of row group gi of ob, whose
// chunk is cc, into dst: through cr when the chunk is laid out as
// writeTiles writes it, else through parquet-go.
func readInt64Chunk(cr *chunkReader, ob *openObject, gi, col int, cc parquet.ColumnChunk, dst []int64) error {
	if ok, err := cr.int64s(ob, chunkMeta(ob, gi, col), dst); ok || err != nil {
		return err
	}
	return readInt64s(cc, dst)
}

// readDoubleChunk is readInt64Chunk for a DOUBLE column.
func readDoubleChunk(cr *chunkReader, ob *openObject, gi, col int, cc parquet.ColumnChunk, dst []float64) error {
	if ok, err := cr.float64s(ob, chunkMeta(ob, gi, col), dst); ok || err != nil {
		return err
	}
	return readDoubles(cc, dst)
}

// chunkMeta returns the footer's metadata of column col of row group gi.
func chunkMeta(ob *openObject, gi, col int) *format.ColumnMetaData {
	return &ob.f.Metadata().RowGroups[gi].Columns[col].MetaData
}

// readInt64s decodes an INT64 column chunk into dst, which must be exactly
// as long as the chunk.
func readInt64s(cc parquet.ColumnChunk, dst []int64) error {
	return readFixed(cc, dst, parquet.Int64, encoding.Int64, "INT64", (*encoding.Values).Int64, parquet.Value.Int64)
}

// readDoubles decodes a DOUBLE column chunk into dst, which must be exactly
// as long as the chunk.
func readDoubles(cc parquet.ColumnChunk, dst []float64) error {
	return readFixed(cc, dst, parquet.Double, encoding.Double, "DOUBLE", (*encoding.Values).Double, parquet.Value.Double)
}

// readFixed decodes a column chunk of fixed-width values into dst: plain
// pages are copied whole (plain gives their values as a slice), others are
// read value by value (one gives a value's content).
func readFixed[T any](cc parquet.ColumnChunk, dst []T, kind parquet.Kind, enc encoding.Kind, name string,
	plain func(*encoding.Values) []T, one func(parquet.Value) T) error {
	if k := cc.Type().Kind(); k != kind {
		return fmt.Errorf("type %s, want %s", k, name)
	}
	return readPages(cc, len(dst), func(p parquet.Page, at int) (int, error) {
		if v, ok := plainValues(p, enc); ok {
			vals := plain(&v)
			if len(vals) > len(dst)-at {
				return 0, errTooMany(len(dst))
			}
			return copy(dst[at:], vals), nil
		}
		if idx, d, ok := dictionaryValues(p, enc); ok {
			// Dictionary indexes (the bucket starts of heavy keys' row
			// groups, see pageWriter.startDictionary).
			vals := plain(&d)
			if len(idx) > len(dst)-at {
				return 0, errTooMany(len(dst))
			}
			out := dst[at : at+len(idx)]
			for i, k := range idx {
				if uint(k) >= uint(len(vals)) {
					return i, fmt.Errorf("value %d: dictionary index %d out of range [0, %d)", at+i, k, len(vals))
				}
				out[i] = vals[k]
			}
			return len(idx), nil
		}
		return eachValue(p, func(i int, v parquet.Value) error {
			if at+i >= len(dst) {
				return errTooMany(len(dst))
			}
			dst[at+i] = one(v)
			return nil
		})
	})
}

// readStrings decodes a BYTE_ARRAY column chunk into dst, which must be
// exactly as long as the chunk. Keys arrive sorted, so runs of one key share
// one string.
func readStrings(cc parquet.ColumnChunk, dst []string) error {
	if k := cc.Type().Kind(); k != parquet.ByteArray {
		return fmt.Errorf("type %s, want BYTE_ARRAY (string)", k)
	}
	var prev string
	set := func(i int, b []byte) error {
		if i >= len(dst) {
			return errTooMany(len(dst))
		}
		if i == 0 || string(b) != prev {
			prev = string(b)
		}
		dst[i] = prev
		return nil
	}
	return readPages(cc, len(dst), func(p parquet.Page, at int) (int, error) {
		if v, ok := plainValues(p, encoding.ByteArray); ok {
			data, offsets := v.ByteArray()
			n := len(offsets) - 1
			for i := range n {
				if offsets[i] > offsets[i+1] || int(offsets[i+1]) > len(data) {
					return i, fmt.Errorf("value %d has a malformed offset", at+i)
				}
				if err := set(at+i, data[offsets[i]:offsets[i+1]]); err != nil {
					return i, err
				}
			}
			return max(n, 0), nil
		}
		return eachValue(p, func(i int, v parquet.Value) error { return set(at+i, v.ByteArray()) })
	})
}
