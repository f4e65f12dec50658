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
	kc, tc := t.Column(spec.Key), t.Column(timestamp)
	var vc, fc *source.Column
	if spec.Value != "" {
		vc = t.Column(spec.Value)
	}
	if spec.Filter.Column != "" {
		fc = t.Column(spec.Filter.Column)
	}
	keys := tile.Keys{String: kc.Kind == source.String, Int: kc.Ints, Str: kc.Strs}
	ev := &tile.Events{Keys: keys, TS: tc.Ints}
	if vc != nil {
		ev.Values, ev.Valid = vc.Floats, vc.Valid
	}
	if keep == nil && fc == nil {
		return ev // every row: no copy
	}
	// Scratch as large as the table: huge pages spare a page fault per 4
	// KiB of it where it is fresh memory.
	idRoom, rows, written := sc.of(t.Rows)
	defer written()
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
		return ev
	}
	return pickEvents(ev, rows)
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
	var batches []*tile.Events
	if err := f.StreamEvents(ctx, spec, keep, func(b *tile.Events) error {
		batches = append(batches, b)
		return nil
	}); err != nil {
		return nil, err
	}
	ev = tile.Concat(batches)
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
	src, req, err := f.request(spec)
	if err != nil {
		return err
	}
	var sc rowScratch
	err = source.Stream(ctx, src.Path, req, source.Options{Stats: f.Stats}, func(_ string, t *source.Table) error {
		ev := eventsOf(t, spec, src.Timestamp, keep, &sc)
		shared := len(ev.TS) > 0 && &ev.TS[0] == &t.Column(src.Timestamp).Ints[0]
		if err := fn(ev); err != nil {
			return err
		}
		if !shared {
			// The events are a copy: the next pieces decode into the
			// table's memory rather than fresh memory.
			t.Release()
		}
		return nil
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
