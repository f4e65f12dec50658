// Command duckdb is the DuckDB peer of `tessera bench`: on the files the
// harness generated (DIR/events/*.parquet, DIR/spine.parquet) it computes
// the same exact point-in-time training set as the benchmark — sum, count
// and mean of amount per user over 7d, 30d and all, windows [t-W, t), for
// every spine row in order — in two SQL formulations, times each end to
// end (Parquet reading included) in an in-memory database, and prints one
// JSON line per formulation:
//
//	{"engine":"duckdb","formulation":"window","variant":"range-frames","rows":100000,"seconds":1.23,"cpu_seconds":2.3,"peak_rss":123456789}
//
// "window" is the query most users write (window functions with RANGE
// frames over events and spine rows); "asof" is the fastest SQL found
// (per-key prefix sums, ASOF joins at t and t-W, differences). The
// results of the two are compared with each other, and with --check, with
// a training set tessera wrote (`tessera offline-query` without
// --materialized, as Parquet). Diagnostics go to standard error.
//
// It lives in its own module so that tessera itself never links DuckDB.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

// Result is one JSON line of the output.
type Result struct {
	Engine      string  `json:"engine"`
	Formulation string  `json:"formulation"`
	Variant     string  `json:"variant"`
	Rows        int64   `json:"rows"`
	Seconds     float64 `json:"seconds"`
	CPUSeconds  float64 `json:"cpu_seconds"`        // user + system time of all threads: less sensitive than seconds to other load on the machine
	PeakRSS     int64   `json:"peak_rss,omitempty"` // bytes, peak resident set of this process during the run
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "duckdb peer:", err)
		os.Exit(1)
	}
}

var errMismatch = errors.New("results differ")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("duckdb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "benchmark directory holding events/*.parquet and spine.parquet (as `tessera bench --dir` leaves it)")
	threads := fs.Int("threads", 2, "DuckDB worker threads")
	window := fs.String("window", "range-frames", "variant of the window formulation ("+variants("window")+")")
	asof := fs.String("asof", "running-union", "variant of the asof formulation ("+variants("asof")+")")
	only := fs.String("formulations", "window,asof", "formulations to run, comma-separated")
	all := fs.Bool("all", false, "run every variant of both formulations (one JSON line each)")
	repeat := fs.Int("repeat", 1, "runs per formulation; the fastest is reported")
	check := fs.String("check", "", "training set written by `tessera offline-query` (exact, Parquet) to compare every result with")
	explain := fs.Bool("explain", false, "print DuckDB's profile (EXPLAIN ANALYZE) of each statement after the timed runs")
	tol := fs.Float64("tolerance", 1e-6, "relative tolerance for sums and means (counts must be equal)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: duckdb --dir DIR [--threads N] [--check train.parquet] [--all]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("--dir is required and no arguments are taken")
	}
	in := inputs{events: filepath.Join(*dir, "events", "*.parquet"), spine: filepath.Join(*dir, "spine.parquet")}
	for _, p := range []string{filepath.Dir(in.events), in.spine} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("benchmark data: %w (run `tessera bench --dir %s` first)", err, *dir)
		}
	}
	want := map[string]bool{}
	for _, name := range strings.Split(*only, ",") {
		if name = strings.TrimSpace(name); name != "window" && name != "asof" {
			return fmt.Errorf("--formulations %q: unknown formulation %q (want window, asof or both)", *only, name)
		}
		want[name] = true
	}
	var chosen []formulation
	for _, f := range formulations {
		if want[f.name] && (*all || (f.name == "window" && f.variant == *window) || (f.name == "asof" && f.variant == *asof)) {
			chosen = append(chosen, f)
		}
	}
	if !*all && len(chosen) != len(want) {
		return fmt.Errorf("unknown variant in --window %q / --asof %q (window: %s; asof: %s)", *window, *asof, variants("window"), variants("asof"))
	}

	db, err := sql.Open("duckdb", "?threads="+strconv.Itoa(*threads))
	if err != nil {
		return fmt.Errorf("open DuckDB: %w", err)
	}
	defer db.Close()
	// One connection: every table below lives in its catalog and session.
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to DuckDB: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET TimeZone = 'UTC'"); err != nil {
		return fmt.Errorf("set time zone: %w", err)
	}

	enc := json.NewEncoder(stdout)
	var tables []string
	for i, f := range chosen {
		table := fmt.Sprintf("result_%d", i)
		best := Result{Engine: "duckdb", Formulation: f.name, Variant: f.variant}
		for r := 0; r < max(1, *repeat); r++ {
			res, err := measure(ctx, conn, f, in, table)
			if err != nil {
				return err
			}
			if r == 0 || res.Seconds < best.Seconds {
				best.Rows, best.Seconds, best.CPUSeconds, best.PeakRSS = res.Rows, res.Seconds, res.CPUSeconds, res.PeakRSS
			}
		}
		fmt.Fprintf(stderr, "%-6s %-20s %9d rows %8.3fs (cpu %7.3fs)  peak %4.0f MiB  (%s)\n", f.name, f.variant, best.Rows, best.Seconds, best.CPUSeconds, float64(best.PeakRSS)/(1<<20), f.note)
		if err := enc.Encode(best); err != nil {
			return fmt.Errorf("write result: %w", err)
		}
		tables = append(tables, table)
		if *explain {
			if err := profile(ctx, conn, f, in, table, stderr); err != nil {
				return err
			}
		}
	}

	mismatch := false
	for i := 1; i < len(tables); i++ {
		d, err := compare(ctx, conn, tables[0], tables[i], in.spine, *tol)
		if err != nil {
			return err
		}
		report(stderr, chosen[0].name+" "+chosen[0].variant, chosen[i].name+" "+chosen[i].variant, d)
		mismatch = mismatch || !d.equal()
	}
	if *check != "" {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(
			"CREATE OR REPLACE VIEW tessera_exact AS SELECT file_row_number AS rn, * FROM read_parquet(%s, file_row_number = true)", quote(*check))); err != nil {
			return fmt.Errorf("read %s: %w", *check, err)
		}
		for i, t := range tables {
			d, err := compare(ctx, conn, "tessera_exact", t, in.spine, *tol)
			if err != nil {
				return fmt.Errorf("compare with %s: %w", *check, err)
			}
			report(stderr, "tessera exact", chosen[i].name+" "+chosen[i].variant, d)
			mismatch = mismatch || !d.equal()
		}
	}
	if mismatch {
		return errMismatch
	}
	return nil
}

// measure runs f once, end to end, and counts its rows.
func measure(ctx context.Context, conn *sql.Conn, f formulation, in inputs, table string) (Result, error) {
	if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
		return Result{}, fmt.Errorf("drop %s: %w", table, err)
	}
	runtime.GC()
	resetPeak()
	cpu0 := cpuSeconds()
	start := time.Now()
	for _, stmt := range f.sql(in, table) {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return Result{}, fmt.Errorf("%s %s: %w\n%s", f.name, f.variant, err, stmt)
		}
	}
	secs := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	peak := peakRSS()
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		return Result{}, fmt.Errorf("count %s: %w", table, err)
	}
	return Result{Rows: n, Seconds: secs, CPUSeconds: cpu, PeakRSS: peak}, nil
}

// profile runs f's statements again under EXPLAIN ANALYZE and prints the
// plans with their timings.
func profile(ctx context.Context, conn *sql.Conn, f formulation, in inputs, table string, w io.Writer) error {
	for _, stmt := range f.sql(in, table) {
		rows, err := conn.QueryContext(ctx, "EXPLAIN ANALYZE "+stmt)
		if err != nil {
			return fmt.Errorf("explain %s %s: %w", f.name, f.variant, err)
		}
		for rows.Next() {
			var kind, plan string
			if err := rows.Scan(&kind, &plan); err != nil {
				rows.Close()
				return fmt.Errorf("explain %s %s: %w", f.name, f.variant, err)
			}
			fmt.Fprintln(w, plan)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("explain %s %s: %w", f.name, f.variant, err)
		}
	}
	return nil
}

func variants(name string) string {
	var v []string
	for _, f := range formulations {
		if f.name == name {
			v = append(v, f.variant)
		}
	}
	return strings.Join(v, ", ")
}

// cpuSeconds returns the user and system time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// resetPeak resets the kernel's peak resident set of this process (Linux).
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns the peak resident set since the last reset, in bytes, or
// 0 where /proc does not tell.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
