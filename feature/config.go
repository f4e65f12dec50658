package feature

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tessera-fe/tessera/aggregate"
)

// Filter keeps only the events whose Column equals Equals. Equals holds the
// YAML scalar as written (declined, 3, true), compared against the column's
// string form.
type Filter struct {
	Column string
	Equals string
}

// Materialization says how a feature's tiles are built.
type Materialization struct {
	BucketDuration int64  // bucket width in microseconds, > 0
	BucketStart    int64  // grid origin in microseconds; 0 (the Unix epoch) by default
	BackfillStart  *int64 // backfill_start_time in microseconds: events before it are not tiled; nil when unset
	Schedule       string // backfill_schedule: a 5-field cron expression or an interval duration; "" when unset
	Lookback       int64  // backfill_lookback_duration in microseconds: re-tile this much before the last watermark
}

// Source is a table of events.
type Source struct {
	Name      string
	Path      string // file, glob, directory or URL; relative paths are resolved against the config's directory
	Timestamp string // event time column
}

// Entity is what features are grouped by, e.g. a user.
type Entity struct {
	Name string
	Key  string // key column in sources; also the spine's default key column
}

// Feature is one windowed aggregation over a source.
type Feature struct {
	Name            string // <entity>.<name>
	Entity          string
	Source          string
	Key             string // grouping column: the feature's key, else its entity's key
	Aggregation     aggregate.Func
	Value           string // value column; "" for count
	Filter          *Filter
	Windows         []Window         // as declared, order kept
	Materialization *Materialization // nil when the feature is not materialized
}

// HasWindow reports whether w is one of the feature's declared windows.
func (f *Feature) HasWindow(w Window) bool {
	return slices.Contains(f.Windows, w)
}

// Config is a parsed and validated configuration.
type Config struct {
	File     string // file name given to Parse, used in every message
	Dir      string // directory of File
	Store    string // tile store location: a directory or a URL (contains "://")
	Sources  map[string]*Source
	Entities map[string]*Entity
	Features map[string]*Feature
	Warnings []string // non-fatal advice, each naming the file and line
}

// FeatureNames returns the names of all features, sorted.
func (c *Config) FeatureNames() []string {
	names := make([]string, 0, len(c.Features))
	for n := range c.Features {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Resolve returns the feature a reference names, checking that the
// reference's window is declared for it.
func (c *Config) Resolve(r Ref) (*Feature, error) {
	f, ok := c.Features[r.Feature]
	if !ok {
		names := c.FeatureNames()
		hint := ""
		if s := suggest(r.Feature, names); s != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", s)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("feature %q is not defined in %s%s: it defines no features; add it under features", r.Feature, c.File, hint)
		}
		return nil, fmt.Errorf("feature %q is not defined in %s%s; defined features: %s", r.Feature, c.File, hint, strings.Join(names, ", "))
	}
	if !f.HasWindow(r.Window) {
		declared := make([]string, len(f.Windows))
		for i, w := range f.Windows {
			declared[i] = w.String()
		}
		return nil, fmt.Errorf("feature %s has no window %s in %s (declared: %s); add %s under windows of %s in the config",
			f.Name, r.Window, c.File, strings.Join(declared, ", "), r.Window, f.Name)
	}
	return f, nil
}

// suggest returns the candidate closest to s by edit distance when it is
// close enough to be a likely typo, else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/3) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
