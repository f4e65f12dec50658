package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
)

// diff is what compare found between two training sets.
type diff struct {
	refRows, gotRows int64
	unmatched        int64 // spine row numbers present in only one of them
	columns          []columnDiff
}

type columnDiff struct {
	name       string
	mismatches int64
	maxAbs     float64 // largest |ref - got| where both are non-null
	examples   []string
}

func (d diff) equal() bool {
	if d.refRows != d.gotRows || d.unmatched != 0 {
		return false
	}
	for _, c := range d.columns {
		if c.mismatches != 0 {
			return false
		}
	}
	return true
}

// compare matches the rows of tables ref and got by rn (spine row number)
// and counts, per feature column, the rows whose values differ: counts
// must be equal; sums and means within tol relative to the larger
// magnitude (at least 1); null only matches null.
func compare(ctx context.Context, conn *sql.Conn, ref, got, spine string, tol float64) (diff, error) {
	var d diff
	if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM %s),
		(SELECT count(*) FROM %s r FULL JOIN %s g USING (rn) WHERE r.rn IS NULL OR g.rn IS NULL)`, ref, got, ref, got)).
		Scan(&d.refRows, &d.gotRows, &d.unmatched); err != nil {
		return d, fmt.Errorf("compare %s with %s: %w", ref, got, err)
	}
	for _, name := range features() {
		c := columnDiff{name: name}
		col := ident(name)
		ok := fmt.Sprintf("coalesce(r.%[1]s = g.%[1]s OR (r.%[1]s IS NULL AND g.%[1]s IS NULL), false)", col)
		if !strings.Contains(name, "_count[") {
			ok = fmt.Sprintf("coalesce(abs(r.%[1]s - g.%[1]s) <= %[2]g * greatest(1, abs(r.%[1]s), abs(g.%[1]s)) OR (r.%[1]s IS NULL AND g.%[1]s IS NULL), false)", col, tol)
		}
		from := fmt.Sprintf("%s r JOIN %s g USING (rn)", ref, got)
		var maxAbs sql.NullFloat64
		if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) FILTER (NOT %s), max(abs(r.%s - g.%s)) FROM %s", ok, col, col, from)).
			Scan(&c.mismatches, &maxAbs); err != nil {
			return d, fmt.Errorf("compare %s of %s with %s: %w", name, ref, got, err)
		}
		c.maxAbs = maxAbs.Float64
		if c.mismatches > 0 {
			rows, err := conn.QueryContext(ctx, fmt.Sprintf(`SELECT rn, s.user_id, strftime(s.ts, '%%Y-%%m-%%dT%%H:%%M:%%S.%%fZ'), r.%[1]s::VARCHAR, g.%[1]s::VARCHAR
				FROM %[2]s JOIN read_parquet(%[3]s, file_row_number = true) s ON s.file_row_number = rn
				WHERE NOT %[4]s ORDER BY rn LIMIT 5`, col, from, quote(spine), ok))
			if err != nil {
				return d, fmt.Errorf("list differences in %s: %w", name, err)
			}
			for rows.Next() {
				var rn, user int64
				var ts string
				var a, b sql.NullString
				if err := rows.Scan(&rn, &user, &ts, &a, &b); err != nil {
					rows.Close()
					return d, fmt.Errorf("list differences in %s: %w", name, err)
				}
				c.examples = append(c.examples, fmt.Sprintf("spine row %d (user_id %d, ts %s): %s vs %s", rn, user, ts, nullText(a), nullText(b)))
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return d, fmt.Errorf("list differences in %s: %w", name, err)
			}
		}
		d.columns = append(d.columns, c)
	}
	return d, nil
}

func nullText(s sql.NullString) string {
	if !s.Valid {
		return "NULL"
	}
	return s.String
}

// report prints the outcome of one comparison.
func report(w io.Writer, ref, got string, d diff) {
	var worst float64
	for _, c := range d.columns {
		worst = max(worst, c.maxAbs)
	}
	if d.equal() {
		fmt.Fprintf(w, "check: %s == %s: %d rows, 9 columns agree (largest absolute difference %.3g)\n", got, ref, d.gotRows, worst)
		return
	}
	fmt.Fprintf(w, "check: %s != %s: %d vs %d rows, %d rows in only one\n", got, ref, d.gotRows, d.refRows, d.unmatched)
	for _, c := range d.columns {
		if c.mismatches == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s: %d rows differ (largest absolute difference %.3g); first: %s vs %s\n", c.name, c.mismatches, c.maxAbs, ref, got)
		for _, e := range c.examples {
			fmt.Fprintf(w, "    %s\n", e)
		}
	}
}
