package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type event struct {
	user, ts int64 // ts in microseconds
	amount   float64
	null     bool
}

type spineRow struct{ user, ts int64 }

const (
	hour = int64(3600_000_000)
	day  = 24 * hour
)

// sample makes events on an hourly grid, so that many spine rows have
// events at exactly t, t-7d and t-30d and at equal times, with some null
// amounts, and spine rows of known and unknown users, unsorted and
// duplicated.
func sample(seed uint64) ([]event, []spineRow) {
	r := rand.New(rand.NewPCG(seed, 1))
	t0 := int64(1_767_225_600_000_000) // 2026-01-01T00:00:00Z
	var ev []event
	for range 600 {
		e := event{user: 1 + r.Int64N(4), ts: t0 + r.Int64N(60*24)*hour, amount: float64(r.IntN(10000)) / 100}
		e.null = r.IntN(5) == 0
		ev = append(ev, e)
	}
	var sp []spineRow
	for i := range 300 {
		s := spineRow{user: 1 + r.Int64N(5), ts: t0 + r.Int64N(70*24)*hour}
		if i%10 == 0 {
			e := ev[r.IntN(len(ev))]
			s = spineRow{user: e.user, ts: e.ts + 7*day} // an event at exactly t-7d
		}
		if i%10 == 1 {
			s = sp[len(sp)-1] // a duplicate
		}
		sp = append(sp, s)
	}
	return ev, sp
}

// oracle answers the nine columns of one spine row by scanning every event.
func oracle(ev []event, s spineRow) []any {
	type acc struct {
		sum    float64
		count  int64
		values int64
	}
	var out [3]acc
	for _, e := range ev {
		if e.user != s.user || e.ts >= s.ts {
			continue
		}
		for i, lo := range []int64{s.ts - 7*day, s.ts - 30*day, math.MinInt64} {
			if e.ts >= lo {
				out[i].count++
				if !e.null {
					out[i].sum += e.amount
					out[i].values++
				}
			}
		}
	}
	var row []any
	for _, a := range out {
		row = append(row, a.sum)
	}
	for _, a := range out {
		row = append(row, a.count)
	}
	for _, a := range out {
		if a.values == 0 {
			row = append(row, nil)
		} else {
			row = append(row, a.sum/float64(a.values))
		}
	}
	return row
}

// writeSample writes the sample as the benchmark lays it out.
func writeSample(t *testing.T, conn *sql.Conn, dir string, ev []event, sp []spineRow) inputs {
	t.Helper()
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Join(dir, "events"), 0o755); err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, e := range ev {
		amount := fmt.Sprint(e.amount)
		if e.null {
			amount = "NULL"
		}
		vals = append(vals, fmt.Sprintf("(%d, 7, make_timestamp(%d::BIGINT)::TIMESTAMPTZ, %s::DOUBLE, 'ok')", e.user, e.ts, amount))
	}
	in := inputs{events: filepath.Join(dir, "events", "*.parquet"), spine: filepath.Join(dir, "spine.parquet")}
	// Two files, as the benchmark writes parts.
	half := len(vals) / 2
	for i, part := range [][]string{vals[:half], vals[half:]} {
		q := fmt.Sprintf("COPY (SELECT * FROM (VALUES %s) v(user_id, merchant_id, ts, amount, status)) TO %s (FORMAT parquet)",
			strings.Join(part, ","), quote(filepath.Join(dir, "events", fmt.Sprintf("part-%03d.parquet", i))))
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	vals = vals[:0]
	for _, s := range sp {
		vals = append(vals, fmt.Sprintf("(%d, 7, make_timestamp(%d::BIGINT)::TIMESTAMPTZ, false)", s.user, s.ts))
	}
	q := fmt.Sprintf("COPY (SELECT * FROM (VALUES %s) v(user_id, merchant_id, ts, is_fraud)) TO %s (FORMAT parquet)", strings.Join(vals, ","), quote(in.spine))
	if _, err := conn.ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
	return in
}

func open(t *testing.T) *sql.Conn {
	t.Helper()
	db, err := sql.Open("duckdb", "?threads=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.ExecContext(context.Background(), "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestFormulationsMatchOracle checks every variant against a per-row scan
// on data full of boundary cases: events at exactly t (excluded), at
// exactly t-W (included), ties, null amounts, unknown users.
func TestFormulationsMatchOracle(t *testing.T) {
	ctx := context.Background()
	conn := open(t)
	ev, sp := sample(42)
	in := writeSample(t, conn, t.TempDir(), ev, sp)
	var atT, atTW int
	for _, s := range sp {
		for _, e := range ev {
			if e.user == s.user && e.ts == s.ts {
				atT++
			}
			if e.user == s.user && e.ts == s.ts-7*day {
				atTW++
			}
		}
	}
	if atT < 5 || atTW < 5 {
		t.Fatalf("sample has %d events at exactly t and %d at exactly t-7d; want boundary cases", atT, atTW)
	}
	for _, f := range formulations {
		t.Run(f.name+"/"+f.variant, func(t *testing.T) {
			res, err := measure(ctx, conn, f, in, "result")
			if err != nil {
				t.Fatal(err)
			}
			if res.Rows != int64(len(sp)) {
				t.Fatalf("%d rows, want %d", res.Rows, len(sp))
			}
			rows, err := conn.QueryContext(ctx, "SELECT * FROM result ORDER BY rn")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			i := 0
			for rows.Next() {
				var rn int64
				got := make([]any, 9)
				dst := []any{&rn}
				for j := range got {
					dst = append(dst, &got[j])
				}
				if err := rows.Scan(dst...); err != nil {
					t.Fatal(err)
				}
				if rn != int64(i) {
					t.Fatalf("row %d has rn %d: output out of spine order", i, rn)
				}
				want := oracle(ev, sp[i])
				for j, name := range features() {
					if !same(got[j], want[j]) {
						t.Errorf("spine row %d (user %d, t %d) %s = %v, want %v", i, sp[i].user, sp[i].ts, name, got[j], want[j])
					}
				}
				i++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func same(got, want any) bool {
	switch w := want.(type) {
	case nil:
		return got == nil
	case int64:
		g, ok := got.(int64)
		return ok && g == w
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(g-w) <= 1e-9*math.Max(1, math.Abs(w))
	}
	return false
}

// TestRunChecksAgainstFile runs the program end to end: JSON lines out,
// --check passing on the right answer and failing, naming the row, on a
// wrong one.
func TestRunChecksAgainstFile(t *testing.T) {
	ctx := context.Background()
	conn := open(t)
	dir := t.TempDir()
	ev, sp := sample(7)
	writeSample(t, conn, dir, ev, sp)
	// The expected training set as tessera writes it: spine columns, then
	// the nine features; one wrong count in row 3.
	values := func(wrong bool) string {
		var vals []string
		for i, s := range sp {
			row := oracle(ev, s)
			if wrong && i == 3 {
				row[4] = row[4].(int64) + 1
			}
			cells := []string{fmt.Sprint(s.user), "7", fmt.Sprintf("make_timestamp(%d::BIGINT)::TIMESTAMPTZ", s.ts), "false"}
			for j, v := range row {
				switch {
				case v == nil:
					cells = append(cells, "NULL::DOUBLE")
				case j >= 3 && j < 6:
					cells = append(cells, fmt.Sprintf("%d::BIGINT", v))
				default:
					cells = append(cells, fmt.Sprintf("%v::DOUBLE", v))
				}
			}
			vals = append(vals, "("+strings.Join(cells, ", ")+")")
		}
		return strings.Join(vals, ",")
	}
	names := []string{"user_id", "merchant_id", "ts", "is_fraud"}
	for _, f := range features() {
		names = append(names, ident(f))
	}
	good, bad := filepath.Join(dir, "good.parquet"), filepath.Join(dir, "bad.parquet")
	for path, wrong := range map[string]bool{good: false, bad: true} {
		q := fmt.Sprintf("COPY (SELECT * FROM (VALUES %s) v(%s)) TO %s (FORMAT parquet)", values(wrong), strings.Join(names, ", "), quote(path))
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"--dir", dir, "--check", good}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d output lines, want 2:\n%s", len(lines), stdout.String())
	}
	for i, want := range []string{"window", "asof"} {
		var r Result
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if r.Engine != "duckdb" || r.Formulation != want || r.Rows != int64(len(sp)) || r.Seconds <= 0 {
			t.Errorf("line %d = %+v, want engine duckdb, formulation %s, %d rows", i, r, want, len(sp))
		}
	}

	stderr.Reset()
	err := run(ctx, []string{"--dir", dir, "--check", bad}, &bytes.Buffer{}, &stderr)
	if err != errMismatch {
		t.Fatalf("run with a wrong expected file: %v, want %v\n%s", err, errMismatch, stderr.String())
	}
	if !strings.Contains(stderr.String(), "user.amount_count[30d]: 1 rows differ") || !strings.Contains(stderr.String(), "spine row 3 ") {
		t.Errorf("report does not name the column and row:\n%s", stderr.String())
	}
}
