package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
)

// TestKeptEventsJoinPieces: a key set's events read piece by piece and
// joined equal those of the whole source read at once and filtered, when
// the first file keeps few rows (the join outgrows its first guess), a
// file keeps every row, one keeps none, and nulls appear in the last only.
func TestKeptEventsJoinPieces(t *testing.T) {
	dir := t.TempDir()
	for f, c := range []struct {
		n     int
		key   func(i int) int64
		nulls bool
	}{
		{2000, func(i int) int64 { return int64(i % 1000) }, false}, // keeps 2 rows
		{3000, func(int) int64 { return 5 }, false},                 // keeps all
		{1000, func(i int) int64 { return int64(2000 + i) }, false}, // keeps none
		{1500, func(i int) int64 { return int64(i % 3 * 5) }, true}, // a third, with nulls
	} {
		k := &source.Column{Name: "k", Kind: source.Int64}
		ts := &source.Column{Name: "ts", Kind: source.Timestamp}
		v := &source.Column{Name: "v", Kind: source.Float64}
		for i := range c.n {
			k.Ints = append(k.Ints, c.key(i))
			ts.Ints = append(ts.Ints, int64(f*1e9+i*1000))
			v.Floats = append(v.Floats, float64(f*10000+i)/4)
		}
		if c.nulls {
			v.Valid = make([]bool, c.n)
			for i := range v.Valid {
				v.Valid[i] = i%7 != 0
			}
		}
		if err := source.Write(filepath.Join(dir, fmt.Sprintf("part-%d.parquet", f)), &source.Table{Rows: c.n, Columns: []*source.Column{k, ts, v}}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &feature.Config{Sources: map[string]*feature.Source{"s": {Name: "s", Path: dir, Timestamp: "ts"}}}
	spec := EventSpec{Source: "s", Key: "k", Value: "v"}
	keep := tile.NewDict(false)
	keep.AddAll(&tile.Keys{Int: []int64{5}}, nil)

	got, err := (&FileEvents{Config: cfg}).Events(context.Background(), spec, keep)
	if err != nil {
		t.Fatal(err)
	}
	all, err := source.Read(dir, []source.Request{{Name: "k", Role: source.Key}, {Name: "ts", Role: source.Time}, {Name: "v", Role: source.Value}}, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := EventsOf(all, spec, "ts", keep)
	if want.Len() != 2+3000+500 {
		t.Fatalf("the source keeps %d events of key 5, want 3502", want.Len())
	}
	if got.Len() != want.Len() || len(got.Keys.Int) != want.Len() || len(got.Values) != want.Len() {
		t.Fatalf("joined %d events (%d keys, %d values), want %d", got.Len(), len(got.Keys.Int), len(got.Values), want.Len())
	}
	nulls := 0
	for i := range want.Len() {
		gv, wv := got.Valid == nil || got.Valid[i], want.Valid == nil || want.Valid[i]
		if got.TS[i] != want.TS[i] || got.Keys.Int[i] != want.Keys.Int[i] || gv != wv || wv && got.Values[i] != want.Values[i] {
			t.Fatalf("event %d: got (%d, %d, %v, valid %v), want (%d, %d, %v, valid %v)", i,
				got.Keys.Int[i], got.TS[i], got.Values[i], gv, want.Keys.Int[i], want.TS[i], want.Values[i], wv)
		}
		if !wv {
			nulls++
		}
	}
	if nulls == 0 {
		t.Fatal("no null value among the kept events: the test misses its case")
	}
}
