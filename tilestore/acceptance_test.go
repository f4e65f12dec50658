package tilestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gocloud.dev/blob"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

const hour = int64(3600 * 1e6)

var hourGrid = tile.Grid{Width: hour}

var everything = Range{math.MinInt64, math.MaxInt64}

// testAcceptance runs the store's contract against stores made by open, one
// fresh (empty) store per call. It is meant to run against every backend.
func testAcceptance(t *testing.T, open func(t *testing.T) *Store) {
	t.Run("RoundTripEveryNeeds", func(t *testing.T) { testRoundTrip(t, open(t)) })
	t.Run("RangeReplacement", func(t *testing.T) { testRangeReplacement(t, open(t)) })
	t.Run("IdempotentRecommit", func(t *testing.T) { testIdempotent(t, open(t)) })
	t.Run("CommitInParts", func(t *testing.T) { testParts(t, open(t)) })
	t.Run("ConcurrentCommits", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("CorruptObjects", func(t *testing.T) { testCorrupt(t, open(t)) })
	t.Run("FailedCommitChangesNothing", func(t *testing.T) { testFailedCommit(t, open(t)) })
	t.Run("DefinitionChanged", func(t *testing.T) { testDefinitionChanged(t, open(t)) })
	t.Run("InvalidCommits", func(t *testing.T) { testInvalid(t, open(t)) })
	t.Run("EmptyCommitProvesCoverage", func(t *testing.T) { testEmptyCommit(t, open(t)) })
	t.Run("ListAndMissing", func(t *testing.T) { testList(t, open(t)) })
	t.Run("LoadReadsOnlyWhatItNeeds", func(t *testing.T) { testPruning(t, open(t)) })
	t.Run("ManyRowGroups", func(t *testing.T) { testRowGroups(t, open(t)) })
	t.Run("Verify", func(t *testing.T) { testVerify(t, open(t)) })
	t.Run("Checksums", func(t *testing.T) { testChecksums(t, open(t)) })
	t.Run("GC", func(t *testing.T) { testGC(t, open(t)) })
	t.Run("PrunedVersionReclaimed", func(t *testing.T) { testPrunedSlot(t, open(t)) })
	t.Run("Faults", func(t *testing.T) { testFaults(t, open(t)) })
}

// row is one tile in comparable form.
type row struct {
	IntKey int64
	StrKey string
	Start  int64
	State  aggregate.State
}

func rowsOf(s *tile.Set) []row {
	out := make([]row, 0, s.Len())
	for i := range s.Len() {
		r := row{Start: s.Start[i], State: s.State(i)}
		if s.Keys.String {
			r.StrKey = s.Keys.Str[i]
		} else {
			r.IntKey = s.Keys.Int[i]
		}
		out = append(out, r)
	}
	return out
}

func setOf(needs aggregate.Needs, stringKeys bool, rows []row) *tile.Set {
	s := newSet(needs, stringKeys)
	for _, r := range rows {
		s.Append(r.IntKey, r.StrKey, r.Start, r.State)
	}
	return s
}

// mask keeps the fields of st that needs stores.
func mask(needs aggregate.Needs, st aggregate.State) aggregate.State {
	out := aggregate.State{Count: st.Count}
	if needs.HasValues() {
		out.N = st.N
	}
	if needs&tile.NeedSumOrM2 != 0 {
		out.Sum = st.Sum
	}
	if needs&aggregate.NeedM2 != 0 {
		out.M2 = st.M2
	}
	if needs&aggregate.NeedMin != 0 {
		out.Min = st.Min
	}
	if needs&aggregate.NeedMax != 0 {
		out.Max = st.Max
	}
	return out
}

// randomRows makes tiles for keys [0, keys) at hours [fromH, toH), skipping
// some, sorted by (key, start); tag is added to every value.
func randomRows(rng *rand.Rand, needs aggregate.Needs, stringKeys bool, keys int, fromH, toH int64, tag float64) []row {
	var out []row
	for k := range keys {
		for h := fromH; h < toH; h++ {
			if rng.IntN(4) == 0 {
				continue
			}
			var st aggregate.State
			for range 1 + rng.IntN(5) {
				st.Add(tag+rng.NormFloat64()*100, rng.IntN(6) != 0)
			}
			r := row{Start: h * hour, State: mask(needs, st)}
			if stringKeys {
				r.StrKey = fmt.Sprintf("user-%03d", k)
			} else {
				r.IntKey = int64(k*1000 - 3000) // negative keys too
			}
			out = append(out, r)
		}
	}
	if stringKeys {
		slices.SortFunc(out, func(a, b row) int {
			if c := strings.Compare(a.StrKey, b.StrKey); c != 0 {
				return c
			}
			return cmpInt(a.Start, b.Start)
		})
	}
	return out
}

func filterRows(rows []row, keep func(row) bool) []row {
	var out []row
	for _, r := range rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

func sortRows(rows []row) {
	slices.SortFunc(rows, func(a, b row) int {
		if c := strings.Compare(a.StrKey, b.StrKey); c != 0 {
			return c
		}
		if c := cmpInt(a.IntKey, b.IntKey); c != 0 {
			return c
		}
		return cmpInt(a.Start, b.Start)
	})
}

func equalRows(t *testing.T, what string, got *tile.Set, want []row) {
	t.Helper()
	g := rowsOf(got)
	if len(g) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(g, want) {
		n := 0
		for i := range min(len(g), len(want)) {
			if g[i] != want[i] && n < 3 {
				t.Errorf("%s: tile %d: got %+v, want %+v", what, i, g[i], want[i])
				n++
			}
		}
		t.Fatalf("%s: got %d tiles, want %d", what, len(g), len(want))
	}
}

func mustCommit(t *testing.T, s *Store, c Commit) *Manifest {
	t.Helper()
	m, err := s.Commit(context.Background(), c)
	if err != nil {
		t.Fatalf("commit %s %v: %v", c.TileSet, c.Cover, err)
	}
	return m
}

func mustLoad(t *testing.T, s *Store, id string, r Range, keep *KeyFilter) *tile.Set {
	t.Helper()
	m, err := s.Manifest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		t.Fatalf("tile set %s has no manifest", id)
	}
	set, err := s.Load(context.Background(), m, r, keep)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func allNeeds() []aggregate.Needs {
	var out []aggregate.Needs
	for bits := range 16 {
		n := aggregate.NeedCount
		for i, b := range []aggregate.Needs{aggregate.NeedSum, aggregate.NeedM2, aggregate.NeedMin, aggregate.NeedMax} {
			if bits&(1<<i) != 0 {
				n |= b
			}
		}
		out = append(out, n)
	}
	return out
}

func testRoundTrip(t *testing.T, s *Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, stringKeys := range []bool{false, true} {
		for _, needs := range allNeeds() {
			id := fmt.Sprintf("rt.%s.str-%v", strings.ReplaceAll(needs.String(), ",", "_"), stringKeys)
			rows := randomRows(rng, needs, stringKeys, 7, 0, 30, 1e9)
			m := mustCommit(t, s, Commit{
				TileSet: id, Needs: needs, StringKeys: stringKeys, Grid: hourGrid,
				Features: []string{"user.f[7d]"}, Cover: Range{0, 30 * hour}, Tiles: setOf(needs, stringKeys, rows),
			})
			if m.Version != 1 || len(m.Objects) != 1 || m.Objects[0].Rows != int64(len(rows)) {
				t.Fatalf("%s: manifest version %d, objects %+v; want version 1 and one object of %d rows", id, m.Version, m.Objects, len(rows))
			}
			if !slices.Equal(m.Coverage, []Range{{0, 30 * hour}}) {
				t.Fatalf("%s: coverage %v", id, m.Coverage)
			}
			// What a reader sees equals what the writer returned.
			got, err := s.Manifest(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Needs != needs || got.StringKeys != stringKeys || got.Grid != hourGrid || !got.Created.Equal(m.Created) ||
				!reflect.DeepEqual(got.Objects, m.Objects) || !slices.Equal(got.Features, []string{"user.f[7d]"}) {
				t.Fatalf("%s: read manifest %+v, committed %+v", id, got, m)
			}
			all, err := s.Load(ctx, got, everything, nil)
			if err != nil {
				t.Fatal(err)
			}
			if all.Needs != needs || all.Keys.String != stringKeys {
				t.Fatalf("%s: loaded needs %v string keys %v", id, all.Needs, all.Keys.String)
			}
			equalRows(t, id+" all", all, rows)

			// A sub-range and a key filter.
			r := Range{5 * hour, 9 * hour}
			keep := &KeyFilter{Int: map[int64]struct{}{-3000: {}, 2000: {}}, Str: map[string]struct{}{"user-000": {}, "user-005": {}}}
			want := filterRows(rows, func(x row) bool {
				_, ik := keep.Int[x.IntKey]
				_, sk := keep.Str[x.StrKey]
				return r.Contains(x.Start) && (stringKeys && sk || !stringKeys && ik)
			})
			if len(want) == 0 {
				t.Fatalf("%s: test data selects nothing", id)
			}
			part, err := s.Load(ctx, got, r, keep)
			if err != nil {
				t.Fatal(err)
			}
			equalRows(t, id+" part", part, want)
		}
	}
}

func testRangeReplacement(t *testing.T, s *Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	needs := aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedMax
	id := "events.user_id.amount.1h-00000001"
	a := randomRows(rng, needs, false, 6, 0, 10, 0)
	b := randomRows(rng, needs, false, 9, 3, 5, 1e6) // more keys, other values
	c := func(cover Range, rows []row) Commit {
		return Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: cover, Tiles: setOf(needs, false, rows)}
	}
	ma := mustCommit(t, s, c(Range{0, 10 * hour}, a))
	mb := mustCommit(t, s, c(Range{3 * hour, 5 * hour}, b))
	want := append(filterRows(a, func(x row) bool { return !(Range{3 * hour, 5 * hour}).Contains(x.Start) }), b...)
	sortRows(want)
	equalRows(t, "A then B", mustLoad(t, s, id, everything, nil), want)
	if mb.Version != 2 || !slices.Equal(mb.Coverage, []Range{{0, 10 * hour}}) {
		t.Fatalf("after B: version %d coverage %v", mb.Version, mb.Coverage)
	}
	for _, o := range mb.Objects {
		if o.Name == ma.Objects[0].Name {
			t.Fatalf("object %s straddles B's cover but is still listed unchanged", o.Name)
		}
		if o.Range().Overlaps(Range{3 * hour, 5 * hour}) && o.Name != mb.Objects[len(mb.Objects)-1].Name {
			if got := mustLoad(t, s, id, Range{3 * hour, 5 * hour}, nil); len(rowsOf(got)) != len(b) {
				t.Fatalf("rewritten object %s still holds tiles inside B's cover", o.Name)
			}
		}
	}
	equalRows(t, "inside B", mustLoad(t, s, id, Range{3 * hour, 5 * hour}, nil), b)

	// A disjoint cover extends coverage; a cover over everything drops every
	// older object whole.
	mc := mustCommit(t, s, c(Range{12 * hour, 14 * hour}, nil))
	if !slices.Equal(mc.Coverage, []Range{{0, 10 * hour}, {12 * hour, 14 * hour}}) {
		t.Fatalf("coverage %v", mc.Coverage)
	}
	if g := mc.Gaps(Range{-hour, 15 * hour}); !slices.Equal(g, []Range{{-hour, 0}, {10 * hour, 12 * hour}, {14 * hour, 15 * hour}}) {
		t.Fatalf("gaps %v", g)
	}
	d := randomRows(rng, needs, false, 2, 0, 3, 5)
	md := mustCommit(t, s, c(Range{math.MinInt64, 20 * hour}, d))
	if len(md.Objects) != 1 || !slices.Equal(md.Coverage, []Range{{math.MinInt64, 20 * hour}}) {
		t.Fatalf("after D: objects %+v coverage %v", md.Objects, md.Coverage)
	}
	equalRows(t, "D", mustLoad(t, s, id, everything, nil), d)
	if _, err := s.Manifest(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func testIdempotent(t *testing.T, s *Store) {
	rng := rand.New(rand.NewPCG(5, 6))
	needs := aggregate.NeedCount | aggregate.NeedM2
	id := "idem-1"
	a := randomRows(rng, needs, true, 5, 0, 24, 7)
	c := Commit{TileSet: id, Needs: needs, StringKeys: true, Grid: hourGrid, Cover: Range{0, 24 * hour}, Tiles: setOf(needs, true, a)}
	m1 := mustCommit(t, s, c)
	m2 := mustCommit(t, s, c)
	if m2.Version != m1.Version || !reflect.DeepEqual(m2.Objects, m1.Objects) {
		t.Fatalf("re-commit published version %d (objects %v); want version %d unchanged", m2.Version, m2.Objects, m1.Version)
	}
	equalRows(t, "after re-commit", mustLoad(t, s, id, everything, nil), a)
	// Something else in between, then the same data again: the result is A.
	b := randomRows(rng, needs, true, 3, 10, 12, 9)
	mustCommit(t, s, Commit{TileSet: id, Needs: needs, StringKeys: true, Grid: hourGrid, Cover: Range{10 * hour, 12 * hour}, Tiles: setOf(needs, true, b)})
	m4 := mustCommit(t, s, c)
	equalRows(t, "A, B, A", mustLoad(t, s, id, everything, nil), a)
	if !slices.Equal(m4.Coverage, []Range{{0, 24 * hour}}) {
		t.Fatalf("coverage %v", m4.Coverage)
	}
	if n := len(listData(t, s, id)); n < len(m4.Objects) {
		t.Fatalf("%d data objects stored, manifest lists %d", n, len(m4.Objects))
	}
}

// testParts commits tiles given as key partitions loaded one at a time:
// the result loads as the same tiles committed whole; a failing or invalid
// part publishes nothing and leaves no object behind.
func testParts(t *testing.T, s *Store) {
	rng := rand.New(rand.NewPCG(11, 12))
	needs := aggregate.NeedCount | aggregate.NeedSum
	all := randomRows(rng, needs, false, 40, 0, 48, 3)
	// Three parts by key hash: each sorted, keys interleaving across parts.
	var parts [3][]row
	for _, r := range all {
		q := int(uint64(r.IntKey*2654435761) % 3)
		parts[q] = append(parts[q], r)
	}
	loads := 0
	c := Commit{TileSet: "parts", Needs: needs, Grid: hourGrid, Cover: Range{0, 48 * hour}}
	for q := range parts {
		c.Parts = append(c.Parts, func() (*tile.Set, error) { loads++; return setOf(needs, false, parts[q]), nil })
	}
	m := mustCommit(t, s, c)
	if loads != 3 || len(m.Objects) < 3 {
		t.Fatalf("%d part loads, %d objects; want 3 loads and an object per part", loads, len(m.Objects))
	}
	equalRows(t, "committed in parts", mustLoad(t, s, "parts", everything, nil), all)
	keep := &KeyFilter{Int: map[int64]struct{}{all[0].IntKey: {}, all[len(all)-1].IntKey: {}}}
	equalRows(t, "two keys of parts", mustLoad(t, s, "parts", everything, keep), filterRows(all, func(r row) bool {
		_, ok := keep.Int[r.IntKey]
		return ok
	}))
	// The same parts again change nothing.
	if m2 := mustCommit(t, s, c); m2.Version != m.Version {
		t.Fatalf("re-commit of the same parts published version %d after %d", m2.Version, m.Version)
	}
	before := listData(t, s, "parts")

	boom := errors.New("spill file lost")
	bad := c
	bad.Parts = []func() (*tile.Set, error){c.Parts[0], func() (*tile.Set, error) { return nil, boom }}
	if _, err := s.Commit(context.Background(), bad); !errors.Is(err, boom) || !strings.Contains(err.Error(), "part 2 of 2") {
		t.Fatalf("failing part: %v", err)
	}
	outside := c
	outside.Parts = []func() (*tile.Set, error){func() (*tile.Set, error) {
		return setOf(needs, false, []row{{IntKey: 1, Start: 50 * hour, State: all[0].State}}), nil
	}}
	if _, err := s.Commit(context.Background(), outside); err == nil || !strings.Contains(err.Error(), "outside the cover") {
		t.Fatalf("part outside the cover: %v", err)
	}
	both := c
	both.Tiles = setOf(needs, false, all)
	if _, err := s.Commit(context.Background(), both); err == nil {
		t.Fatal("a commit with Tiles and Parts succeeded")
	}
	if m3, _ := s.Manifest(context.Background(), "parts"); m3.Version != m.Version {
		t.Fatalf("failed commits published version %d", m3.Version)
	}
	if after := listData(t, s, "parts"); !slices.Equal(after, before) {
		t.Fatalf("failed commits left objects: %d before, %d after", len(before), len(after))
	}
}

func testConcurrent(t *testing.T, s *Store) {
	needs := aggregate.NeedCount | aggregate.NeedSum
	id := "concurrent"
	const writers, commits = 4, 4
	// Writer w commits day d of its own hours; writer 0 also rewrites a
	// range that straddles everybody's objects.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		want []row
		errs []error
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range commits {
				from := int64(w*commits+i) * 10
				rows := randomRows(rng, needs, false, 3, from, from+10, float64(w))
				_, err := s.Commit(context.Background(), Commit{TileSet: id, Needs: needs, Grid: hourGrid,
					Cover: Range{from * hour, (from + 10) * hour}, Tiles: setOf(needs, false, rows)})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				want = append(want, rows...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	sortRows(want)
	m, err := s.Manifest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != writers*commits {
		t.Fatalf("version %d, want %d", m.Version, writers*commits)
	}
	if !slices.Equal(m.Coverage, []Range{{0, writers * commits * 10 * hour}}) {
		t.Fatalf("coverage %v", m.Coverage)
	}
	equalRows(t, "all writers", mustLoad(t, s, id, everything, nil), want)
}

// listData returns the data object names stored for a tile set.
func listData(t *testing.T, s *Store, id string) []string {
	t.Helper()
	var names []string
	it := s.bucket.List(&blob.ListOptions{Prefix: dataPrefix(id)})
	for {
		o, err := it.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if name := strings.TrimPrefix(o.Key, dataPrefix(id)); strings.HasSuffix(name, dataExt) {
			names = append(names, name)
		}
	}
	return names
}

func testCorrupt(t *testing.T, s *Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 8))
	needs := aggregate.NeedCount | aggregate.NeedSum | aggregate.NeedMin
	id := "corrupt"
	rows := randomRows(rng, needs, false, 4, 0, 10, 1)
	m := mustCommit(t, s, Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{0, 10 * hour}, Tiles: setOf(needs, false, rows)})
	name := m.Objects[0].Name
	key := dataKey(id, name)
	orig, err := s.bucket.ReadAll(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	tamper := map[string][]byte{
		"bit flip": func() []byte { b := slices.Clone(orig); b[len(b)/2] ^= 0x10; return b }(),
		"truncate": orig[:len(orig)-7],
		"append":   append(slices.Clone(orig), 0),
	}
	for what, b := range tamper {
		if err := s.bucket.WriteAll(ctx, key, b, nil); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load(ctx, m, everything, nil)
		if err == nil || !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s: Load returned %v; want ErrChecksum naming %s", what, err, name)
		}
		// A commit that must rewrite the object refuses too.
		_, err = s.Commit(ctx, Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{2 * hour, 3 * hour}})
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s: commit over a damaged object returned %v", what, err)
		}
	}
	if err := s.bucket.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, m, everything, nil); !errors.Is(err, ErrMissingObject) || !strings.Contains(err.Error(), name) {
		t.Fatalf("missing object: Load returned %v", err)
	}
	// Restored, it loads again: the failures above changed no manifest.
	if err := s.bucket.WriteAll(ctx, key, orig, nil); err != nil {
		t.Fatal(err)
	}
	equalRows(t, "restored", mustLoad(t, s, id, everything, nil), rows)
}

func testFailedCommit(t *testing.T, s *Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 10))
	needs := aggregate.NeedCount | aggregate.NeedMax
	id := "failing"
	a := randomRows(rng, needs, false, 4, 0, 10, 1)
	m1 := mustCommit(t, s, Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{0, 10 * hour}, Tiles: setOf(needs, false, a)})
	before := listData(t, s, id)

	b := randomRows(rng, needs, false, 4, 5, 15, 2) // straddles A's object: forces a rewrite too
	commitB := Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{5 * hour, 15 * hour}, Tiles: setOf(needs, false, b)}
	injected := errors.New("injected failure")
	for _, how := range []string{"error", "cancel"} {
		cctx, cancel := context.WithCancel(ctx)
		wrote := 0
		s.hookBeforePublish = func(context.Context) error {
			wrote = len(listData(t, s, id))
			if how == "cancel" {
				cancel()
				return nil
			}
			return injected
		}
		_, err := s.Commit(cctx, commitB)
		cancel()
		s.hookBeforePublish = nil
		if how == "error" && !errors.Is(err, injected) || how == "cancel" && !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: commit returned %v", how, err)
		}
		if wrote != len(before)+2 {
			t.Fatalf("%s: %d data objects when publishing, want %d (new tiles and the rewrite)", how, wrote, len(before)+2)
		}
		m, err := s.Manifest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Version != m1.Version || !reflect.DeepEqual(m.Objects, m1.Objects) || !slices.Equal(m.Coverage, m1.Coverage) {
			t.Fatalf("%s: manifest changed by a failed commit: %+v", how, m)
		}
		equalRows(t, how, mustLoad(t, s, id, everything, nil), a)
		if after := listData(t, s, id); !slices.Equal(after, before) {
			t.Fatalf("%s: failed commit left data objects %v (before %v)", how, after, before)
		}
	}
	// The same commit then succeeds.
	mustCommit(t, s, commitB)
	want := append(filterRows(a, func(x row) bool { return x.Start < 5*hour }), b...)
	sortRows(want)
	equalRows(t, "after B", mustLoad(t, s, id, everything, nil), want)
}

func testDefinitionChanged(t *testing.T, s *Store) {
	needs := aggregate.NeedCount | aggregate.NeedSum
	base := Commit{TileSet: "def", Needs: needs, Grid: hourGrid, Cover: Range{0, hour}}
	mustCommit(t, s, base)
	for what, c := range map[string]Commit{
		"needs":  {TileSet: "def", Needs: needs | aggregate.NeedMin, Grid: hourGrid, Cover: Range{0, hour}},
		"keys":   {TileSet: "def", Needs: needs, StringKeys: true, Grid: hourGrid, Cover: Range{0, hour}},
		"width":  {TileSet: "def", Needs: needs, Grid: tile.Grid{Width: hour / 2}, Cover: Range{0, hour}},
		"origin": {TileSet: "def", Needs: needs, Grid: tile.Grid{Width: hour, Origin: 60e6}, Cover: Range{60e6, hour + 60e6}},
	} {
		_, err := s.Commit(context.Background(), c)
		if !errors.Is(err, ErrDefinitionChanged) || !strings.Contains(err.Error(), "new tile set") {
			t.Errorf("%s: commit returned %v, want ErrDefinitionChanged", what, err)
		}
	}
}

func testInvalid(t *testing.T, s *Store) {
	needs := aggregate.NeedCount | aggregate.NeedSum
	ok := func(rows ...row) *tile.Set { return setOf(needs, false, rows) }
	st := aggregate.State{Count: 1, N: 1, Sum: 2}
	for what, c := range map[string]Commit{
		"bad id":          {TileSet: "a/b", Needs: needs, Grid: hourGrid, Cover: Range{0, hour}},
		"dot id":          {TileSet: "..", Needs: needs, Grid: hourGrid, Cover: Range{0, hour}},
		"no grid":         {TileSet: "x", Needs: needs, Cover: Range{0, hour}},
		"empty cover":     {TileSet: "x", Needs: needs, Grid: hourGrid, Cover: Range{hour, hour}},
		"unaligned cover": {TileSet: "x", Needs: needs, Grid: hourGrid, Cover: Range{1, hour}},
		"outside cover":   {TileSet: "x", Needs: needs, Grid: hourGrid, Cover: Range{0, hour}, Tiles: ok(row{IntKey: 1, Start: hour, State: st})},
		"unaligned tile":  {TileSet: "x", Needs: needs, Grid: hourGrid, Cover: Range{0, 2 * hour}, Tiles: ok(row{IntKey: 1, Start: 5, State: st})},
		"unsorted": {TileSet: "x", Needs: needs, Grid: hourGrid, Cover: Range{0, 2 * hour},
			Tiles: ok(row{IntKey: 2, State: st}, row{IntKey: 1, State: st})},
		"duplicate": {TileSet: "x", Needs: needs, Grid: hourGrid, Cover: Range{0, 2 * hour},
			Tiles: ok(row{IntKey: 1, State: st}, row{IntKey: 1, State: st})},
		"needs mismatch": {TileSet: "x", Needs: needs | aggregate.NeedMin, Grid: hourGrid, Cover: Range{0, hour},
			Tiles: ok(row{IntKey: 1, State: st})},
		"ragged": {TileSet: "x", Needs: needs, Grid: hourGrid, Cover: Range{0, hour},
			Tiles: &tile.Set{Needs: needs, Keys: tile.Keys{Int: []int64{1}}, Start: []int64{0}, Count: []int64{1}, N: []int64{1}}},
	} {
		if _, err := s.Commit(context.Background(), c); err == nil {
			t.Errorf("%s: commit succeeded", what)
		}
	}
	if m, err := s.Manifest(context.Background(), "x"); m != nil || err != nil {
		t.Fatalf("invalid commits published %+v, %v", m, err)
	}
}

func testEmptyCommit(t *testing.T, s *Store) {
	m := mustCommit(t, s, Commit{TileSet: "quiet", Needs: aggregate.NeedCount, Grid: hourGrid, Cover: Range{math.MinInt64, 48 * hour}})
	if len(m.Objects) != 0 || !m.Covers(Range{-1000 * hour, 48 * hour}) || m.Covers(Range{0, 49 * hour}) {
		t.Fatalf("manifest %+v", m)
	}
	got := mustLoad(t, s, "quiet", everything, nil)
	if got.Len() != 0 || got.Count == nil || got.Keys.Int == nil {
		t.Fatalf("loaded %+v, want an empty set with its columns", got)
	}
}

func testList(t *testing.T, s *Store) {
	ctx := context.Background()
	if m, err := s.Manifest(ctx, "nothing-here"); m != nil || err != nil {
		t.Fatalf("Manifest of an unknown tile set: %v, %v", m, err)
	}
	if ms, err := s.List(ctx); len(ms) != 0 || err != nil {
		t.Fatalf("List of an empty store: %v, %v", ms, err)
	}
	for _, id := range []string{"b.x", "a.y", "c.z-1h"} {
		mustCommit(t, s, Commit{TileSet: id, Needs: aggregate.NeedCount, Grid: hourGrid, Cover: Range{0, hour}})
	}
	mustCommit(t, s, Commit{TileSet: "a.y", Needs: aggregate.NeedCount, Grid: hourGrid, Cover: Range{hour, 2 * hour}})
	ms, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.TileSet+"@"+strconv.FormatInt(m.Version, 10))
	}
	if !slices.Equal(got, []string{"a.y@2", "b.x@1", "c.z-1h@1"}) {
		t.Fatalf("List = %v", got)
	}
	if _, err := s.Load(ctx, nil, everything, nil); err == nil {
		t.Fatal("Load of a nil manifest succeeded")
	}
}

func testPruning(t *testing.T, s *Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 12))
	needs := aggregate.NeedCount | aggregate.NeedSum
	id := "pruned"
	var all []row
	for day := range int64(4) { // one object per day
		rows := randomRows(rng, needs, false, 5, day*24, day*24+24, 0)
		mustCommit(t, s, Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{day * 24 * hour, (day + 1) * 24 * hour}, Tiles: setOf(needs, false, rows)})
		all = append(all, rows...)
	}
	// A fifth object holding keys far from the others only.
	far := []row{{IntKey: 1 << 40, Start: 100 * hour, State: aggregate.State{Count: 1, N: 1, Sum: 1}}}
	mustCommit(t, s, Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{100 * hour, 101 * hour}, Tiles: setOf(needs, false, far)})
	all = append(all, far...)
	sortRows(all)
	m, err := s.Manifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	read := func(r Range, keep *KeyFilter) (*tile.Set, int64, int64) {
		b0, o0 := s.BytesRead(), s.ObjectsRead()
		set, err := s.Load(ctx, m, r, keep)
		if err != nil {
			t.Fatal(err)
		}
		return set, s.BytesRead() - b0, s.ObjectsRead() - o0
	}
	set, bytesAll, objs := read(everything, nil)
	equalRows(t, "everything", set, all)
	if objs != 5 || bytesAll != totalBytes(m) {
		t.Fatalf("full load read %d objects, %d bytes; want 5, %d", objs, bytesAll, totalBytes(m))
	}
	r := Range{25 * hour, 30 * hour}
	set, bytesDay, objs := read(r, nil)
	equalRows(t, "day 2", set, filterRows(all, func(x row) bool { return r.Contains(x.Start) }))
	if objs != 1 || bytesDay >= bytesAll/3 {
		t.Fatalf("day load read %d objects, %d bytes of %d", objs, bytesDay, bytesAll)
	}
	set, _, objs = read(everything, &KeyFilter{Int: map[int64]struct{}{1 << 40: {}}})
	equalRows(t, "far key", set, far)
	if objs != 1 {
		t.Fatalf("far-key load read %d objects, want 1", objs)
	}
	if set, _, objs = read(Range{200 * hour, 300 * hour}, nil); set.Len() != 0 || objs != 0 {
		t.Fatalf("load past the data read %d objects, %d tiles", objs, set.Len())
	}
}

func totalBytes(m *Manifest) int64 {
	var n int64
	for _, o := range m.Objects {
		n += o.Bytes
	}
	return n
}
