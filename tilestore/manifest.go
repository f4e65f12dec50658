package tilestore

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

// SchemaVersion is the version of the manifest and tile object formats this
// package writes. It refuses to read anything newer. Version 2 records
// CRC-32C checksums for reads (see checksum.go): of the whole object, its
// footer and each row group, which no longer record a SHA-256.
const SchemaVersion = 2

// Range is a half-open range of bucket starts [From, To) in microseconds since
// the Unix epoch, aligned to the tile set's grid. math.MinInt64 and
// math.MaxInt64 stand for unbounded ends.
type Range struct{ From, To int64 }

// Empty reports whether the range holds no time.
func (r Range) Empty() bool { return r.From >= r.To }

// Contains reports whether bucket start ts lies in r.
func (r Range) Contains(ts int64) bool { return r.From <= ts && ts < r.To }

// Overlaps reports whether r and o share any time.
func (r Range) Overlaps(o Range) bool { return r.From < o.To && o.From < r.To }

// Object describes one immutable tile object listed by a manifest.
type Object struct {
	Name   string // file name under tilesets/<id>/data/
	Rows   int64  // tiles in the object
	Bytes  int64  // size of the object
	SHA256 string // hex SHA-256 of the object's bytes, which names its content
	// CRC32C is the hex CRC-32C of the object's bytes, which whole reads
	// check; empty for objects of schema version 1, read by their SHA-256.
	CRC32C string
	From   int64  // smallest bucket start in the object
	To     int64  // largest bucket start plus the bucket width
	MinKey string // smallest key (int keys as decimal text)
	MaxKey string // largest key (int keys as decimal text)
	// Keys is the number of distinct keys in the object; 0 when the
	// object was written without it (or holds no tiles).
	Keys   int64
	Schema int // tile object format version
	// Footer is the offset of the Parquet footer (the file metadata, its
	// length and the closing magic run to the end of the object) and
	// FooterCRC32C the hex CRC-32C of those bytes (FooterSHA256 their
	// SHA-256 in objects of schema version 1). Zero and empty for objects
	// written without row group records.
	Footer       int64
	FooterCRC32C string
	FooterSHA256 string
	// RowGroups describe the object's Parquet row groups in file order, so
	// that a reader fetches and verifies only the row groups it needs. Nil
	// for objects written without them: those are read whole.
	RowGroups []RowGroup
}

// RowGroup describes one Parquet row group of a tile object: the byte range
// of its column chunks, its checksum and the statistics readers prune on.
type RowGroup struct {
	Offset int64  // first byte of the row group's column chunks
	Length int64  // bytes from Offset to the end of its last column chunk
	CRC32C string // hex CRC-32C of those bytes
	SHA256 string // hex SHA-256 of those bytes, in objects of schema version 1
	Rows   int64  // tiles in the row group
	From   int64  // smallest bucket start
	To     int64  // largest bucket start plus the bucket width
	MinKey string // smallest key (int keys as decimal text)
	MaxKey string // largest key (int keys as decimal text)
}

// Range returns the bucket range [From, To) of the row group's tiles.
func (g RowGroup) Range() Range { return Range{g.From, g.To} }

func (g RowGroup) sum() recordedSum { return recordedSum{g.CRC32C, g.SHA256} }

// sum is the checksum a whole read checks; footerSum the footer's.
func (o Object) sum() recordedSum       { return recordedSum{o.CRC32C, o.SHA256} }
func (o Object) footerSum() recordedSum { return recordedSum{o.FooterCRC32C, o.FooterSHA256} }
func (f objectFile) footerSum() recordedSum {
	return recordedSum{f.FooterCRC32C, f.FooterSHA256}
}

// Range returns the bucket range [From, To) of the object's tiles.
func (o Object) Range() Range { return Range{o.From, o.To} }

// Manifest is one version of a tile set's state: its definition, the objects
// holding its tiles and the coverage that backfills proved.
type Manifest struct {
	TileSet    string
	Version    int64 // 1 for the first commit, +1 for each later one
	Created    time.Time
	Needs      aggregate.Needs
	StringKeys bool
	Grid       tile.Grid
	Features   []string // informational: features served when last committed
	Objects    []Object
	Coverage   []Range // sorted, non-overlapping, merged
}

// clone returns a copy of m that shares no memory with it that either
// could change.
func (m *Manifest) clone() *Manifest {
	c := *m
	c.Features = slices.Clone(m.Features)
	c.Coverage = slices.Clone(m.Coverage)
	c.Objects = slices.Clone(m.Objects)
	for i := range c.Objects {
		c.Objects[i].RowGroups = slices.Clone(c.Objects[i].RowGroups)
	}
	return &c
}

// Rows returns the number of tiles in the tile set.
func (m *Manifest) Rows() int64 {
	var n int64
	for _, o := range m.Objects {
		n += o.Rows
	}
	return n
}

// Keys returns the number of distinct grouping keys of the tile set's tiles,
// from the key counts and key ranges that commits record per object, without
// reading any object. It is exact when the objects' key ranges are disjoint
// or meet only at their ends (the objects of one commit, as a full backfill
// writes them). When ranges overlap (objects of commits over different time
// ranges usually hold the same keys) it is an upper bound: the sum of the
// objects' counts. Objects written before key counts were recorded count one
// key per tile, which also makes the result an upper bound.
func (m *Manifest) Keys() (n int64, exact bool) {
	type span struct {
		lo, hi   string // key range as recorded
		ilo, ihi int64  // int keys: the same, parsed
	}
	exact = true
	spans := make([]span, 0, len(m.Objects))
	for _, o := range m.Objects {
		if o.Rows <= 0 {
			continue
		}
		if o.Keys > 0 {
			n += o.Keys
		} else {
			n += o.Rows
			exact = false
		}
		sp := span{lo: o.MinKey, hi: o.MaxKey}
		if !m.StringKeys {
			var err1, err2 error
			sp.ilo, err1 = strconv.ParseInt(o.MinKey, 10, 64)
			sp.ihi, err2 = strconv.ParseInt(o.MaxKey, 10, 64)
			if err1 != nil || err2 != nil {
				exact = false
			}
		}
		spans = append(spans, sp)
	}
	if !exact || len(spans) < 2 {
		return n, exact
	}
	cmpKeys := func(a string, ai int64, b string, bi int64) int {
		if m.StringKeys {
			return strings.Compare(a, b)
		}
		return cmpInt(ai, bi)
	}
	slices.SortFunc(spans, func(a, b span) int { return cmpKeys(a.lo, a.ilo, b.lo, b.ilo) })
	top := spans[0] // the span reaching the largest key so far
	for _, sp := range spans[1:] {
		switch c := cmpKeys(top.hi, top.ihi, sp.lo, sp.ilo); {
		case c > 0:
			return n, false // overlapping ranges
		case c == 0:
			n-- // both hold the key where they meet
		}
		if cmpKeys(sp.hi, sp.ihi, top.hi, top.ihi) > 0 {
			top = sp
		}
	}
	return n, true
}

// Covers reports whether the coverage includes all of r.
func (m *Manifest) Covers(r Range) bool {
	if r.Empty() {
		return true
	}
	for _, c := range m.Coverage {
		if c.From <= r.From && r.To <= c.To {
			return true
		}
	}
	return false
}

// Gaps returns the parts of r the coverage lacks, in order.
func (m *Manifest) Gaps(r Range) []Range {
	var gaps []Range
	at := r.From
	for _, c := range m.Coverage {
		if at >= r.To {
			break
		}
		if c.To <= at {
			continue
		}
		if c.From >= r.To {
			break
		}
		if c.From > at {
			gaps = append(gaps, Range{at, c.From})
		}
		at = c.To
	}
	if at < r.To {
		gaps = append(gaps, Range{at, r.To})
	}
	return gaps
}

// MergeRanges returns the union of rs as sorted, non-overlapping ranges with
// touching ranges joined. Empty ranges are dropped.
func MergeRanges(rs []Range) []Range {
	out := make([]Range, 0, len(rs))
	for _, r := range rs {
		if !r.Empty() {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Range) int {
		if a.From != b.From {
			return cmpInt(a.From, b.From)
		}
		return cmpInt(a.To, b.To)
	})
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && r.From <= merged[n-1].To {
			merged[n-1].To = max(merged[n-1].To, r.To)
			continue
		}
		merged = append(merged, r)
	}
	if len(merged) == 0 {
		return nil
	}
	return merged
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// manifestFile is the JSON form of a manifest: explicit names and units, so
// that a person (or another tool) can read it.
type manifestFile struct {
	Schema     int          `json:"schema_version"`
	TileSet    string       `json:"tile_set"`
	Version    int64        `json:"version"`
	Created    time.Time    `json:"created"`
	Needs      string       `json:"needs"`
	StringKeys bool         `json:"string_keys"`
	Grid       gridFile     `json:"grid"`
	Features   []string     `json:"features,omitempty"`
	Objects    []objectFile `json:"objects"`
	Coverage   []rangeFile  `json:"coverage"`
	// Parent is the SHA-256 of the manifest version this one was built on:
	// it tells a legitimate successor from a version that GC pruned and a
	// stalled writer then re-created (see Commit).
	Parent string `json:"parent_sha256,omitempty"`
}

type gridFile struct {
	WidthMicros  int64 `json:"width_us"`
	OriginMicros int64 `json:"origin_us"`
}

type rangeFile struct {
	From int64 `json:"from_us"`
	To   int64 `json:"to_us"`
}

type objectFile struct {
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	CRC32C string `json:"crc32c,omitempty"` // schema version 2
	From   int64  `json:"from_us"`
	To     int64  `json:"to_us"`
	MinKey string `json:"min_key"`
	MaxKey string `json:"max_key"`
	Keys   int64  `json:"keys,omitempty"` // optional: distinct keys
	Schema int    `json:"schema_version"`
	// Optional: without them the object is read whole. One of the
	// footer's checksums: CRC-32C from schema version 2, SHA-256 before.
	Footer       int64          `json:"footer_offset,omitempty"`
	FooterCRC32C string         `json:"footer_crc32c,omitempty"`
	FooterSHA256 string         `json:"footer_sha256,omitempty"`
	RowGroups    []rowGroupFile `json:"row_groups,omitempty"`
}

type rowGroupFile struct {
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	CRC32C string `json:"crc32c,omitempty"` // schema version 2
	SHA256 string `json:"sha256,omitempty"` // schema version 1
	Rows   int64  `json:"rows"`
	From   int64  `json:"from_us"`
	To     int64  `json:"to_us"`
	MinKey string `json:"min_key"`
	MaxKey string `json:"max_key"`
}

func toObjectFile(o Object) objectFile {
	f := objectFile{Name: o.Name, Rows: o.Rows, Bytes: o.Bytes, SHA256: o.SHA256, CRC32C: o.CRC32C, From: o.From, To: o.To,
		MinKey: o.MinKey, MaxKey: o.MaxKey, Keys: o.Keys, Schema: o.Schema, Footer: o.Footer, FooterCRC32C: o.FooterCRC32C, FooterSHA256: o.FooterSHA256}
	for _, g := range o.RowGroups {
		f.RowGroups = append(f.RowGroups, rowGroupFile(g))
	}
	return f
}

func (f objectFile) object() Object {
	o := Object{Name: f.Name, Rows: f.Rows, Bytes: f.Bytes, SHA256: f.SHA256, CRC32C: f.CRC32C, From: f.From, To: f.To,
		MinKey: f.MinKey, MaxKey: f.MaxKey, Keys: f.Keys, Schema: f.Schema, Footer: f.Footer, FooterCRC32C: f.FooterCRC32C, FooterSHA256: f.FooterSHA256}
	for _, g := range f.RowGroups {
		o.RowGroups = append(o.RowGroups, RowGroup(g))
	}
	return o
}

func encodeManifest(m *Manifest, parent string) ([]byte, error) {
	f := manifestFile{
		Parent:     parent,
		Schema:     SchemaVersion,
		TileSet:    m.TileSet,
		Version:    m.Version,
		Created:    m.Created.UTC(),
		Needs:      m.Needs.String(),
		StringKeys: m.StringKeys,
		Grid:       gridFile{m.Grid.Width, m.Grid.Origin},
		Features:   m.Features,
		Objects:    make([]objectFile, 0, len(m.Objects)),
		Coverage:   make([]rangeFile, 0, len(m.Coverage)),
	}
	for _, o := range m.Objects {
		f.Objects = append(f.Objects, toObjectFile(o))
	}
	for _, r := range m.Coverage {
		f.Coverage = append(f.Coverage, rangeFile(r))
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest of tile set %s: %w", m.TileSet, err)
	}
	return append(b, '\n'), nil
}

// decodeManifest parses and checks a manifest; name is used in errors.
func decodeManifest(name string, b []byte) (*Manifest, string, error) {
	var f manifestFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, "", fmt.Errorf("read manifest %s: %w (the file is damaged; restore it or remove it to fall back to the previous version)", name, err)
	}
	if f.Schema > SchemaVersion {
		return nil, "", fmt.Errorf("read manifest %s: schema_version %d is newer than this build understands (%d); upgrade tessera", name, f.Schema, SchemaVersion)
	}
	needs, err := parseNeeds(f.Needs)
	if err != nil {
		return nil, "", fmt.Errorf("read manifest %s: needs: %w", name, err)
	}
	m := &Manifest{
		TileSet:    f.TileSet,
		Version:    f.Version,
		Created:    f.Created,
		Needs:      needs,
		StringKeys: f.StringKeys,
		Grid:       tile.Grid{Width: f.Grid.WidthMicros, Origin: f.Grid.OriginMicros},
		Features:   f.Features,
		Objects:    make([]Object, 0, len(f.Objects)),
		Coverage:   make([]Range, 0, len(f.Coverage)),
	}
	if m.Grid.Width <= 0 {
		return nil, "", fmt.Errorf("read manifest %s: grid width_us %d must be positive", name, m.Grid.Width)
	}
	for i, o := range f.Objects {
		if o.Name == "" || strings.ContainsAny(o.Name, "/\\") || o.Name == "." || o.Name == ".." {
			return nil, "", fmt.Errorf("read manifest %s: objects[%d]: invalid name %q", name, i, o.Name)
		}
		if o.Schema > SchemaVersion {
			return nil, "", fmt.Errorf("read manifest %s: object %s has schema_version %d, newer than this build understands (%d); upgrade tessera", name, o.Name, o.Schema, SchemaVersion)
		}
		if o.CRC32C != "" && !(recordedSum{crc: o.CRC32C}).valid() {
			return nil, "", fmt.Errorf("read manifest %s: object %s: crc32c %q is not 8 hex digits (the manifest is damaged; restore it)", name, o.Name, o.CRC32C)
		}
		if err := checkRowGroups(o); err != nil {
			return nil, "", fmt.Errorf("read manifest %s: object %s: %w (the manifest is damaged; restore it)", name, o.Name, err)
		}
		m.Objects = append(m.Objects, o.object())
	}
	for _, r := range f.Coverage {
		m.Coverage = append(m.Coverage, Range(r))
	}
	return m, f.Parent, nil
}

var needNames = map[string]aggregate.Needs{
	"count": aggregate.NeedCount,
	"sum":   aggregate.NeedSum,
	"m2":    aggregate.NeedM2,
	"min":   aggregate.NeedMin,
	"max":   aggregate.NeedMax,
}

func parseNeeds(s string) (aggregate.Needs, error) {
	var n aggregate.Needs
	if s == "" {
		return 0, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		v, ok := needNames[strings.TrimSpace(part)]
		if !ok {
			return 0, fmt.Errorf("unknown column %q (want count, sum, m2, min or max)", part)
		}
		n |= v
	}
	return n, nil
}

// Object keys inside the bucket.
const (
	tileSetsDir   = "tilesets/"
	dataDir       = "/data/"
	manifestsDir  = "/manifests/"
	manifestExt   = ".json"
	dataExt       = ".parquet"
	versionDigits = 20
)

func manifestPrefix(id string) string { return tileSetsDir + id + manifestsDir }

func manifestKey(id string, version int64) string {
	return fmt.Sprintf("%s%0*d%s", manifestPrefix(id), versionDigits, version, manifestExt)
}

func dataPrefix(id string) string { return tileSetsDir + id + dataDir }

func dataKey(id, name string) string { return dataPrefix(id) + name }

// parseVersion returns the version of a manifest file name such as
// 00000000000000000042.json; ok is false for anything else (temporary files).
func parseVersion(base string) (int64, bool) {
	digits, found := strings.CutSuffix(base, manifestExt)
	if !found || len(digits) != versionDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || v <= 0 {
		return 0, false
	}
	return v, true
}

// validTileSetID checks that id is usable as one path segment on every store.
func validTileSetID(id string) error {
	if id == "" {
		return fmt.Errorf("tile set ID is empty")
	}
	if len(id) > 200 {
		return fmt.Errorf("tile set ID %q is longer than 200 characters", id)
	}
	if id[0] == '.' {
		return fmt.Errorf("tile set ID %q must not start with '.'", id)
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == '=':
		default:
			return fmt.Errorf("tile set ID %q has character %q; use letters, digits, '.', '_', '-' or '='", id, c)
		}
	}
	return nil
}

// satAdd adds without overflowing past math.MaxInt64.
func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// checkRowGroups checks that an object's row group records are consistent:
// byte ranges inside the object before the footer, in order, and rows that
// add up.
func checkRowGroups(o objectFile) error {
	if len(o.RowGroups) == 0 {
		return nil
	}
	if o.Footer < 4 || o.Footer >= o.Bytes || !o.footerSum().valid() {
		return fmt.Errorf("footer_offset %d outside the object's %d bytes, or no footer_crc32c (or footer_sha256)", o.Footer, o.Bytes)
	}
	var rows int64
	at := int64(4) // after the leading magic
	for i, g := range o.RowGroups {
		if g.Offset < at || g.Length < 0 || g.Offset+g.Length > o.Footer || !RowGroup(g).sum().valid() || g.Rows < 0 {
			return fmt.Errorf("row_groups[%d]: bytes [%d, %d) overlap another row group or the footer, or no crc32c (or sha256)", i, g.Offset, g.Offset+g.Length)
		}
		at = g.Offset + g.Length
		rows += g.Rows
	}
	if rows != o.Rows {
		return fmt.Errorf("row groups hold %d rows, the object %d", rows, o.Rows)
	}
	return nil
}
