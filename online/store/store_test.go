package store_test

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	receipts(t, s)
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
	// The receipt of "again" (expiring at 1<<50) survived, and pruning at
	// the same instant removes it and nothing else.
	rc := store.Receipt{Key: "again", Expires: 1 << 50}
	if prior, err := s.AppendOnce(context.Background(), nil, rc, 0); err != nil || prior == nil {
		t.Fatalf("after reopening, AppendOnce(again) = %v, %v; want the stored receipt", prior, err)
	}
	if n, err := s.PruneReceipts(context.Background(), 1<<50-1); err != nil || n != 0 {
		t.Fatalf("PruneReceipts before the expiry removed %d (%v), want 0", n, err)
	}
	if n, err := s.PruneReceipts(context.Background(), 1<<50); err != nil || n != 1 {
		t.Fatalf("PruneReceipts at the expiry removed %d (%v), want 1", n, err)
	}
	if prior, err := s.AppendOnce(context.Background(), nil, rc, 0); err != nil || prior != nil {
		t.Fatalf("after pruning, AppendOnce(again) = %v, %v; want a fresh store", prior, err)
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
	receipts(t, s)
}

// TestRedisPruneForgetsKeys checks that Prune drops from a tile set's key
// list the keys whose events are all pruned, and only those.
func TestRedisPruneForgetsKeys(t *testing.T) {
	s, err := store.OpenRedis(redistest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var evs []store.Event
	for k := range 2500 { // more than one SSCAN page
		evs = append(evs, store.Event{TileSet: "ts", Key: strconv.Itoa(k), TS: int64(k)})
	}
	evs = append(evs, store.Event{TileSet: "other", Key: "1", TS: 0})
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	keys := func(set string) int64 {
		t.Helper()
		n, err := s.Keys(ctx, set)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := keys("ts"); n != 2500 {
		t.Fatalf("%d keys before pruning, want 2500", n)
	}
	n, err := s.Prune(ctx, "ts", 2000)
	if err != nil || n != 2000 {
		t.Fatalf("Prune removed %d events (%v), want 2000", n, err)
	}
	if n := keys("ts"); n != 500 {
		t.Fatalf("%d keys after pruning keys 0-1999, want 500", n)
	}
	if n := keys("other"); n != 1 {
		t.Fatalf("another tile set has %d keys after pruning, want 1", n)
	}
	// A key pruned empty and appended to again is listed again, and pruned.
	if err := s.Append(ctx, []store.Event{{TileSet: "ts", Key: "7", TS: 5000}}); err != nil {
		t.Fatal(err)
	}
	if n := keys("ts"); n != 501 {
		t.Fatalf("%d keys after appending to a pruned key, want 501", n)
	}
	if n, err := s.Prune(ctx, "ts", 10_000); err != nil || n != 501 {
		t.Fatalf("Prune removed %d events (%v), want 501", n, err)
	}
	if n := keys("ts"); n != 0 {
		t.Fatalf("%d keys after pruning everything, want 0", n)
	}
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

// receipts checks AppendOnce: one store per key, the receipt returned to
// later and concurrent calls, expiry.
func receipts(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	count := func(key string) int {
		t.Helper()
		got, err := s.Read(ctx, []store.Span{{TileSet: "idem", Key: key, From: math.MinInt64, To: math.MaxInt64}})
		if err != nil {
			t.Fatal(err)
		}
		return len(got[0])
	}
	ev := func(key string) []store.Event {
		return []store.Event{{TileSet: "idem", Key: key, TS: 10, Value: 1, Valid: true}, {TileSet: "idem", Key: key, TS: 20}}
	}
	now := time.Now().UnixMicro()
	rc := store.Receipt{Key: "req-1", Digest: [32]byte{1, 2, 3}, Reply: []byte(`{"ingested":2}`), Expires: now + 300_000}
	if prior, err := s.AppendOnce(ctx, ev("a"), rc, now); err != nil || prior != nil {
		t.Fatalf("first AppendOnce = %v, %v; want nil, nil", prior, err)
	}
	other := rc
	other.Digest, other.Reply = [32]byte{9}, []byte("other")
	prior, err := s.AppendOnce(ctx, ev("a"), other, now+1)
	if err != nil {
		t.Fatal(err)
	}
	if prior == nil || prior.Key != rc.Key || prior.Digest != rc.Digest || !bytes.Equal(prior.Reply, rc.Reply) || prior.Expires != rc.Expires {
		t.Fatalf("second AppendOnce returned %+v, want the first receipt %+v", prior, rc)
	}
	if n := count("a"); n != 2 {
		t.Fatalf("key a has %d events after a replayed AppendOnce, want 2", n)
	}

	// Concurrent calls with one key: exactly one stores.
	var stored atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r := store.Receipt{Key: "req-2", Reply: []byte("x"), Expires: now + 300_000}
			prior, err := s.AppendOnce(ctx, ev("b"), r, now)
			if err != nil {
				t.Error(err)
			}
			if prior == nil {
				stored.Add(1)
			}
		})
	}
	wg.Wait()
	if stored.Load() != 1 || count("b") != 2 {
		t.Fatalf("8 concurrent AppendOnce with one key: %d stored, key b has %d events; want 1 and 2", stored.Load(), count("b"))
	}

	// An expired key stores again.
	time.Sleep(time.Until(time.UnixMicro(rc.Expires + 50_000)))
	later := time.Now().UnixMicro()
	if _, err := s.PruneReceipts(ctx, later); err != nil {
		t.Fatal(err)
	}
	rc.Expires = 1 << 50
	rc.Key = "again"
	if prior, err := s.AppendOnce(ctx, nil, rc, later); err != nil || prior != nil {
		t.Fatalf("AppendOnce without events = %v, %v; want nil, nil", prior, err)
	}
	rc.Key = "req-1"
	rc.Expires = later + 300_000
	if prior, err := s.AppendOnce(ctx, ev("a"), rc, later); err != nil || prior != nil {
		t.Fatalf("AppendOnce after the receipt expired = %v, %v; want a fresh store", prior, err)
	}
	if n := count("a"); n != 4 {
		t.Fatalf("key a has %d events after its receipt expired and it was sent again, want 4", n)
	}
	if _, err := s.AppendOnce(ctx, nil, store.Receipt{Expires: later + 1}, later); err == nil {
		t.Error("AppendOnce accepted an empty idempotency key")
	}
}
