package tilestore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

// ErrDefinitionChanged reports a commit whose Needs, key type or grid differ
// from the tile set's existing manifest.
var ErrDefinitionChanged = errors.New("tile set definition changed")

// maxObjectRows bounds the tiles of one object, so that loading one object
// stays a bounded amount of memory.
const maxObjectRows = 4 << 20

// maxUnlistedAge bounds how long a commit lets its data objects wait for a
// manifest to list them before it writes them again; GC's threshold must
// exceed it (see GC).
const maxUnlistedAge = 20 * time.Minute

// maxCommitAttempts bounds how often a commit re-applies itself after losing
// the race for the next manifest version to other writers.
const maxCommitAttempts = 16

// Commit is one change to a tile set: the tiles of the bucket range Cover.
type Commit struct {
	TileSet    string
	Needs      aggregate.Needs
	StringKeys bool
	Grid       tile.Grid
	Features   []string // informational: the features the tile set serves
	// Cover is the bucket range this commit proves: every tile of the tile
	// set in Cover is replaced by Tiles. Its ends are bucket boundaries or
	// math.MinInt64 / math.MaxInt64.
	Cover Range
	// Tiles are sorted by (key, Start), all inside Cover; nil or empty
	// proves that Cover holds no events. Commit reads them only until it
	// returns: the caller may free them then.
	Tiles *tile.Set
	// Parts, when Tiles is nil, gives the tiles as parts loaded one at a
	// time and released once written: the key partitions of a backfill
	// larger than memory. Each part is sorted by (key, Start) and inside
	// Cover, and no two parts hold the same tile. A part may be loaded
	// again if the commit has to write its objects again.
	Parts []func() (*tile.Set, error)
}

// Commit publishes c atomically: after it, the tile set's tiles inside Cover
// are exactly c.Tiles, tiles outside Cover are unchanged, and Coverage is the
// union of the old coverage and Cover. Objects wholly inside Cover leave the
// manifest; objects partly inside are rewritten without their tiles inside
// Cover. When another writer publishes first, Commit re-applies c on top of
// the newer manifest. Re-committing the same tiles changes nothing and
// returns the current manifest. A commit whose Needs, StringKeys or Grid
// differ from the existing manifest fails with ErrDefinitionChanged.
//
// Data objects are written before the manifest; if Commit fails before
// publishing, it removes them (GC removes any it could not).
func (s *Store) Commit(ctx context.Context, c Commit) (*Manifest, error) {
	if err := validTileSetID(c.TileSet); err != nil {
		return nil, fmt.Errorf("commit tiles: %w", err)
	}
	ts, err := checkCommit(&c)
	if err != nil {
		return nil, fmt.Errorf("commit tiles to tile set %s: %w", c.TileSet, err)
	}
	if c.Tiles != nil && len(c.Parts) > 0 {
		return nil, fmt.Errorf("commit tiles to tile set %s: give Tiles or Parts, not both", c.TileSet)
	}
	cm := committer{s: s, c: &c}
	defer cm.cleanup(ctx)

	// Data first: the tiles of this commit, written once and reused by retries.
	if err := cm.writeFresh(ctx, ts); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if attempt > maxCommitAttempts {
			return nil, fmt.Errorf("commit tiles to tile set %s: other writers published first %d times in a row; retry the commit later", c.TileSet, maxCommitAttempts)
		}
		// GC removes unlisted objects older than its threshold: objects
		// that waited too long for their manifest are written again.
		if time.Since(cm.freshAt) > maxUnlistedAge {
			if !cm.ambiguous {
				cm.discarded = append(cm.discarded, cm.fresh...)
			}
			if err := cm.writeFresh(ctx, ts); err != nil {
				return nil, err
			}
		}
		base, baseSum, err := cm.newest(ctx)
		if err != nil {
			return nil, err
		}
		next, err := cm.apply(ctx, base)
		if err != nil {
			return nil, err
		}
		if next == base { // nothing changes
			return base, nil
		}
		if s.hookBeforePublish != nil {
			if err := s.hookBeforePublish(ctx); err != nil {
				return nil, fmt.Errorf("commit tiles to tile set %s: %w", c.TileSet, err)
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("commit tiles to tile set %s: %w", c.TileSet, err)
		}
		body, err := encodeManifest(next, baseSum)
		if err != nil {
			return nil, err
		}
		key := manifestKey(c.TileSet, next.Version)
		err = s.createObject(ctx, key, body)
		if err == nil {
			// From here on, never delete this commit's objects: a published
			// manifest may list them.
			cm.ambiguous = true
			stale, err := cm.stale(ctx, next.Version, sha256Hex(body))
			if err != nil {
				return nil, err
			}
			if !stale {
				cm.published = next
				return next, nil
			}
			// GC had pruned the version this commit claimed, because newer
			// ones exist: the manifest just written is hidden behind them.
			// It stays for GC; build again on the newest. This commit waited
			// longer than GC's threshold, so GC may have taken its unlisted
			// objects too: write them again.
			cm.rewrites = nil
			if err := cm.writeFresh(ctx, ts); err != nil {
				return nil, err
			}
			continue
		}
		if !errors.Is(err, errExists) {
			// The write may or may not have landed: keep every object, so a
			// manifest that did land never points at a deleted one.
			cm.ambiguous = true
			return nil, fmt.Errorf("commit tiles to tile set %s: write manifest %s: %w", c.TileSet, key, err)
		}
		// Another writer published this version first: drop what was
		// rewritten against the old base and try again on the new one.
		cm.discardRewrites(ctx)
		wait := time.Duration(mrand.Int64N(int64(attempt)*int64(5*time.Millisecond))) + time.Millisecond
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("commit tiles to tile set %s: %w", c.TileSet, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// checkCommit validates c and returns its tiles (an empty set for nil).
func checkCommit(c *Commit) (*tile.Set, error) {
	g := c.Grid
	if g.Width <= 0 {
		return nil, fmt.Errorf("grid width %d must be positive", g.Width)
	}
	if c.Cover.Empty() {
		return nil, fmt.Errorf("cover [%d, %d) is empty", c.Cover.From, c.Cover.To)
	}
	if c.Cover.From != math.MinInt64 && !g.OnBoundary(c.Cover.From) {
		return nil, fmt.Errorf("cover start %d is not a bucket boundary of the grid (width %d, origin %d)", c.Cover.From, g.Width, g.Origin)
	}
	if c.Cover.To != math.MaxInt64 && !g.OnBoundary(c.Cover.To) {
		return nil, fmt.Errorf("cover end %d is not a bucket boundary of the grid (width %d, origin %d)", c.Cover.To, g.Width, g.Origin)
	}
	ts := c.Tiles
	if ts == nil || ts.Len() == 0 && ts.Keys.Len() == 0 {
		return newSet(c.Needs, c.StringKeys), nil
	}
	if ts.Needs != c.Needs {
		return nil, fmt.Errorf("tiles keep columns %q but the commit declares %q", ts.Needs, c.Needs)
	}
	if ts.Keys.String != c.StringKeys {
		return nil, fmt.Errorf("tiles have string keys %v but the commit declares %v", ts.Keys.String, c.StringKeys)
	}
	n := ts.Len()
	check := func(name string, l int, want bool) error {
		if !want {
			if l != 0 {
				return fmt.Errorf("tiles carry a %s column that needs %q do not keep", name, c.Needs)
			}
			return nil
		}
		if l != n {
			return fmt.Errorf("tiles column %s has %d values, want %d", name, l, n)
		}
		return nil
	}
	if err := errors.Join(
		check("key", ts.Keys.Len(), true),
		check("count", len(ts.Count), true),
		check("n", len(ts.N), c.Needs.HasValues()),
		check("sum", len(ts.Sum), c.Needs&tile.NeedSumOrM2 != 0),
		check("m2", len(ts.M2), c.Needs&aggregate.NeedM2 != 0),
		check("min", len(ts.Min), c.Needs&aggregate.NeedMin != 0),
		check("max", len(ts.Max), c.Needs&aggregate.NeedMax != 0),
	); err != nil {
		return nil, err
	}
	// Every core checks a run of the tiles (a division per tile: 13 ms for
	// the 4.56M tiles of a 20M-event backfill on one core); the first
	// error in tile order is the one returned.
	parts := min(runtime.GOMAXPROCS(0), max(1, n/minParallelRows))
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for q := range parts {
		wg.Go(func() { errs[q] = checkTiles(c, ts, n*q/parts, n*(q+1)/parts) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// newest reads the newest manifest version and the SHA-256 of its bytes.
func (cm *committer) newest(ctx context.Context) (*Manifest, string, error) {
	id := cm.c.TileSet
	vs, err := cm.s.versions(ctx, id)
	if err != nil {
		return nil, "", fmt.Errorf("commit tiles to tile set %s: %w", id, err)
	}
	if len(vs) == 0 {
		return nil, "", nil
	}
	m, _, sum, err := cm.s.readManifestFull(ctx, id, vs[len(vs)-1])
	if err != nil {
		return nil, "", fmt.Errorf("commit tiles to tile set %s: %w", id, err)
	}
	return m, sum, nil
}

// stale reports whether version v, just created with bytes of SHA-256 sum, is
// hidden behind newer versions that did not build on it. That happens only
// when GC pruned version v (it keeps the newest ten) before a stalled writer
// created it again. A legitimate successor names v's bytes as its parent.
func (cm *committer) stale(ctx context.Context, v int64, sum string) (bool, error) {
	id := cm.c.TileSet
	vs, err := cm.s.versions(ctx, id)
	if err != nil {
		return false, fmt.Errorf("commit tiles to tile set %s: check the published version: %w", id, err)
	}
	i, _ := slices.BinarySearch(vs, v+1)
	switch {
	case i == len(vs):
		return false, nil // v is the newest
	case vs[i] != v+1:
		return true, nil // v+1 is gone: pruned, so v was too
	}
	_, parent, _, err := cm.s.readManifestFull(ctx, id, v+1)
	if err != nil {
		return false, fmt.Errorf("commit tiles to tile set %s: check the published version: %w", id, err)
	}
	return parent != sum, nil
}

// minParallelRows is the smallest object a commit splits off so that its
// objects encode on several cores at once. Encoding costs about 0.2 us a
// tile: a split pays for its object's overhead (a footer, a manifest
// record) from some tens of thousands of tiles, so that the 1M-event
// benchmark's 405k tiles encode on two cores.
var minParallelRows = 64 << 10 // a variable so tests can exercise the split on small commits

// writeFresh writes the commit's tiles as new data objects: at most
// maxObjectRows each, and one per core for large commits, encoded and
// written concurrently. If any write fails, the others are discarded.
//
// A commit given in Parts writes each part in turn, so that one part's tiles
// are in memory at a time.
func (cm *committer) writeFresh(ctx context.Context, ts *tile.Set) error {
	cm.fresh = nil
	cm.freshAt = time.Now()
	if len(cm.c.Parts) == 0 {
		objs, err := cm.writeSet(ctx, ts)
		cm.fresh = objs
		return err
	}
	var all []Object
	for i, part := range cm.c.Parts {
		ps, err := part()
		if err == nil {
			one := *cm.c
			one.Tiles, one.Parts = ps, nil
			ps, err = checkCommit(&one)
		}
		var objs []Object
		if err == nil {
			objs, err = cm.writeSet(ctx, ps)
		}
		if err != nil {
			cm.mu.Lock()
			cm.discarded = append(cm.discarded, all...)
			cm.mu.Unlock()
			return fmt.Errorf("commit tiles to tile set %s: part %d of %d: %w", cm.c.TileSet, i+1, len(cm.c.Parts), err)
		}
		all = append(all, objs...)
	}
	cm.fresh = all
	return nil
}

// writeSet writes tiles ts as new data objects (see writeFresh).
func (cm *committer) writeSet(ctx context.Context, ts *tile.Set) ([]Object, error) {
	n := ts.Len()
	if n == 0 {
		return nil, nil
	}
	parts := max((n+maxObjectRows-1)/maxObjectRows, min(runtime.GOMAXPROCS(0), n/minParallelRows))
	objs := make([]Object, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for q := range parts {
		wg.Go(func() { objs[q], errs[q] = cm.writeObject(ctx, ts, n*q/parts, n*(q+1)/parts) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cm.mu.Lock()
		for q, o := range objs {
			if errs[q] == nil {
				cm.discarded = append(cm.discarded, o)
			}
		}
		cm.mu.Unlock()
		return nil, err
	}
	return objs, nil
}

// checkTiles checks tiles [lo, hi) of ts, the tiles of c: each on c's
// grid, inside its cover, and after the tile before it.
func checkTiles(c *Commit, ts *tile.Set, lo, hi int) error {
	g := c.Grid
	for r := lo; r < hi; r += checkRun {
		end := min(hi, r+checkRun)
		// The run's starts against the grid first, then every check of
		// each tile in order, the starts still in the cache.
		off := end // the run's first tile off the grid
		if n, first := g.OffBoundaries(ts.Start[r:end]); n > 0 {
			off = r + first
		}
		for i := r; i < end; i++ {
			st := ts.Start[i]
			if i == off {
				return fmt.Errorf("tile %d (key %s): start %d is not a bucket boundary of the grid (width %d, origin %d)", i, keyText(ts, i), st, g.Width, g.Origin)
			}
			if !c.Cover.Contains(st) {
				return fmt.Errorf("tile %d (key %s): start %d is outside the cover [%d, %d)", i, keyText(ts, i), st, c.Cover.From, c.Cover.To)
			}
			if i > 0 && !lessTile(ts, i-1, i) {
				return fmt.Errorf("tile %d (key %s, start %d) is not after tile %d in (key, start) order: sort the tiles and merge duplicates", i, keyText(ts, i), st, i-1)
			}
		}
	}
	return nil
}

// checkRun is the tiles whose starts checkTiles checks against the grid
// at once.
const checkRun = 4096

// committer carries one Commit call's state across retries.
type committer struct {
	mu        sync.Mutex // guards discarded while objects are written concurrently
	s         *Store
	c         *Commit
	fresh     []Object // this commit's tiles
	freshAt   time.Time
	rewrites  []Object // objects rewritten against the current base
	discarded []Object // written, then made useless by a lost race
	published *Manifest
	ambiguous bool
}

// apply returns the manifest that c makes of base (nil for a new tile set),
// writing rewrites of objects that straddle the cover. It returns base itself
// when the commit would change nothing.
func (cm *committer) apply(ctx context.Context, base *Manifest) (*Manifest, error) {
	c := cm.c
	next := &Manifest{
		TileSet:    c.TileSet,
		Version:    1,
		Created:    time.Now().UTC(),
		Needs:      c.Needs,
		StringKeys: c.StringKeys,
		Grid:       c.Grid,
		Features:   slices.Clone(c.Features),
		Coverage:   []Range{c.Cover},
	}
	var dropped []Object
	if base != nil {
		if base.Needs != c.Needs || base.StringKeys != c.StringKeys || base.Grid != c.Grid {
			return nil, fmt.Errorf("commit tiles to tile set %s: %w: the tile set keeps columns %q with string keys %v on grid (width %d, origin %d), the commit has %q, %v, (width %d, origin %d); use a new tile set ID for the new definition",
				c.TileSet, ErrDefinitionChanged, base.Needs, base.StringKeys, base.Grid.Width, base.Grid.Origin, c.Needs, c.StringKeys, c.Grid.Width, c.Grid.Origin)
		}
		next.Version = base.Version + 1
		next.Coverage = MergeRanges(append(slices.Clone(base.Coverage), c.Cover))
		for _, o := range base.Objects {
			switch {
			case !o.Range().Overlaps(c.Cover):
				next.Objects = append(next.Objects, o)
			case c.Cover.From <= o.From && o.To <= c.Cover.To:
				dropped = append(dropped, o)
			default:
				kept, err := cm.rewrite(ctx, base, o)
				if err != nil {
					return nil, err
				}
				dropped = append(dropped, o)
				next.Objects = append(next.Objects, kept...)
			}
		}
	}
	next.Objects = append(next.Objects, cm.fresh...)
	if base != nil && len(cm.rewrites) == 0 && sameContent(dropped, cm.fresh) &&
		slices.Equal(next.Coverage, base.Coverage) && slices.Equal(next.Features, base.Features) {
		return base, nil
	}
	return next, nil
}

// sameContent reports whether two object lists hold the same bytes.
func sameContent(a, b []Object) bool {
	if len(a) != len(b) {
		return false
	}
	sums := func(os []Object) []string {
		out := make([]string, 0, len(os))
		for _, o := range os {
			out = append(out, o.SHA256)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(sums(a), sums(b))
}

// rewrite writes the tiles of o outside the cover as new objects.
func (cm *committer) rewrite(ctx context.Context, base *Manifest, o Object) ([]Object, error) {
	data, err := cm.s.readObject(ctx, base, o)
	if err != nil {
		return nil, fmt.Errorf("commit tiles to tile set %s: rewrite an object that straddles the cover: %w", cm.c.TileSet, err)
	}
	all := newSet(base.Needs, base.StringKeys)
	if err := decodeObject(base, o, data, Range{math.MinInt64, math.MaxInt64}, nil, all); err != nil {
		return nil, fmt.Errorf("commit tiles to tile set %s: rewrite an object that straddles the cover: %w", cm.c.TileSet, err)
	}
	kept := newSet(base.Needs, base.StringKeys)
	for i := range all.Len() {
		if cm.c.Cover.Contains(all.Start[i]) {
			continue
		}
		var ik int64
		var sk string
		if all.Keys.String {
			sk = all.Keys.Str[i]
		} else {
			ik = all.Keys.Int[i]
		}
		kept.Append(ik, sk, all.Start[i], all.State(i))
	}
	if kept.Len() == 0 {
		return nil, nil
	}
	var out []Object
	for lo := 0; lo < kept.Len(); lo += maxObjectRows {
		no, err := cm.writeObject(ctx, kept, lo, min(lo+maxObjectRows, kept.Len()))
		if err != nil {
			return nil, err
		}
		cm.rewrites = append(cm.rewrites, no)
		out = append(out, no)
	}
	return out, nil
}

// writeObject encodes and writes tiles [lo, hi) of ts as a new data object.
func (cm *committer) writeObject(ctx context.Context, ts *tile.Set, lo, hi int) (Object, error) {
	name, err := newObjectName()
	if err != nil {
		return Object{}, fmt.Errorf("commit tiles to tile set %s: %w", cm.c.TileSet, err)
	}
	key := dataKey(cm.c.TileSet, name)
	out, err := cm.s.streamObject(ctx, key)
	if err != nil {
		return Object{}, fmt.Errorf("commit tiles to tile set %s: write tile object %s: %w", cm.c.TileSet, name, err)
	}
	// The object goes to the store as it encodes, from a goroutine of its
	// own: a write that waits on the disk or the network (tens of
	// milliseconds per object on a local disk) keeps no core idle.
	chunks := make(chan []byte, 16)
	wrote := make(chan error, 1)
	go func() {
		var err error
		for c := range chunks {
			if err == nil {
				err = out.write(c)
			}
		}
		wrote <- err
	}()
	sk := &sink{emit: func(c []byte) { chunks <- c }, scratch: true}
	_, o, err := encodeObjectTo(name, ts, lo, hi, cm.c.Grid.Width, sk)
	close(chunks)
	werr := <-wrote
	if sk.free != nil {
		sk.free()
	}
	if err != nil {
		out.abort()
		return Object{}, fmt.Errorf("commit tiles to tile set %s: %w", cm.c.TileSet, err)
	}
	if werr == nil {
		werr = out.finish(ctx)
	} else {
		out.abort()
	}
	if werr != nil {
		// A failed write may leave a partial object: remove it too.
		cm.mu.Lock()
		cm.discarded = append(cm.discarded, o)
		cm.mu.Unlock()
		return Object{}, fmt.Errorf("commit tiles to tile set %s: write tile object %s: %w", cm.c.TileSet, name, werr)
	}
	return o, nil
}

// discardRewrites forgets the rewrites made against a base that lost.
func (cm *committer) discardRewrites(ctx context.Context) {
	cm.discarded = append(cm.discarded, cm.rewrites...)
	cm.rewrites = nil
	cm.deleteObjects(ctx, cm.discarded)
	cm.discarded = nil
}

// cleanup removes the objects this commit wrote that no manifest will list.
func (cm *committer) cleanup(ctx context.Context) {
	if cm.ambiguous {
		return
	}
	garbage := cm.discarded
	if cm.published == nil {
		garbage = append(garbage, cm.fresh...)
		garbage = append(garbage, cm.rewrites...)
	}
	cm.deleteObjects(ctx, garbage)
}

// deleteObjects removes objects that were never published, best effort: GC
// removes whatever remains. It runs even when ctx was cancelled.
func (cm *committer) deleteObjects(ctx context.Context, objs []Object) {
	if len(objs) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, o := range objs {
		_ = cm.s.bucket.Delete(dctx, dataKey(cm.c.TileSet, o.Name))
	}
}

// newObjectName returns a unique data object name: UTC time, then 64 random
// bits, so names sort by creation time.
func newObjectName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("name a tile object: %w", err)
	}
	return time.Now().UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(b[:]) + dataExt, nil
}
