package crashtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyAndGCCommands checks what `tessera aggregate verify` and
// `tessera aggregate gc` report on a damaged store and on leftovers of a
// crashed writer, and their exit codes.
func TestVerifyAndGCCommands(t *testing.T) {
	bin := buildTessera(t)
	f := newFixture(t, 5_000, 10)
	dir := filepath.Join(f.dir, "store")
	cfg := f.config(t, "cli", f.eventsA, dir)
	if out, err := runTessera(t, bin, "--config", cfg, "aggregate", "backfill"); err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
	out, err := runTessera(t, bin, "--config", cfg, "aggregate", "verify")
	if err != nil || !strings.Contains(out, "ok  ") {
		t.Fatalf("verify of a sound store: %v\n%s", err, out)
	}

	// Leftovers of a crashed writer: gc removes them, and only them.
	var dataDirs []string
	matches, _ := filepath.Glob(filepath.Join(dir, "tilesets", "*", "data"))
	dataDirs = append(dataDirs, matches...)
	if len(dataDirs) == 0 {
		t.Fatal("no tile sets written")
	}
	orphan := filepath.Join(dataDirs[0], "20000101T000000.000000000Z-00000000000000ff.parquet")
	if err := os.WriteFile(orphan, []byte("left by a crashed writer"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runTessera(t, bin, "--config", cfg, "aggregate", "gc", "--older-than", "1us")
	if err != nil || !strings.Contains(out, "removed tilesets/") || !strings.Contains(out, filepath.Base(orphan)) || strings.Count(out, "removed tilesets/") != 1 {
		t.Fatalf("gc: %v\n%s", err, out)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("gc left the orphan: %v", err)
	}
	if out, err := runTessera(t, bin, "--config", cfg, "aggregate", "gc"); exitCode(err) != 2 || !strings.Contains(out, "older-than") {
		t.Fatalf("gc without --older-than: exit %d\n%s", exitCode(err), out)
	}

	// A bit flip in one object: verify names the tile set and the object,
	// and exits with status 1.
	objs, _ := filepath.Glob(filepath.Join(dataDirs[0], "*.parquet"))
	if len(objs) == 0 {
		t.Fatal("no data objects")
	}
	b, err := os.ReadFile(objs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x01
	if err := os.WriteFile(objs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	tileSet := filepath.Base(filepath.Dir(dataDirs[0]))
	out, err = runTessera(t, bin, "--config", cfg, "aggregate", "verify")
	if exitCode(err) != 1 || !strings.Contains(out, "BAD "+tileSet) || !strings.Contains(out, filepath.Base(objs[0])) || !strings.Contains(out, "CRC-32C is") {
		t.Fatalf("verify of a damaged object: exit %d\n%s", exitCode(err), out)
	}
	out, err = runTessera(t, bin, "--config", cfg, "aggregate", "verify", "--tile-set", tileSet)
	if exitCode(err) != 1 || strings.Count(out, "BAD ") != 1 {
		t.Fatalf("verify --tile-set of the damaged tile set: exit %d\n%s", exitCode(err), out)
	}
	out, err = runTessera(t, bin, "--config", cfg, "aggregate", "verify", "--tile-set", "no-such-set")
	if exitCode(err) != 2 || !strings.Contains(out, "no-such-set") {
		t.Fatalf("verify --tile-set of an unknown tile set: exit %d\n%s", exitCode(err), out)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
