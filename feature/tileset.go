package feature

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

// TileSet is a set of tiles shared by materialized features over the same
// source, grouping key, value column, filter and bucket grid. Its Needs is
// the union of its features' aggregations' Needs, so a sum and a mean over
// the same column share one tile set keeping count and sum.
type TileSet struct {
	// ID is stable, deterministic, readable and safe as a path or URL segment
	// (lower-case letters, digits, '.', '_' and '-'), e.g.
	// "transactions.user_id.amount.1h-3fa2c1d0": source, key, value column
	// ("count" when there is none) and bucket width, then a short hash of the
	// full spec (including filter, origin and Needs). ID depends on Needs:
	// adding a feature whose aggregation needs more partial state (var next
	// to sum) makes a new tile set, which queries answer from raw events
	// until it is backfilled, rather than reading tiles lacking that state.
	// It does not depend on BackfillStart or on windows: adding a window
	// keeps the tiles.
	ID            string
	Source        string
	Key           string
	Value         string // "" when only count is needed
	Filter        *Filter
	Grid          tile.Grid
	BackfillStart *int64 // earliest backfill_start_time of its features; nil when any feature has none
	Needs         aggregate.Needs
	Features      []string // sorted names of the features it serves
}

// tileSpec is what makes two materialized features share a tile set.
type tileSpec struct {
	source, key, value string
	filtered           bool
	filter             Filter
	grid               tile.Grid
}

func specOf(f *Feature) tileSpec {
	s := tileSpec{source: f.Source, key: f.Key, value: f.Value, grid: tile.Grid{Width: f.Materialization.BucketDuration, Origin: f.Materialization.BucketStart}}
	if f.Filter != nil {
		s.filtered, s.filter = true, *f.Filter
	}
	return s
}

// id builds the tile set ID from the spec and the partial state kept.
func (s tileSpec) id(needs aggregate.Needs) string {
	h := sha256.New()
	var buf [8]byte
	writeField := func(b []byte) {
		binary.BigEndian.PutUint64(buf[:], uint64(len(b)))
		h.Write(buf[:])
		h.Write(b)
	}
	writeField([]byte("tileset/v1"))
	writeField([]byte(s.source))
	writeField([]byte(s.key))
	writeField([]byte(s.value))
	if s.filtered {
		writeField([]byte("filter"))
		writeField([]byte(s.filter.Column))
		writeField([]byte(s.filter.Equals))
	} else {
		writeField([]byte("nofilter"))
	}
	binary.BigEndian.PutUint64(buf[:], uint64(s.grid.Width))
	h.Write(buf[:])
	binary.BigEndian.PutUint64(buf[:], uint64(s.grid.Origin))
	h.Write(buf[:])
	writeField([]byte(needs.String()))
	sum := h.Sum(nil)
	value := s.value
	if value == "" {
		value = "count"
	}
	return idPart(s.source) + "." + idPart(s.key) + "." + idPart(value) + "." +
		FormatDuration(s.grid.Width) + "-" + hex.EncodeToString(sum[:4])
}

// idPart makes a name safe and readable as part of an ID: lower case, any
// byte outside [a-z0-9_-] replaced by '_', at most 32 bytes.
func idPart(s string) string {
	const maxLen = 32
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxLen; i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// TileSets returns the tile sets of the materialized features, sorted by ID.
// Each call builds new values.
func (c *Config) TileSets() []*TileSet {
	// A count needs no value column: it joins a tile set over a value column
	// with the same source, key, filter and grid when there is one (its
	// Count column counts every event, nulls included), so counts next to
	// sums and means read one tile set.
	valueOf := map[tileSpec]string{}
	for _, name := range c.FeatureNames() {
		if f := c.Features[name]; f != nil && f.Materialization != nil && f.Value != "" {
			spec := specOf(f)
			spec.value = ""
			if v, ok := valueOf[spec]; !ok || f.Value < v {
				valueOf[spec] = f.Value
			}
		}
	}
	byID := map[tileSpec]*TileSet{}
	for _, name := range c.FeatureNames() {
		f := c.Features[name]
		if f == nil || f.Materialization == nil || f.Materialization.BucketDuration <= 0 {
			continue
		}
		spec := specOf(f)
		if spec.value == "" {
			spec.value = valueOf[spec]
		}
		ts, ok := byID[spec]
		if !ok {
			ts = &TileSet{
				Source: spec.source, Key: spec.key, Value: spec.value,
				Grid: spec.grid, BackfillStart: f.Materialization.BackfillStart,
			}
			if spec.filtered {
				flt := spec.filter
				ts.Filter = &flt
			}
			byID[spec] = ts
		} else if ts.BackfillStart != nil {
			if b := f.Materialization.BackfillStart; b == nil || *b < *ts.BackfillStart {
				ts.BackfillStart = b
			}
		}
		ts.Needs |= f.Aggregation.Needs()
		ts.Features = append(ts.Features, name) // names arrive sorted
	}
	sets := make([]*TileSet, 0, len(byID))
	for spec, ts := range byID {
		ts.ID = spec.id(ts.Needs)
		if ts.BackfillStart != nil {
			b := *ts.BackfillStart
			ts.BackfillStart = &b // never alias a feature's field
		}
		sets = append(sets, ts)
	}
	slices.SortFunc(sets, func(a, b *TileSet) int { return strings.Compare(a.ID, b.ID) })
	return sets
}

// TileSetOf returns the tile set serving a feature, or nil when the feature
// is unknown or not materialized.
func (c *Config) TileSetOf(feature string) *TileSet {
	f := c.Features[feature]
	if f == nil || f.Materialization == nil || f.Materialization.BucketDuration <= 0 {
		return nil
	}
	for _, ts := range c.TileSets() {
		if slices.Contains(ts.Features, feature) {
			return ts
		}
	}
	return nil
}
