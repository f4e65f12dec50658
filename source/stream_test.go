package source

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// streamDir writes n Parquet files and one CSV of sequential keys.
func streamDir(t *testing.T, n, per int) string {
	dir := t.TempDir()
	for f := range n + 1 {
		tab := &Table{Rows: per, Columns: []*Column{{Name: "k", Kind: Int64}, {Name: "v", Kind: Float64}}}
		for i := range per {
			tab.Columns[0].Ints = append(tab.Columns[0].Ints, int64(f*per+i))
			tab.Columns[1].Floats = append(tab.Columns[1].Floats, float64(f*per+i)/4)
		}
		name := fmt.Sprintf("part-%02d.parquet", f)
		if f == n {
			name = "zz.csv"
		}
		if err := Write(filepath.Join(dir, name), tab); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestStreamEqualsRead(t *testing.T) {
	dir := streamDir(t, 7, 1000)
	req := []Request{{"k", Key}, {"v", Value}}
	all := mustRead(t, dir, req)
	var st Stats
	var keys []int64
	var vals []float64
	var files []string
	err := Stream(context.Background(), dir, req, Options{Stats: &st}, func(file string, tab *Table) error {
		files = append(files, filepath.Base(file))
		keys = append(keys, tab.Columns[0].Ints...)
		vals = append(vals, tab.Columns[1].Floats...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 8 || files[0] != "part-00.parquet" || files[7] != "zz.csv" {
		t.Fatalf("files streamed: %v", files)
	}
	if !reflect.DeepEqual(keys, all.Columns[0].Ints) || !reflect.DeepEqual(vals, all.Columns[1].Floats) {
		t.Fatalf("streamed columns differ from Read's")
	}
	if st.Files.Load() != 8 || st.Rows.Load() != 8000 || st.Bytes.Load() <= 0 {
		t.Errorf("stats = %d files, %d rows, %d bytes", st.Files.Load(), st.Rows.Load(), st.Bytes.Load())
	}
	rows, exact, err := Rows(filepath.Join(dir, "*.parquet"), nil)
	if err != nil || rows != 7000 || !exact {
		t.Errorf("Rows(parquet) = %d, %v, %v; want 7000, true", rows, exact, err)
	}
	rows, exact, err = Rows(dir, nil)
	if err != nil || exact || rows < 7500 || rows > 8500 {
		t.Errorf("Rows(with a CSV) = %d, %v, %v; want about 8000, estimated", rows, exact, err)
	}
}

// TestStreamPieces: a Parquet file of several row groups streams in runs
// of whole row groups of at least pieceRows rows, in order, as Read reads
// it, pieces of one token and of several decoding ahead together; the stats
// count each file once; an error in a later piece names the row of the
// file.
func TestStreamPieces(t *testing.T) {
	oldGroup, oldPiece, oldToken := rowGroupRows, pieceRows, tokenRows
	rowGroupRows, pieceRows, tokenRows = 700, 1000, 1000 // pieces of 1 and 2 tokens
	defer func() { rowGroupRows, pieceRows, tokenRows = oldGroup, oldPiece, oldToken }()
	dir := t.TempDir()
	sizes := []int{3000, 500, 1400, 701}
	for f, n := range sizes {
		k := &Column{Name: "k", Kind: Int64}
		v := &Column{Name: "v", Kind: Float64, Valid: make([]bool, n)}
		for i := range n {
			k.Ints = append(k.Ints, int64(f*10000+i))
			v.Floats = append(v.Floats, float64(i)/8)
			v.Valid[i] = i%5 != 0
		}
		if err := Write(filepath.Join(dir, fmt.Sprintf("part-%02d.parquet", f)), &Table{Rows: n, Columns: []*Column{k, v}}); err != nil {
			t.Fatal(err)
		}
	}
	req := []Request{{"k", Key}, {"v", Value}}
	all := mustRead(t, dir, req)
	var st Stats
	var got []int
	var keys []int64
	var vals []float64
	var valid []bool
	err := Stream(context.Background(), dir, req, Options{Stats: &st}, func(file string, tab *Table) error {
		got = append(got, tab.Rows)
		keys = append(keys, tab.Columns[0].Ints...)
		vals = append(vals, tab.Columns[1].Floats...)
		valid = append(valid, tab.Columns[1].Valid...)
		tab.Release()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// 3000 rows: groups of 700, 700, 700, 700, 200; 1400: 700, 700; 701: 700, 1.
	if want := []int{1400, 1400, 200, 500, 1400, 701}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pieces of %v rows, want %v", got, want)
	}
	if !reflect.DeepEqual(keys, all.Columns[0].Ints) || !reflect.DeepEqual(vals, all.Columns[1].Floats) || !reflect.DeepEqual(valid, all.Columns[1].Valid) {
		t.Fatal("streamed pieces differ from Read's columns")
	}
	if st.Files.Load() != 4 || st.Rows.Load() != 5601 {
		t.Errorf("stats = %d files, %d rows; want 4 and 5601", st.Files.Load(), st.Rows.Load())
	}

	// A value that is not finite in the second piece (rows 1400 to 2799)
	// names its row of the file.
	n := 3000
	v := &Column{Name: "v", Kind: Float64, Floats: make([]float64, n)}
	v.Floats[2500] = math.Inf(1)
	k := &Column{Name: "k", Kind: Int64, Ints: make([]int64, n)}
	if err := Write(filepath.Join(dir, "part-00.parquet"), &Table{Rows: n, Columns: []*Column{k, v}}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = Stream(context.Background(), dir, req, Options{}, func(string, *Table) error { calls++; return nil })
	if err == nil || !strings.Contains(err.Error(), "row 2501,") || calls != 1 {
		t.Fatalf("after %d pieces: %v; want an error at row 2501 after 1 piece", calls, err)
	}

	// fn's error, or a cancellation, in the middle of a file's pieces stops
	// the stream there, and its decoders with it.
	goroutines := runtime.NumGoroutine()
	stop := errors.New("enough")
	calls = 0
	err = Stream(context.Background(), filepath.Join(dir, "part-00.parquet"), req, Options{}, func(string, *Table) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("fn's error: %v after %d pieces", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = Stream(ctx, filepath.Join(dir, "part-00.parquet"), req, Options{}, func(string, *Table) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("cancelled: %v after %d pieces", err, calls)
	}
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > goroutines; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left running by stopped streams, %d before", runtime.NumGoroutine(), goroutines)
		}
	}
}

// TestPieceTokens: a piece holds a token per tokenRows of its rows while it
// decodes ahead, at least one and at most all of them; a piece of unknown
// size (a CSV file) holds all, so that such files decode one at a time.
func TestPieceTokens(t *testing.T) {
	for _, c := range []struct {
		rows int64
		want int
	}{{0, 4}, {1, 1}, {tokenRows, 1}, {tokenRows + 1, 2}, {3 * tokenRows, 3}, {100 * tokenRows, 4}} {
		if got := (piece{rows: c.rows}).tokens(4, tokenRows); got != c.want {
			t.Errorf("a piece of %d rows holds %d of 4 tokens, want %d", c.rows, got, c.want)
		}
	}
}

func TestStreamErrors(t *testing.T) {
	dir := streamDir(t, 5, 100)
	req := []Request{{"k", Key}, {"v", Value}}
	ctx := context.Background()

	// fn's error stops the stream after that file.
	stop := errors.New("enough")
	calls := 0
	err := Stream(ctx, dir, req, Options{}, func(string, *Table) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Fatalf("fn error: got %v after %d calls", err, calls)
	}

	// A key of another kind in a later file names both files.
	writeFile(t, filepath.Join(dir, "zzz.csv"), "k,v\nuser9,1\n")
	calls = 0
	err = Stream(ctx, dir, req, Options{}, func(string, *Table) error { calls++; return nil })
	if err == nil || !strings.Contains(err.Error(), "part-00.parquet") || !strings.Contains(err.Error(), "zzz.csv") || calls != 6 {
		t.Fatalf("kind change: got %v after %d files", err, calls)
	}

	// A missing column names the file; a cancelled context stops.
	if err := Stream(ctx, dir, []Request{{"nope", Value}}, Options{}, func(string, *Table) error { return nil }); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("missing column: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Stream(cctx, dir, req, Options{}, func(string, *Table) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestStreamRelease: files decoded into the memory of tables released
// before them read as Read reads each file, whatever the earlier files
// held there: larger or smaller files, nulls in some files and pages and
// not in others. Released memory is decoded into again.
func TestStreamRelease(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{3000, 500, 4000, 100000, 1200, 100000, 3100, 700}
	for f, n := range sizes {
		k := &Column{Name: "k", Kind: Int64}
		v := &Column{Name: "v", Kind: Float64}
		b := &Column{Name: "b", Kind: Bool}
		for i := range n {
			k.Ints = append(k.Ints, int64(f*10000+i))
			v.Floats = append(v.Floats, float64(i)*1.5-float64(f))
			b.Bools = append(b.Bools, (i+f)%3 == 0)
		}
		if f%2 == 1 { // nulls in odd files, only past the first rows in some
			v.Valid = make([]bool, n)
			for i := range v.Valid {
				v.Valid[i] = i < n/2 && f%4 == 1 || i%7 != 0
			}
		}
		if err := Write(filepath.Join(dir, fmt.Sprintf("part-%02d.parquet", f)), &Table{Rows: n, Columns: []*Column{k, v, b}}); err != nil {
			t.Fatal(err)
		}
	}
	req := []Request{{"k", Key}, {"v", Value}, {"b", AsIs}}
	released := map[*int64]bool{}
	reused := 0
	err := Stream(context.Background(), dir, req, Options{}, func(file string, tab *Table) error {
		want := mustRead(t, file, req)
		if !reflect.DeepEqual(tab.Columns, want.Columns) || tab.Rows != want.Rows {
			t.Fatalf("%s: streamed into released memory, the table differs from Read's", filepath.Base(file))
		}
		p := &tab.Columns[0].Ints[:1][0]
		if released[p] {
			reused++
		}
		released[p] = true
		tab.Release()
		if tab.Columns != nil {
			t.Fatalf("a released table keeps its columns")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reused == 0 {
		t.Fatalf("no file decoded into the memory of a released one")
	}
	// A table that Read returns has nowhere to go: Release leaves it be.
	tab := mustRead(t, dir, req)
	tab.Release()
	if len(tab.Columns) != 3 {
		t.Fatalf("Release emptied a table of Read")
	}
}
