package online_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-fe/tessera"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/online"
	"github.com/tessera-fe/tessera/online/internal/redistest"
	"github.com/tessera-fe/tessera/online/store"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

// minFeature adds a min aggregation to the sample's features.
const minFeature = `  user.min_transaction_amount:
    source: transactions
    aggregation: min
    value: amount
    windows: [1d, 7d]
    materialization: {bucket_duration: 4h}
`

var outputs = append(sample.Features(), "user.min_transaction_amount[1d]", "user.min_transaction_amount[7d]")

var start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// world is a sample of events in Parquet, its config and a tile store.
type world struct {
	dir    string
	cfg    *feature.Config
	events *source.Table
	tiles  *tilestore.Store
	users  []any
	merch  []any
}

func newWorld(t testing.TB, str bool, n int) *world {
	t.Helper()
	dir := t.TempDir()
	spec := sample.Default()
	spec.Events, spec.Users, spec.Merchants, spec.Days, spec.StringKeys = n, 60, 12, 42, str
	ev := sample.Events(spec)
	if err := source.Write(filepath.Join(dir, "events.parquet"), ev); err != nil {
		t.Fatal(err)
	}
	text := sample.Config() + minFeature
	path := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := feature.Parse(path, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = filepath.Join(dir, ".tessera")
	tiles, err := tilestore.Open(context.Background(), cfg.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tiles.Close() })
	w := &world{dir: dir, cfg: cfg, events: ev, tiles: tiles}
	// 61 rows: every user, one unknown user; merchants cycle, one unknown.
	for i := range 61 {
		u := int64(i + 1)
		if i == 60 {
			u = 99999
		}
		if str {
			w.users = append(w.users, fmt.Sprintf("u%d", u))
		} else {
			w.users = append(w.users, u)
		}
		m := int64(i%13 + 1)
		w.merch = append(w.merch, m)
	}
	return w
}

func (w *world) backfill(t testing.TB, to time.Time) {
	t.Helper()
	_, err := materialize.Backfill(context.Background(), w.cfg, w.tiles, materialize.Options{To: &to, Now: to})
	if err != nil {
		t.Fatal(err)
	}
}

// jsonEvents renders events [lo, hi) as JSON objects.
func (w *world) jsonEvents(lo, hi int) []map[string]any {
	c := func(n string) *source.Column { return w.events.Column(n) }
	var out []map[string]any
	for i := lo; i < hi; i++ {
		row := map[string]any{
			"merchant_id": c("merchant_id").Ints[i],
			"ts":          time.UnixMicro(c("ts").Ints[i]).UTC().Format(time.RFC3339Nano),
			"status":      c("status").Strs[i],
			"amount":      nil,
		}
		if u := c("user_id"); u.Kind == source.String {
			row["user_id"] = u.Strs[i]
		} else {
			row["user_id"] = u.Ints[i]
		}
		if !c("amount").IsNull(i) {
			row["amount"] = c("amount").Floats[i]
		}
		out = append(out, row)
	}
	return out
}

// ingestHTTP posts events [lo, hi), as a JSON array or as JSON lines.
func ingestHTTP(t testing.TB, h http.Handler, rows []map[string]any, lines bool) {
	t.Helper()
	var body bytes.Buffer
	if lines {
		enc := json.NewEncoder(&body)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				t.Fatal(err)
			}
		}
	} else if err := json.NewEncoder(&body).Encode(rows); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/events/transactions", &body))
	if rec.Code != 200 {
		t.Fatalf("ingest: %d %s", rec.Code, rec.Body)
	}
	var got map[string]int
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got["ingested"] != len(rows) {
		t.Fatalf("ingest reply %s, want %d ingested", rec.Body, len(rows))
	}
}

// offlineAt is the offline query with materialized+align for every row at t.
func (w *world) offlineAt(t testing.TB, at time.Time) *offline.Result {
	t.Helper()
	times := make([]time.Time, len(w.users))
	for i := range times {
		times[i] = at
	}
	in := map[string]any{"merchant.id": toInts(w.merch)}
	if s, ok := w.users[0].(string); ok {
		_ = s
		in["user.id"] = toStrs(w.users)
	} else {
		in["user.id"] = toInts(w.users)
	}
	res, err := tessera.OfflineQuery(context.Background(), w.cfg, tessera.Request{
		Inputs: in, InputTimes: times, Outputs: outputs, Store: w.tiles,
		Planner: tessera.PlannerOptions{UseMaterializedOfflineQuery: true, AlignOfflineWindowWithMaterialization: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func toInts(xs []any) []int64 {
	out := make([]int64, len(xs))
	for i, x := range xs {
		out[i] = x.(int64)
	}
	return out
}

func toStrs(xs []any) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.(string)
	}
	return out
}

func (w *world) onlineAt(t testing.TB, svc *online.Service, at time.Time) *online.Result {
	t.Helper()
	res, err := svc.Query(context.Background(), online.Query{
		Inputs: map[string][]any{"user.id": w.users, "merchant.id": w.merch}, Outputs: outputs, Now: at,
	})
	if err != nil {
		t.Fatalf("online query at %s: %v", at, err)
	}
	return res
}

func sameColumns(t testing.TB, what string, got, want []*offline.Column) {
	t.Helper()
	for c := range want {
		g, w := got[c], want[c]
		if g.Name != w.Name {
			t.Fatalf("%s: column %d is %s, want %s", what, c, g.Name, w.Name)
		}
		for r := range w.Values {
			gv, wv := g.Valid == nil || g.Valid[r], w.Valid == nil || w.Valid[r]
			if gv != wv || (wv && math.Abs(g.Values[r]-w.Values[r]) > 1e-9*(1+math.Abs(w.Values[r]))) {
				t.Fatalf("%s: %s row %d: online %v (valid %v), offline %v (valid %v)", what, w.Name, r, g.Values[r], gv, w.Values[r], wv)
			}
		}
	}
}

// queryTimes are on and off bucket boundaries, before, at and after the
// watermarks the tests use, and after the last event.
var queryTimes = []time.Time{
	start.Add(2*24*time.Hour + 17*time.Minute),
	start.Add(10*24*time.Hour + 4*time.Hour),
	start.Add(20*24*time.Hour + 3*time.Hour),
	start.Add(20*24*time.Hour + 3*time.Hour + 59*time.Minute + time.Microsecond),
	start.Add(25*24*time.Hour + 5*time.Hour + 1),
	start.Add(30*24*time.Hour + 90*time.Minute),
	start.Add(41*24*time.Hour + 23*time.Hour + 59*time.Minute),
	start.Add(50 * 24 * time.Hour),
}

// TestOnlineEqualsOffline ingests the events through the HTTP API and
// checks that online values equal the offline materialized+align query at
// several times: with part of the range tiled, after a later backfill, and
// after pruning, for int and string keys and for both embedded and Redis
// stores (Redis in TestRedisOnlineEqualsOffline).
func TestOnlineEqualsOffline(t *testing.T) {
	for _, str := range []bool{false, true} {
		t.Run(fmt.Sprintf("string_keys=%v", str), func(t *testing.T) {
			w := newWorld(t, str, 8000)
			ev, err := store.OpenBolt(filepath.Join(w.dir, "online.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer ev.Close()
			checkOnlineEqualsOffline(t, w, ev)
		})
	}
}

func checkOnlineEqualsOffline(t *testing.T, w *world, ev store.Store) {
	ctx := context.Background()
	w.backfill(t, start.Add(20*24*time.Hour+3*time.Hour))
	svc, err := online.New(w.cfg, w.tiles, ev, online.Options{Retention: 1000 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	h := svc.Handler(online.HTTPOptions{})
	n := w.events.Rows
	ingestHTTP(t, h, w.jsonEvents(0, n/2), false)
	ingestHTTP(t, h, w.jsonEvents(n/2, n), true)
	check := func(stage string) {
		for _, at := range queryTimes {
			sameColumns(t, fmt.Sprintf("%s, now %s", stage, at.Format(time.RFC3339Nano)), w.onlineAt(t, svc, at).Columns, w.offlineAt(t, at).Columns)
		}
	}
	check("tiles to day 20")

	// A later backfill moves the watermark: buckets move from ingested
	// events to tiles, values stay.
	w.backfill(t, start.Add(30*24*time.Hour+time.Hour))
	if err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	check("tiles to day 30")

	// Pruning keeps what the watermark minus the retention needs.
	pruner, err := online.New(w.cfg, w.tiles, ev, online.Options{Retention: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := pruner.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	removed, err := pruner.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if removed == 0 {
		t.Fatal("prune removed nothing")
	}
	for _, at := range append([]time.Time{start.Add(30*24*time.Hour + 13*time.Hour + time.Minute)}, queryTimes[6:]...) {
		sameColumns(t, "after prune, now "+at.String(), w.onlineAt(t, pruner, at).Columns, w.offlineAt(t, at).Columns)
	}
	_, err = pruner.Query(ctx, online.Query{Inputs: map[string][]any{"user.id": w.users[:1]}, Outputs: outputs[:1], Now: queryTimes[4]})
	if err == nil || !strings.Contains(err.Error(), "too far in the past") {
		t.Fatalf("query before the prune horizon: err %v, want too far in the past", err)
	}
}

func TestRedisOnlineEqualsOffline(t *testing.T) {
	url := redistest.Start(t)
	w := newWorld(t, false, 4000)
	ev, err := store.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	checkOnlineEqualsOffline(t, w, ev)
}

// TestConcurrentIngestAndQuery ingests from several goroutines while others
// query, refresh and prune (run it with -race); at the end the values equal
// the offline query.
func TestConcurrentIngestAndQuery(t *testing.T) {
	w := newWorld(t, false, 4000)
	w.backfill(t, start.Add(20*24*time.Hour))
	ev, err := store.OpenBolt(filepath.Join(w.dir, "online.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	ctx := context.Background()
	svc, err := online.New(w.cfg, w.tiles, ev, online.Options{Retention: 1000 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	h := svc.Handler(online.HTTPOptions{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	n := w.events.Rows
	for g := range 4 {
		wg.Go(func() {
			for lo := g * 100; lo < n; lo += 400 {
				ingestHTTP(t, h, w.jsonEvents(lo, min(lo+100, n)), g%2 == 0)
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				w.onlineAt(t, svc, queryTimes[5])
			}
		})
	}
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := svc.Refresh(ctx); err != nil {
				t.Error(err)
			}
			if _, err := svc.Prune(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	for _, at := range queryTimes[2:] {
		sameColumns(t, "after concurrent ingest, now "+at.String(), w.onlineAt(t, svc, at).Columns, w.offlineAt(t, at).Columns)
	}
}
