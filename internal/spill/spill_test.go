package spill

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/tessera-fe/tessera/tile"
)

func TestRoundTrip(t *testing.T) {
	for _, values := range []bool{true, false} {
		p, err := Create(t.TempDir(), 3, values)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		var want [3]Records
		// More records than one write buffer holds, so reads cross buffers.
		for range 40_000 {
			part := rng.IntN(3)
			id, ts, v := rng.Int32(), rng.Int64()-math.MaxInt64/2, rng.NormFloat64()
			if rng.IntN(10) == 0 {
				v = math.NaN()
			}
			if err := p.Add(part, id, ts, v); err != nil {
				t.Fatal(err)
			}
			want[part].IDs = append(want[part].IDs, id)
			want[part].TS = append(want[part].TS, ts)
			want[part].Values = append(want[part].Values, v)
		}
		for part := range 3 {
			got, err := p.Read(part)
			if err != nil {
				t.Fatal(err)
			}
			if got.Len() != len(want[part].TS) || int(p.Rows(part)) != got.Len() {
				t.Fatalf("partition %d: %d records (Rows %d), want %d", part, got.Len(), p.Rows(part), len(want[part].TS))
			}
			if !values && got.Values != nil {
				t.Fatalf("values read back from partitions made without them")
			}
			for i := range got.TS {
				if got.IDs[i] != want[part].IDs[i] || got.TS[i] != want[part].TS[i] {
					t.Fatalf("partition %d record %d: (%d, %d), want (%d, %d)", part, i, got.IDs[i], got.TS[i], want[part].IDs[i], want[part].TS[i])
				}
				if values && math.Float64bits(got.Values[i]) != math.Float64bits(want[part].Values[i]) {
					t.Fatalf("partition %d record %d: value %v, want %v", part, i, got.Values[i], want[part].Values[i])
				}
			}
		}
		// Adding after a read, then reading again, sees both.
		if err := p.Add(0, 7, 8, 9); err != nil {
			t.Fatal(err)
		}
		got, err := p.Read(0)
		if err != nil {
			t.Fatal(err)
		}
		if n := got.Len(); n != len(want[0].TS)+1 || got.IDs[n-1] != 7 || got.TS[n-1] != 8 {
			t.Fatalf("record added after a read: got %d records ending (%d, %d)", n, got.IDs[n-1], got.TS[n-1])
		}
		dir := p.Dir()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("Close left %s behind (%v)", dir, err)
		}
	}
}

func TestCreateErrors(t *testing.T) {
	if _, err := Create(t.TempDir(), 0, true); err == nil {
		t.Fatal("Create with 0 partitions succeeded")
	}
	if _, err := Create("/nonexistent/dir", 2, true); err == nil {
		t.Fatal("Create under a missing directory succeeded")
	}
}

func BenchmarkAddRead(b *testing.B) {
	dir := b.TempDir()
	const n = 1 << 20
	b.ReportAllocs()
	for b.Loop() {
		p, err := Create(dir, 16, true)
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			if err := p.Add(i&15, int32(i), int64(i), float64(i)); err != nil {
				b.Fatal(err)
			}
		}
		for part := range 16 {
			if _, err := p.Read(part); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func TestRecordsEvents(t *testing.T) {
	for _, str := range []bool{false, true} {
		d := tile.NewDict(str)
		keys := &tile.Keys{String: str, Int: []int64{40, 7}, Str: []string{"b", "a"}}
		if str {
			keys.Int = nil
		} else {
			keys.Str = nil
		}
		d.AddAll(keys, nil)
		r := Records{IDs: []int32{1, 0, 1}, TS: []int64{5, 6, 7}, Values: []float64{1.5, math.NaN(), 2}}
		ev := r.Events(d)
		if ev.Len() != 3 || ev.Valid == nil || !ev.Valid[0] || ev.Valid[1] || !ev.Valid[2] {
			t.Fatalf("str %v: events %+v", str, ev)
		}
		if str && (ev.Keys.Str[0] != "a" || ev.Keys.Str[1] != "b") || !str && (ev.Keys.Int[0] != 7 || ev.Keys.Int[1] != 40) {
			t.Fatalf("str %v: keys %+v", str, ev.Keys)
		}
		if (&Records{IDs: []int32{0}, TS: []int64{1}}).Events(d).Valid != nil {
			t.Fatalf("records without values gave a validity column")
		}
	}
}
