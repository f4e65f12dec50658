package feature

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tessera-fe/tessera/aggregate"
)

// Valid keys of each configuration section, in the order users read them.
var (
	topKeys             = []string{"store", "sources", "entities", "features"}
	sourceKeys          = []string{"path", "timestamp"}
	entityKeys          = []string{"key"}
	featureKeys         = []string{"source", "aggregation", "value", "key", "filter", "windows", "materialization"}
	filterKeys          = []string{"column", "equals"}
	materializationKeys = []string{"bucket_duration", "bucket_start", "backfill_start_time", "backfill_schedule", "backfill_lookback_duration"}
)

// maxMergeDepth bounds nested YAML merge keys (<<), which aliases can make cyclic.
const maxMergeDepth = 8

// Parse parses and validates a configuration. file names the configuration
// in every message and locates relative paths; it is not read. The error, if
// any, joins every problem found, each on its own line as file:line: message.
func Parse(file string, data []byte) (*Config, error) {
	root, err := decodeYAML(file, data)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(file)
	c := &Config{
		File:     file,
		Dir:      dir,
		Store:    filepath.Join(dir, ".tessera"),
		Sources:  map[string]*Source{},
		Entities: map[string]*Entity{},
		Features: map[string]*Feature{},
	}
	p := &parser{file: file, c: c, featureLine: map[string]int{}}
	p.config(root)
	if len(p.errs) > 0 {
		return nil, p.joined()
	}
	p.tileSetWarnings()
	slices.SortStableFunc(p.warns, func(a, b problem) int { return cmp.Compare(a.line, b.line) })
	for _, w := range p.warns {
		c.Warnings = append(c.Warnings, p.format(w))
	}
	return c, nil
}

// decodeYAML returns the root node of the single document in data.
func decodeYAML(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the configuration is empty: declare sources, entities and features", file)
		}
		return nil, fmt.Errorf("%s: invalid YAML (check indentation and quoting): %w", file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("%s: invalid YAML (check indentation and quoting): %w", file, err)
	default:
		return nil, fmt.Errorf("%s:%d: a second YAML document starts here (---); keep one document per configuration", file, extra.Line)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the configuration is empty: declare sources, entities and features", file)
	}
	return doc.Content[0], nil
}

// problem is one error or warning at a line of the configuration.
type problem struct {
	line int
	msg  string
}

type parser struct {
	file        string
	c           *Config
	errs        []problem
	warns       []problem
	featureLine map[string]int
	merged      map[*yaml.Node]*merged
}

func (p *parser) errf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, problem{line: lineOf(n), msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(line int, format string, args ...any) {
	p.warns = append(p.warns, problem{line: line, msg: fmt.Sprintf(format, args...)})
}

func (p *parser) format(pr problem) string {
	if pr.line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.file, pr.line, pr.msg)
	}
	return fmt.Sprintf("%s: %s", p.file, pr.msg)
}

func (p *parser) joined() error {
	slices.SortStableFunc(p.errs, func(a, b problem) int { return cmp.Compare(a.line, b.line) })
	// An anchored node reached through several aliases reports its problem once.
	var errs []error
	seen := map[problem]bool{}
	for _, pr := range p.errs {
		if !seen[pr] {
			seen[pr] = true
			errs = append(errs, errors.New(p.format(pr)))
		}
	}
	return errors.Join(errs...)
}

func lineOf(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// resolve follows aliases to the anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// pair is one key: value entry of a mapping.
type pair struct {
	key  string
	k, v *yaml.Node
}

// mapping returns the entries of a mapping node in document order, with YAML
// merge keys (<<) applied and duplicate keys reported. A null node is an empty
// mapping; ok is false when n is something else (already reported).
func (p *parser) mapping(n *yaml.Node, what string) (pairs []pair, ok bool) {
	return p.mappingDepth(n, what, 0)
}

// merged memoizes the entries of mappings reached through merge keys, so
// that aliases merged many times cost one walk each.
type merged struct {
	pairs []pair
	ok    bool
	done  bool // false while the mapping's own merges are being walked
}

func (p *parser) mappingDepth(n *yaml.Node, what string, depth int) ([]pair, bool) {
	orig := n
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		p.errf(orig, "%s must be a mapping of key: value lines, got %s", what, kindName(n))
		return nil, false
	}
	if depth > 0 {
		if m, seen := p.merged[n]; seen {
			if !m.done {
				p.errf(orig, "%s: a merge key (<<) includes the mapping it is in; write the keys out", what)
				return nil, false
			}
			return m.pairs, m.ok
		}
	}
	if depth > maxMergeDepth {
		p.errf(orig, "%s: merge keys (<<) nest too deeply; write the keys out", what)
		return nil, false
	}
	if p.merged == nil {
		p.merged = map[*yaml.Node]*merged{}
	}
	memo, seen := p.merged[n]
	if !seen {
		memo = &merged{}
		p.merged[n] = memo
	}
	pairs, ok := p.mappingEntries(n, what, depth)
	if !seen {
		memo.pairs, memo.ok, memo.done = pairs, ok, true
	}
	return pairs, ok
}

func (p *parser) mappingEntries(n *yaml.Node, what string, depth int) ([]pair, bool) {
	var pairs []pair
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil || k.Kind != yaml.ScalarNode {
			p.errf(n.Content[i], "%s: keys must be plain names, got %s", what, kindName(k))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errf(k, "%s: duplicate key %q (first defined at line %d); keep one", what, k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		pairs = append(pairs, pair{key: k.Value, k: k, v: v})
	}
	// Explicit keys win over merged ones; among merged mappings the first wins.
	for _, m := range merges {
		rm := resolve(m)
		sources := []*yaml.Node{m}
		if rm != nil && rm.Kind == yaml.SequenceNode {
			sources = rm.Content
		}
		for _, s := range sources {
			merged, ok := p.mappingDepth(s, what+" (merged with <<)", depth+1)
			if !ok {
				continue
			}
			for _, mp := range merged {
				if _, dup := seen[mp.key]; !dup {
					seen[mp.key] = mp.k
					pairs = append(pairs, mp)
				}
			}
		}
	}
	return pairs, true
}

// known reports keys that are not in valid.
func (p *parser) known(pairs []pair, what string, valid []string) {
	for _, pr := range pairs {
		if slices.Contains(valid, pr.key) {
			continue
		}
		hint := ""
		if s := suggest(pr.key, valid); s != "" {
			hint = fmt.Sprintf(" (did you mean %s?)", s)
		}
		p.errf(pr.k, "%s: unknown key %q%s; valid keys: %s", what, pr.key, hint, strings.Join(valid, ", "))
	}
}

func get(pairs []pair, key string) (*yaml.Node, bool) {
	for _, pr := range pairs {
		if pr.key == key {
			return pr.v, true
		}
	}
	return nil, false
}

// str returns a scalar's text; null is "". ok is false (and the problem
// reported) when n is a list or a mapping.
func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	r := resolve(n)
	if isNull(r) {
		return "", true
	}
	if r.Kind != yaml.ScalarNode {
		p.errf(n, "%s must be a single value, got %s", what, kindName(r))
		return "", false
	}
	return r.Value, true
}

func (p *parser) config(root *yaml.Node) {
	top, ok := p.mapping(root, "the configuration")
	if !ok {
		return
	}
	p.known(top, "top level", topKeys)
	if n, ok := get(top, "store"); ok {
		if s, ok := p.str(n, "store"); ok && s != "" {
			p.c.Store = resolvePath(p.c.Dir, s)
		}
	}
	if n, ok := get(top, "sources"); ok {
		p.sources(n)
	}
	if n, ok := get(top, "entities"); ok {
		p.entities(n)
	}
	features, ok := get(top, "features")
	if !ok || isNull(resolve(features)) {
		p.warnf(lineOf(root), "no features are defined; add them under features:")
		return
	}
	p.features(features)
}

// resolvePath resolves a relative path against dir; absolute paths and URLs
// are kept as written.
func resolvePath(dir, path string) string {
	if strings.Contains(path, "://") || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

func (p *parser) sources(n *yaml.Node) {
	pairs, ok := p.mapping(n, "sources")
	if !ok {
		return
	}
	for _, pr := range pairs {
		name := pr.key
		what := "source " + name
		if name == "" {
			p.errf(pr.k, "sources: a source has an empty name; name it, e.g. transactions:")
			continue
		}
		s := &Source{Name: name}
		p.c.Sources[name] = s
		fields, ok := p.mapping(pr.v, what)
		if !ok {
			continue
		}
		p.known(fields, what, sourceKeys)
		pathNode, _ := get(fields, "path")
		if path, ok := p.str(pathNode, what+": path"); ok {
			if path == "" {
				p.errf(orNode(pathNode, pr.k), "%s: path is empty; set path: to a file, glob, directory or URL of .parquet or .csv files", what)
			} else {
				s.Path = resolvePath(p.c.Dir, path)
			}
		}
		tsNode, _ := get(fields, "timestamp")
		if ts, ok := p.str(tsNode, what+": timestamp"); ok {
			if ts == "" {
				p.errf(orNode(tsNode, pr.k), "%s: timestamp is empty; set timestamp: to the event time column", what)
			}
			s.Timestamp = ts
		}
	}
}

func orNode(n, fallback *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return fallback
}

func (p *parser) entities(n *yaml.Node) {
	pairs, ok := p.mapping(n, "entities")
	if !ok {
		return
	}
	for _, pr := range pairs {
		name := pr.key
		what := "entity " + name
		if !validName(name) {
			p.errf(pr.k, "entities: entity name %q may use only letters, digits, _ and -, e.g. user", name)
			continue
		}
		e := &Entity{Name: name}
		p.c.Entities[name] = e
		fields, ok := p.mapping(pr.v, what)
		if !ok {
			continue
		}
		p.known(fields, what, entityKeys)
		keyNode, _ := get(fields, "key")
		if key, ok := p.str(keyNode, what+": key"); ok {
			if key == "" {
				p.errf(orNode(keyNode, pr.k), "%s: key is empty; set key: to the key column, e.g. %s: {key: %s_id}", what, name, name)
			}
			e.Key = key
		}
	}
}

func (p *parser) features(n *yaml.Node) {
	pairs, ok := p.mapping(n, "features")
	if !ok {
		return
	}
	for _, pr := range pairs {
		if f := p.feature(pr); f != nil {
			p.c.Features[f.Name] = f
			p.featureLine[f.Name] = pr.k.Line
		}
	}
}

func (p *parser) feature(pr pair) *Feature {
	name := pr.key
	what := "feature " + name
	f := &Feature{Name: name}
	entity, _, err := splitFeatureName(name)
	if err != nil {
		p.errf(pr.k, "features: %v", err)
	} else {
		f.Entity = entity
		if e, ok := p.c.Entities[entity]; ok {
			f.Key = e.Key
		} else {
			p.errf(pr.k, "%s: entity %q is not declared under entities (%s); declare it or fix the name", what, entity, declared(p.c.Entities))
		}
	}
	fields, ok := p.mapping(pr.v, what)
	if !ok {
		return f
	}
	p.known(fields, what, featureKeys)

	srcNode, _ := get(fields, "source")
	if src, ok := p.str(srcNode, what+": source"); ok {
		switch _, found := p.c.Sources[src]; {
		case src == "":
			p.errf(orNode(srcNode, pr.k), "%s: source is missing; set source: to one of the sources (%s)", what, declared(p.c.Sources))
		case !found:
			p.errf(srcNode, "%s: source %q is not declared under sources (%s); declare it or fix the name", what, src, declared(p.c.Sources))
		}
		f.Source = src
	}

	aggNode, _ := get(fields, "aggregation")
	aggOK := false
	if agg, ok := p.str(aggNode, what+": aggregation"); ok {
		if agg == "" {
			p.errf(orNode(aggNode, pr.k), "%s: aggregation is missing; set aggregation: to one of count, sum, mean, min, max, var, std", what)
		} else if fn, err := aggregate.ParseFunc(agg); err != nil {
			p.errf(aggNode, "%s: %v", what, err)
		} else {
			f.Aggregation, aggOK = fn, true
		}
	}

	valNode, _ := get(fields, "value")
	if val, ok := p.str(valNode, what+": value"); ok && aggOK {
		switch {
		case f.Aggregation.NeedsValue() && val == "":
			p.errf(orNode(valNode, pr.k), "%s: %s needs a value column; set value: to a numeric column of the source", what, f.Aggregation)
		case !f.Aggregation.NeedsValue() && val != "":
			p.errf(valNode, "%s: count takes no value (it counts events); remove value: or use an aggregation such as sum", what)
		}
		f.Value = val
	}

	if keyNode, ok := get(fields, "key"); ok {
		if key, ok := p.str(keyNode, what+": key"); ok {
			if key == "" {
				p.errf(keyNode, "%s: key is empty; remove it to group by the entity's key or name the grouping column", what)
			} else {
				f.Key = key
			}
		}
	}

	if filterNode, ok := get(fields, "filter"); ok {
		f.Filter = p.filter(filterNode, what)
	}

	winNode, _ := get(fields, "windows")
	f.Windows = p.windows(winNode, pr.k, what)

	if mNode, ok := get(fields, "materialization"); ok {
		f.Materialization = p.materialization(mNode, what)
		p.checkBucket(f, mNode)
	}
	return f
}

func declared[T any](m map[string]T) string {
	if len(m) == 0 {
		return "none declared"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return "declared: " + strings.Join(names, ", ")
}

func (p *parser) filter(n *yaml.Node, what string) *Filter {
	what += ": filter"
	fields, ok := p.mapping(n, what)
	if !ok {
		return nil
	}
	p.known(fields, what, filterKeys)
	f := &Filter{}
	colNode, _ := get(fields, "column")
	if col, ok := p.str(colNode, what+": column"); ok {
		if col == "" {
			p.errf(orNode(colNode, n), "%s: column is missing; write filter: {column: status, equals: declined}", what)
		}
		f.Column = col
	}
	eqNode, hasEq := get(fields, "equals")
	eq := resolve(eqNode)
	switch {
	case !hasEq || isNull(eq):
		p.errf(orNode(eqNode, n), "%s: equals is missing; write filter: {column: status, equals: declined} (quote an empty string: equals: \"\")", what)
	case eq.Kind != yaml.ScalarNode:
		p.errf(eqNode, "%s: equals must be a single value, got %s", what, kindName(eq))
	default:
		f.Equals = eq.Value
	}
	return f
}

func (p *parser) windows(n, featureKey *yaml.Node, what string) []Window {
	r := resolve(n)
	if isNull(r) {
		p.errf(orNode(n, featureKey), "%s: no windows; add windows: [7d, 30d] (durations, or all for every earlier event)", what)
		return nil
	}
	if r.Kind != yaml.SequenceNode {
		p.errf(n, "%s: windows must be a list, e.g. windows: [7d, 30d], got %s", what, kindName(r))
		return nil
	}
	if len(r.Content) == 0 {
		p.errf(n, "%s: no windows; add windows: [7d, 30d] (durations, or all for every earlier event)", what)
		return nil
	}
	var ws []Window
	first := map[Window]*yaml.Node{}
	for _, e := range r.Content {
		s, ok := p.str(e, what+": windows")
		if !ok {
			continue
		}
		w, err := ParseWindow(s)
		if err != nil {
			p.errf(e, "%s: %v", what, err)
			continue
		}
		if prev, dup := first[w]; dup {
			p.errf(e, "%s: duplicate window %s (same as %s at line %d); remove one", what, s, resolve(prev).Value, prev.Line)
			continue
		}
		first[w] = e
		ws = append(ws, w)
	}
	return ws
}

func (p *parser) materialization(n *yaml.Node, what string) *Materialization {
	what += ": materialization"
	m := &Materialization{}
	if isNull(resolve(n)) {
		p.errf(n, "%s needs bucket_duration, e.g. materialization: {bucket_duration: 1h}", what)
		return m
	}
	fields, ok := p.mapping(n, what)
	if !ok {
		return m
	}
	p.known(fields, what, materializationKeys)
	bNode, _ := get(fields, "bucket_duration")
	if b, ok := p.str(bNode, what+": bucket_duration"); ok {
		if b == "" {
			p.errf(orNode(bNode, n), "%s: bucket_duration is missing; set it, e.g. bucket_duration: 1h (1%%-10%% of the shortest window is a good start)", what)
		} else if d, err := ParseDuration(b); err != nil {
			p.errf(bNode, "%s: bucket_duration: %v", what, err)
		} else {
			m.BucketDuration = d
		}
	}
	if sNode, ok := get(fields, "bucket_start"); ok {
		if s, ok := p.str(sNode, what+": bucket_start"); ok && s != "" {
			if t, err := parseTime(s); err != nil {
				p.errf(sNode, "%s: bucket_start: %v", what, err)
			} else {
				m.BucketStart = t
			}
		}
	}
	if sNode, ok := get(fields, "backfill_start_time"); ok {
		if s, ok := p.str(sNode, what+": backfill_start_time"); ok && s != "" {
			if t, err := parseTime(s); err != nil {
				p.errf(sNode, "%s: backfill_start_time: %v", what, err)
			} else {
				m.BackfillStart = &t
			}
		}
	}
	if sNode, ok := get(fields, "backfill_schedule"); ok {
		if s, ok := p.str(sNode, what+": backfill_schedule"); ok && s != "" {
			if err := checkSchedule(s); err != nil {
				p.errf(sNode, "%s: %v", what, err)
			} else {
				m.Schedule = s
			}
		}
	}
	if lNode, ok := get(fields, "backfill_lookback_duration"); ok {
		if s, ok := p.str(lNode, what+": backfill_lookback_duration"); ok && s != "" && s != "0" {
			if d, err := ParseDuration(s); err != nil {
				p.errf(lNode, "%s: backfill_lookback_duration: %v", what, err)
			} else {
				m.Lookback = d
			}
		}
	}
	return m
}

// checkBucket checks the feature's windows against its bucket and warns
// when the bucket is outside 1%-10% of the shortest finite window.
func (p *parser) checkBucket(f *Feature, mNode *yaml.Node) {
	m := f.Materialization
	if m == nil || m.BucketDuration <= 0 {
		return
	}
	b := m.BucketDuration
	var shortest int64
	for _, w := range f.Windows {
		if w.All() {
			continue
		}
		switch {
		case w.Micros < b:
			p.errf(mNode, "feature %s: window %s is shorter than bucket_duration %s; use a smaller bucket_duration or a longer window",
				f.Name, w, FormatDuration(b))
		case w.Micros%b != 0:
			p.errf(mNode, "feature %s: window %s is not a multiple of bucket_duration %s; use a bucket_duration that divides every window",
				f.Name, w, FormatDuration(b))
		}
		if shortest == 0 || w.Micros < shortest {
			shortest = w.Micros
		}
	}
	if shortest == 0 {
		return
	}
	if r := float64(b) / float64(shortest); r < 0.01 || r > 0.10 {
		p.warnf(lineOf(mNode), "feature %s: bucket_duration %s is %.3g%% of the shortest window %s; 1%%-10%% is a good start (smaller buckets cost storage and merge work, larger ones stretch materialized windows)",
			f.Name, FormatDuration(b), r*100, FormatDuration(shortest))
	}
}

// parseTime parses an RFC 3339 time into microseconds since the Unix epoch.
func parseTime(s string) (int64, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an RFC 3339 time; write e.g. 2025-01-01T00:00:00Z", s)
	}
	if t.Nanosecond()%1000 != 0 {
		return 0, fmt.Errorf("%q is finer than a microsecond; drop the extra digits", s)
	}
	return t.UnixMicro(), nil
}

// tileSetWarnings warns when features sharing a tile set disagree on how it
// is backfilled: the tile set is backfilled once for all of them.
func (p *parser) tileSetWarnings() {
	for _, ts := range p.c.TileSets() {
		if len(ts.Features) < 2 {
			continue
		}
		first := p.c.Features[ts.Features[0]].Materialization
		for _, name := range ts.Features[1:] {
			m := p.c.Features[name].Materialization
			var differ []string
			if !equalPtr(first.BackfillStart, m.BackfillStart) {
				differ = append(differ, "backfill_start_time")
			}
			if first.Schedule != m.Schedule {
				differ = append(differ, "backfill_schedule")
			}
			if first.Lookback != m.Lookback {
				differ = append(differ, "backfill_lookback_duration")
			}
			if len(differ) > 0 {
				p.warnf(p.featureLine[name], "features %s and %s share tile set %s but set different %s; the tile set is backfilled once for both (from the earliest backfill_start_time): set the same values",
					ts.Features[0], name, ts.ID, strings.Join(differ, ", "))
			}
		}
	}
}

func equalPtr(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
