package source

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFooterMemo: a fact is read once per version of a file; a file
// rewritten, touched or replaced is read again, and Rows and Bounds follow
// the new content.
func TestFooterMemo(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "events.parquet")
	write := func(rows int, first int64) {
		t.Helper()
		ts := make([]int64, rows)
		for i := range ts {
			ts[i] = first + int64(i)
		}
		tab := &Table{Rows: rows, Columns: []*Column{{Name: "ts", Kind: Timestamp, Ints: ts}}}
		if err := Write(name, tab); err != nil {
			t.Fatal(err)
		}
	}
	write(10, 100)
	reads := 0
	count := func() (footerFact, error) { reads++; return footerFact{lo: 1}, nil }
	for range 3 {
		if _, err := footers.get(name, "x", rowCount, count); err != nil {
			t.Fatal(err)
		}
	}
	if reads != 1 {
		t.Fatalf("one version read %d times", reads)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(name, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := footers.get(name, "x", rowCount, count); err != nil || reads != 2 {
		t.Fatalf("a touched file was not read again (%d reads, %v)", reads, err)
	}

	if n, _, err := Rows(name, nil); err != nil || n != 10 {
		t.Fatalf("Rows = %d, %v; want 10", n, err)
	}
	if lo, hi, ok := Bounds(name, "ts", nil); !ok || lo != 100 || hi != 109 {
		t.Fatalf("Bounds = %d, %d, %v; want 100, 109", lo, hi, ok)
	}
	write(25, 5000) // rewritten: another size
	if n, _, err := Rows(name, nil); err != nil || n != 25 {
		t.Fatalf("after a rewrite Rows = %d, %v; want 25", n, err)
	}
	if lo, hi, ok := Bounds(name, "ts", nil); !ok || lo != 5000 || hi != 5024 {
		t.Fatalf("after a rewrite Bounds = %d, %d, %v; want 5000, 5024", lo, hi, ok)
	}
}
