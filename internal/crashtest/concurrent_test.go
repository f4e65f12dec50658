package crashtest

import (
	"context"
	"math"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/tilestore"
)

// TestQueriesDuringBackfill runs materialized queries while a backfill
// replaces every tile set: each query sees, per tile set, exactly the old or
// the new tiles; once the backfill is done, the new ones.
func TestQueriesDuringBackfill(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 20_000, 300)
	dir := filepath.Join(f.dir, "store")
	cfgA := loadConfig(t, f.config(t, "a", f.eventsA, dir))
	cfgB := loadConfig(t, f.config(t, "b", f.eventsB, dir))
	store := openStore(t, dir)
	if _, err := materialize.Backfill(ctx, cfgA, store, materialize.Options{}); err != nil {
		t.Fatal(err)
	}
	pre := f.query(t, cfgA, store)

	// The expected new state, from a separate store.
	ref := openStore(t, filepath.Join(f.dir, "ref"))
	if _, err := materialize.Backfill(ctx, cfgB, ref, materialize.Options{}); err != nil {
		t.Fatal(err)
	}
	post := f.query(t, cfgB, ref)

	var wg sync.WaitGroup
	done := make(chan struct{})
	var backfillErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for range 2 { // the second pass re-commits the same tiles
			if _, err := materialize.Backfill(ctx, cfgB, store, materialize.Options{}); err != nil {
				backfillErr = err
				return
			}
		}
	}()
	queries := 0
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		// A second handle on the store, as another process would open.
		reader, err := tilestore.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		snapshotOf(t, cfgB, f.query(t, cfgB, reader), pre, post)
		reader.Close()
		queries++
	}
	wg.Wait()
	if backfillErr != nil {
		t.Fatal(backfillErr)
	}
	for id, w := range snapshotOf(t, cfgB, f.query(t, cfgB, store), post) {
		if w != 0 {
			t.Fatalf("after the backfill tile set %s is not the new one", id)
		}
	}
	verifyLib(t, store)
	t.Logf("%d consistent queries during the backfill", queries)
}

// TestConcurrentBackfills runs two backfills of the same tile sets at once,
// through two store handles, over disjoint time ranges: both must publish
// (one retrying on the other's manifest), and the store must then hold
// exactly the tiles of both, as after running them one after the other.
func TestConcurrentBackfills(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 20_000, 10)
	feb := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ranges := []materialize.Options{{To: &feb}, {From: &feb, To: &end}}

	seqDir := filepath.Join(f.dir, "sequential")
	seqCfg := loadConfig(t, f.config(t, "seq", f.eventsA, seqDir))
	seq := openStore(t, seqDir)
	for _, opt := range ranges {
		if _, err := materialize.Backfill(ctx, seqCfg, seq, opt); err != nil {
			t.Fatal(err)
		}
	}

	for round := range 3 {
		dir := filepath.Join(f.dir, "concurrent", string(rune('a'+round)))
		cfg := loadConfig(t, f.config(t, "conc", f.eventsA, dir))
		var wg sync.WaitGroup
		errs := make([]error, len(ranges))
		for i, opt := range ranges {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := tilestore.Open(ctx, dir) // one handle per writer, as two processes
				if err != nil {
					errs[i] = err
					return
				}
				defer s.Close()
				_, errs[i] = materialize.Backfill(ctx, cfg, s, opt)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: backfill of range %d failed: %v", round, i, err)
			}
		}
		store := openStore(t, dir)
		verifyLib(t, store)
		want, err := seq.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := store.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("round %d: %d tile sets, want %d", round, len(got), len(want))
		}
		all := tilestore.Range{From: math.MinInt64, To: math.MaxInt64}
		for i, m := range got {
			if !reflect.DeepEqual(m.Coverage, want[i].Coverage) {
				t.Fatalf("round %d: tile set %s covers %v, want %v", round, m.TileSet, m.Coverage, want[i].Coverage)
			}
			gs, err := store.Load(ctx, m, all, nil)
			if err != nil {
				t.Fatal(err)
			}
			ws, err := seq.Load(ctx, want[i], all, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gs, ws) {
				t.Fatalf("round %d: tile set %s holds %d tiles, sequential backfills %d: a published tile was lost or doubled", round, m.TileSet, gs.Len(), ws.Len())
			}
		}
	}
}
