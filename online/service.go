package online

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/online/store"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

// Options tune a Service. Zero values take the defaults.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Retention is how long ingested events are kept before the watermark
	// (default 2h): queries may ask for a now up to this far before the
	// watermark, and a replica whose view of the tile store lags by less than
	// this still finds the events it needs.
	Retention time.Duration
	// MaxRows bounds the keys of one query (default 1000).
	MaxRows int
	// MaxOutputs bounds the feature references of one query (default 100).
	MaxOutputs int
	// MaxEvents bounds the events of one ingest request (default 100000).
	MaxEvents int
	// Logger receives refresh and backfill messages; nil discards them.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Retention <= 0 {
		o.Retention = 2 * time.Hour
	}
	if o.MaxRows <= 0 {
		o.MaxRows = 1000
	}
	if o.MaxOutputs <= 0 {
		o.MaxOutputs = 100
	}
	if o.MaxEvents <= 0 {
		o.MaxEvents = 100_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Service answers online queries and ingests events. It is safe for
// concurrent use.
type Service struct {
	cfg      *feature.Config
	tiles    Tiles
	events   store.Store
	opt      Options
	sets     []*feature.TileSet
	byID     map[string]*feature.TileSet
	setOf    map[string]*feature.TileSet // by feature name
	bySource map[string][]*feature.TileSet
	// keyKind is, per tile set ID, whether its keys are strings; absent
	// when neither a manifest nor the source's schema tells.
	keyKind map[string]bool
	// Metrics counts requests, ingested events and backfills.
	Metrics *Metrics

	mu    sync.RWMutex
	views map[string]*view
	ready atomic.Bool
}

// RequestError is an error in what a client sent; HTTP answers it with 400.
type RequestError struct {
	Msg    string
	Status int // HTTP status; 0 means 400
}

func (e *RequestError) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

// New returns a service over the materialized features of cfg. Call Refresh
// before serving.
func New(cfg *feature.Config, tiles Tiles, events store.Store, opt Options) (*Service, error) {
	opt.defaults()
	s := &Service{
		cfg: cfg, tiles: tiles, events: events, opt: opt,
		sets:     cfg.TileSets(),
		byID:     map[string]*feature.TileSet{},
		setOf:    map[string]*feature.TileSet{},
		bySource: map[string][]*feature.TileSet{},
		keyKind:  map[string]bool{},
		views:    map[string]*view{},
		Metrics:  NewMetrics(),
	}
	if len(s.sets) == 0 {
		return nil, fmt.Errorf("%s declares no materialized feature; online serving reads tiles: add `materialization: {bucket_duration: 1h}` to a feature", cfg.File)
	}
	for _, ts := range s.sets {
		s.byID[ts.ID] = ts
		for _, f := range ts.Features {
			s.setOf[f] = ts
		}
		s.bySource[ts.Source] = append(s.bySource[ts.Source], ts)
	}
	return s, nil
}

// Config returns the feature definitions the service serves.
func (s *Service) Config() *feature.Config { return s.cfg }

// Ready reports whether the first Refresh succeeded.
func (s *Service) Ready() bool { return s.ready.Load() }

// Refresh reloads the tiles of every tile set whose manifest changed.
func (s *Service) Refresh(ctx context.Context) error {
	for _, ts := range s.sets {
		s.mu.RLock()
		old := s.views[ts.ID]
		s.mu.RUnlock()
		v, err := loadView(ctx, s.tiles, ts, old)
		if err != nil {
			return err
		}
		if v == old {
			continue
		}
		s.mu.Lock()
		s.views[ts.ID] = v
		if v.version > 0 {
			s.keyKind[ts.ID] = v.strKeys
		}
		if _, ok := s.keyKind[ts.ID]; !ok {
			if str, ok := s.schemaKeyKind(ts); ok {
				s.keyKind[ts.ID] = str
			}
		}
		s.mu.Unlock()
		s.Metrics.setWatermark(ts.ID, v.watermark())
		s.opt.Logger.Info("online: loaded tiles", "tile_set", ts.ID, "manifest_version", v.version, "keys", len(v.keys))
	}
	s.ready.Store(true)
	return nil
}

// schemaKeyKind reads the key column's type from the source files.
func (s *Service) schemaKeyKind(ts *feature.TileSet) (str, ok bool) {
	src := s.cfg.Sources[ts.Source]
	if src == nil {
		return false, false
	}
	cols, err := source.Schema(src.Path)
	if err != nil {
		return false, false
	}
	for _, c := range cols {
		if c.Name == ts.Key {
			return c.Kind == source.String, true
		}
	}
	return false, false
}

// Prune removes ingested events older than each tile set's watermark minus
// the retention, and returns how many it removed.
func (s *Service) Prune(ctx context.Context) (int, error) {
	total := 0
	for _, ts := range s.sets {
		s.mu.RLock()
		v := s.views[ts.ID]
		s.mu.RUnlock()
		if v == nil || v.version == 0 {
			continue
		}
		h := v.horizon(s.opt.Retention)
		if h == math.MinInt64 {
			continue
		}
		n, err := s.events.Prune(ctx, ts.ID, h)
		total += n
		if err != nil {
			return total, err
		}
	}
	s.Metrics.Pruned.Add(float64(total))
	return total, nil
}

// horizon is the time before which ingested events may have been pruned.
func (v *view) horizon(retention time.Duration) int64 {
	wm := v.watermark()
	if wm == math.MinInt64 {
		return math.MinInt64
	}
	return wm - retention.Microseconds()
}

// Query is an online query: keys per input, feature references, and the
// time to answer as of.
type Query struct {
	// Inputs holds keys under an entity-qualified name ("user.id"), the
	// entity's name ("user") or the key column ("user_id"): int64 or string
	// values, one per row.
	Inputs map[string][]any
	// Outputs are feature references such as user.total_transaction_amount[7d].
	Outputs []string
	// Now is the time to answer as of; zero means the clock's now.
	Now time.Time
}

// Result holds one column per output, in request order.
type Result struct {
	Now     time.Time
	Columns []*offline.Column
}

// output is one reference being answered.
type output struct {
	ref  feature.Ref
	fn   aggregate.Func
	set  *feature.TileSet
	view *view
	keys []string // per row; "" with ok false for a key the data cannot hold
	ok   []bool
	col  *offline.Column
}

// Query answers q.
func (s *Service) Query(ctx context.Context, q Query) (*Result, error) {
	if len(q.Outputs) == 0 {
		return nil, badRequest("outputs is empty: list feature references, e.g. %q", s.example())
	}
	if len(q.Outputs) > s.opt.MaxOutputs {
		return nil, badRequest("outputs has %d references; at most %d per request", len(q.Outputs), s.opt.MaxOutputs)
	}
	if len(q.Inputs) == 0 {
		return nil, badRequest("inputs is empty: give keys, e.g. {\"user.id\": [1, 2]}")
	}
	rows := -1
	for name, ks := range q.Inputs {
		if rows >= 0 && len(ks) != rows {
			return nil, badRequest("inputs.%s has %d keys, other inputs have %d: every input needs one key per row", name, len(ks), rows)
		}
		rows = len(ks)
	}
	if rows > s.opt.MaxRows {
		return nil, badRequest("inputs have %d keys; at most %d per request", rows, s.opt.MaxRows)
	}
	now := q.Now
	if now.IsZero() {
		now = s.opt.Now()
	}
	t := now.UnixMicro()
	s.mu.RLock()
	views := s.views
	kinds := s.keyKind
	outs := make([]*output, len(q.Outputs))
	var err error
	for i, text := range q.Outputs {
		if outs[i], err = s.resolve(text, q.Inputs, views, kinds, rows); err != nil {
			break
		}
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}

	// One span per distinct (tile set, key): from the earliest time an
	// output needs ingested events to t.
	type spanKey struct{ set, key string }
	spanAt := map[spanKey]int{}
	var spans []store.Span
	for _, o := range outs {
		head := o.set.Grid.Floor(t)
		if o.view.version > 0 && head < o.view.horizon(s.opt.Retention) {
			return nil, badRequest("now %s is too far in the past for online serving: the events of its bucket were pruned (they are kept %s before the tile store's watermark %s); use tessera offline-query --materialized --align for past times",
				now.UTC().Format(time.RFC3339Nano), s.opt.Retention, time.UnixMicro(o.view.watermark()).UTC().Format(time.RFC3339))
		}
		from := o.onlineFrom(t)
		for r, k := range o.keys {
			if !o.ok[r] {
				continue
			}
			sk := spanKey{o.set.ID, k}
			if at, ok := spanAt[sk]; ok {
				spans[at].From = min(spans[at].From, from)
				continue
			}
			spanAt[sk] = len(spans)
			spans = append(spans, store.Span{TileSet: o.set.ID, Key: k, From: from, To: t})
		}
	}
	points, err := s.events.Read(ctx, spans)
	if err != nil {
		return nil, fmt.Errorf("online query: %w", err)
	}
	res := &Result{Now: now, Columns: make([]*offline.Column, len(outs))}
	for i, o := range outs {
		lo := int64(math.MinInt64)
		if !o.ref.Window.All() {
			lo = o.set.Grid.Floor(t - o.ref.Window.Micros)
		}
		head := o.set.Grid.Floor(t)
		for r, k := range o.keys {
			var st aggregate.State
			if o.ok[r] {
				st = o.view.keys[k].rangeState(lo, head, o.fn == aggregate.Min || o.fn == aggregate.Max)
				for _, p := range points[spanAt[spanKey{o.set.ID, k}]] {
					if p.TS < lo || p.TS >= t {
						continue
					}
					if p.TS < head && o.view.covered(o.set.Grid.Floor(p.TS)) {
						continue // the tile holds it
					}
					if o.fn == aggregate.Count {
						st.Count++
					} else {
						st.Add(p.Value, p.Valid)
					}
				}
			}
			v, ok := st.Value(o.fn)
			o.col.Values[r] = v
			if o.col.Valid != nil {
				o.col.Valid[r] = ok
			}
		}
		res.Columns[i] = o.col
	}
	return res, nil
}

// onlineFrom returns the earliest time whose ingested events output o reads
// for a row at t: the first uncovered bucket of the window's tail, else the
// head bucket.
func (o *output) onlineFrom(t int64) int64 {
	lo := int64(math.MinInt64)
	if !o.ref.Window.All() {
		lo = o.set.Grid.Floor(t - o.ref.Window.Micros)
	}
	head := o.set.Grid.Floor(t)
	if gaps := offline.Gaps(tilestore.Range{From: lo, To: head}, o.view.coverage); len(gaps) > 0 {
		return gaps[0].From
	}
	return head
}

// resolve checks one output reference and reads the keys it needs.
func (s *Service) resolve(text string, inputs map[string][]any, views map[string]*view, kinds map[string]bool, rows int) (*output, error) {
	ref, err := feature.ParseRef(text)
	if err != nil {
		return nil, badRequest("outputs: %v", err)
	}
	f, err := s.cfg.Resolve(ref)
	if err != nil {
		return nil, badRequest("outputs: %v", err)
	}
	set := s.setOf[f.Name]
	if set == nil {
		return nil, badRequest("outputs: feature %s is not materialized, and online serving reads tiles; materialized features: %s", f.Name, strings.Join(s.materialized(), ", "))
	}
	v := views[set.ID]
	if v == nil {
		return nil, badRequest("outputs: tile set %s of %s is not loaded yet; retry once /readyz answers 200", set.ID, f.Name)
	}
	o := &output{ref: ref, fn: f.Aggregation, set: set, view: v}
	o.col = &offline.Column{Name: ref.Text, Integer: f.Aggregation == aggregate.Count, Values: make([]float64, rows)}
	if f.Aggregation != aggregate.Count && f.Aggregation != aggregate.Sum {
		o.col.Valid = make([]bool, rows)
	}
	name, raw := findInput(inputs, f)
	if name == "" {
		return nil, badRequest("inputs: no keys for %s: give them under %q (or %q, %q)", ref.Text, f.Entity+".id", f.Entity, f.Key)
	}
	str, known := kinds[set.ID]
	o.keys = make([]string, rows)
	o.ok = make([]bool, rows)
	for r, x := range raw {
		k, ok, err := normKey(x, str, known)
		if err != nil {
			return nil, badRequest("inputs.%s[%d]: %v", name, r, err)
		}
		o.keys[r], o.ok[r] = k, ok
	}
	return o, nil
}

// findInput returns the input holding a feature's keys: under its entity
// ("user", "user.id") or its key column ("user_id").
func findInput(inputs map[string][]any, f *feature.Feature) (string, []any) {
	for _, name := range []string{f.Entity + ".id", f.Entity, f.Key} {
		if v, ok := inputs[name]; ok {
			return name, v
		}
	}
	for k, v := range inputs {
		if strings.HasPrefix(k, f.Entity+".") {
			return k, v
		}
	}
	return "", nil
}

func (s *Service) materialized() []string {
	var out []string
	for _, ts := range s.sets {
		out = append(out, ts.Features...)
	}
	slices.Sort(out)
	return out
}

func (s *Service) example() string {
	f := s.cfg.Features[s.materialized()[0]]
	return f.Name + "[" + f.Windows[0].String() + "]"
}

// errNotKey marks a key value of the wrong JSON type.
var errNotKey = errors.New("a key must be an integer or a string")

// storeSpanProbe is an empty read that checks the online store answers.
var storeSpanProbe = store.Span{TileSet: "_probe", Key: "_", From: 0, To: 1}
