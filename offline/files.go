package offline

import (
	"context"
	"fmt"
	"sync"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/hugepage"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
)

// FileEvents loads raw events from the source files a configuration names.
// Each (source, columns) read is kept for the life of the value, so that
// outputs and key-kind checks over the same data read the files once.
type FileEvents struct {
	Config *feature.Config
	Stats  *source.Stats // may be nil

	mu     sync.Mutex
	tables map[string]*source.Table
	kept   map[keptKey]*tile.Events
}

// keptKey names the events of one spec kept for one key set.
type keptKey struct {
	spec EventSpec
	keep *tile.Dict
}

// request returns the source of spec and the columns it reads.
func (f *FileEvents) request(spec EventSpec) (*feature.Source, []source.Request, error) {
	src := f.Config.Sources[spec.Source]
	if src == nil {
		return nil, nil, fmt.Errorf("unknown source %q", spec.Source)
	}
	req := []source.Request{{Name: spec.Key, Role: source.Key}, {Name: src.Timestamp, Role: source.Time}}
	if spec.Value != "" {
		req = append(req, source.Request{Name: spec.Value, Role: source.Value})
	}
	if spec.Filter.Column != "" {
		req = append(req, source.Request{Name: spec.Filter.Column, Role: source.Text})
	}
	return src, req, nil
}

func (f *FileEvents) read(spec EventSpec) (*source.Table, *feature.Source, error) {
	src, req, err := f.request(spec)
	if err != nil {
		return nil, nil, err
	}
	cacheKey := fmt.Sprint(spec.Source, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.tables[cacheKey]; ok {
		return t, src, nil
	}
	t, err := source.Read(src.Path, req, source.Options{Stats: f.Stats})
	if err != nil {
		return nil, nil, fmt.Errorf("read source %s: %w", spec.Source, err)
	}
	if f.tables == nil {
		f.tables = map[string]*source.Table{}
	}
	f.tables[cacheKey] = t
	return t, src, nil
}

// KeyKind reports whether the events of spec have string keys.
func (f *FileEvents) KeyKind(_ context.Context, spec EventSpec) (bool, error) {
	if src := f.Config.Sources[spec.Source]; src != nil && parquetOnly(src.Path) {
		// Parquet footers say the key's type: no need to read events.
		if info, err := source.Schema(src.Path); err == nil {
			for _, c := range info {
				if c.Name == spec.Key {
					return c.Kind == source.String, nil
				}
			}
		}
	}
	t, _, err := f.read(spec)
	if err != nil {
		return false, err
	}
	return t.Column(spec.Key).Kind == source.String, nil
}

// Events returns the events of spec whose key is in keep (all when keep is
// nil) and that pass the filter.
//
// A key set over Parquet files is read file by file, keeping only its
// events: memory holds those, not the whole source.
func (f *FileEvents) Events(ctx context.Context, spec EventSpec, keep *tile.Dict) (*tile.Events, error) {
	if src := f.Config.Sources[spec.Source]; keep != nil && src != nil && parquetOnly(src.Path) {
		return f.keptEvents(ctx, spec, keep)
	}
	t, src, err := f.read(spec)
	if err != nil {
		return nil, err
	}
	return EventsOf(t, spec, src.Timestamp, keep), nil
}

// EventsOf extracts the events of spec from a table read with the key, time,
// value and filter columns, keeping rows whose key is in keep (all when keep
// is nil) and whose filter column equals the filter's value. When every row
// is kept the columns are shared with the table, not copied.
func EventsOf(t *source.Table, spec EventSpec, timestamp string, keep *tile.Dict) *tile.Events {
	return eventsOf(t, spec, timestamp, keep, nil)
}

// rowScratch is room, reused from table to table of a stream, for the key
// ids and row numbers EventsOf works through: fresh for each table, a
// piece of a million rows, it cost a page fault per 4 KiB at its ends,
// where whole huge pages do not reach.
type rowScratch struct {
	ids, rows []int32
}

// of returns the scratch's two buffers with room for n rows each; a nil
// scratch makes fresh ones.
func (sc *rowScratch) of(n int) (ids, rows []int32, written func()) {
	if sc == nil {
		ids, w1 := hugepage.Make[int32](n)
		rows, w2 := hugepage.Make[int32](n)
		return ids, rows, func() { w1(); w2() }
	}
	if cap(sc.ids) < n {
		var req hugepage.Requests
		sc.ids, sc.rows = hugepage.MakeIn[int32](&req, n), hugepage.MakeIn[int32](&req, n)
		return sc.ids[:n], sc.rows[:n], req.Written
	}
	return sc.ids[:n], sc.rows[:n], func() {}
}

// eventsOf is EventsOf with its scratch in sc (nil: fresh).
func eventsOf(t *source.Table, spec EventSpec, timestamp string, keep *tile.Dict, sc *rowScratch) *tile.Events {
	ev, rows, written := selectRows(t, spec, timestamp, keep, sc)
	defer written()
	if rows == nil {
		return ev
	}
	return pickEvents(ev, rows)
}

// selectRows returns the events of t's columns and the rows of them that
// EventsOf keeps, in scratch from sc, nil when it keeps every row; written
// withdraws the scratch's huge page requests, once the rows are used.
func selectRows(t *source.Table, spec EventSpec, timestamp string, keep *tile.Dict, sc *rowScratch) (ev *tile.Events, rows []int32, written func()) {
	kc, tc := t.Column(spec.Key), t.Column(timestamp)
	var vc, fc *source.Column
	if spec.Value != "" {
		vc = t.Column(spec.Value)
	}
	if spec.Filter.Column != "" {
		fc = t.Column(spec.Filter.Column)
	}
	keys := tile.Keys{String: kc.Kind == source.String, Int: kc.Ints, Str: kc.Strs}
	ev = &tile.Events{Keys: keys, TS: tc.Ints}
	if vc != nil {
		ev.Values, ev.Valid = vc.Floats, vc.Valid
	}
	if keep == nil && fc == nil {
		return ev, nil, func() {} // every row: no copy
	}
	// Scratch as large as the table: huge pages spare a page fault per 4
	// KiB of it where it is fresh memory.
	idRoom, rows, written := sc.of(t.Rows)
	var ids []int32
	if keep != nil {
		ids = keep.LookupAll(&keys, idRoom[:0])
	}
	rows = rows[:0]
	for i := range t.Rows {
		if ids != nil && ids[i] < 0 {
			continue
		}
		if fc != nil && (fc.IsNull(i) || fc.Strs[i] != spec.Filter.Equals) {
			continue
		}
		rows = append(rows, int32(i))
	}
	if len(rows) == t.Rows {
		return ev, nil, written
	}
	return ev, rows, written
}

// keptEvents streams spec's events of keep's keys, once per (spec, keep).
func (f *FileEvents) keptEvents(ctx context.Context, spec EventSpec, keep *tile.Dict) (*tile.Events, error) {
	k := keptKey{spec, keep}
	f.mu.Lock()
	ev, ok := f.kept[k]
	f.mu.Unlock()
	if ok {
		return ev, nil
	}
	total, _, err := source.Rows(f.Config.Sources[spec.Source].Path, nil)
	if err != nil {
		return nil, err
	}
	// Each piece's kept rows go straight into the joined columns, and the
	// piece's memory to the next pieces: memory holds the kept events
	// once, not every piece's copy of them and then the join.
	var j joiner
	err = f.streamRows(ctx, spec, keep, func(t *source.Table, ev *tile.Events, rows []int32) error {
		j.add(ev, rows, t.Rows, total)
		t.Release()
		return nil
	})
	if err != nil {
		j.events()
		return nil, err
	}
	ev = j.events()
	f.mu.Lock()
	if f.kept == nil {
		f.kept = map[keptKey]*tile.Events{}
	}
	f.kept[k] = ev
	f.mu.Unlock()
	return ev, nil
}

// StreamEvents calls fn with the events of spec whose key is in keep (all
// when keep is nil) and that pass the filter, a piece of a source file at a
// time (see source.Stream).
func (f *FileEvents) StreamEvents(ctx context.Context, spec EventSpec, keep *tile.Dict, fn func(*tile.Events) error) error {
	return f.streamRows(ctx, spec, keep, func(t *source.Table, ev *tile.Events, rows []int32) error {
		if rows == nil {
			return fn(ev) // the table's own columns: fn may keep them
		}
		if err := fn(pickEvents(ev, rows)); err != nil {
			return err
		}
		// The events are a copy: the next pieces decode into the table's
		// memory rather than fresh memory.
		t.Release()
		return nil
	})
}

// streamRows calls fn with each piece of spec's source, its events (the
// piece's own columns) and the rows of them in keep that pass the filter
// (nil: every row; in scratch reused from piece to piece).
func (f *FileEvents) streamRows(ctx context.Context, spec EventSpec, keep *tile.Dict, fn func(t *source.Table, ev *tile.Events, rows []int32) error) error {
	src, req, err := f.request(spec)
	if err != nil {
		return err
	}
	var sc rowScratch
	err = source.Stream(ctx, src.Path, req, source.Options{Stats: f.Stats}, func(_ string, t *source.Table) error {
		ev, rows, written := selectRows(t, spec, src.Timestamp, keep, &sc)
		defer written()
		return fn(t, ev, rows)
	})
	if err != nil {
		return fmt.Errorf("read source %s: %w", spec.Source, err)
	}
	return nil
}

// CountEvents returns the number of rows of spec's source (estimated for
// CSV files), reading no event.
func (f *FileEvents) CountEvents(_ context.Context, spec EventSpec) (int64, error) {
	src := f.Config.Sources[spec.Source]
	if src == nil {
		return 0, fmt.Errorf("unknown source %q", spec.Source)
	}
	n, _, err := source.Rows(src.Path, nil)
	if err != nil {
		return 0, fmt.Errorf("count events of source %s: %w", spec.Source, err)
	}
	return n, nil
}

// parquetOnly reports whether path names only Parquet files.
func parquetOnly(path string) bool {
	_, exact, err := source.Rows(path, nil)
	return err == nil && exact
}

// joiner copies the kept rows of a source's pieces, in order, into one set
// of columns: sized from the share of rows the first piece keeps, grown by
// half when that falls short, asking for huge pages until it is done.
type joiner struct {
	out *tile.Events
	n   int  // rows joined
	str bool // the key kind of the first piece, kept when no row is
	set bool
	req hugepage.Requests
}

// add joins the rows of ev (all of them when rows is nil) of a piece of
// pieceRows rows, out of about total in the source.
func (j *joiner) add(ev *tile.Events, rows []int32, pieceRows int, total int64) {
	m := ev.Len()
	if rows != nil {
		m = len(rows)
	}
	if !j.set {
		j.str, j.set = ev.Keys.String, true
	}
	if m == 0 {
		return
	}
	if j.out == nil {
		j.str = ev.Keys.String
		// The first piece's share of kept rows, over the whole source.
		size := int(float64(m)/float64(max(pieceRows, 1))*float64(total)*1.1) + 1024
		j.out = &tile.Events{Keys: tile.Keys{String: ev.Keys.String}}
		j.grow(max(size, m), ev.Values != nil)
	}
	if j.n+m > len(j.out.TS) {
		j.grow((j.n+m)*3/2, ev.Values != nil)
	}
	o := j.out
	if ev.Valid != nil && o.Valid == nil {
		o.Valid = hugepage.MakeIn[bool](&j.req, len(o.TS))
		fillTrue(o.Valid[:j.n])
	}
	if ev.Values != nil && o.Values == nil {
		o.Values = hugepage.MakeIn[float64](&j.req, len(o.TS))
	}
	put(o.TS[j.n:j.n+m], ev.TS, rows)
	if o.Keys.String {
		put(o.Keys.Str[j.n:j.n+m], ev.Keys.Str, rows)
	} else {
		put(o.Keys.Int[j.n:j.n+m], ev.Keys.Int, rows)
	}
	if o.Values != nil && ev.Values != nil {
		put(o.Values[j.n:j.n+m], ev.Values, rows)
	}
	if o.Valid != nil {
		if ev.Valid != nil {
			put(o.Valid[j.n:j.n+m], ev.Valid, rows)
		} else {
			fillTrue(o.Valid[j.n : j.n+m])
		}
	}
	j.n += m
}

// grow gives the joined columns room for size rows, keeping the rows
// joined.
func (j *joiner) grow(size int, values bool) {
	o := j.out
	o.TS = regrow(&j.req, o.TS, j.n, size)
	if o.Keys.String {
		keys := make([]string, size)
		copy(keys, o.Keys.Str[:j.n])
		o.Keys.Str = keys
	} else {
		o.Keys.Int = regrow(&j.req, o.Keys.Int, j.n, size)
	}
	if values || o.Values != nil {
		o.Values = regrow(&j.req, o.Values, j.n, size)
	}
	if o.Valid != nil {
		o.Valid = regrow(&j.req, o.Valid, j.n, size)
	}
}

// regrow returns a column of size rows holding the first n of col.
func regrow[T any](req *hugepage.Requests, col []T, n, size int) []T {
	out := hugepage.MakeIn[T](req, size)
	if col != nil {
		copy(out, col[:n])
	}
	return out
}

// put copies the rows of src (all of them when rows is nil) to dst.
func put[T any](dst, src []T, rows []int32) {
	if rows == nil {
		copy(dst, src)
		return
	}
	for i, r := range rows {
		dst[i] = src[r]
	}
}

// fillTrue sets every flag of v.
func fillTrue(v []bool) {
	for i := range v {
		v[i] = true
	}
}

// events returns the joined events and withdraws the huge page requests.
func (j *joiner) events() *tile.Events {
	j.req.Written()
	if j.out == nil {
		return &tile.Events{Keys: tile.Keys{String: j.str}}
	}
	o, n := j.out, j.n
	o.TS = o.TS[:n:n]
	if o.Keys.String {
		o.Keys.Str = o.Keys.Str[:n:n]
	} else {
		o.Keys.Int = o.Keys.Int[:n:n]
	}
	if o.Values != nil {
		o.Values = o.Values[:n:n]
	}
	if o.Valid != nil {
		o.Valid = o.Valid[:n:n]
	}
	return o
}
