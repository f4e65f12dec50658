package offline

import (
	"context"
	"fmt"
	"sync"

	"github.com/tessera-fe/tessera/feature"
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
}

func (f *FileEvents) read(spec EventSpec) (*source.Table, *feature.Source, error) {
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
	t, _, err := f.read(spec)
	if err != nil {
		return false, err
	}
	return t.Column(spec.Key).Kind == source.String, nil
}

// Events returns the events of spec whose key is in keep (all when keep is
// nil) and that pass the filter.
func (f *FileEvents) Events(_ context.Context, spec EventSpec, keep *tile.Dict) (*tile.Events, error) {
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
	kc, tc := t.Column(spec.Key), t.Column(timestamp)
	var vc, fc *source.Column
	if spec.Value != "" {
		vc = t.Column(spec.Value)
	}
	if spec.Filter.Column != "" {
		fc = t.Column(spec.Filter.Column)
	}
	keys := tile.Keys{String: kc.Kind == source.String, Int: kc.Ints, Str: kc.Strs}
	var ids []int32
	if keep != nil {
		ids = keep.LookupAll(&keys, make([]int32, 0, t.Rows))
	}
	rows := make([]int32, 0, t.Rows)
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
		ev := &tile.Events{Keys: keys, TS: tc.Ints}
		if vc != nil {
			ev.Values, ev.Valid = vc.Floats, vc.Valid
		}
		return ev
	}
	ev := &tile.Events{Keys: tile.Keys{String: keys.String}, TS: gather(tc.Ints, rows)}
	if keys.String {
		ev.Keys.Str = gather(keys.Str, rows)
	} else {
		ev.Keys.Int = gather(keys.Int, rows)
	}
	if vc != nil {
		ev.Values = gather(vc.Floats, rows)
		if vc.Valid != nil {
			ev.Valid = gather(vc.Valid, rows)
		}
	}
	return ev
}
