package store_test

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tessera-fe/tessera/online/internal/redistest"
	"github.com/tessera-fe/tessera/online/store"
)

func TestBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "online.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	contract(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopened, the events are still there.
	s, err = store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Read(context.Background(), []store.Span{{TileSet: "ts1", Key: "7", From: math.MinInt64, To: math.MaxInt64}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got[0]) != 2 {
		t.Fatalf("after reopening, key 7 has %d events, want 2", len(got[0]))
	}
}

func TestRedis(t *testing.T) {
	s, err := store.Open(redistest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if w := s.(*store.Redis).Warning; w != "" {
		t.Errorf("test server persistence warning: %s", w)
	}
	contract(t, s)
}

func TestOpenRejectsUnknownScheme(t *testing.T) {
	if _, err := store.Open("mongodb://x"); err == nil {
		t.Fatal("Open accepted an unknown scheme")
	}
}

// contract checks what every Store must do.
func contract(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	evs := []store.Event{
		{TileSet: "ts1", Key: "7", TS: 300, Value: 3, Valid: true},
		{TileSet: "ts1", Key: "7", TS: -100, Value: -1, Valid: true}, // before the epoch
		{TileSet: "ts1", Key: "7", TS: 100, Value: 1, Valid: false},
		{TileSet: "ts1", Key: "7", TS: 100, Value: 1, Valid: true}, // same time, same value: both kept
		{TileSet: "ts1", Key: "70", TS: 200, Value: 70, Valid: true},
		{TileSet: "ts2", Key: "7", TS: 200, Value: 2, Valid: true},
		{TileSet: "ts1", Key: "a:b", TS: 5, Value: 5, Valid: true},
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	spans := []store.Span{
		{TileSet: "ts1", Key: "7", From: math.MinInt64, To: math.MaxInt64},
		{TileSet: "ts1", Key: "7", From: 100, To: 300}, // end exclusive
		{TileSet: "ts1", Key: "70", From: 0, To: 1000},
		{TileSet: "ts2", Key: "7", From: 0, To: 1000},
		{TileSet: "ts3", Key: "7", From: 0, To: 1000},
		{TileSet: "ts1", Key: "a:b", From: 5, To: 6},
		{TileSet: "ts1", Key: "7", From: 5, To: 5},
	}
	got, err := s.Read(ctx, spans)
	if err != nil {
		t.Fatal(err)
	}
	tsOf := func(ps []store.Point) []int64 {
		var out []int64
		for _, p := range ps {
			out = append(out, p.TS)
		}
		return out
	}
	want := [][]int64{{-100, 100, 100, 300}, {100, 100}, {200}, {200}, nil, {5}, nil}
	for i := range spans {
		if !slices.Equal(tsOf(got[i]), want[i]) {
			t.Errorf("span %+v: times %v, want %v", spans[i], tsOf(got[i]), want[i])
		}
	}
	valid := 0
	for _, p := range got[1] {
		if p.Valid {
			valid++
			if p.Value != 1 {
				t.Errorf("value %v, want 1", p.Value)
			}
		}
	}
	if valid != 1 {
		t.Errorf("%d valid events at time 100, want 1 (one was null)", valid)
	}
	n, err := s.Prune(ctx, "ts1", 200)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("Prune removed %d events, want 4", n)
	}
	got, err = s.Read(ctx, spans[:4])
	if err != nil {
		t.Fatal(err)
	}
	want = [][]int64{{300}, nil, {200}, {200}}
	for i := range want {
		if !slices.Equal(tsOf(got[i]), want[i]) {
			t.Errorf("after prune, span %+v: times %v, want %v", spans[i], tsOf(got[i]), want[i])
		}
	}
	// Put back one for the reopen check.
	if err := s.Append(ctx, []store.Event{{TileSet: "ts1", Key: "7", TS: 400, Valid: false}}); err != nil {
		t.Fatal(err)
	}
}
