package online

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the service's Prometheus metrics, in their own registry.
type Metrics struct {
	Registry *prometheus.Registry
	// Requests observes request latency by route and status code.
	Requests *prometheus.HistogramVec
	// Ingested counts ingested events by source.
	Ingested *prometheus.CounterVec
	// Backfills counts scheduled backfill runs by result (ok, error).
	Backfills *prometheus.CounterVec
	// BackfillSeconds observes the duration of backfill runs.
	BackfillSeconds prometheus.Histogram
	// Watermark is each tile set's watermark, seconds since the epoch.
	Watermark *prometheus.GaugeVec
	// Pruned counts ingested events removed once tiles covered them.
	Pruned prometheus.Counter
	// Replayed counts ingest requests answered from an idempotency receipt.
	Replayed prometheus.Counter

	mu    sync.Mutex
	marks map[string]int64
}

// NewMetrics registers the metrics, with the Go runtime and process
// collectors, in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tessera_http_request_duration_seconds",
			Help:    "Latency of HTTP requests by route and status code.",
			Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "code"}),
		Ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_ingested_events_total",
			Help: "Events ingested and acknowledged, by source.",
		}, []string{"source"}),
		Backfills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_backfill_runs_total",
			Help: "Scheduled incremental backfill runs, by result.",
		}, []string{"result"}),
		BackfillSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tessera_backfill_duration_seconds",
			Help:    "Duration of scheduled incremental backfill runs.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
		Watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tessera_tileset_watermark_seconds",
			Help: "End of each tile set's committed coverage, seconds since the epoch; backfill lag is time() minus this.",
		}, []string{"tile_set"}),
		Pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_online_pruned_events_total",
			Help: "Ingested events removed from the online store once tiles covered them.",
		}),
		Replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_ingest_replays_total",
			Help: "Ingest requests answered from the receipt of an earlier request with the same Idempotency-Key; their events were not stored again.",
		}),
	}
	m.Registry.MustRegister(m.Requests, m.Ingested, m.Backfills, m.BackfillSeconds, m.Watermark, m.Pruned, m.Replayed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tessera_backfill_lag_seconds", Help: "Seconds between now and the oldest tile set watermark."}, m.lag),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) setWatermark(tileSet string, wm int64) {
	if wm == math.MinInt64 {
		return
	}
	m.Watermark.WithLabelValues(tileSet).Set(float64(wm) / 1e6)
	m.mu.Lock()
	if m.marks == nil {
		m.marks = map[string]int64{}
	}
	m.marks[tileSet] = wm
	m.mu.Unlock()
}

// lag returns now minus the oldest watermark, 0 when none is known.
func (m *Metrics) lag() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.marks) == 0 {
		return 0
	}
	oldest := int64(math.MaxInt64)
	for _, wm := range m.marks {
		oldest = min(oldest, wm)
	}
	return float64(time.Now().UnixMicro()-oldest) / 1e6
}
