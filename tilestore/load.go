package tilestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strconv"

	"gocloud.dev/gcerrors"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

// ErrMissingObject reports a tile object that a manifest lists but the store
// does not hold.
var ErrMissingObject = errors.New("tile object is missing")

// ErrChecksum reports a tile object whose size or checksum (CRC-32C, or
// SHA-256 for objects of schema version 1) differs from the manifest's
// record.
var ErrChecksum = errors.New("tile object does not match its checksum")

// Load reads the tiles of manifest m whose bucket start lies in r (r.From and
// r.To may be math.MinInt64 and math.MaxInt64), reading only objects, and
// within them only row groups, that overlap r and, with a key filter, may hold
// a selected key. Whatever is read is verified before it is decoded: a whole
// object against its size and CRC-32C, a row group (ranged read) and the
// footer against their own (SHA-256s in objects of schema version 1); a
// mismatch is an error naming the object.
// keep, when non-nil, selects keys; it is consulted once per distinct key of
// each object. The result is sorted by (key, Start). Load stops with ctx's
// error when ctx is done.
//
// Objects are fetched concurrently and their row groups decoded on up to
// GOMAXPROCS goroutines, each straight into its own part of the result, whose
// columns are allocated once from the row counts.
func (s *Store) Load(ctx context.Context, m *Manifest, r Range, keep *KeyFilter) (*tile.Set, error) {
	return s.load(ctx, m, r, keep, nil)
}

// LoadScratch is Load for a caller that reads the tiles for a while and
// then drops them, such as a query, which sweeps them once: the numeric
// columns of the set may lie outside the Go heap, in memory that an earlier
// set freed moments ago (see hugepage.Scratch), which spares the clearing
// and page faults of fresh memory for every load (a warm materialized
// query of 1M or 20M events spent a seventh of its time on them). The set
// is valid until release is called, once; nothing may read it afterwards.
// On error there is nothing to release.
func (s *Store) LoadScratch(ctx context.Context, m *Manifest, r Range, keep *KeyFilter) (set *tile.Set, release func(), err error) {
	sc := &scratchColumns{}
	set, err = s.load(ctx, m, r, keep, sc)
	if err != nil {
		sc.release()
		return nil, nil, err
	}
	return set, sc.release, nil
}

func (s *Store) load(ctx context.Context, m *Manifest, r Range, keep *KeyFilter, sc *scratchColumns) (*tile.Set, error) {
	if m == nil {
		return nil, fmt.Errorf("load tiles: no manifest (the tile set has never been committed)")
	}
	out := newSet(m.Needs, m.StringKeys)
	if r.Empty() {
		return out, nil
	}
	prune := newKeyPruner(keep, m.StringKeys)
	type fetch struct {
		o      Object
		groups []bool // nil: read the object whole
	}
	var fetches []fetch
	for _, o := range m.Objects {
		if o.Rows == 0 || !o.Range().Overlaps(r) || !prune.mayHold(o.MinKey, o.MaxKey) {
			continue
		}
		groups, whole := selectRowGroups(o, r, prune)
		if groups == nil && !whole {
			continue
		}
		fetches = append(fetches, fetch{o, groups})
	}
	if len(fetches) == 0 {
		return out, nil
	}
	// Fetch, verify and open the objects concurrently (more at once than
	// there are cores: remote stores are latency-bound), then decode their
	// row groups on every core.
	obs := make([]*openObject, len(fetches))
	errs := make([]error, len(fetches))
	forEach(len(fetches), max(runtime.GOMAXPROCS(0), minFetchers), func(i int) {
		if err := ctx.Err(); err != nil {
			errs[i] = fmt.Errorf("load tiles of tile set %s: %w", m.TileSet, err)
			return
		}
		obs[i], errs[i] = s.fetchObject(ctx, m, fetches[i].o, fetches[i].groups)
	})
	defer func() {
		for _, ob := range obs {
			if ob != nil {
				ob.free()
			}
		}
	}()
	if err := firstError(errs); err != nil {
		return nil, err
	}
	kept, err := decodeObjects(obs, decodeOptions{ctx: ctx, r: r, keep: keep, sorted: prune, scratch: sc}, out)
	if err != nil {
		return nil, err
	}
	// Each object's tiles are sorted; objects of one commit follow each
	// other in key order, those of different commits (or of one commit
	// given in key-hash Parts) interleave and are merged.
	var runs []int // start of each object's tiles in out, then out.Len()
	at := 0
	for _, k := range kept {
		if k > 0 {
			runs = append(runs, at)
		}
		at += k
	}
	if len(runs) > 1 {
		runs = append(runs, at)
		if !increasingAt(out, runs[1:len(runs)-1]) {
			mergeRuns(out, runs)
			if i := firstDuplicate(out); i >= 0 {
				return nil, fmt.Errorf("load tiles of tile set %s (manifest version %d): two objects hold the tile of key %s at bucket start %d; run verify and re-run the backfill of that range",
					m.TileSet, m.Version, keyText(out, i), out.Start[i])
			}
		}
	}
	return out, nil
}

// minFetchers is the least number of objects Load fetches at once.
const minFetchers = 4

// firstError returns the first non-nil error of errs.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// fetchObject reads object o of manifest m, whole (groups nil) or only the
// row groups selected by groups, verifies what it read against the
// manifest's checksums and opens it for decoding.
func (s *Store) fetchObject(ctx context.Context, m *Manifest, o Object, groups []bool) (*openObject, error) {
	var ra io.ReaderAt
	free := func() {}
	if groups == nil {
		buf := objectBuffers.get(o.Bytes + 1)
		data, err := s.readObjectInto(ctx, m, o, buf)
		if err != nil {
			objectBuffers.put(buf)
			return nil, err
		}
		s.bytesRead.Add(int64(len(data)))
		ra = bytes.NewReader(data)
		free = func() { objectBuffers.put(buf) }
	} else {
		f, err := s.readRowGroups(ctx, m, o, groups)
		if err != nil {
			return nil, err
		}
		s.bytesRead.Add(f.bytes())
		ra = f
	}
	s.objectsRead.Add(1)
	ob, err := s.openTileObject(m, o, ra, groups)
	if err != nil {
		free()
		return nil, err
	}
	giveBack := ob.free
	ob.free = func() {
		giveBack()
		free()
	}
	return ob, nil
}

// newSet returns an empty set whose present columns are non-nil.
func newSet(needs aggregate.Needs, stringKeys bool) *tile.Set {
	s := &tile.Set{Needs: needs, Keys: tile.Keys{String: stringKeys}, Start: []int64{}, Count: []int64{}}
	if stringKeys {
		s.Keys.Str = []string{}
	} else {
		s.Keys.Int = []int64{}
	}
	if needs.HasValues() {
		s.N = []int64{}
	}
	if needs&tile.NeedSumOrM2 != 0 {
		s.Sum = []float64{}
	}
	if needs&aggregate.NeedM2 != 0 {
		s.M2 = []float64{}
	}
	if needs&aggregate.NeedMin != 0 {
		s.Min = []float64{}
	}
	if needs&aggregate.NeedMax != 0 {
		s.Max = []float64{}
	}
	return s
}

// readObject reads object o of manifest m and checks its size and checksum
// (its CRC-32C, or the SHA-256 of objects that record none).
func (s *Store) readObject(ctx context.Context, m *Manifest, o Object) ([]byte, error) {
	return s.readObjectInto(ctx, m, o, nil)
}

// readObjectInto is readObject into *buf, which must hold o.Bytes+1 bytes;
// with buf nil, it reads into a buffer of its own.
func (s *Store) readObjectInto(ctx context.Context, m *Manifest, o Object, buf *[]byte) ([]byte, error) {
	key := dataKey(m.TileSet, o.Name)
	if err := s.inject(ctx, opGet, key); err != nil {
		return nil, fmt.Errorf("read tile object %s of tile set %s: %w", o.Name, m.TileSet, err)
	}
	rd, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("read tile object %s of tile set %s (manifest version %d): %w; the store lost it: re-run the backfill of [%d, %d)",
				o.Name, m.TileSet, m.Version, ErrMissingObject, o.From, o.To)
		}
		return nil, fmt.Errorf("read tile object %s of tile set %s: %w", o.Name, m.TileSet, err)
	}
	// Read at most one byte more than expected: enough to tell a longer
	// object. The buffer is sized once: a bytes.Buffer grown to the size
	// would double (and clear, and copy) near its end to keep room for a
	// further read.
	var data []byte
	if o.Bytes >= 0 && o.Bytes < 1<<31 {
		if buf != nil && int64(len(*buf)) == o.Bytes+1 {
			data = *buf
		} else {
			data = make([]byte, o.Bytes+1)
		}
		var n int
		n, err = io.ReadFull(rd, data)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = nil // shorter than one byte more: as expected, or truncated
		}
		data = data[:n]
	} else {
		var buf bytes.Buffer
		_, err = io.Copy(&buf, io.LimitReader(rd, o.Bytes+1))
		data = buf.Bytes()
	}
	if cerr := rd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read tile object %s of tile set %s: %w", o.Name, m.TileSet, err)
	}
	if int64(len(data)) != o.Bytes {
		return nil, fmt.Errorf("read tile object %s of tile set %s: %w: size is %s bytes, the manifest says %d; the object was truncated or replaced: re-run the backfill of [%d, %d)",
			o.Name, m.TileSet, ErrChecksum, sizeText(int64(len(data)), o.Bytes), o.Bytes, o.From, o.To)
	}
	if bad := o.sum().mismatch(data); bad != "" {
		return nil, fmt.Errorf("read tile object %s of tile set %s: %w: %s; the object is corrupt: re-run the backfill of [%d, %d)",
			o.Name, m.TileSet, ErrChecksum, bad, o.From, o.To)
	}
	return data, nil
}

func sizeText(got, want int64) string {
	if got > want {
		return "more than " + strconv.FormatInt(want, 10)
	}
	return strconv.FormatInt(got, 10)
}

// keyPruner tells objects that cannot hold a selected key from their key range.
type keyPruner struct {
	ints []int64
	strs []string
	on   bool
	str  bool
}

func newKeyPruner(keep *KeyFilter, stringKeys bool) keyPruner {
	p := keyPruner{str: stringKeys}
	switch {
	case keep == nil:
	case stringKeys && keep.Str != nil:
		p.on = true
		for k := range keep.Str {
			p.strs = append(p.strs, k)
		}
		slices.Sort(p.strs)
	case !stringKeys && keep.Int != nil:
		p.on = true
		for k := range keep.Int {
			p.ints = append(p.ints, k)
		}
		slices.Sort(p.ints)
	}
	return p
}

// mayHold reports whether keys in [minKey, maxKey] (as recorded in a
// manifest) may include a selected key.
func (p keyPruner) mayHold(minKey, maxKey string) bool {
	if !p.on {
		return true
	}
	if p.str {
		i, _ := slices.BinarySearch(p.strs, minKey)
		return i < len(p.strs) && p.strs[i] <= maxKey
	}
	lo, err1 := strconv.ParseInt(minKey, 10, 64)
	hi, err2 := strconv.ParseInt(maxKey, 10, 64)
	if err1 != nil || err2 != nil {
		return true // no usable range: read it
	}
	i, _ := slices.BinarySearch(p.ints, lo)
	return i < len(p.ints) && p.ints[i] <= hi
}

// lessTile orders tiles i and j of s by (key, Start).
func lessTile(s *tile.Set, i, j int) bool {
	if s.Keys.String {
		if s.Keys.Str[i] != s.Keys.Str[j] {
			return s.Keys.Str[i] < s.Keys.Str[j]
		}
	} else if s.Keys.Int[i] != s.Keys.Int[j] {
		return s.Keys.Int[i] < s.Keys.Int[j]
	}
	return s.Start[i] < s.Start[j]
}

// sortSet sorts s by (key, Start) in place, stably.
func sortSet(s *tile.Set) {
	n := s.Len()
	sorted := true
	for i := 1; i < n && sorted; i++ {
		sorted = !lessTile(s, i, i-1)
	}
	if sorted {
		return
	}
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	sort.SliceStable(perm, func(a, b int) bool { return lessTile(s, perm[a], perm[b]) })
	s.Keys.Int = permute(s.Keys.Int, perm)
	s.Keys.Str = permute(s.Keys.Str, perm)
	s.Start = permute(s.Start, perm)
	s.Count = permute(s.Count, perm)
	s.N = permute(s.N, perm)
	s.Sum = permute(s.Sum, perm)
	s.M2 = permute(s.M2, perm)
	s.Min = permute(s.Min, perm)
	s.Max = permute(s.Max, perm)
}

func permute[T any](col []T, perm []int) []T {
	if col == nil {
		return nil
	}
	out := make([]T, len(col))
	for i, p := range perm {
		out[i] = col[p]
	}
	return out
}

// increasingAt reports whether tile b-1 of s orders strictly before tile b
// for every b in at.
func increasingAt(s *tile.Set, at []int) bool {
	for _, b := range at {
		if !lessTile(s, b-1, b) {
			return false
		}
	}
	return true
}

// mergeRuns sorts s by (key, Start), stably, given that it is made of sorted
// runs [runs[i], runs[i+1]); runs ends with s.Len(). It merges the runs
// pairwise, in O(n log(runs)).
func mergeRuns(s *tile.Set, runs []int) {
	n := runs[len(runs)-1]
	perm, tmp := make([]int, n), make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for len(runs) > 2 {
		next := make([]int, 0, len(runs)/2+2)
		for j := 0; j+1 < len(runs); j += 2 {
			next = append(next, runs[j])
			if j+2 >= len(runs) {
				copy(tmp[runs[j]:runs[j+1]], perm[runs[j]:runs[j+1]])
				continue
			}
			a, b, end := runs[j], runs[j+1], runs[j+2]
			mid := b
			for k := a; k < end; k++ {
				// Ties take the left run: the merge is stable.
				if a < mid && (b >= end || !lessTile(s, perm[b], perm[a])) {
					tmp[k] = perm[a]
					a++
				} else {
					tmp[k] = perm[b]
					b++
				}
			}
		}
		next = append(next, n)
		perm, tmp = tmp, perm
		runs = next
	}
	s.Keys.Int = permute(s.Keys.Int, perm)
	s.Keys.Str = permute(s.Keys.Str, perm)
	s.Start = permute(s.Start, perm)
	s.Count = permute(s.Count, perm)
	s.N = permute(s.N, perm)
	s.Sum = permute(s.Sum, perm)
	s.M2 = permute(s.M2, perm)
	s.Min = permute(s.Min, perm)
	s.Max = permute(s.Max, perm)
}

// firstDuplicate returns the index of a tile equal in (key, Start) to its
// predecessor in sorted s, or -1.
func firstDuplicate(s *tile.Set) int {
	for i := 1; i < s.Len(); i++ {
		if !lessTile(s, i-1, i) {
			return i
		}
	}
	return -1
}

// wholeReadFraction: when the selected row groups hold more than this share
// of an object's bytes, Load reads the object whole, in one request.
const wholeReadFraction = 0.5

// selectRowGroups returns which row groups of o may hold tiles in r of keys
// that prune selects, or whole when the object is best read whole (it has no
// row group records, or most of it is needed). nil and false: nothing needed.
func selectRowGroups(o Object, r Range, prune keyPruner) (groups []bool, whole bool) {
	if len(o.RowGroups) == 0 {
		return nil, true
	}
	groups = make([]bool, len(o.RowGroups))
	var need int64
	found := false
	for i, g := range o.RowGroups {
		if g.Rows > 0 && g.Range().Overlaps(r) && prune.mayHold(g.MinKey, g.MaxKey) {
			groups[i] = true
			need += g.Length
			found = true
		}
	}
	switch {
	case !found:
		return nil, false
	case float64(need+o.Bytes-o.Footer) > wholeReadFraction*float64(o.Bytes):
		return nil, true
	}
	return groups, false
}

// sparseFile serves the byte ranges of an object that a ranged load fetched;
// reading anything else is an error.
type sparseFile struct {
	name  string
	parts []sparsePart // sorted by offset
}

type sparsePart struct {
	off  int64
	data []byte
}

// parquetMagic opens and closes every Parquet file.
var parquetMagic = []byte("PAR1")

func (f *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	i, _ := slices.BinarySearchFunc(f.parts, off, func(sp sparsePart, off int64) int { return cmpInt(sp.off, off) })
	if i == len(f.parts) || f.parts[i].off > off {
		i--
	}
	if i >= 0 {
		sp := f.parts[i]
		if end := sp.off + int64(len(sp.data)); off >= sp.off && off+int64(len(p)) <= end {
			return copy(p, sp.data[off-sp.off:]), nil
		}
	}
	return 0, fmt.Errorf("bytes [%d, %d) of %s were not fetched: the footer does not match the manifest's row groups", off, off+int64(len(p)), f.name)
}

// bytes returns the bytes fetched from the store (not the constant magic).
func (f *sparseFile) bytes() int64 {
	var n int64
	for _, sp := range f.parts[1:] {
		n += int64(len(sp.data))
	}
	return n
}

// readRowGroups fetches the footer and the selected row groups of o with
// ranged reads, adjacent row groups in one request, and verifies each
// against its checksum in the manifest.
func (s *Store) readRowGroups(ctx context.Context, m *Manifest, o Object, groups []bool) (*sparseFile, error) {
	key := dataKey(m.TileSet, o.Name)
	fail := func(what string, err error) error {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return fmt.Errorf("read tile object %s of tile set %s (manifest version %d): %w; the store lost it: re-run the backfill of [%d, %d)",
				o.Name, m.TileSet, m.Version, ErrMissingObject, o.From, o.To)
		}
		if errors.Is(err, errShort) {
			return fmt.Errorf("read tile object %s of tile set %s: %s: %w: %w; the object was truncated: re-run the backfill of [%d, %d)",
				o.Name, m.TileSet, what, ErrChecksum, err, o.From, o.To)
		}
		return fmt.Errorf("read tile object %s of tile set %s: %s: %w", o.Name, m.TileSet, what, err)
	}
	mismatch := func(what, bad string) error {
		return fmt.Errorf("read tile object %s of tile set %s: %w: %s: %s; the object is corrupt: re-run the backfill of [%d, %d)",
			o.Name, m.TileSet, ErrChecksum, what, bad, o.From, o.To)
	}
	f := &sparseFile{name: o.Name, parts: []sparsePart{{0, parquetMagic}}}
	for i := 0; i < len(groups); {
		if !groups[i] {
			i++
			continue
		}
		j := i + 1
		for j < len(groups) && groups[j] && o.RowGroups[j].Offset == o.RowGroups[j-1].Offset+o.RowGroups[j-1].Length {
			j++
		}
		first, last := o.RowGroups[i], o.RowGroups[j-1]
		data, err := s.readRange(ctx, key, first.Offset, last.Offset+last.Length-first.Offset)
		if err != nil {
			return nil, fail(fmt.Sprintf("row groups %d-%d", i, j-1), err)
		}
		for k := i; k < j; k++ {
			g := o.RowGroups[k]
			part := data[g.Offset-first.Offset : g.Offset-first.Offset+g.Length]
			if bad := g.sum().mismatch(part); bad != "" {
				return nil, mismatch(fmt.Sprintf("row group %d (bytes [%d, %d))", k, g.Offset, g.Offset+g.Length), bad)
			}
			f.parts = append(f.parts, sparsePart{g.Offset, part})
		}
		i = j
	}
	footer, err := s.readRange(ctx, key, o.Footer, o.Bytes-o.Footer)
	if err != nil {
		return nil, fail("footer", err)
	}
	if bad := o.footerSum().mismatch(footer); bad != "" {
		return nil, mismatch(fmt.Sprintf("the footer (bytes [%d, %d))", o.Footer, o.Bytes), bad)
	}
	f.parts = append(f.parts, sparsePart{o.Footer, footer})
	return f, nil
}
