package online

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
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
	// IdempotencyWindow is how long an idempotency key's receipt lasts
	// (default 24h): a retry with the key within it is answered from the
	// receipt, and after it the key may be used again.
	IdempotencyWindow time.Duration
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
	if o.IdempotencyWindow <= 0 {
		o.IdempotencyWindow = 24 * time.Hour
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
	store    store.Store
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

	refMu sync.RWMutex
	refs  map[string]*resolved
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
		cfg: cfg, tiles: tiles, store: events, opt: opt,
		sets:     cfg.TileSets(),
		byID:     map[string]*feature.TileSet{},
		setOf:    map[string]*feature.TileSet{},
		bySource: map[string][]*feature.TileSet{},
		keyKind:  map[string]bool{},
		views:    map[string]*view{},
		refs:     map[string]*resolved{},
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
		n, err := s.store.Prune(ctx, ts.ID, h)
		total += n
		if err != nil {
			return total, err
		}
	}
	s.Metrics.Pruned.Add(float64(total))
	return total, nil
}

// PruneReceipts removes the idempotency receipts that have expired and
// returns how many it removed.
func (s *Service) PruneReceipts(ctx context.Context) (int, error) {
	return s.store.PruneReceipts(ctx, s.opt.Now().UnixMicro())
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
	*resolved
	view *view
	keys []string // per row; "" with ok false for a key the data cannot hold
	ok   []bool
	span []int // per row, the index of its span in the store read; -1 for none
	col  *offline.Column
}

// resolved is a checked output reference; resolutions are cached by the
// reference's text (the config never changes under a Service).
type resolved struct {
	raw string // the text as requested, the cache's key
	ref feature.Ref
	f   *feature.Feature
	fn  aggregate.Func
	set *feature.TileSet
}

// maxResolved bounds the cache of resolved references.
const maxResolved = 4096

// keyIn is one input key as sent: its text and whether it was a JSON
// number (then an integer in canonical decimal).
type keyIn struct {
	text string
	num  bool
}

// input is one named array of keys.
type input struct {
	name string
	keys []keyIn
}

// request is a query with its keys checked: the form both Query and the
// HTTP API reduce to.
type request struct {
	inputs  []input
	outputs []string
	now     time.Time
}

// Query answers q.
func (s *Service) Query(ctx context.Context, q Query) (*Result, error) {
	req := request{outputs: q.Outputs, now: q.Now}
	var err error
	if req.inputs, err = inputsOf(q.Inputs); err != nil {
		return nil, badRequest("%v", err)
	}
	return s.query(ctx, &req)
}

// inputsOf checks the keys of every input, in name order.
func inputsOf(raw map[string][]any) ([]input, error) {
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	slices.Sort(names)
	out := make([]input, 0, len(names))
	for _, name := range names {
		in := input{name: name, keys: make([]keyIn, len(raw[name]))}
		for r, x := range raw[name] {
			k, err := keyOf(x)
			if err != nil {
				return nil, fmt.Errorf("inputs.%s[%d]: %v", name, r, err)
			}
			in.keys[r] = k
		}
		out = append(out, in)
	}
	return out, nil
}

// keyOf checks a key as decoded from JSON (json.Number or float64), or
// given from Go (int, int64, string).
func keyOf(raw any) (keyIn, error) {
	switch x := raw.(type) {
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return keyIn{}, fmt.Errorf("%s is not an integer key", x)
		}
		return keyIn{text: strconv.FormatInt(n, 10), num: true}, nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return keyIn{}, fmt.Errorf("%v is not an integer key", x)
		}
		return keyIn{text: strconv.FormatInt(int64(x), 10), num: true}, nil
	case int64:
		return keyIn{text: strconv.FormatInt(x, 10), num: true}, nil
	case int:
		return keyIn{text: strconv.Itoa(x), num: true}, nil
	case string:
		return keyIn{text: x}, nil
	case nil:
		return keyIn{}, fmt.Errorf("null key: %w", errNotKey)
	}
	return keyIn{}, fmt.Errorf("%w, not %T", errNotKey, raw)
}

// norm returns the text the stores use for k in a tile set whose keys are
// strings (str) when that is known: ok is false for a key that int data
// cannot hold (a non-numeric string); it matches nothing.
func (k keyIn) norm(str, known bool) (string, bool) {
	if k.num || !known || str {
		return k.text, true
	}
	n, err := strconv.ParseInt(k.text, 10, 64)
	if err != nil {
		return "", false
	}
	if t := strconv.FormatInt(n, 10); t != k.text {
		return t, true
	}
	return k.text, true
}

// query answers a checked request.
func (s *Service) query(ctx context.Context, q *request) (*Result, error) {
	if len(q.outputs) == 0 {
		return nil, badRequest("outputs is empty: list feature references, e.g. %q", s.example())
	}
	if len(q.outputs) > s.opt.MaxOutputs {
		return nil, badRequest("outputs has %d references; at most %d per request", len(q.outputs), s.opt.MaxOutputs)
	}
	if len(q.inputs) == 0 {
		return nil, badRequest("inputs is empty: give keys, e.g. {\"user.id\": [1, 2]}")
	}
	rows := len(q.inputs[0].keys)
	for _, in := range q.inputs[1:] {
		if len(in.keys) != rows {
			return nil, badRequest("inputs.%s has %d keys, other inputs have %d: every input needs one key per row", in.name, len(in.keys), rows)
		}
	}
	if rows > s.opt.MaxRows {
		return nil, badRequest("inputs have %d keys; at most %d per request", rows, s.opt.MaxRows)
	}
	now := q.now
	if now.IsZero() {
		now = s.opt.Now()
	}
	t := now.UnixMicro()
	outs := make([]output, len(q.outputs))
	rs := make([]*resolved, len(q.outputs))
	for i, text := range q.outputs {
		r, err := s.resolveRef(text)
		if err != nil {
			return nil, err
		}
		rs[i] = r
	}
	// One block per kind of per-row memory, cut into a slice per output.
	n := len(outs)
	mem := outputMem{
		cols:   make([]offline.Column, n),
		values: make([]float64, n*rows),
		valid:  make([]bool, n*rows),
		keys:   make([]string, n*rows),
		ok:     make([]bool, n*rows),
		span:   make([]int, n*rows),
	}
	s.mu.RLock()
	var err error
	for i, r := range rs {
		if err = s.bind(&outs[i], r, q.inputs, rows, &mem, i); err != nil {
			break
		}
	}
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}

	// One span per distinct (tile set, key): from the earliest time an
	// output needs ingested events to t.
	var spans []store.Span
	var spanAt map[[2]string]int
	for i := range outs {
		o := &outs[i]
		head := o.set.Grid.Floor(t)
		if o.view.version > 0 && head < o.view.horizon(s.opt.Retention) {
			return nil, badRequest("now %s is too far in the past for online serving: the events of its bucket were pruned (they are kept %s before the tile store's watermark %s); use tessera offline-query --materialized --align for past times",
				now.UTC().Format(time.RFC3339Nano), s.opt.Retention, time.UnixMicro(o.view.watermark()).UTC().Format(time.RFC3339))
		}
		from := o.onlineFrom(t)
		for r, k := range o.keys {
			o.span[r] = -1
			if !o.ok[r] {
				continue
			}
			at := -1
			if spanAt != nil {
				if j, ok := spanAt[[2]string{o.set.ID, k}]; ok {
					at = j
				}
			} else {
				// Few spans: a scan beats building a map.
				for j := range spans {
					if spans[j].Key == k && spans[j].TileSet == o.set.ID {
						at = j
						break
					}
				}
			}
			if at >= 0 {
				spans[at].From = min(spans[at].From, from)
				o.span[r] = at
				continue
			}
			o.span[r] = len(spans)
			spans = append(spans, store.Span{TileSet: o.set.ID, Key: k, From: from, To: t})
			if spanAt == nil && len(spans) > 16 {
				spanAt = make(map[[2]string]int, len(o.keys))
				for j, sp := range spans {
					spanAt[[2]string{sp.TileSet, sp.Key}] = j
				}
			} else if spanAt != nil {
				spanAt[[2]string{o.set.ID, k}] = len(spans) - 1
			}
		}
	}
	points, err := s.store.Read(ctx, spans)
	if err != nil {
		return nil, fmt.Errorf("online query: %w", err)
	}
	res := &Result{Now: now, Columns: make([]*offline.Column, len(outs))}
	for i := range outs {
		o := &outs[i]
		lo := int64(math.MinInt64)
		if !o.ref.Window.All() {
			lo = o.set.Grid.Floor(t - o.ref.Window.Micros)
		}
		head := o.set.Grid.Floor(t)
		for r, k := range o.keys {
			var st aggregate.State
			if o.ok[r] {
				st = o.view.keys[k].rangeState(lo, head, o.fn == aggregate.Min || o.fn == aggregate.Max)
				for _, p := range points[o.span[r]] {
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

// resolveRef checks one output reference, from the cache when it was seen
// before.
func (s *Service) resolveRef(text string) (*resolved, error) {
	s.refMu.RLock()
	r := s.refs[text]
	s.refMu.RUnlock()
	if r != nil {
		return r, nil
	}
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
	r = &resolved{raw: text, ref: ref, f: f, fn: f.Aggregation, set: set}
	s.refMu.Lock()
	if len(s.refs) < maxResolved {
		s.refs[text] = r
	}
	s.refMu.Unlock()
	return r, nil
}

// cachedOutput returns the requested text of a reference seen before, to
// use without copying b; ok is false for a new one.
func (s *Service) cachedOutput(b []byte) (string, bool) {
	s.refMu.RLock()
	r := s.refs[string(b)]
	s.refMu.RUnlock()
	if r == nil {
		return "", false
	}
	return r.raw, true
}

// outputMem holds the per-row memory of a query's outputs.
type outputMem struct {
	cols      []offline.Column
	values    []float64
	valid, ok []bool
	keys      []string
	span      []int
}

// bind reads the keys output o (the i-th) needs and its tile set's view.
// The caller holds s.mu for reading.
func (s *Service) bind(o *output, r *resolved, inputs []input, rows int, mem *outputMem, i int) error {
	v := s.views[r.set.ID]
	if v == nil {
		return badRequest("outputs: tile set %s of %s is not loaded yet; retry once /readyz answers 200", r.set.ID, r.f.Name)
	}
	in := findInput(inputs, r.f)
	if in == nil {
		return badRequest("inputs: no keys for %s: give them under %q (or %q, %q)", r.ref.Text, r.f.Entity+".id", r.f.Entity, r.f.Key)
	}
	lo, hi := i*rows, (i+1)*rows
	*o = output{resolved: r, view: v, keys: mem.keys[lo:hi:hi], ok: mem.ok[lo:hi:hi], span: mem.span[lo:hi:hi], col: &mem.cols[i]}
	*o.col = offline.Column{Name: r.ref.Text, Integer: r.fn == aggregate.Count, Values: mem.values[lo:hi:hi]}
	if r.fn != aggregate.Count && r.fn != aggregate.Sum {
		o.col.Valid = mem.valid[lo:hi:hi]
	}
	str, known := s.keyKind[r.set.ID]
	for i, k := range in.keys {
		o.keys[i], o.ok[i] = k.norm(str, known)
	}
	return nil
}

// findInput returns the input holding a feature's keys: under its entity
// ("user", "user.id") or its key column ("user_id"), else the first named
// "<entity>.<anything>".
func findInput(inputs []input, f *feature.Feature) *input {
	for _, name := range [...]string{f.Entity + ".id", f.Entity, f.Key} {
		for i := range inputs {
			if inputs[i].name == name {
				return &inputs[i]
			}
		}
	}
	for i := range inputs {
		if n := inputs[i].name; len(n) > len(f.Entity) && n[len(f.Entity)] == '.' && strings.HasPrefix(n, f.Entity) {
			return &inputs[i]
		}
	}
	return nil
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
