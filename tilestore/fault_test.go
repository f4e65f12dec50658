package tilestore

import (
	"context"
	"errors"
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
