package tilestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tessera-fe/tessera/aggregate"
)

func openDir(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestLocalDirectory(t *testing.T) { testAcceptance(t, openDir) }

func TestFileURL(t *testing.T) {
	testAcceptance(t, func(t *testing.T) *Store {
		u := url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(t.TempDir(), "via url"))}
		s, err := Open(context.Background(), u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if s.Location() != u.String() {
			t.Fatalf("Location() = %q, want %q", s.Location(), u.String())
		}
		return s
	})
}

func TestOpenDirectoryLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustCommit(t, s, Commit{TileSet: "tx.user_id.amount.1h-3fa2c1d0", Needs: aggregate.NeedCount, Grid: hourGrid, Cover: Range{0, hour},
		Tiles: setOf(aggregate.NeedCount, false, []row{{IntKey: 1, State: aggregate.State{Count: 3}}})})
	var files []string
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[1] != "tilesets/tx.user_id.amount.1h-3fa2c1d0/manifests/00000000000000000001.json" ||
		!strings.HasPrefix(files[0], "tilesets/tx.user_id.amount.1h-3fa2c1d0/data/") || !strings.HasSuffix(files[0], ".parquet") {
		t.Fatalf("files %v: want one data object and manifest version 1, no sidecar or temporary files", files)
	}
	body, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(files[1])))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"schema_version": 2`, `"needs": "count"`, `"width_us": 3600000000`, `"from_us": 0`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("manifest lacks %s:\n%s", want, body)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	for _, loc := range []string{"", "nosuchscheme://bucket/x", "file://"} {
		if s, err := Open(context.Background(), loc); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", loc)
		}
	}
}

func TestMergeRanges(t *testing.T) {
	for _, c := range []struct{ in, want []Range }{
		{nil, nil},
		{[]Range{{5, 5}}, nil},
		{[]Range{{3, 5}, {0, 1}, {1, 2}, {4, 9}}, []Range{{0, 2}, {3, 9}}},
		{[]Range{{math.MinInt64, 0}, {0, math.MaxInt64}}, []Range{{math.MinInt64, math.MaxInt64}}},
		{[]Range{{0, 10}, {2, 3}}, []Range{{0, 10}}},
	} {
		if got := MergeRanges(c.in); !slices.Equal(got, c.want) {
			t.Errorf("MergeRanges(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	m := &Manifest{Coverage: []Range{{0, 10}, {20, 30}}}
	if g := m.Gaps(Range{5, 25}); !slices.Equal(g, []Range{{10, 20}}) {
		t.Errorf("Gaps = %v", g)
	}
	if g := m.Gaps(Range{0, 10}); g != nil || !m.Covers(Range{0, 10}) || m.Covers(Range{0, 11}) {
		t.Errorf("Gaps = %v", g)
	}
}

func TestManifestVersionNames(t *testing.T) {
	if k := manifestKey("x", 42); k != "tilesets/x/manifests/00000000000000000042.json" {
		t.Fatal(k)
	}
	for name, want := range map[string]int64{"00000000000000000042.json": 42, ".tmp-123": 0, "42.json": 0, "0000000000000000004a.json": 0} {
		if v, _ := parseVersion(name); v != want {
			t.Errorf("parseVersion(%q) = %d, want %d", name, v, want)
		}
	}
}

func testRowGroups(t *testing.T, s *Store) {
	ctx := context.Background()
	needs := aggregate.NeedCount | aggregate.NeedMin
	var rows []row
	for k := range int64(700) {
		for h := range int64(100) {
			rows = append(rows, row{IntKey: k, Start: h * hour, State: aggregate.State{Count: 1, N: 1, Min: float64(k*h) / 3}})
		}
	}
	m := mustCommit(t, s, Commit{TileSet: "big", Needs: needs, Grid: hourGrid, Cover: Range{0, 100 * hour}, Tiles: setOf(needs, false, rows)})
	equalRows(t, "big", mustLoad(t, s, "big", everything, nil), rows)
	data, err := s.bucket.ReadAll(ctx, dataKey("big", m.Objects[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if n, want := len(f.RowGroups()), (len(rows)+rowGroupRows(len(rows))-1)/rowGroupRows(len(rows)); n != want || len(m.Objects[0].RowGroups) != want {
		t.Fatalf("%d rows in %d row groups (manifest: %d), want %d", len(rows), n, len(m.Objects[0].RowGroups), want)
	}
	// A ranged load of one key reads a small part, and verifies it: a bit
	// flip in the row group it needs is an error naming the object and the
	// row group; a load that does not need that row group is unaffected.
	o := m.Objects[0]
	one := &KeyFilter{Int: map[int64]struct{}{350: {}}}
	b0 := s.BytesRead()
	got := mustLoad(t, s, "big", everything, one)
	if read := s.BytesRead() - b0; read*4 > o.Bytes {
		t.Fatalf("loading one key of 700 read %d of %d bytes", read, o.Bytes)
	}
	equalRows(t, "key 350", got, filterRows(rows, func(x row) bool { return x.IntKey == 350 }))
	gi := 350 * 100 / RowGroupRows // key 350's tiles are rows 35000-35099
	g := o.RowGroups[gi]
	if g.MinKey > "350" || g.MaxKey < "350" || (350*100+99)/RowGroupRows != gi {
		t.Fatalf("row group %d holds keys %s-%s; the test needs key 350 in one row group", gi, g.MinKey, g.MaxKey)
	}
	bad := slices.Clone(data)
	bad[g.Offset+g.Length/2] ^= 0x04
	if err := s.bucket.WriteAll(ctx, dataKey("big", o.Name), bad, nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(ctx, m, everything, one)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), o.Name) || !strings.Contains(err.Error(), fmt.Sprintf("row group %d", gi)) {
		t.Fatalf("ranged load over a flipped bit returned %v; want ErrChecksum naming %s and row group %d", err, o.Name, gi)
	}
	other := &KeyFilter{Int: map[int64]struct{}{0: {}}}
	if gi == 0 {
		other = &KeyFilter{Int: map[int64]struct{}{699: {}}}
	}
	if _, err := s.Load(ctx, m, everything, other); err != nil {
		t.Fatalf("ranged load of an intact row group: %v", err)
	}
	if p, err := s.Verify(ctx, "big"); err != nil || len(p) != 1 || p[0].Object != o.Name {
		t.Fatalf("Verify of the flipped bit: %v, %v", p, err)
	}
	if err := s.bucket.WriteAll(ctx, dataKey("big", o.Name), data, nil); err != nil {
		t.Fatal(err)
	}
	for _, rg := range f.RowGroups() {
		if rg.NumRows() > int64(rowGroupRows(len(rows))) {
			t.Fatalf("row group of %d rows", rg.NumRows())
		}
	}
	leaf, _ := f.Schema().Lookup("bucket_start")
	if lt := leaf.Node.Type().LogicalType().String(); !strings.Contains(lt, "TIMESTAMP") || !strings.Contains(lt, "isAdjustedToUTC=true") || !strings.Contains(lt, "MICROS") {
		t.Fatalf("bucket_start logical type %v, want TIMESTAMP(MICROS, UTC)", lt)
	}
}

func testVerify(t *testing.T, s *Store) {
	ctx := context.Background()
	needs := aggregate.NeedCount | aggregate.NeedSum
	rows := []row{{IntKey: 1, State: aggregate.State{Count: 2, N: 1, Sum: 4}}, {IntKey: 2, Start: hour, State: aggregate.State{Count: 1}}}
	m := mustCommit(t, s, Commit{TileSet: "v", Needs: needs, Grid: hourGrid, Cover: Range{0, 2 * hour}, Tiles: setOf(needs, false, rows)})
	if p, err := s.Verify(ctx, "v"); err != nil || len(p) != 0 {
		t.Fatalf("Verify of a sound tile set: %v, %v", p, err)
	}
	if _, err := s.Verify(ctx, "unknown"); err == nil {
		t.Fatal("Verify of an unknown tile set succeeded")
	}
	key := dataKey("v", m.Objects[0].Name)
	if err := s.bucket.WriteAll(ctx, key, []byte("not parquet"), nil); err != nil {
		t.Fatal(err)
	}
	p, err := s.Verify(ctx, "v")
	if err != nil || len(p) != 1 || p[0].Object != m.Objects[0].Name || !strings.Contains(p[0].String(), "SHA-256") && !strings.Contains(p[0].String(), "size") {
		t.Fatalf("Verify of a damaged object: %v, %v", p, err)
	}
	if err := s.bucket.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Verify(ctx, "v"); len(p) != 1 || !strings.Contains(p[0].Message, "missing") {
		t.Fatalf("Verify of a missing object: %v", p)
	}
}

// testChecksums checks what each checksum guards: reads check the CRC-32C
// of objects that record one and the SHA-256 of objects of schema version 1
// (rewritten here as that version's writer wrote them), whole or by row
// group; Verify checks the SHA-256 of both.
func testChecksums(t *testing.T, s *Store) {
	ctx := context.Background()
	needs := aggregate.NeedCount | aggregate.NeedSum
	var rows []row
	for k := range int64(300) {
		for h := range int64(20) {
			rows = append(rows, row{IntKey: k, Start: h * hour, State: aggregate.State{Count: 1, N: 1, Sum: float64(k - h)}})
		}
	}
	m := mustCommit(t, s, Commit{TileSet: "sums", Needs: needs, Grid: hourGrid, Cover: Range{0, 20 * hour}, Tiles: setOf(needs, false, rows)})
	o := m.Objects[0]
	if len(o.CRC32C) != 8 || len(o.SHA256) != 64 || len(o.FooterCRC32C) != 8 || o.FooterSHA256 != "" || len(o.RowGroups) < 3 {
		t.Fatalf("object recorded as %+v; want a CRC-32C and a SHA-256, a footer CRC-32C and row groups", o)
	}
	key := dataKey("sums", o.Name)
	data, err := s.bucket.ReadAll(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	one := &KeyFilter{Int: map[int64]struct{}{150: {}}}
	wantOne := filterRows(rows, func(x row) bool { return x.IntKey == 150 })
	// publish writes m's objects as the next manifest version.
	publish := func(objs []Object) *Manifest {
		t.Helper()
		next := *m
		next.Version++
		next.Objects = objs
		b, err := encodeManifest(&next, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.bucket.WriteAll(ctx, manifestKey("sums", next.Version), b, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.Manifest(ctx, "sums")
		if err != nil || got.Version != next.Version {
			t.Fatalf("manifest version %d: %v, %v", next.Version, got, err)
		}
		m = got
		return got
	}
	// corrupt flips a bit of row group gi (or the footer, -1) and returns
	// what restores the object.
	corrupt := func(gi int) func() {
		t.Helper()
		at := o.Footer + 2
		if gi >= 0 {
			at = o.RowGroups[gi].Offset + o.RowGroups[gi].Length/2
		}
		bad := slices.Clone(data)
		bad[at] ^= 0x10
		if err := s.bucket.WriteAll(ctx, key, bad, nil); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := s.bucket.WriteAll(ctx, key, data, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	gi := 150 * 20 / RowGroupRows
	for _, c := range []struct {
		name, sum string
		objs      func() []Object
	}{
		{"schema 2", "CRC-32C", func() []Object { return []Object{o} }},
		{"schema 1", "SHA-256", func() []Object {
			v1 := o
			v1.Schema, v1.CRC32C, v1.FooterCRC32C, v1.FooterSHA256 = 1, "", "", sha256Hex(data[o.Footer:])
			v1.RowGroups = slices.Clone(o.RowGroups)
			for i, g := range v1.RowGroups {
				v1.RowGroups[i].CRC32C, v1.RowGroups[i].SHA256 = "", sha256Hex(data[g.Offset:g.Offset+g.Length])
			}
			return []Object{v1}
		}},
	} {
		m := publish(c.objs())
		equalRows(t, c.name, mustLoad(t, s, "sums", everything, nil), rows)
		equalRows(t, c.name+", one key", mustLoad(t, s, "sums", everything, one), wantOne)
		if p, err := s.Verify(ctx, "sums"); err != nil || len(p) != 0 {
			t.Fatalf("%s: Verify of a sound object: %v, %v", c.name, p, err)
		}
		for _, part := range []int{gi, -1} {
			restore := corrupt(part)
			for what, keep := range map[string]*KeyFilter{"whole": nil, "ranged": one} {
				_, err := s.Load(ctx, m, everything, keep)
				if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), c.sum+" ") || !strings.Contains(err.Error(), o.Name) {
					t.Fatalf("%s: %s load with a flipped bit in part %d returned %v; want ErrChecksum naming the %s and %s", c.name, what, part, err, c.sum, o.Name)
				}
			}
			p, err := s.Verify(ctx, "sums")
			if err != nil || len(p) != 1 || !strings.Contains(p[0].Message, c.sum+" ") {
				t.Fatalf("%s: Verify of a flipped bit in part %d: %v, %v", c.name, part, p, err)
			}
			restore()
		}
	}
	// The SHA-256 names the content: a manifest that records another one
	// reads (the CRC-32C matches) but does not verify.
	wrong := o
	wrong.SHA256 = sha256Hex([]byte("other"))
	publish([]Object{wrong})
	equalRows(t, "wrong SHA-256", mustLoad(t, s, "sums", everything, nil), rows)
	if p, err := s.Verify(ctx, "sums"); err != nil || len(p) != 1 || !strings.Contains(p[0].Message, "SHA-256 is "+o.SHA256) {
		t.Fatalf("Verify of an object whose SHA-256 the manifest misrecords: %v, %v", p, err)
	}
}

func testGC(t *testing.T, s *Store) {
	ctx := context.Background()
	needs := aggregate.NeedCount
	id := "gc"
	commit := func(h int64) *Manifest {
		return mustCommit(t, s, Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{0, 24 * hour},
			Tiles: setOf(needs, false, []row{{IntKey: h, Start: h * hour, State: aggregate.State{Count: h + 1}}})})
	}
	first := commit(0)
	if removed, err := s.GC(ctx, 0); err != nil || len(removed) != 0 {
		t.Fatalf("GC of a single version removed %v, %v", removed, err)
	}
	for h := int64(1); h <= 12; h++ {
		commit(h)
	}
	// An object that no manifest lists (a commit that died before publishing).
	orphan := dataKey(id, "20000101T000000.000000000Z-0000000000000000.parquet")
	if err := s.bucket.WriteAll(ctx, orphan, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	// Nothing is old enough yet.
	if removed, err := s.GC(ctx, time.Hour); err != nil || len(removed) != 0 {
		t.Fatalf("GC(1h) removed %v, %v", removed, err)
	}
	removed, err := s.GC(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 13 versions: 3 pruned, with the 3 objects only they listed, and the orphan.
	want := []string{manifestKey(id, 1), manifestKey(id, 2), manifestKey(id, 3),
		dataKey(id, first.Objects[0].Name), orphan}
	for _, w := range want {
		if !slices.Contains(removed, w) {
			t.Errorf("GC did not remove %s (removed %v)", w, removed)
		}
	}
	if len(removed) != 7 {
		t.Errorf("GC removed %d keys, want 7: %v", len(removed), removed)
	}
	m, err := s.Manifest(ctx, id)
	if err != nil || m.Version != 13 {
		t.Fatalf("newest manifest after GC: %v, %v", m, err)
	}
	equalRows(t, "after GC", mustLoad(t, s, id, everything, nil), []row{{IntKey: 12, Start: 12 * hour, State: aggregate.State{Count: 13}}})
	if p, err := s.Verify(ctx, id); err != nil || len(p) != 0 {
		t.Fatalf("Verify after GC: %v, %v", p, err)
	}
	// A commit still builds on the newest version.
	if m := commit(5); m.Version != 14 {
		t.Fatalf("commit after GC published version %d", m.Version)
	}
}

// testPrunedSlot: a writer stalls after reading version 1; meanwhile others
// publish versions 2..13 and GC prunes versions 1..3. The stalled writer's
// create of version 2 then succeeds, hidden behind the newer versions; the
// commit must notice and publish again on top of the newest.
func testPrunedSlot(t *testing.T, s *Store) {
	ctx := context.Background()
	needs := aggregate.NeedCount
	id := "pruned-slot"
	commitHour := func(h int64) Commit {
		return Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{h * hour, (h + 1) * hour},
			Tiles: setOf(needs, false, []row{{IntKey: 7, Start: h * hour, State: aggregate.State{Count: h + 1}}})}
	}
	mustCommit(t, s, commitHour(0))
	fired := false
	s.hookBeforePublish = func(context.Context) error {
		s.hookBeforePublish = nil
		fired = true
		for h := int64(1); h <= 12; h++ {
			mustCommit(t, s, commitHour(h))
		}
		if _, err := s.GC(ctx, 0); err != nil {
			t.Fatal(err)
		}
		return nil
	}
	m, err := s.Commit(ctx, commitHour(20))
	if err != nil {
		t.Fatal(err)
	}
	if !fired || m.Version != 14 {
		t.Fatalf("stalled commit published version %d (hook ran: %v), want 14", m.Version, fired)
	}
	var want []row
	for _, h := range []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 20} {
		want = append(want, row{IntKey: 7, Start: h * hour, State: aggregate.State{Count: h + 1}})
	}
	equalRows(t, "after the stalled commit", mustLoad(t, s, id, everything, nil), want)
}

// TestManifestParsedOnce checks the store's parsed manifests: the same bytes
// are not parsed again, each read returns a manifest of its own, and bytes
// that changed (a new version, or a file rewritten in place) are parsed.
func TestManifestParsedOnce(t *testing.T) {
	ctx := context.Background()
	s := openDir(t)
	needs := aggregate.NeedCount | aggregate.NeedSum
	rows := manyGroupRows(needs, false, 100, 30, 1)
	m := mustCommit(t, s, Commit{TileSet: "p", Needs: needs, Grid: hourGrid, Cover: Range{0, 30 * hour}, Tiles: setOf(needs, false, rows)})
	read := func() *Manifest {
		t.Helper()
		got, err := s.Manifest(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := read()
	if !reflect.DeepEqual(first, m) {
		t.Fatalf("read %+v, committed %+v", first, m)
	}
	// Mark the parsed copy: the next read of the same bytes returns it.
	s.parsed["p"].m.Features = []string{"parsed before"}
	second := read()
	if !slices.Equal(second.Features, []string{"parsed before"}) {
		t.Fatalf("the same bytes were parsed again: features %v", second.Features)
	}
	// Each read has its own copy.
	second.Objects[0].RowGroups[0].Rows = -1
	second.Coverage[0].To = 1
	if third := read(); third.Objects[0].RowGroups[0].Rows < 0 || third.Coverage[0].To == 1 {
		t.Fatal("a change to one read's manifest reached the next")
	}
	// A file rewritten in place is parsed again.
	key := manifestKey("p", m.Version)
	b, err := s.bucket.ReadAll(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	edited := *m
	edited.Features = []string{"edited"}
	b2, err := encodeManifest(&edited, "")
	if err != nil || bytes.Equal(b, b2) {
		t.Fatalf("re-encoding: %v", err)
	}
	if err := s.bucket.WriteAll(ctx, key, b2, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(); !slices.Equal(got.Features, []string{"edited"}) {
		t.Fatalf("a rewritten manifest read as features %v", got.Features)
	}
	// So is a new version.
	m2 := mustCommit(t, s, Commit{TileSet: "p", Needs: needs, Grid: hourGrid, Cover: Range{30 * hour, 31 * hour}, Tiles: setOf(needs, false, nil)})
	if got := read(); got.Version != m2.Version || !reflect.DeepEqual(got.Coverage, m2.Coverage) {
		t.Fatalf("after a commit read version %d coverage %v, want %d %v", got.Version, got.Coverage, m2.Version, m2.Coverage)
	}
}

// TestDecodeManifestChecksums checks that a manifest whose objects lack a
// readable checksum is refused as damaged, and that objects of schema
// version 1, with SHA-256s alone, are read.
func TestDecodeManifestChecksums(t *testing.T) {
	needs := aggregate.NeedCount
	set := setOf(needs, false, manyGroupRows(needs, false, 50, 50, 1))
	data, o, err := encodeObject("x.parquet", set, 0, set.Len(), hour)
	if err != nil || len(o.RowGroups) < 2 {
		t.Fatalf("%d row groups, %v", len(o.RowGroups), err)
	}
	m := &Manifest{TileSet: "c", Version: 1, Needs: needs, Grid: hourGrid, Objects: []Object{o}, Coverage: []Range{{0, 50 * hour}}}
	v1 := o
	v1.CRC32C, v1.FooterCRC32C, v1.FooterSHA256 = "", "", sha256Hex(data[o.Footer:])
	v1.RowGroups = slices.Clone(o.RowGroups)
	for i, g := range v1.RowGroups {
		v1.RowGroups[i].CRC32C, v1.RowGroups[i].SHA256 = "", sha256Hex(data[g.Offset:g.Offset+g.Length])
	}
	for _, c := range []struct {
		name string
		edit func(o *Object)
		bad  string // "" when the manifest reads
	}{
		{"as written", func(*Object) {}, ""},
		{"schema 1", func(o *Object) { *o = v1 }, ""},
		{"object crc32c not hex", func(o *Object) { o.CRC32C = "zzzzzzzz" }, "crc32c"},
		{"object crc32c short", func(o *Object) { o.CRC32C = "abc" }, "crc32c"},
		{"no footer checksum", func(o *Object) { o.FooterCRC32C = "" }, "footer_crc32c"},
		{"row group crc32c not hex", func(o *Object) {
			o.RowGroups = slices.Clone(o.RowGroups)
			o.RowGroups[1].CRC32C = "0123456g"
		}, "row_groups[1]"},
		{"row group without checksum", func(o *Object) {
			o.RowGroups = slices.Clone(o.RowGroups)
			o.RowGroups[0].CRC32C = ""
		}, "row_groups[0]"},
	} {
		mm := *m
		mm.Objects = []Object{o}
		c.edit(&mm.Objects[0])
		b, err := encodeManifest(&mm, "")
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := decodeManifest("v.json", b)
		switch {
		case c.bad == "" && err != nil:
			t.Fatalf("%s: %v", c.name, err)
		case c.bad == "" && !reflect.DeepEqual(got.Objects, mm.Objects):
			t.Fatalf("%s: read %+v, wrote %+v", c.name, got.Objects, mm.Objects)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad) || !strings.Contains(err.Error(), "damaged")):
			t.Fatalf("%s: %v; want an error naming %s", c.name, err, c.bad)
		}
	}
}
