package main

import (
	"fmt"
	"strings"
)

// A formulation is one way to write the benchmark's training set in SQL.
// Its statements run in order on one connection and leave the result in
// the table they are given: one row per spine row, column rn (the spine's
// row number) and the nine feature columns of [features], ordered by rn.
type formulation struct {
	name    string // "window" or "asof": the row of the table it stands for
	variant string // which SQL of that formulation
	note    string
	sql     func(in inputs, table string) []string
}

// inputs names the Parquet files a formulation reads.
type inputs struct {
	events string // glob of the event files
	spine  string
}

// windows are the benchmark's windows; an empty interval is `all`.
var windows = []struct {
	name     string
	interval string
}{{"7d", "INTERVAL 7 DAYS"}, {"30d", "INTERVAL 30 DAYS"}, {"all", ""}}

// features are the result columns after rn, in order; the same names as
// tessera's output columns.
func features() []string {
	var out []string
	for _, agg := range []string{"sum", "count", "mean"} {
		for _, w := range windows {
			out = append(out, fmt.Sprintf("user.amount_%s[%s]", agg, w.name))
		}
	}
	return out
}

// quote returns s as an SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ident returns s as an SQL identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// formulations lists every variant; the first of each name is the default
// (the one `tessera bench --peer` times).
var formulations = []formulation{
	{
		name: "window", variant: "range-frames",
		note: "events and spine rows in one relation; SUM/COUNT/AVG OVER (PARTITION BY user_id ORDER BY ts RANGE BETWEEN W PRECEDING AND 1 microsecond PRECEDING)",
		sql:  windowSQL(false),
	},
	{
		name: "window", variant: "exclude-ties",
		note: "as range-frames, with frames ending at CURRENT ROW EXCLUDE GROUP: the row's peers, events at exactly t, are left out",
		sql:  windowSQL(true),
	},
	{
		name: "asof", variant: "running-union",
		note: "raw events and probes (t, t-7d, t-30d) in one relation, running SUM/COUNT over (user_id, ts; probe before event at equal ts), pivot back by rn: no grouping, no join",
		sql:  runningUnionSQL,
	},
	{
		name: "asof", variant: "prefix-asof3",
		note: "per-(user, ts) groups, running sums per user, then three ASOF LEFT JOINs of the spine (at t, t-7d, t-30d) and differences",
		sql:  asofSQL(false),
	},
	{
		name: "asof", variant: "prefix-table-asof3",
		note: "as prefix-asof3, with the running sums stored in a table first",
		sql:  asofSQL(true),
	},
	{
		name: "asof", variant: "prefix-asof1-pivot",
		note: "running sums as prefix-asof3; one ASOF LEFT JOIN of all probes (t, t-7d, t-30d stacked) and a pivot back by rn",
		sql:  asofPivotSQL,
	},
	{
		name: "asof", variant: "prefix-lastvalue",
		note: "running sums and probes in one relation, LAST_VALUE(... IGNORE NULLS) over (user_id, ts), pivot back by rn: no join at all",
		sql:  lastValueSQL,
	},
}

// windowSQL is the formulation most users write: one window per feature
// window over the union of events and spine rows. An event at exactly t
// must not count for the spine row at t, one at exactly t-W must: the
// frame is [t-W, t-1µs] (timestamps are microseconds), or with exclude
// the frame [t-W, t] without the peers of the current row.
func windowSQL(exclude bool) func(in inputs, table string) []string {
	return func(in inputs, table string) []string {
		var defs, cols []string
		for _, w := range windows {
			start := "UNBOUNDED PRECEDING"
			if w.interval != "" {
				start = w.interval + " PRECEDING"
			}
			frame := "RANGE BETWEEN " + start + " AND INTERVAL 1 MICROSECOND PRECEDING"
			if exclude {
				frame = "RANGE BETWEEN " + start + " AND CURRENT ROW EXCLUDE GROUP"
			}
			defs = append(defs, fmt.Sprintf("w_%s AS (PARTITION BY user_id ORDER BY ts %s)", w.name, frame))
		}
		for _, agg := range []string{"sum", "count", "mean"} {
			for _, w := range windows {
				var e string
				switch agg {
				case "sum":
					e = fmt.Sprintf("COALESCE(SUM(amount) OVER w_%s, 0)", w.name)
				case "count":
					e = fmt.Sprintf("COUNT(ev) OVER w_%s", w.name)
				case "mean":
					e = fmt.Sprintf("AVG(amount) OVER w_%s", w.name)
				}
				cols = append(cols, e+" AS "+ident(fmt.Sprintf("user.amount_%s[%s]", agg, w.name)))
			}
		}
		return []string{fmt.Sprintf(`CREATE OR REPLACE TABLE %s AS
WITH u AS (
	SELECT user_id, ts, amount, 1 AS ev, NULL::BIGINT AS rn FROM read_parquet(%s)
	UNION ALL
	SELECT user_id, ts, NULL::DOUBLE, NULL, file_row_number FROM read_parquet(%s, file_row_number = true)
)
SELECT rn, %s
FROM u
WINDOW %s
QUALIFY rn IS NOT NULL
ORDER BY rn`, table, quote(in.events), quote(in.spine), strings.Join(cols, ",\n\t"), strings.Join(defs, ",\n\t"))}
	}
}

// prefixCTE defines p: per user and distinct event time, the running sum
// of amounts (s), of events (c) and of non-null amounts (n) up to and
// including that time. The prefix at x (events with ts < x) is the row of
// the largest ts < x.
func prefixCTE(in inputs) string {
	return fmt.Sprintf(`g AS (
	SELECT user_id, ts, COALESCE(SUM(amount), 0) AS s, COUNT(*) AS c, COUNT(amount) AS n
	FROM read_parquet(%s) GROUP BY user_id, ts
), p AS (
	SELECT user_id, ts,
		SUM(s) OVER w AS s, (SUM(c) OVER w)::BIGINT AS c, (SUM(n) OVER w)::BIGINT AS n
	FROM g WINDOW w AS (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING)
)`, quote(in.events))
}

// differences returns the nine feature columns from prefixes named
// <alias>_s, <alias>_c, <alias>_n: "a" at t and "b7d", "b30d" at t-W; a
// missing prefix is empty.
func differences() string {
	var cols []string
	diff := func(w, v string) string {
		if w == "all" {
			return fmt.Sprintf("COALESCE(a_%s, 0)", v)
		}
		return fmt.Sprintf("(COALESCE(a_%s, 0) - COALESCE(b%s_%s, 0))", v, w, v)
	}
	for _, w := range windows {
		cols = append(cols, fmt.Sprintf("CASE WHEN %s > 0 THEN %s ELSE 0 END AS %s", diff(w.name, "n"), diff(w.name, "s"), ident("user.amount_sum["+w.name+"]")))
	}
	for _, w := range windows {
		cols = append(cols, fmt.Sprintf("%s AS %s", diff(w.name, "c"), ident("user.amount_count["+w.name+"]")))
	}
	for _, w := range windows {
		cols = append(cols, fmt.Sprintf("CASE WHEN %s > 0 THEN %s / %s END AS %s", diff(w.name, "n"), diff(w.name, "s"), diff(w.name, "n"), ident("user.amount_mean["+w.name+"]")))
	}
	return strings.Join(cols, ",\n\t")
}

// asofSQL is per-key prefix sums and ASOF joins at t and t-W: the prefix
// at x is the last running sum with ts < x, so [t-W, t) is P(t) - P(t-W).
func asofSQL(storePrefix bool) func(in inputs, table string) []string {
	return func(in inputs, table string) []string {
		var stmts []string
		with := "WITH " + prefixCTE(in) + ", "
		prefix := "p"
		if storePrefix {
			prefix = table + "_prefix"
			stmts = append(stmts, fmt.Sprintf("CREATE OR REPLACE TABLE %s AS WITH %s SELECT * FROM p", prefix, prefixCTE(in)))
			with = "WITH "
		}
		stmts = append(stmts, fmt.Sprintf(`CREATE OR REPLACE TABLE %[1]s AS
%[2]ssp AS (
	SELECT file_row_number AS rn, user_id, ts FROM read_parquet(%[3]s, file_row_number = true)
), j AS (
	SELECT sp.rn,
		a.s AS a_s, a.c AS a_c, a.n AS a_n,
		b7.s AS b7d_s, b7.c AS b7d_c, b7.n AS b7d_n,
		b30.s AS b30d_s, b30.c AS b30d_c, b30.n AS b30d_n
	FROM sp
	ASOF LEFT JOIN %[4]s a ON sp.user_id = a.user_id AND sp.ts > a.ts
	ASOF LEFT JOIN %[4]s b7 ON sp.user_id = b7.user_id AND sp.ts - INTERVAL 7 DAYS > b7.ts
	ASOF LEFT JOIN %[4]s b30 ON sp.user_id = b30.user_id AND sp.ts - INTERVAL 30 DAYS > b30.ts
)
SELECT rn, %[5]s
FROM j ORDER BY rn`, table, with, quote(in.spine), prefix, differences()))
		if storePrefix {
			stmts = append(stmts, "DROP TABLE "+prefix)
		}
		return stmts
	}
}

// asofPivotSQL stacks the three probes of each spine row, joins them with
// one ASOF join and pivots back by rn.
func asofPivotSQL(in inputs, table string) []string {
	return []string{fmt.Sprintf(`CREATE OR REPLACE TABLE %[1]s AS
WITH %[2]s, sp AS (
	SELECT file_row_number AS rn, user_id, ts FROM read_parquet(%[3]s, file_row_number = true)
), probes AS (
	SELECT rn, user_id, ts AS x, 0 AS k FROM sp
	UNION ALL SELECT rn, user_id, ts - INTERVAL 7 DAYS, 1 FROM sp
	UNION ALL SELECT rn, user_id, ts - INTERVAL 30 DAYS, 2 FROM sp
), hit AS (
	SELECT probes.rn, probes.k, p.s, p.c, p.n
	FROM probes ASOF LEFT JOIN p ON probes.user_id = p.user_id AND probes.x > p.ts
), %[4]s
SELECT rn, %[5]s
FROM j ORDER BY rn`, table, prefixCTE(in), quote(in.spine), pivot, differences())}
}

// pivot turns the three probe rows of each spine row (k = 0 at t, 1 at
// t-7d, 2 at t-30d) with their prefixes s, c, n from relation hit into
// one row of a_*, b7d_*, b30d_* columns.
const pivot = `j AS (
	SELECT rn,
		any_value(s) FILTER (k = 0) AS a_s, any_value(c) FILTER (k = 0) AS a_c, any_value(n) FILTER (k = 0) AS a_n,
		any_value(s) FILTER (k = 1) AS b7d_s, any_value(c) FILTER (k = 1) AS b7d_c, any_value(n) FILTER (k = 1) AS b7d_n,
		any_value(s) FILTER (k = 2) AS b30d_s, any_value(c) FILTER (k = 2) AS b30d_c, any_value(n) FILTER (k = 2) AS b30d_n
	FROM hit GROUP BY rn
)`

// runningUnionSQL needs neither grouping nor join: raw events and the
// probes of every spine row sorted together per user, a probe before the
// events at its own time, so the running sums at a probe at x cover
// exactly the events with ts < x.
func runningUnionSQL(in inputs, table string) []string {
	return []string{fmt.Sprintf(`CREATE OR REPLACE TABLE %[1]s AS
WITH sp AS (
	SELECT file_row_number AS rn, user_id, ts FROM read_parquet(%[3]s, file_row_number = true)
), u AS (
	SELECT user_id, ts AS x, 1 AS kind, NULL::BIGINT AS rn, NULL::INTEGER AS k, amount, 1 AS ev FROM read_parquet(%[2]s)
	UNION ALL SELECT user_id, ts, 0, rn, 0, NULL, NULL FROM sp
	UNION ALL SELECT user_id, ts - INTERVAL 7 DAYS, 0, rn, 1, NULL, NULL FROM sp
	UNION ALL SELECT user_id, ts - INTERVAL 30 DAYS, 0, rn, 2, NULL, NULL FROM sp
), hit AS (
	SELECT rn, k, SUM(amount) OVER w AS s, COUNT(ev) OVER w AS c, COUNT(amount) OVER w AS n
	FROM u
	WINDOW w AS (PARTITION BY user_id ORDER BY x, kind ROWS UNBOUNDED PRECEDING)
	QUALIFY kind = 0
), %[4]s
SELECT rn, %[5]s
FROM j ORDER BY rn`, table, quote(in.events), quote(in.spine), pivot, differences())}
}

// lastValueSQL puts the running sums and the probes in one relation
// sorted by (user_id, x, probe before event at equal x): a probe's prefix
// is the last running sum before it.
func lastValueSQL(in inputs, table string) []string {
	return []string{fmt.Sprintf(`CREATE OR REPLACE TABLE %[1]s AS
WITH %[2]s, sp AS (
	SELECT file_row_number AS rn, user_id, ts FROM read_parquet(%[3]s, file_row_number = true)
), u AS (
	SELECT user_id, ts AS x, 1 AS kind, NULL::BIGINT AS rn, NULL::INTEGER AS k, s, c, n FROM p
	UNION ALL SELECT user_id, ts, 0, rn, 0, NULL, NULL, NULL FROM sp
	UNION ALL SELECT user_id, ts - INTERVAL 7 DAYS, 0, rn, 1, NULL, NULL, NULL FROM sp
	UNION ALL SELECT user_id, ts - INTERVAL 30 DAYS, 0, rn, 2, NULL, NULL, NULL FROM sp
), hit AS (
	SELECT rn, k,
		LAST_VALUE(s IGNORE NULLS) OVER w AS s,
		LAST_VALUE(c IGNORE NULLS) OVER w AS c,
		LAST_VALUE(n IGNORE NULLS) OVER w AS n
	FROM u
	WINDOW w AS (PARTITION BY user_id ORDER BY x, kind ROWS UNBOUNDED PRECEDING)
	QUALIFY kind = 0
), %[4]s
SELECT rn, %[5]s
FROM j ORDER BY rn`, table, prefixCTE(in), quote(in.spine), pivot, differences())}
}
