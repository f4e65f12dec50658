package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePeer writes an executable script that prints stdout and stderr and
// exits with code, standing in for the DuckDB peer.
func fakePeer(t *testing.T, stdout, stderr string, code int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peer")
	script := "#!/bin/sh\ncat <<'EOF'\n" + stdout + "EOF\ncat >&2 <<'EOF'\n" + stderr + "EOF\nexit " + string(rune('0'+code)) + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunPeerAddsRowsAndSpeedUps(t *testing.T) {
	peer := fakePeer(t,
		`{"engine":"duckdb","formulation":"window","variant":"range-frames","rows":100,"seconds":8,"peak_rss":1048576}
{"engine":"duckdb","formulation":"asof","variant":"running-union","rows":100,"seconds":2}
`, "asof running-union ...\ncheck: asof running-union == window range-frames: 100 rows\n", 0)
	var out bytes.Buffer
	rows, err := runPeer(context.Background(), Options{Dir: t.TempDir(), Out: &out, Peer: peer}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Mode != "duckdb window" || rows[1].Mode != "duckdb asof" || rows[1].Seconds != 2 || rows[0].PeakRSS != 1<<20 {
		t.Fatalf("rows = %+v", rows)
	}
	if !strings.Contains(out.String(), "(running-union)") || !strings.Contains(out.String(), "peer check: asof") || strings.Contains(out.String(), "asof running-union ...") {
		t.Errorf("table lines:\n%s", out.String())
	}

	all := append([]Row{
		{Step: "query", Mode: "exact", Windows: peerWindows, Rows: 100, Seconds: 0.5},
		{Step: "query", Mode: "materialized", Windows: peerWindows, Rows: 100, Seconds: 0.1},
		{Step: "query", Mode: "exact", Windows: "sum 7d", Rows: 100, Seconds: 0.01},
	}, rows...)
	out.Reset()
	summarizePeer(&out, all)
	for _, want := range []string{"exact sum+count+mean x3: 4.0x the faster duckdb asof", "materialized sum+count+mean x3: 20.0x the faster duckdb asof"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunPeerErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		stdout, stderr string
		code           int
		want           string
	}{
		"fails":      {"", "duckdb peer: no data\n", 1, "no data"},
		"not json":   {"12 rows in 3s\n", "", 0, "line 1"},
		"wrong rows": {`{"engine":"duckdb","formulation":"asof","rows":99,"seconds":1}` + "\n", "", 0, "want the 100 spine rows"},
		"nothing":    {"\n", "", 0, "no results"},
	} {
		t.Run(name, func(t *testing.T) {
			peer := fakePeer(t, tc.stdout, tc.stderr, tc.code)
			_, err := runPeer(context.Background(), Options{Dir: t.TempDir(), Out: &bytes.Buffer{}, Peer: peer}, 100)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
