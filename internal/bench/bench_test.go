package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDirBytesFollowsLinks: the event bytes the summary compares tiles with
// count the files a linked data directory holds (a bench directory whose
// events link to another's), not the link itself.
func TestDirBytesFollowsLinks(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int{"a.parquet": 1000, "sub/b.parquet": 234} {
		if err := os.WriteFile(filepath.Join(data, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "events")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{data, link, filepath.Join(data, "a.parquet")} {
		want := int64(1234)
		if strings.HasSuffix(p, ".parquet") {
			want = 1000
		}
		if got, err := dirBytes(p); err != nil || got != want {
			t.Errorf("dirBytes(%s) = %d, %v; want %d", p, got, err, want)
		}
	}
	if _, err := dirBytes(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing path has a size")
	}
}

// TestSummarizeWithoutEventBytes: the summary says so rather than print a
// ratio over zero bytes.
func TestSummarizeWithoutEventBytes(t *testing.T) {
	var out bytes.Buffer
	summarize(&out, nil, nil, 10, 4096, 0)
	if s := out.String(); !strings.Contains(s, "tiles: 10 tiles") || !strings.Contains(s, "(no events on disk)") || strings.Contains(s, "Inf") {
		t.Errorf("summary without event bytes: %q", s)
	}
	out.Reset()
	summarize(&out, nil, nil, 10, 1<<20, 4<<20)
	if s := out.String(); !strings.Contains(s, "(0.25x)") {
		t.Errorf("summary of 1 MiB of tiles against 4 MiB of events: %q", s)
	}
}
