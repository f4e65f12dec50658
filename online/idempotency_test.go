package online_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-fe/tessera/online"
	"github.com/tessera-fe/tessera/online/internal/redistest"
	"github.com/tessera-fe/tessera/online/store"
)

// idemAt is the time the idempotency tests ingest just before and query at.
var idemAt = start.Add(45 * 24 * time.Hour)

// idemBody is n events of merchant m in the hour before idemAt, as JSON
// lines.
func idemBody(m, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"ts": %d, "user_id": 1, "merchant_id": %d, "amount": 1}`+"\n", idemAt.UnixMicro()-int64(i+1), m)
	}
	return b.String()
}

// merchantCount queries merchant.count_transactions[1d] of merchant m at
// idemAt.
func merchantCount(t testing.TB, svc *online.Service, m int) int64 {
	t.Helper()
	res, err := svc.Query(context.Background(), online.Query{Inputs: map[string][]any{"merchant.id": {int64(m)}}, Outputs: []string{"merchant.count_transactions[1d]"}, Now: idemAt})
	if err != nil {
		t.Fatal(err)
	}
	return int64(res.Columns[0].Values[0])
}

// TestIdempotentIngest checks the Idempotency-Key header on both stores: a
// retry with the same body is answered from the receipt and stores nothing,
// concurrent retries store once, another body gets a 422 naming the header,
// a bad key a 400, and a key is new again once its window has passed and
// the receipt was pruned.
func TestIdempotentIngest(t *testing.T) {
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t, false, 200)
			var ev store.Store
			var err error
			if backend == "redis" {
				ev, err = store.Open(redistest.Start(t))
			} else {
				ev, err = store.OpenBolt(filepath.Join(w.dir, "online.db"))
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ev.Close()
			var clock atomic.Int64
			clock.Store(time.Now().UnixMicro())
			const window = 2 * time.Second
			svc, err := online.New(w.cfg, w.tiles, ev, online.Options{IdempotencyWindow: window, Now: func() time.Time { return time.UnixMicro(clock.Load()) }})
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			h := svc.Handler(online.HTTPOptions{})
			post := func(key, body string) *httptest.ResponseRecorder {
				req := httptest.NewRequest("POST", "/v1/events/transactions", strings.NewReader(body))
				if key != "-" {
					req.Header.Set("Idempotency-Key", key)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				return rec
			}
			body := idemBody(501, 3)
			rec := post("batch-0001", body)
			if rec.Code != 200 || rec.Header().Get("Idempotent-Replayed") != "" || strings.TrimSpace(rec.Body.String()) != `{"ingested":3}` {
				t.Fatalf("first request: %d %q %s", rec.Code, rec.Header().Get("Idempotent-Replayed"), rec.Body)
			}
			rec = post("batch-0001", body)
			if rec.Code != 200 || rec.Header().Get("Idempotent-Replayed") != "true" || strings.TrimSpace(rec.Body.String()) != `{"ingested":3}` {
				t.Fatalf("retry: %d %q %s, want 200, replayed, the first result", rec.Code, rec.Header().Get("Idempotent-Replayed"), rec.Body)
			}
			if n := merchantCount(t, svc, 501); n != 3 {
				t.Fatalf("after a retry, %d events stored, want 3", n)
			}

			// Concurrent retries of a new request: stored once, the others
			// replay.
			body2 := idemBody(502, 5)
			var replays atomic.Int32
			var wg sync.WaitGroup
			for range 6 {
				wg.Go(func() {
					rec := post("batch-0002", body2)
					if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"ingested":5}` {
						t.Errorf("concurrent retry: %d %s", rec.Code, rec.Body)
					}
					if rec.Header().Get("Idempotent-Replayed") == "true" {
						replays.Add(1)
					}
				})
			}
			wg.Wait()
			if n := merchantCount(t, svc, 502); n != 5 || replays.Load() != 5 {
				t.Fatalf("6 concurrent requests with one key: %d events stored, %d replays; want 5 and 5", n, replays.Load())
			}

			// The same key with another body, or another source, is refused.
			rec = post("batch-0001", idemBody(501, 4))
			if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "Idempotency-Key") || !strings.Contains(rec.Body.String(), "batch-0001") {
				t.Fatalf("same key, other body: %d %s; want 422 naming the header and the key", rec.Code, rec.Body)
			}
			for _, c := range []struct{ key, want string }{
				{"", "0 bytes"},
				{strings.Repeat("k", 256), "256 bytes"},
				{"tab\there", "not printable"},
			} {
				rec = post(c.key, body)
				if rec.Code != 400 || !strings.Contains(rec.Body.String(), "Idempotency-Key") || !strings.Contains(rec.Body.String(), c.want) {
					t.Errorf("key %q: %d %s; want 400 naming the header and %q", c.key, rec.Code, rec.Body, c.want)
				}
			}
			// A failed request leaves no receipt: fixed, it is stored.
			rec = post("batch-0003", `{"ts": 1, "user_id": 1}`)
			if rec.Code != 400 {
				t.Fatalf("bad event: %d %s", rec.Code, rec.Body)
			}
			if rec = post("batch-0003", idemBody(503, 1)); rec.Code != 200 || rec.Header().Get("Idempotent-Replayed") != "" {
				t.Fatalf("the fixed request under the key of a failed one: %d %s", rec.Code, rec.Body)
			}
			if n := merchantCount(t, svc, 503); n != 1 {
				t.Fatalf("%d events stored after a failed then a good request, want 1", n)
			}
			if rec = post("-", idemBody(504, 1)); rec.Code != 200 {
				t.Fatalf("without the header: %d %s", rec.Code, rec.Body)
			}

			// After the window (Redis expires keys on its own clock) the
			// receipt is pruned and the key stores again.
			time.Sleep(window + 100*time.Millisecond)
			clock.Add((window + 100*time.Millisecond).Microseconds())
			pruned, err := svc.PruneReceipts(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if backend == "bolt" && pruned != 3 {
				t.Errorf("PruneReceipts removed %d receipts, want 3", pruned)
			}
			if rec = post("batch-0001", body); rec.Code != 200 || rec.Header().Get("Idempotent-Replayed") != "" {
				t.Fatalf("after the window: %d %q %s; want a fresh store", rec.Code, rec.Header().Get("Idempotent-Replayed"), rec.Body)
			}
			if n := merchantCount(t, svc, 501); n != 6 {
				t.Fatalf("after the window, %d events, want 6", n)
			}
			m := httptest.NewRecorder()
			h.ServeHTTP(m, httptest.NewRequest("GET", "/metrics", nil))
			if !strings.Contains(m.Body.String(), "tessera_ingest_replays_total 6") {
				t.Errorf("metrics lack tessera_ingest_replays_total 6")
			}
		})
	}
}

// TestServerIdempotentRetry drives the real server binary: a client sends
// an ingest with an Idempotency-Key and drops the connection before the
// reply; its retry is answered as a replay and the events are stored once,
// also across a restart.
func TestServerIdempotentRetry(t *testing.T) {
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) {
			w := newWorld(t, false, 200)
			var extra []string
			if backend == "redis" {
				extra = []string{"--online-store", redistest.Start(t)}
			}
			s := startServer(t, w, extra...)
			const m = 601
			body := idemBody(m, 50)
			// Send the whole request on a raw connection and close it at once.
			c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /v1/events/transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nIdempotency-Key: retry-me\r\nContent-Length: %d\r\n\r\n%s", s.token, len(body), body)
			c.Close()
			// The server finishes the request although the client is gone.
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(metricsText(t, s), `tessera_ingested_events_total{source="transactions"} 50`) {
				if time.Now().After(deadline) {
					t.Fatalf("the dropped request was not stored within 20s; log:\n%s", s.logText())
				}
				time.Sleep(20 * time.Millisecond)
			}
			retry := func(s *server) {
				t.Helper()
				req, _ := http.NewRequest("POST", s.url+"/v1/events/transactions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+s.token)
				req.Header.Set("Idempotency-Key", "retry-me")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				reply, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get("Idempotent-Replayed") != "true" || strings.TrimSpace(string(reply)) != `{"ingested":50}` {
					t.Fatalf("retry: %d %q %s; want 200, replayed, {\"ingested\":50}", resp.StatusCode, resp.Header.Get("Idempotent-Replayed"), reply)
				}
			}
			retry(s)
			if got := serverCount(t, s, m); got != 50 {
				t.Fatalf("after a dropped request and its retry, %d events stored, want 50", got)
			}
			s.stop(t)
			s2 := startServer(t, w, extra...)
			retry(s2)
			if got := serverCount(t, s2, m); got != 50 {
				t.Fatalf("after a restart and another retry, %d events stored, want 50", got)
			}
		})
	}
}

func metricsText(t testing.TB, s *server) string {
	t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

// serverCount asks the server for merchant.count_transactions[1d] of
// merchant m at idemAt.
func serverCount(t testing.TB, s *server, m int) int64 {
	t.Helper()
	code, reply := s.post(t, "/v1/query", fmt.Appendf(nil, `{"inputs": {"merchant.id": [%d]}, "outputs": ["merchant.count_transactions[1d]"], "now": %q}`, m, idemAt.Format(time.RFC3339)))
	if code != 200 {
		t.Fatalf("query: %d %s", code, reply)
	}
	var r struct{ Values map[string][]int64 }
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatal(err)
	}
	return r.Values["merchant.count_transactions[1d]"][0]
}
