package materialize

import (
	"path/filepath"
	"runtime/debug"
	"testing"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/source"
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
	if p, err := partitionsFor(src, sets, Options{}); err != nil || p != 1 {
		t.Fatalf("without a memory limit: %d partitions (%v), want 1", p, err)
	}
	old := debug.SetMemoryLimit(64 << 20)
	defer debug.SetMemoryLimit(old)
	if p, err := partitionsFor(src, sets, Options{}); err != nil || p < 2 {
		t.Fatalf("%d events of 2 tile sets under a 64 MiB limit: %d partitions (%v), want several", n, p, err)
	}
	if p, _ := partitionsFor(src, sets, Options{Partitions: 7}); p != 7 {
		t.Fatalf("Options.Partitions 7 gave %d", p)
	}
	if _, err := partitionsFor(&feature.Source{Path: filepath.Join(t.TempDir(), "none.parquet")}, sets, Options{}); err == nil {
		t.Fatal("a missing source sized without error")
	}
}
