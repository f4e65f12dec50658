package materialize

import (
	"math"
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

// TestPartitionsFollowMemoryLimit: a source that fits is read whole; under
// a memory limit it does not fit in, it is read in key partitions.
func TestPartitionsFollowMemoryLimit(t *testing.T) {
	const n = 400_000
	tab := &source.Table{Rows: n, Columns: []*source.Column{{Name: "k", Kind: source.Int64, Ints: make([]int64, n)}, {Name: "ts", Kind: source.Timestamp, Ints: make([]int64, n)}}}
	path := filepath.Join(t.TempDir(), "events.parquet")
	if err := source.Write(path, tab); err != nil {
		t.Fatal(err)
	}
	src := &feature.Source{Path: path, Timestamp: "ts"}
	sets := []*feature.TileSet{{ID: "a"}, {ID: "b"}}
	covers := map[string]tilestore.Range{"a": {From: math.MinInt64, To: math.MaxInt64}, "b": {From: 0, To: 1}}
	if p, err := partitionsFor(src, sets, covers, Options{}); err != nil || p != 1 {
		t.Fatalf("without a memory limit: %d partitions (%v), want 1", p, err)
	}
	old := debug.SetMemoryLimit(64 << 20)
	defer debug.SetMemoryLimit(old)
	if p, err := partitionsFor(src, sets, covers, Options{}); err != nil || p < 2 {
		t.Fatalf("%d events of 2 tile sets under a 64 MiB limit: %d partitions (%v), want several", n, p, err)
	}
	if p, _ := partitionsFor(src, sets, covers, Options{Partitions: 7}); p != 7 {
		t.Fatalf("Options.Partitions 7 gave %d", p)
	}
	if _, err := partitionsFor(&feature.Source{Path: filepath.Join(t.TempDir(), "none.parquet")}, sets, covers, Options{}); err == nil {
		t.Fatal("a missing source sized without error")
	}
}

// TestPartitionsCountReadFilesOnly: an incremental run sizes itself by the
// files it reads, not the whole source: old files that the time range
// prunes do not push it into key partitions.
func TestPartitionsCountReadFilesOnly(t *testing.T) {
	const day = int64(86_400_000_000)
	dir := t.TempDir()
	write := func(name string, n int, ts int64) {
		tab := &source.Table{Rows: n, Columns: []*source.Column{{Name: "k", Kind: source.Int64, Ints: make([]int64, n)}, {Name: "ts", Kind: source.Timestamp, Ints: make([]int64, n)}}}
		for i := range n {
			tab.Columns[1].Ints[i] = ts
		}
		if err := source.Write(filepath.Join(dir, name), tab); err != nil {
			t.Fatal(err)
		}
	}
	write("day-00.parquet", 400_000, 0)
	write("day-10.parquet", 100, 10*day)
	src := &feature.Source{Path: dir, Timestamp: "ts"}
	sets := []*feature.TileSet{{ID: "a"}, {ID: "b"}}
	old := debug.SetMemoryLimit(64 << 20)
	defer debug.SetMemoryLimit(old)
	all := map[string]tilestore.Range{"a": {From: math.MinInt64, To: math.MaxInt64}, "b": {From: math.MinInt64, To: math.MaxInt64}}
	if p, err := partitionsFor(src, sets, all, Options{}); err != nil || p < 2 {
		t.Fatalf("the whole source under a 64 MiB limit: %d partitions (%v), want several", p, err)
	}
	recent := map[string]tilestore.Range{"a": {From: 9 * day, To: 11 * day}, "b": {From: 10 * day, To: 12 * day}}
	if p, err := partitionsFor(src, sets, recent, Options{}); err != nil || p != 1 {
		t.Fatalf("the last days only: %d partitions (%v), want 1", p, err)
	}
}
