// Package sample makes realistic synthetic data for the demo and the
// benchmarks: card transactions whose users and merchants follow Zipf
// distributions (a few heavy hitters, a long tail), and a labelled spine.
package sample

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-fe/tessera/source"
)

// Spec sizes a sample.
type Spec struct {
	Events    int       // transactions
	SpineRows int       // labelled spine rows
	Users     uint64    // distinct users (Zipf over them)
	Merchants uint64    // distinct merchants (Zipf over them)
	Start     time.Time // first event time
	Days      int       // span of the events
	Seed      uint64
	// StringKeys makes user ids strings ("u123") instead of int64.
	StringKeys bool
}

// Default is the demo's sample: a few hundred thousand events over 90 days.
func Default() Spec {
	return Spec{Events: 300_000, SpineRows: 50_000, Users: 20_000, Merchants: 2_000,
		Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Days: 90, Seed: 1}
}

// Events returns the transactions table: user_id, merchant_id, ts, amount,
// status ("approved" or "declined"), sorted by nothing in particular (sources
// arrive in any order).
func Events(s Spec) *source.Table {
	rng := rand.New(rand.NewPCG(s.Seed, 1))
	users := rand.NewZipf(rng, 1.2, 4, s.Users-1)
	merchants := rand.NewZipf(rng, 1.1, 2, s.Merchants-1)
	n := s.Events
	uid := make([]int64, n)
	mid := make([]int64, n)
	ts := make([]int64, n)
	amount := make([]float64, n)
	amountValid := make([]bool, n)
	status := make([]string, n)
	start := s.Start.UnixMicro()
	span := int64(s.Days) * 24 * int64(time.Hour/time.Microsecond)
	for i := range n {
		uid[i] = int64(users.Uint64()) + 1
		mid[i] = int64(merchants.Uint64()) + 1
		ts[i] = start + diurnal(rng, span)
		// log-normal amounts around 40, in cents
		amount[i] = math.Round(math.Exp(3.7+0.9*rng.NormFloat64())*100) / 100
		amountValid[i] = rng.IntN(200) != 0 // a few amounts are missing
		status[i] = "approved"
		if rng.IntN(20) == 0 {
			status[i] = "declined"
		}
	}
	t := &source.Table{Rows: n, Columns: []*source.Column{
		keyColumn("user_id", uid, s.StringKeys),
		{Name: "merchant_id", Kind: source.Int64, Ints: mid},
		{Name: "ts", Kind: source.Timestamp, Ints: ts},
		{Name: "amount", Kind: source.Float64, Floats: amount, Valid: amountValid},
		{Name: "status", Kind: source.String, Strs: status},
	}}
	return t
}

// Spine returns a labelled spine drawn from the events: user_id,
// merchant_id, ts (a time after the first week, not on any bucket boundary
// in general) and is_fraud, a label correlated with recent spending.
func Spine(s Spec, events *source.Table) *source.Table {
	rng := rand.New(rand.NewPCG(s.Seed, 2))
	n := s.SpineRows
	uid := make([]int64, n)
	mid := make([]int64, n)
	ts := make([]int64, n)
	label := make([]bool, n)
	evUser := events.Column("user_id")
	evMerchant := events.Column("merchant_id").Ints
	evTS := events.Column("ts").Ints
	week := int64(7 * 24 * time.Hour / time.Microsecond)
	for i := range n {
		j := rng.IntN(events.Rows) // spine rows follow activity
		if evUser.Kind == source.String {
			uid[i] = parseUser(evUser.Strs[j])
		} else {
			uid[i] = evUser.Ints[j]
		}
		mid[i] = evMerchant[j]
		ts[i] = evTS[j] + rng.Int64N(int64(time.Hour/time.Microsecond))
		if ts[i] < s.Start.UnixMicro()+week {
			ts[i] += week
		}
		label[i] = rng.IntN(100) < 3
	}
	order := make([]int, n) // spines are roughly in time order, as exported from a log
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(ts[a]>>30) - int(ts[b]>>30) })
	return &source.Table{Rows: n, Columns: []*source.Column{
		keyColumn("user_id", permute(uid, order), s.StringKeys),
		{Name: "merchant_id", Kind: source.Int64, Ints: permute(mid, order)},
		{Name: "ts", Kind: source.Timestamp, Ints: permute(ts, order)},
		{Name: "is_fraud", Kind: source.Bool, Bools: permute(label, order)},
	}}
}

// Config returns a feature configuration over the sample written as
// events.parquet beside it.
func Config() string {
	return `# Features over the sample transactions (see README.md for the format).
sources:
  transactions:
    path: events.parquet
    timestamp: ts
entities:
  user: {key: user_id}
  merchant: {key: merchant_id}
features:
  user.total_transaction_amount:
    source: transactions
    aggregation: sum
    value: amount
    windows: [7d, 30d, all]
    materialization: {bucket_duration: 4h}
  user.mean_transaction_amount:
    source: transactions
    aggregation: mean
    value: amount
    windows: [7d, 30d]
    materialization: {bucket_duration: 4h}
  user.max_transaction_amount:
    source: transactions
    aggregation: max
    value: amount
    windows: [7d]
    materialization: {bucket_duration: 4h}
  user.std_transaction_amount:
    source: transactions
    aggregation: std
    value: amount
    windows: [30d]
    materialization: {bucket_duration: 12h}
  merchant.count_transactions:
    source: transactions
    aggregation: count
    windows: [1d, 7d]
    materialization: {bucket_duration: 1h}
  merchant.count_declined:
    source: transactions
    aggregation: count
    filter: {column: status, equals: declined}
    windows: [1d, 7d]
    materialization: {bucket_duration: 1h}
`
}

// Features lists references to every feature window of Config.
func Features() []string {
	return []string{
		"user.total_transaction_amount[7d]", "user.total_transaction_amount[30d]", "user.total_transaction_amount[all]",
		"user.mean_transaction_amount[7d]", "user.mean_transaction_amount[30d]",
		"user.max_transaction_amount[7d]", "user.std_transaction_amount[30d]",
		"merchant.count_transactions[1d]", "merchant.count_transactions[7d]",
		"merchant.count_declined[1d]", "merchant.count_declined[7d]",
	}
}

// diurnal draws an offset in [0, span) with more events in the day than at
// night.
func diurnal(rng *rand.Rand, span int64) int64 {
	day := int64(24 * time.Hour / time.Microsecond)
	for {
		x := rng.Int64N(span)
		hour := float64(x%day) / float64(day) * 24
		if rng.Float64() < 0.35+0.65*math.Pow(math.Sin(math.Pi*hour/24), 2) {
			return x
		}
	}
}

func keyColumn(name string, ids []int64, str bool) *source.Column {
	if !str {
		return &source.Column{Name: name, Kind: source.Int64, Ints: ids}
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = "u" + strconv.FormatInt(id, 10)
	}
	return &source.Column{Name: name, Kind: source.String, Strs: s}
}

func parseUser(s string) int64 {
	x, _ := strconv.ParseInt(strings.TrimPrefix(s, "u"), 10, 64)
	return x
}

func permute[T any](s []T, order []int) []T {
	out := make([]T, len(s))
	for i, j := range order {
		out[i] = s[j]
	}
	return out
}
