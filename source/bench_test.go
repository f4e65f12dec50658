package source

import (
	"path/filepath"
	"testing"
)

// eventTable builds n events: an int64 user key, a timestamp and a value
// with some nulls.
func eventTable(n int) *Table {
	user := &Column{Name: "user_id", Kind: Int64, Ints: make([]int64, n)}
	ts := &Column{Name: "ts", Kind: Timestamp, Ints: make([]int64, n)}
	amount := &Column{Name: "amount", Kind: Float64, Floats: make([]float64, n), Valid: make([]bool, n)}
	for i := 0; i < n; i++ {
		user.Ints[i] = int64(i*7919) % 100_000
		ts.Ints[i] = 1_700_000_000_000_000 + int64(i)*1_000_003
		amount.Floats[i] = float64(i%1000) / 7
		amount.Valid[i] = i%17 != 0
	}
	return &Table{Rows: n, Columns: []*Column{user, ts, amount}}
}

func BenchmarkReadParquet(b *testing.B) {
	const n = 1 << 20
	path := filepath.Join(b.TempDir(), "events.parquet")
	if err := Write(path, eventTable(n)); err != nil {
		b.Fatal(err)
	}
	req := []Request{{"user_id", Key}, {"ts", Time}, {"amount", Value}}
	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		t, err := Read(path, req, Options{})
		if err != nil {
			b.Fatal(err)
		}
		rows += t.Rows
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkReadCSV(b *testing.B) {
	const n = 1 << 18
	path := filepath.Join(b.TempDir(), "events.csv")
	if err := Write(path, eventTable(n)); err != nil {
		b.Fatal(err)
	}
	req := []Request{{"user_id", Key}, {"ts", Time}, {"amount", Value}}
	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		t, err := Read(path, req, Options{})
		if err != nil {
			b.Fatal(err)
		}
		rows += t.Rows
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkWriteParquet(b *testing.B) {
	const n = 1 << 20
	t := eventTable(n)
	path := filepath.Join(b.TempDir(), "out.parquet")
	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		if err := Write(path, t); err != nil {
			b.Fatal(err)
		}
		rows += n
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
