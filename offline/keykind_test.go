package offline

import (
	"context"
	"testing"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/tile"
)

// TestSpineKeysOfTheOtherKind: string spine keys against int event keys are
// parsed; one that is not an integer matches nothing and gets empty windows,
// in every mode and in the naive scan.
func TestSpineKeysOfTheOtherKind(t *testing.T) {
	cfg := mustConfig(t, randomConfig)
	var rs []feature.Ref
	for _, s := range []string{"user.total[1h]", "user.acnt[1h]", "user.avg[1h]"} {
		r, err := feature.ParseRef(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	events := []rawEvent{
		{ikey: 1, ts: t0 + 10*minute, value: 5, valid: true},
		{ikey: 2, ts: t0 + 20*minute, value: 7, valid: true},
		{ikey: 0, ts: t0 + 25*minute, value: 100, valid: true},
	}
	sp := &Spine{Keys: tile.Keys{String: true, Str: []string{"1", "x", "2", "1"}}, Times: []int64{t0 + hour, t0 + hour, t0 + hour, t0 + hour}}
	mem := &memEvents{events: events}
	eng := &Engine{Config: cfg, Events: mem} // no store: materialized modes build every bucket from events
	for _, opt := range []Options{{}, {Align: true}, {Materialized: true}, {Materialized: true, Align: true}} {
		for _, naive := range []bool{false, true} {
			run := eng.Query
			if naive {
				run = eng.Naive
			}
			res, err := run(context.Background(), sp, rs, opt)
			if err != nil {
				t.Fatal(err)
			}
			sum, cnt, avg := res.Columns[0], res.Columns[1], res.Columns[2]
			want := []float64{5, 0, 7, 5}
			for r := range want {
				if sum.Values[r] != want[r] || cnt.Values[r] != map[bool]float64{true: 1, false: 0}[want[r] != 0] {
					t.Errorf("%s naive=%v row %d: sum %v count %v, want sum %v", opt.Mode(), naive, r, sum.Values[r], cnt.Values[r], want[r])
				}
				if avg.Valid[r] != (want[r] != 0) {
					t.Errorf("%s naive=%v row %d: mean valid %v", opt.Mode(), naive, r, avg.Valid[r])
				}
			}
		}
	}
}
