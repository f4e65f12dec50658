package offline

import (
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"

	"github.com/tessera-fe/tessera/aggregate"
	"github.com/tessera-fe/tessera/tile"
)

// TestEventSeriesParts: splitting a large input over cores gives the same
// series as one part.
func TestEventSeriesParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ev := &tile.Events{}
	for range 700_000 {
		ev.Keys.Int = append(ev.Keys.Int, rng.Int64N(5000))
		ev.TS = append(ev.TS, rng.Int64N(1e12)-5e11)
		ev.Values = append(ev.Values, float64(rng.IntN(1000)))
		ev.Valid = append(ev.Valid, rng.IntN(10) != 0)
	}
	dict := tile.NewDict(false)
	dict.AddAll(&tile.Keys{Int: ev.Keys.Int[:300_000]}, nil) // some keys are not in the spine
	needs := aggregate.Mean.Needs()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	one := eventSeries(ev, dict, needs)
	runtime.GOMAXPROCS(4)
	four := eventSeries(ev, dict, needs)
	if !reflect.DeepEqual(one, four) {
		t.Fatal("series differ between 1 and 4 parts")
	}
	for g := range dict.Len() {
		seg := one.pos[one.first[g]:one.end[g]]
		for i := 1; i < len(seg); i++ {
			if seg[i-1] > seg[i] {
				t.Fatalf("key %d not sorted by time", g)
			}
		}
	}
}
