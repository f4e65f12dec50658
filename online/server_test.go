package online_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/online/internal/redistest"
)

// buildServer builds the tessera binary once per test binary run.
var buildServer = sync.OnceValues(func() (string, error) {
	benchBuilt.Store(true)
	dir, err := os.MkdirTemp("", "tessera-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tessera")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/tessera").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// client keeps connections open for load tests.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}

// benchBuilt records that buildServer ran (TestMain removes the binary).
var benchBuilt atomic.Bool

// server is a running `tessera serve`.
type server struct {
	cmd   *exec.Cmd
	url   string
	token string
	done  chan struct{}
	mu    sync.Mutex
	log   bytes.Buffer
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// startServer runs the binary on a free port and waits for it to listen.
func startServer(t testing.TB, w *world, extra ...string) *server {
	t.Helper()
	bin, err := buildServer()
	if err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(w.dir, "token")
	if err := os.WriteFile(tok, []byte("tok-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--config", filepath.Join(w.dir, "tessera.yaml"), "--store", w.cfg.Store,
		"--listen", "127.0.0.1:0", "--auth-token-file", tok, "--retention", "10000h"}, extra...)
	// TESSERA_SERVE_ARGS adds flags, e.g. --cpuprofile /tmp/serve.pprof.
	args = append(args, strings.Fields(os.Getenv("TESSERA_SERVE_ARGS"))...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, token: "tok-123", done: make(chan struct{})}
	// TESSERA_SERVE_LOG names a file that receives the server's log too,
	// e.g. with GODEBUG=gctrace=1 in the environment.
	var logFile *os.File
	if path := os.Getenv("TESSERA_SERVE_LOG"); path != "" {
		if logFile, err = os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr := make(chan string, 1)
	go func() {
		if logFile != nil {
			defer logFile.Close()
		}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if logFile != nil {
				fmt.Fprintln(logFile, line)
			}
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if a, ok := strings.CutPrefix(line, "tessera serve: listening on "); ok {
				addr <- a
			}
		}
		_ = cmd.Wait()
		close(s.done)
	}()
	select {
	case s.url = <-addr:
	case <-s.done:
		t.Fatalf("server exited: %s", s.logText())
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start listening in 30s")
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t testing.TB) {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("server did not stop within 30s of SIGTERM")
	}
}

func (s *server) post(t testing.TB, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func jsonLines(t testing.TB, rows []map[string]any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// queryServer asks the server for every output at now.
func (w *world) queryServer(t testing.TB, s *server, now time.Time) map[string][]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"inputs":  map[string]any{"user.id": w.users, "merchant.id": w.merch},
		"outputs": outputs,
		"now":     now.Format(time.RFC3339Nano),
	})
	code, reply := s.post(t, "/v1/query", body)
	if code != 200 {
		t.Fatalf("query: %d %s", code, reply)
	}
	var r struct{ Values map[string][]any }
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatal(err)
	}
	return r.Values
}

func sameJSON(t testing.TB, what string, got map[string][]any, want []*offline.Column) {
	t.Helper()
	for _, c := range want {
		g := got[c.Name]
		if len(g) != len(c.Values) {
			t.Fatalf("%s: %s has %d values, want %d", what, c.Name, len(g), len(c.Values))
		}
		for r, wv := range c.Values {
			valid := c.Valid == nil || c.Valid[r]
			switch x := g[r].(type) {
			case nil:
				if valid {
					t.Fatalf("%s: %s row %d: null, want %v", what, c.Name, r, wv)
				}
			case float64:
				if !valid || math.Abs(x-wv) > 1e-9*(1+math.Abs(wv)) {
					t.Fatalf("%s: %s row %d: %v, want %v (valid %v)", what, c.Name, r, x, wv, valid)
				}
			default:
				t.Fatalf("%s: %s row %d: %T", what, c.Name, r, x)
			}
		}
	}
}

// TestServerBinary starts the real server, with the embedded store and with
// Redis, ingests the events over HTTP and compares its answers with the
// offline query; then checks that a SIGTERM during ingestion loses no
// acknowledged event.
func TestServerBinary(t *testing.T) {
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t, false, 3000)
			w.backfill(t, start.Add(20*24*time.Hour+3*time.Hour))
			var extra []string
			if backend == "redis" {
				extra = []string{"--online-store", redistest.Start(t)}
			}
			s := startServer(t, w, extra...)
			n := w.events.Rows
			for lo := 0; lo < n; lo += 1000 {
				if code, reply := s.post(t, "/v1/events/transactions", jsonLines(t, w.jsonEvents(lo, min(lo+1000, n)))); code != 200 {
					t.Fatalf("ingest: %d %s", code, reply)
				}
			}
			for _, at := range queryTimes {
				sameJSON(t, "now "+at.String(), w.queryServer(t, s, at), w.offlineAt(t, at).Columns)
			}
			checkNoAckLost(t, w, s, extra)
		})
	}
}

// checkNoAckLost ingests one event per request from several clients, stops
// the server in the middle, restarts it and counts: every acknowledged
// event is there.
func checkNoAckLost(t *testing.T, w *world, s *server, extra []string) {
	const merchant = 777777
	at := start.Add(45 * 24 * time.Hour)
	var acked atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	for c := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 2000; i++ {
				ev := fmt.Sprintf(`{"ts": %d, "user_id": %d, "merchant_id": %d, "amount": 1}`, at.UnixMicro()-int64(i+1), c, merchant)
				if code, _ := s.post(t, "/v1/events/transactions", []byte(ev)); code == 200 {
					acked.Add(1)
				}
			}
		})
	}
	for acked.Load() < 50 {
		time.Sleep(5 * time.Millisecond)
	}
	s.stop(t)
	cancel()
	wg.Wait()
	s2 := startServer(t, w, extra...)
	body := fmt.Sprintf(`{"inputs": {"merchant.id": [%d]}, "outputs": ["merchant.count_transactions[1d]"], "now": %q}`, merchant, at.Format(time.RFC3339))
	code, reply := s2.post(t, "/v1/query", []byte(body))
	if code != 200 {
		t.Fatalf("query after restart: %d %s", code, reply)
	}
	var r struct{ Values map[string][]int64 }
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatal(err)
	}
	if got := r.Values["merchant.count_transactions[1d]"][0]; got < acked.Load() {
		t.Fatalf("after restart %d events, but %d were acknowledged", got, acked.Load())
	} else {
		t.Logf("%d acknowledged, %d stored", acked.Load(), got)
	}
}

// TestServerSchedule runs the server with a backfill_schedule: its
// catch-up backfill commits tiles, /metrics counts the run, and /readyz
// answers.
func TestServerSchedule(t *testing.T) {
	w := newWorld(t, false, 500)
	path := filepath.Join(w.dir, "tessera.yaml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text = bytes.ReplaceAll(text, []byte("materialization: {bucket_duration: 1h}"), []byte("materialization: {bucket_duration: 1h, backfill_schedule: 1h, backfill_lookback_duration: 2h}"))
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, w)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `tessera_backfill_runs_total{result="ok"} 1`) {
			if !strings.Contains(string(b), "tessera_tileset_watermark_seconds{tile_set=") {
				t.Errorf("no watermark metric after the run:\n%s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backfill run within 30s; log:\n%s\nmetrics:\n%s", s.logText(), b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get(s.url + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestBackfillWatch runs `tessera aggregate backfill --watch`: it catches up
// at once (one commit per scheduled tile set) and stops cleanly on SIGINT.
func TestBackfillWatch(t *testing.T) {
	bin, err := buildServer()
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, false, 300)
	path := filepath.Join(w.dir, "tessera.yaml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text = bytes.ReplaceAll(text, []byte("materialization: {bucket_duration: 1h}"), []byte("materialization: {bucket_duration: 1h, backfill_schedule: \"*/5 * * * *\"}"))
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "aggregate", "backfill", "--watch", "--config", path, "--store", w.cfg.Store)
	var out bytes.Buffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for {
		m1, err1 := w.tiles.Manifest(context.Background(), w.cfg.TileSetOf("merchant.count_transactions").ID)
		m2, err2 := w.tiles.Manifest(context.Background(), w.cfg.TileSetOf("merchant.count_declined").ID)
		if err1 == nil && err2 == nil && m1 != nil && m2 != nil {
			break
		}
		select {
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("no commit within 30s:\n%s", out.String())
		case err := <-done:
			t.Fatalf("backfill --watch exited: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The 4h and 12h tile sets have no schedule: never backfilled.
	if m, _ := w.tiles.Manifest(context.Background(), w.cfg.TileSetOf("user.total_transaction_amount").ID); m != nil {
		t.Error("an unscheduled tile set was backfilled")
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("backfill --watch after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("backfill --watch did not stop on SIGINT")
	}
}
