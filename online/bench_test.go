package online_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/tessera-fe/tessera/online"
	"github.com/tessera-fe/tessera/online/store"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The load benchmarks start the real server (embedded store) in its own
// process and drive it over HTTP from this one:
//
//	go test ./online -run '^$' -bench Server -benchtime 20000x
//
// report requests/s and p50/p99 latency for 1 key x 3 features and 100 keys
// x 3 features (closed loop, 8 clients), the same at a paced 5,000
// requests/s, and ingested events/s.

var benchOutputs = []string{"user.total_transaction_amount[7d]", "user.mean_transaction_amount[30d]", "user.max_transaction_amount[7d]"}

type benchEnv struct {
	w       *world
	s       *server
	one     []byte
	hundred []byte
}

var benchSetup struct {
	once sync.Once
	env  *benchEnv
}

// setupBench backfills 60,000 events over 42 days up to an hour before the
// queries' now (as an hourly backfill_schedule keeps it), ingests every
// event online, and starts the server.
func setupBench(b *testing.B) *benchEnv {
	benchSetup.once.Do(func() {
		tb := packageTB{b}
		w := newWorld(tb, false, 60_000)
		w.backfill(b, start.Add(41*24*time.Hour+12*time.Hour))
		s := startServer(tb, w)
		n := w.events.Rows
		for lo := 0; lo < n; lo += 5000 {
			if code, reply := s.post(b, "/v1/events/transactions", jsonLines(b, w.jsonEvents(lo, min(lo+5000, n)))); code != 200 {
				b.Fatalf("ingest: %d %s", code, reply)
			}
		}
		now := start.Add(41*24*time.Hour + 13*time.Hour).Format(time.RFC3339)
		q := func(keys []string) []byte {
			return []byte(fmt.Sprintf(`{"inputs": {"user.id": [%s]}, "outputs": ["%s"], "now": %q}`, strings.Join(keys, ","), strings.Join(benchOutputs, `","`), now))
		}
		var hundred []string
		for i := range 100 {
			hundred = append(hundred, fmt.Sprint(i+1))
		}
		benchSetup.env = &benchEnv{w: w, s: s, one: q([]string{"3"}), hundred: q(hundred)}
	})
	if benchSetup.env == nil {
		b.Fatal("benchmark setup failed")
	}
	return benchSetup.env
}

// closedLoop sends b.N requests from `clients` goroutines and reports
// requests/s and latency percentiles.
func closedLoop(b *testing.B, s *server, body []byte, clients int) {
	lat := make([][]time.Duration, clients)
	var next atomic.Int64
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		rc := dialRaw(b, s, "/v1/query", body)
		wg.Go(func() {
			defer rc.c.Close()
			for next.Add(1) <= int64(b.N) {
				st := time.Now()
				if err := rc.do(); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(st))
			}
		})
	}
	wg.Wait()
	report(b, time.Since(t0), slices.Concat(lat...))
}

func report(b *testing.B, elapsed time.Duration, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
}

func BenchmarkServerQuery1Key(b *testing.B) {
	e := setupBench(b)
	closedLoop(b, e.s, e.one, 8)
}

func BenchmarkServerQuery100Keys(b *testing.B) {
	e := setupBench(b)
	closedLoop(b, e.s, e.hundred, 8)
}

// BenchmarkServerQuery1KeyAt5000rps sends b.N requests at a steady 5,000
// per second (latency measured from each request's scheduled start, so a
// stalled server shows in p99).
func BenchmarkServerQuery1KeyAt5000rps(b *testing.B) {
	e := setupBench(b)
	const rate = 5000
	interval := time.Second / rate
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	tokens := make(chan int, b.N)
	sched := make([]time.Time, b.N)
	b.ResetTimer()
	t0 := time.Now()
	for range 32 {
		rc := dialRaw(b, e.s, "/v1/query", e.one)
		wg.Go(func() {
			defer rc.c.Close()
			for i := range tokens {
				if err := rc.do(); err != nil {
					b.Error(err)
				}
				lat[i] = time.Since(sched[i])
			}
		})
	}
	for i := range b.N {
		at := t0.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		sched[i] = at
		tokens <- i
	}
	close(tokens)
	wg.Wait()
	report(b, time.Since(t0), lat)
}

// BenchmarkServerIngest posts b.N events in batches of 1,000 (JSON lines)
// from 4 clients and reports events/s.
func BenchmarkServerIngest(b *testing.B) {
	e := setupBench(b)
	var batches [][]byte
	for lo := 0; lo+1000 <= e.w.events.Rows && len(batches) < 16; lo += 1000 {
		batches = append(batches, jsonLines(b, e.w.jsonEvents(lo, lo+1000)))
	}
	var next atomic.Int64
	b.ResetTimer()
	t0 := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64((b.N+999)/1000) {
					return
				}
				if code, reply := e.s.post(b, "/v1/events/transactions", batches[int(i)%len(batches)]); code != 200 {
					b.Errorf("ingest: %d %s", code, reply)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64((b.N+999)/1000*1000)/time.Since(t0).Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

// packageTB outlives the benchmark that set it up: its temporary
// directories and cleanups last until TestMain ends, so that every
// benchmark shares one server.
type packageTB struct{ testing.TB }

var packageCleanups []func()

func (p packageTB) Cleanup(f func()) { packageCleanups = append(packageCleanups, f) }

func (p packageTB) TempDir() string {
	dir, err := os.MkdirTemp("", "tessera-bench-")
	if err != nil {
		p.Fatal(err)
	}
	packageCleanups = append(packageCleanups, func() { os.RemoveAll(dir) })
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(packageCleanups) - 1; i >= 0; i-- {
		packageCleanups[i]()
	}
	if benchBuilt.Load() {
		if bin, err := buildServer(); err == nil {
			os.RemoveAll(filepath.Dir(bin))
		}
	}
	os.Exit(code)
}

// rawConn is a minimal HTTP/1.1 client on one kept-alive connection: it
// sends one prepared request and reads the status and body. It keeps the
// load generator's own CPU use small on a machine it shares with the server.
type rawConn struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte
}

func dialRaw(b *testing.B, s *server, path string, body []byte) *rawConn {
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, s.token, len(body))
	return &rawConn{c: c, r: bufio.NewReaderSize(c, 64<<10), req: append(req, body...)}
}

func (rc *rawConn) do() error {
	if _, err := rc.c.Write(rc.req); err != nil {
		return err
	}
	status, err := rc.r.ReadString('\n')
	if err != nil {
		return err
	}
	n := -1
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			break
		}
		if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length: "); ok {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if n < 0 {
		return fmt.Errorf("response without Content-Length: %s", status)
	}
	if _, err := rc.r.Discard(n); err != nil {
		return err
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		return fmt.Errorf("query: %s", strings.TrimSpace(status))
	}
	return nil
}

// BenchmarkServiceQuery measures one query in process over the
// benchmark's data, 1 and 100 keys x 3 features: Service.Query alone, and
// the whole HTTP handler (decoding, authentication, metrics, encoding)
// without the network, with allocations per query.
func BenchmarkServiceQuery(b *testing.B) {
	w := newWorld(b, false, 60_000)
	w.backfill(b, start.Add(41*24*time.Hour+12*time.Hour))
	ev, err := store.OpenBolt(filepath.Join(w.dir, "online.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer ev.Close()
	svc, err := online.New(w.cfg, w.tiles, ev, online.Options{Retention: 10000 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	for lo := 0; lo < w.events.Rows; lo += 5000 {
		if _, err := svc.Ingest(context.Background(), "transactions", bytes.NewReader(jsonLines(b, w.jsonEvents(lo, min(lo+5000, w.events.Rows))))); err != nil {
			b.Fatal(err)
		}
	}
	now := start.Add(41*24*time.Hour + 13*time.Hour)
	for _, n := range []int{1, 100} {
		keys := make([]any, n)
		text := make([]string, n)
		for i := range keys {
			keys[i] = int64(i + 1)
			text[i] = strconv.Itoa(i + 1)
		}
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			q := online.Query{Inputs: map[string][]any{"user.id": keys}, Outputs: benchOutputs, Now: now}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := svc.Query(context.Background(), q); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("http/keys=%d", n), func(b *testing.B) {
			h := svc.Handler(online.HTTPOptions{AuthToken: "tok-123"})
			body := fmt.Appendf(nil, `{"inputs": {"user.id": [%s]}, "outputs": ["%s"], "now": %q}`, strings.Join(text, ","), strings.Join(benchOutputs, `","`), now.Format(time.RFC3339))
			req, err := http.NewRequest("POST", "/v1/query", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer tok-123")
			req.Header.Set("Content-Type", "application/json")
			rd := bytes.NewReader(body)
			rb := &resetBody{rd}
			req.Body = rb
			rw := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(body)
				req.Body = rb
				clear(rw.h)
				rw.code = 0
				h.ServeHTTP(rw, req)
				if rw.code != 200 {
					b.Fatalf("status %d", rw.code)
				}
			}
		})
	}
}

// resetBody is a request body that the benchmark rewinds between requests.
type resetBody struct{ *bytes.Reader }

func (resetBody) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header { return d.h }

func (d *discardWriter) WriteHeader(code int) { d.code = code }

func (d *discardWriter) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = 200
	}
	return len(p), nil
}
