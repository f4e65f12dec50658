package tilestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// ErrChecksum reports a tile object whose size or SHA-256 differs from the
// manifest's record.
var ErrChecksum = errors.New("tile object does not match its checksum")

// Load reads the tiles of manifest m whose bucket start lies in r (r.From and
// r.To may be math.MinInt64 and math.MaxInt64), reading only objects that
// overlap r and, with a key filter, may hold a selected key. Each object's size
// and SHA-256 are verified before it is decoded: a mismatch is an error naming
// the object. keep, when non-nil, selects keys; it is consulted once per
// distinct key of each object. The result is sorted by (key, Start).
func (s *Store) Load(ctx context.Context, m *Manifest, r Range, keep *KeyFilter) (*tile.Set, error) {
	if m == nil {
		return nil, fmt.Errorf("load tiles: no manifest (the tile set has never been committed)")
	}
	out := newSet(m.Needs, m.StringKeys)
	if r.Empty() {
		return out, nil
	}
	prune := newKeyPruner(keep, m.StringKeys)
	parts := 0
	for _, o := range m.Objects {
		if o.Rows == 0 || !o.Range().Overlaps(r) || !prune.mayHold(o) {
			continue
		}
		data, err := s.readObject(ctx, m, o)
		if err != nil {
			return nil, err
		}
		s.bytesRead.Add(int64(len(data)))
		s.objectsRead.Add(1)
		before := out.Len()
		if err := decodeObject(m, o, data, r, keep, out); err != nil {
			return nil, err
		}
		if out.Len() > before {
			parts++
		}
	}
	if parts > 1 {
		sortSet(out)
		if i := firstDuplicate(out); i >= 0 {
			return nil, fmt.Errorf("load tiles of tile set %s (manifest version %d): two objects hold the tile of key %s at bucket start %d; run verify and re-run the backfill of that range",
				m.TileSet, m.Version, keyText(out, i), out.Start[i])
		}
	}
	return out, nil
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

// readObject reads object o of manifest m and checks its size and SHA-256.
func (s *Store) readObject(ctx context.Context, m *Manifest, o Object) ([]byte, error) {
	key := dataKey(m.TileSet, o.Name)
	rd, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("read tile object %s of tile set %s (manifest version %d): %w; the store lost it: re-run the backfill of [%d, %d)",
				o.Name, m.TileSet, m.Version, ErrMissingObject, o.From, o.To)
		}
		return nil, fmt.Errorf("read tile object %s of tile set %s: %w", o.Name, m.TileSet, err)
	}
	var buf bytes.Buffer
	if o.Bytes >= 0 && o.Bytes < 1<<31 {
		buf.Grow(int(o.Bytes))
	}
	// Read at most one byte more than expected: enough to tell a longer object.
	_, err = io.Copy(&buf, io.LimitReader(rd, o.Bytes+1))
	if cerr := rd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read tile object %s of tile set %s: %w", o.Name, m.TileSet, err)
	}
	data := buf.Bytes()
	if int64(len(data)) != o.Bytes {
		return nil, fmt.Errorf("read tile object %s of tile set %s: %w: size is %s bytes, the manifest says %d; the object was truncated or replaced: re-run the backfill of [%d, %d)",
			o.Name, m.TileSet, ErrChecksum, sizeText(int64(len(data)), o.Bytes), o.Bytes, o.From, o.To)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != o.SHA256 {
		return nil, fmt.Errorf("read tile object %s of tile set %s: %w: SHA-256 is %s, the manifest says %s; the object is corrupt: re-run the backfill of [%d, %d)",
			o.Name, m.TileSet, ErrChecksum, got, o.SHA256, o.From, o.To)
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

// mayHold reports whether object o may hold a selected key.
func (p keyPruner) mayHold(o Object) bool {
	if !p.on {
		return true
	}
	if p.str {
		i, _ := slices.BinarySearch(p.strs, o.MinKey)
		return i < len(p.strs) && p.strs[i] <= o.MaxKey
	}
	lo, err1 := strconv.ParseInt(o.MinKey, 10, 64)
	hi, err2 := strconv.ParseInt(o.MaxKey, 10, 64)
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
