package crashtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-fe/tessera"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

// fixture is sample data written to disk: two versions of the events (the
// second re-drawn, as if every range received late events), a spine, and
// configs that point one store at either version.
type fixture struct {
	dir       string
	eventsA   string
	eventsB   string
	spineKeys map[string]any
	spineTime []time.Time
}

func newFixture(t testing.TB, events, spineRows int) *fixture {
	t.Helper()
	dir := t.TempDir()
	spec := sample.Default()
	spec.Events, spec.SpineRows = events, spineRows
	evA := sample.Events(spec)
	spine := sample.Spine(spec, evA)
	specB := spec
	specB.Seed = 2
	evB := sample.Events(specB)
	f := &fixture{dir: dir, eventsA: filepath.Join(dir, "events-a.parquet"), eventsB: filepath.Join(dir, "events-b.parquet")}
	for path, tab := range map[string]*source.Table{f.eventsA: evA, f.eventsB: evB} {
		if err := source.Write(path, tab); err != nil {
			t.Fatal(err)
		}
	}
	f.spineKeys = map[string]any{"user_id": spine.Column("user_id").Ints, "merchant_id": spine.Column("merchant_id").Ints}
	for _, us := range spine.Column("ts").Ints {
		f.spineTime = append(f.spineTime, time.UnixMicro(us).UTC())
	}
	return f
}

// config writes a config reading events into store and returns its path.
func (f *fixture) config(t testing.TB, name, events, store string) string {
	t.Helper()
	text := "store: " + store + "\n" + strings.Replace(sample.Config(), "path: events.parquet", "path: "+events, 1)
	path := filepath.Join(f.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadConfig(t testing.TB, path string) *feature.Config {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := feature.Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// query runs the materialized training-set query over the store of cfg and
// fails when any range fell back to raw events (the answer must come from
// tiles, or it would not tell old tiles from new).
func (f *fixture) query(t testing.TB, cfg *feature.Config, store *tilestore.Store) *offline.Result {
	t.Helper()
	res, err := tessera.OfflineQuery(context.Background(), cfg, tessera.Request{
		Inputs: f.spineKeys, InputTimes: f.spineTime, Outputs: sample.Features(),
		Planner: tessera.PlannerOptions{UseMaterializedOfflineQuery: true}, Store: store,
	})
	if err != nil {
		t.Fatalf("offline query: %v", err)
	}
	if len(res.Stats.Fallback) > 0 {
		t.Fatalf("offline query fell back to raw events for %v: the store lost coverage", res.Stats.Fallback)
	}
	return res
}

func sameColumn(a, b *offline.Column) bool {
	if a.Name != b.Name || len(a.Values) != len(b.Values) {
		return false
	}
	for i := range a.Values {
		va, vb := a.Valid == nil || a.Valid[i], b.Valid == nil || b.Valid[i]
		if va != vb || va && a.Values[i] != b.Values[i] {
			return false
		}
	}
	return true
}

// snapshotOf checks that, for every tile set, the columns of its features in
// got all equal those of one of the allowed results: a tile set is committed
// whole or not at all. It returns, per tile set, the index of the first
// allowed result that matched.
func snapshotOf(t testing.TB, cfg *feature.Config, got *offline.Result, allowed ...*offline.Result) map[string]int {
	t.Helper()
	ok := map[string][]bool{} // tile set -> which allowed results still match
	for ci, col := range got.Columns {
		ref, err := feature.ParseRef(col.Name)
		if err != nil {
			t.Fatal(err)
		}
		ts := cfg.TileSetOf(ref.Feature)
		if ts == nil {
			t.Fatalf("feature %s is not materialized", ref.Feature)
		}
		if ok[ts.ID] == nil {
			ok[ts.ID] = make([]bool, len(allowed))
			for i := range allowed {
				ok[ts.ID][i] = true
			}
		}
		for i, a := range allowed {
			if !sameColumn(col, a.Columns[ci]) {
				ok[ts.ID][i] = false
			}
		}
	}
	out := map[string]int{}
	for id, m := range ok {
		out[id] = -1
		for i, v := range m {
			if v {
				out[id] = i
				break
			}
		}
		if out[id] < 0 {
			t.Fatalf("tile set %s answers with neither the old nor the new tiles (a half-published commit)", id)
		}
	}
	return out
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildTessera builds the command, once per test binary.
func buildTessera(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "tessera-crashtest-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "tessera")
		if runtime.GOOS == "windows" {
			binPath += ".exe"
		}
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/tessera-fe/tessera/cmd/tessera").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// tessera runs the command to completion and returns its output.
func runTessera(t testing.TB, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func verifyClean(t testing.TB, bin, cfgPath string, store *tilestore.Store) {
	t.Helper()
	verifyLib(t, store)
	if out, err := runTessera(t, bin, "--config", cfgPath, "aggregate", "verify"); err != nil {
		t.Fatalf("tessera aggregate verify: %v\n%s", err, out)
	}
}

func verifyLib(t testing.TB, store *tilestore.Store) {
	t.Helper()
	ms, err := store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if p, err := store.Verify(context.Background(), m.TileSet); err != nil || len(p) > 0 {
			t.Fatalf("Verify %s: %v, %v", m.TileSet, p, err)
		}
	}
}

func copyDir(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func openStore(t testing.TB, dir string) *tilestore.Store {
	t.Helper()
	s, err := tilestore.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestKilledBackfill kills `tessera aggregate backfill` with SIGKILL at
// random points while it replaces every tile set's tiles, and checks after
// each kill that the store verifies clean, that every tile set answers with
// exactly its old or its new tiles, and that re-running the backfill (then
// gc) gives the result of a clean run.
func TestKilledBackfill(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL semantics are POSIX")
	}
	bin := buildTessera(t)
	f := newFixture(t, 60_000, 1_000)

	// The old state: a backfill of events A; the new one: of events B.
	base := filepath.Join(f.dir, "base")
	cfgA := f.config(t, "a", f.eventsA, base)
	if out, err := runTessera(t, bin, "--config", cfgA, "aggregate", "backfill"); err != nil {
		t.Fatalf("backfill A: %v\n%s", err, out)
	}
	pre := f.query(t, loadConfig(t, cfgA), openStore(t, base))
	clean := filepath.Join(f.dir, "clean")
	copyDir(t, base, clean)
	cfgClean := f.config(t, "clean", f.eventsB, clean)
	start := time.Now()
	if out, err := runTessera(t, bin, "--config", cfgClean, "aggregate", "backfill"); err != nil {
		t.Fatalf("backfill B: %v\n%s", err, out)
	}
	full := time.Since(start)
	post := f.query(t, loadConfig(t, cfgClean), openStore(t, clean))
	for i, c := range pre.Columns {
		if sameColumn(c, post.Columns[i]) {
			t.Fatalf("%s is the same from events A and B: the test cannot tell old tiles from new", c.Name)
		}
	}

	const runs = 20
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	seen := map[string]int{} // how often a kill left the old, new or a mixed state
	deadline := time.Now().Add(30 * time.Second)
	for run := range runs {
		if time.Now().After(deadline) {
			t.Logf("stopping after %d runs: the time budget is spent", run)
			break
		}
		dir := filepath.Join(f.dir, fmt.Sprintf("run%02d", run))
		copyDir(t, base, dir)
		cfgPath := f.config(t, fmt.Sprintf("run%02d", run), f.eventsB, dir)
		cfg := loadConfig(t, cfgPath)

		// Most kills land while tile sets are being committed; some before.
		delay := full/10 + time.Duration(rng.Int64N(int64(full)))
		cmd := exec.Command(bin, "--config", cfgPath, "aggregate", "backfill")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed := false
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: backfill failed before the kill: %v\n%s", run, err, out.String())
			}
		case <-time.After(delay):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err := <-done
			var ee *exec.ExitError
			killed = errors.As(err, &ee) && !ee.Success()
		}

		store := openStore(t, dir)
		withCLI := run%5 == 0 // the commands too, not only the library
		if withCLI {
			verifyClean(t, bin, cfgPath, store)
		} else {
			verifyLib(t, store)
		}
		states := snapshotOf(t, cfg, f.query(t, cfg, store), pre, post)
		kind := map[int]string{0: "old", 1: "new"}
		ids := slices.Sorted(maps.Keys(states))
		var parts []string
		for _, id := range ids {
			parts = append(parts, kind[states[id]])
		}
		label := "finished"
		if killed {
			label = "killed after " + delay.Round(time.Millisecond).String()
		}
		t.Logf("run %d: %s: tile sets %v", run, label, parts)
		seen[strings.Join(parts, ",")]++

		// Re-run to completion, then collect what the crash left behind.
		if out, err := runTessera(t, bin, "--config", cfgPath, "aggregate", "backfill"); err != nil {
			t.Fatalf("run %d: re-run of the backfill: %v\n%s", run, err, out)
		}
		if withCLI {
			if out, err := runTessera(t, bin, "--config", cfgPath, "aggregate", "gc", "--older-than", "1us"); err != nil {
				t.Fatalf("run %d: gc: %v\n%s", run, err, out)
			}
		} else if _, err := store.GC(context.Background(), 0); err != nil {
			t.Fatalf("run %d: gc: %v", run, err)
		}
		verifyLib(t, store)
		for id, w := range snapshotOf(t, cfg, f.query(t, cfg, store), post) {
			if w != 0 {
				t.Fatalf("run %d: after the re-run tile set %s differs from a clean run", run, id)
			}
		}
		if orphans := unlisted(t, dir); len(orphans) > 0 {
			t.Fatalf("run %d: after gc, data objects that no manifest version lists remain: %v", run, orphans)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("states after kills: %v (a clean backfill takes %v)", seen, full.Round(time.Millisecond))
}

var manifestName = regexp.MustCompile(`"name": "([^"]+)"`)

// unlisted returns the data objects under a local store directory that no
// manifest version lists.
func unlisted(t testing.TB, dir string) []string {
	t.Helper()
	listed := map[string]bool{}
	var data []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Base(filepath.Dir(path)) {
		case "manifests":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range manifestName.FindAllSubmatch(b, -1) {
				listed[string(m[1])] = true
			}
		case "data":
			data = append(data, filepath.Base(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range data {
		if !listed[n] {
			out = append(out, n)
		}
	}
	return out
}
