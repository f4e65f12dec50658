package online_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessera-fe/tessera/online"
	"github.com/tessera-fe/tessera/online/store"
)

func newService(t *testing.T) (*world, *online.Service) {
	t.Helper()
	w := newWorld(t, false, 500)
	ev, err := store.OpenBolt(filepath.Join(w.dir, "online.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ev.Close() })
	svc, err := online.New(w.cfg, w.tiles, ev, online.Options{MaxRows: 10, MaxEvents: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w, svc
}

// TestHTTPErrors checks that bad requests get a 400 (or 401, 404, 413)
// whose message names the problem and the fix.
func TestHTTPErrors(t *testing.T) {
	_, svc := newService(t)
	h := svc.Handler(online.HTTPOptions{MaxBody: 4096})
	cases := []struct {
		name, method, path, body string
		code                     int
		want                     []string
	}{
		{"unknown feature", "POST", "/v1/query", `{"inputs": {"user.id": [1]}, "outputs": ["user.totl_transaction_amount[7d]"]}`, 400,
			[]string{"user.totl_transaction_amount", "did you mean user.total_transaction_amount", "merchant.count_declined"}},
		{"undeclared window", "POST", "/v1/query", `{"inputs": {"user.id": [1]}, "outputs": ["user.total_transaction_amount[3d]"]}`, 400, []string{"no window 3d", "7d, 30d, all"}},
		{"unknown field", "POST", "/v1/query", `{"input": {"user.id": [1]}, "outputs": []}`, 400, []string{`"input"`, "valid fields: inputs, outputs, now"}},
		{"wrong type", "POST", "/v1/query", `{"inputs": {"user.id": [1]}, "outputs": "user.total_transaction_amount[7d]"}`, 400, []string{`"outputs"`}},
		{"no keys for entity", "POST", "/v1/query", `{"inputs": {"merchant.id": [1]}, "outputs": ["user.total_transaction_amount[7d]"]}`, 400, []string{"user.id"}},
		{"bad key", "POST", "/v1/query", `{"inputs": {"user.id": [1.5]}, "outputs": ["user.total_transaction_amount[7d]"]}`, 400, []string{"inputs.user.id[0]", "1.5"}},
		{"too many keys", "POST", "/v1/query", `{"inputs": {"user.id": [1,2,3,4,5,6,7,8,9,10,11]}, "outputs": ["user.total_transaction_amount[7d]"]}`, 400, []string{"11 keys", "at most 10"}},
		{"bad now", "POST", "/v1/query", `{"inputs": {"user.id": [1]}, "outputs": ["user.total_transaction_amount[7d]"], "now": "yesterday"}`, 400, []string{"now", "RFC 3339"}},
		{"ragged inputs", "POST", "/v1/query", `{"inputs": {"user.id": [1, 2], "merchant.id": [1]}, "outputs": ["user.total_transaction_amount[7d]"]}`, 400, []string{"one key per row"}},
		{"unknown source", "POST", "/v1/events/..%2f..%2fetc", `[]`, 400, []string{"unknown source", "transactions"}},
		{"missing timestamp", "POST", "/v1/events/transactions", `{"user_id": 1, "merchant_id": 2}`, 400, []string{"event 1", `"ts"`}},
		{"missing key", "POST", "/v1/events/transactions", `{"ts": "2026-01-01T00:00:00Z", "user_id": 1}`, 400, []string{"event 1", `"merchant_id"`}},
		{"string key for int column", "POST", "/v1/events/transactions", `{"ts": "2026-01-01T00:00:00Z", "user_id": "u1", "merchant_id": 1}`, 400, []string{`"user_id"`, "integers"}},
		{"bad value", "POST", "/v1/events/transactions", `{"ts": "2026-01-01T00:00:00Z", "user_id": 1, "merchant_id": 1, "amount": "12"}`, 400, []string{`"amount"`, "number or null"}},
		{"bad JSON", "POST", "/v1/events/transactions", `[{"ts": 1,}]`, 400, []string{"event 1", "invalid JSON"}},
		{"too many events", "POST", "/v1/events/transactions", strings.Repeat(`{"ts": 1, "user_id": 1, "merchant_id": 1}`+"\n", 6), 400, []string{"more than 5 events"}},
		{"body too large", "POST", "/v1/events/transactions", "[" + strings.Repeat(" ", 5000) + "]", 413, []string{"larger than 4096 bytes"}},
		{"query too large", "POST", "/v1/query", `{"inputs": {"user.id": [` + strings.Repeat("1,", 3000) + `1]}, "outputs": ["user.total_transaction_amount[7d]"]}`, 413, []string{"larger than 4096 bytes"}},
		{"escaped output", "POST", "/v1/query", `{"inputs": {"user.id": [1]}, "outputs": ["user.total_transaction_amount[3\u0064]"]}`, 400, []string{"no window 3d"}},
		{"float key", "POST", "/v1/query", `{"inputs": {"user.id": [1e3]}, "outputs": ["user.total_transaction_amount[7d]"]}`, 400, []string{"inputs.user.id[0]"}},
		{"no route", "GET", "/v2/x", ``, 404, []string{"POST /v1/query"}},
		{"wrong method", "GET", "/v1/query", ``, 404, []string{"POST /v1/query"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, strings.NewReader(c.body)))
			raw, _ := io.ReadAll(rec.Body)
			var reply struct{ Error string }
			_ = json.Unmarshal(raw, &reply)
			body := reply.Error
			if rec.Code != c.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.code, body)
			}
			for _, s := range c.want {
				if !strings.Contains(string(body), s) {
					t.Errorf("reply %s lacks %q", body, s)
				}
			}
		})
	}
}

func TestHTTPAuthHealthMetrics(t *testing.T) {
	_, svc := newService(t)
	h := svc.Handler(online.HTTPOptions{AuthToken: "s3cret"})
	do := func(method, path, auth, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	q := `{"inputs": {"user.id": [1]}, "outputs": ["user.total_transaction_amount[7d]"], "now": "2026-01-05T00:00:00Z"}`
	if rec := do("POST", "/v1/query", "", q); rec.Code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", rec.Code)
	}
	if rec := do("POST", "/v1/query", "Bearer wrong", q); rec.Code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", rec.Code)
	}
	rec := do("POST", "/v1/query", "Bearer s3cret", q)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"user.total_transaction_amount[7d]":[0]`) {
		t.Errorf("good token: %d %s", rec.Code, rec.Body)
	}
	rec = do("POST", "/v1/events/transactions", "Bearer s3cret", `{"ts": "2026-01-04T10:00:00Z", "user_id": 1, "merchant_id": 1, "amount": 2.5, "status": "declined"}`)
	if rec.Code != 200 {
		t.Fatalf("ingest: %d %s", rec.Code, rec.Body)
	}
	rec = do("POST", "/v1/query", "Bearer s3cret", `{"inputs": {"user": [1], "merchant_id": [1]}, "outputs": ["user.total_transaction_amount[7d]", "user.mean_transaction_amount[7d]", "merchant.count_declined[1d]", "user.max_transaction_amount[7d]"], "now": "2026-01-05T00:00:00Z"}`)
	want := `"values":{"merchant.count_declined[1d]":[1],"user.max_transaction_amount[7d]":[2.5],"user.mean_transaction_amount[7d]":[2.5],"user.total_transaction_amount[7d]":[2.5]}`
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
		t.Errorf("after ingest: %d %s, want %s", rec.Code, rec.Body, want)
	}
	rec = do("POST", "/v1/query", "Bearer s3cret", `{"inputs": {"user.id": [2]}, "outputs": ["user.mean_transaction_amount[7d]"], "now": "2026-01-05T00:00:00Z"}`)
	if !strings.Contains(rec.Body.String(), `"user.mean_transaction_amount[7d]":[null]`) {
		t.Errorf("empty window mean: %s, want null", rec.Body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if rec := do("GET", p, "", ""); rec.Code != 200 {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
	rec = do("GET", "/metrics", "", "")
	for _, s := range []string{`tessera_ingested_events_total{source="transactions"} 1`, `tessera_http_request_duration_seconds_count{code="401",route="query"} 2`, "tessera_backfill_lag_seconds"} {
		if !strings.Contains(rec.Body.String(), s) {
			t.Errorf("metrics lack %q", s)
		}
	}
}
