package tilestore

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/aggregate"
)

// injectFault makes the store fail (err non-nil) or stall (err nil: block
// until the operation's context is done) the operations op on keys
// containing part, until the returned function is called.
func injectFault(s *Store, op storeOp, part string, err error) (calls func() int, stop func()) {
	n := 0
	s.fault = func(ctx context.Context, o storeOp, key string) error {
		if o != op || !strings.Contains(key, part) {
			return nil
		}
		n++
		if err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	return func() int { return n }, func() { s.fault = nil }
}

func testFaults(t *testing.T, s *Store) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	needs := aggregate.NeedCount | aggregate.NeedSum
	id := "faulty"
	a := randomRows(rng, needs, false, 5, 0, 10, 1)
	m1 := mustCommit(t, s, Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{0, 10 * hour}, Tiles: setOf(needs, false, a)})
	b := randomRows(rng, needs, false, 5, 5, 15, 2)
	commitB := Commit{TileSet: id, Needs: needs, Grid: hourGrid, Cover: Range{5 * hour, 15 * hour}, Tiles: setOf(needs, false, b)}
	injected := errors.New("injected store failure")

	unchanged := func(what string) {
		t.Helper()
		m, err := s.Manifest(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if m.Version != m1.Version || !reflect.DeepEqual(m.Objects, m1.Objects) {
			t.Fatalf("%s: a failed commit published version %d", what, m.Version)
		}
		if p, err := s.Verify(ctx, id); err != nil || len(p) != 0 {
			t.Fatalf("%s: Verify after the failed commit: %v, %v", what, p, err)
		}
		equalRows(t, what, mustLoad(t, s, id, everything, nil), a)
		if p, ok := s.put.(dirPutter); ok {
			if left, err := os.ReadDir(filepath.Join(p.root, localTmpDir)); err != nil || len(left) > 0 {
				t.Fatalf("%s: temporary files left behind: %v, %v", what, left, err)
			}
		}
	}

	for _, c := range []struct {
		what, part, msg string
		err             error
	}{
		{"failing data put", dataDir, "write tile object", injected},
		{"failing data write", dataDir, "write tile object", injected},
		{"stalled data write", dataDir, "write tile object", nil},
		{"failing manifest put", manifestsDir, "write manifest", injected},
		{"stalled data put", dataDir, "write tile object", nil},
		{"stalled manifest put", manifestsDir, "write manifest", nil},
		{"failing listing", manifestsDir, "list manifests", injected},
	} {
		op := opPut
		switch {
		case strings.HasPrefix(c.what, "failing listing"):
			op = opList
		case strings.HasSuffix(c.what, "data write"):
			op = opWrite
		}
		calls, stop := injectFault(s, op, c.part, c.err)
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := s.Commit(cctx, commitB)
		cancel()
		stop()
		want := c.err
		if want == nil {
			want = context.DeadlineExceeded
		}
		if !errors.Is(err, want) || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), id) || calls() == 0 {
			t.Fatalf("%s: commit returned %v (fault hit %d times); want %v saying %q", c.what, err, calls(), want, c.msg)
		}
		unchanged(c.what)
	}

	// Faults on reads: a clear error naming the object, for whole and
	// ranged reads, and no result.
	m, err := s.Manifest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	name := m.Objects[0].Name
	for _, c := range []struct {
		what string
		err  error
		keep *KeyFilter
	}{
		{"failing get", injected, nil},
		{"stalled get", nil, nil},
		{"failing ranged get", injected, &KeyFilter{Int: map[int64]struct{}{-3000: {}}}},
	} {
		calls, stop := injectFault(s, opGet, name, c.err)
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		set, err := s.Load(cctx, m, everything, c.keep)
		cancel()
		stop()
		want := c.err
		if want == nil {
			want = context.DeadlineExceeded
		}
		if set != nil || !errors.Is(err, want) || !strings.Contains(err.Error(), name) || calls() == 0 {
			t.Fatalf("%s: Load returned %v tiles, %v; want %v naming %s", c.what, set != nil, err, want, name)
		}
	}
	// Without faults the commit goes through.
	mustCommit(t, s, commitB)
}

// TestFailedWriteMidObject: a store write that fails in the middle of an
// object streamed in many chunks (more than the writer's queue holds after
// the failure) fails the commit without blocking its encoder, and leaves
// neither an object nor a temporary file.
func TestFailedWriteMidObject(t *testing.T) {
	defer func(n int) { streamChunk = n }(streamChunk)
	streamChunk = 1 // a chunk per row group
	rng := rand.New(rand.NewPCG(23, 24))
	needs := aggregate.NeedCount | aggregate.NeedSum
	set := setOf(needs, false, randomRows(rng, needs, false, 2000, 0, 24, 1))
	if set.Len() < 30*RowGroupRows {
		t.Fatalf("%d tiles: the test needs thirty row groups", set.Len())
	}
	s := openDir(t)
	injected := errors.New("injected failure of the second chunk")
	writes := 0
	s.fault = func(ctx context.Context, op storeOp, key string) error {
		if op == opWrite {
			if writes++; writes == 2 {
				return injected
			}
		}
		return nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Commit(context.Background(), Commit{TileSet: "midway", Needs: needs, Grid: hourGrid, Cover: Range{0, 24 * hour}, Tiles: set})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, injected) || !strings.Contains(err.Error(), "write tile object") {
			t.Fatalf("commit returned %v, want the injected failure", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the commit blocked after a failed write")
	}
	if writes < 2 {
		t.Fatalf("%d chunk writes", writes)
	}
	s.fault = nil
	if m, err := s.Manifest(context.Background(), "midway"); m != nil || err != nil {
		t.Fatalf("a failed commit published %+v, %v", m, err)
	}
	p := s.put.(dirPutter)
	for _, dir := range []string{localTmpDir, "tilesets"} {
		var files []string
		filepath.WalkDir(filepath.Join(p.root, dir), func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				files = append(files, path)
			}
			return nil
		})
		if len(files) > 0 {
			t.Fatalf("files left behind: %v", files)
		}
	}
}
