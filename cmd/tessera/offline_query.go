package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-fe/tessera"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
)

type queryFlags struct {
	spine, output, keyColumn, timeColumn string
	features                             []string
	materialized, align                  bool
}

func newOfflineQuery(g *globals) *cobra.Command {
	var q queryFlags
	cmd := &cobra.Command{
		Use:   "offline-query",
		Short: "Build a training set: feature values as of each spine row's input time",
		Long: `offline-query reads a spine (Parquet or CSV: a key column, an input-time column and
any label columns) and writes every spine row, in input order, with one column per
requested feature window, named exactly as requested.

A window W for a row at time t covers events with t-W <= ts < t: the event at t
itself is left out, so a row never sees the event that created it.

Planner modes:
  (default)                    exact: raw events in [t-W, t)
  --materialized               tiles: every whole bucket meeting [t-W, t); rows whose t is
                               not on a bucket boundary may see up to one bucket of events
                               after t (leakage: the summary line counts those rows)
  --materialized --align       what online serving returns: [floor(t-W), t); tiles plus the
                               raw events of the head bucket
  --align                      [floor(t-W), t) from raw events
Where the store's tiles do not cover a range a query needs, that range is computed
from raw events with the same rounding (the summary says which ranges fell back).`,
		Example: `  tessera offline-query --spine spine.parquet --output train.parquet \
      --feature 'user.total_transaction_amount[7d]' --feature 'user.total_transaction_amount[30d]' --materialized`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.spine == "" || q.output == "" || len(q.features) == 0 {
				return usageError{fmt.Errorf("--spine, --output and at least one --feature are required")}
			}
			if err := checkOutputExt(q.output); err != nil {
				return err
			}
			refs := make([]feature.Ref, len(q.features))
			for i, s := range q.features {
				r, err := feature.ParseRef(s)
				if err != nil {
					return usageError{fmt.Errorf("--feature %q: %w", s, err)}
				}
				refs[i] = r
			}
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			for _, r := range refs {
				if _, err := cfg.Resolve(r); err != nil {
					return usageError{fmt.Errorf("--feature %s: %w", r.Text, err)}
				}
			}
			start := time.Now()
			spine, keyCols, err := readSpine(cfg, &q, refs)
			if err != nil {
				return err
			}
			times := spine.Column(q.timeColumn).Ints
			eng := &offline.Engine{Config: cfg, Events: &offline.FileEvents{Config: cfg}, SpillDir: g.spillDir}
			opt := offline.Options{Materialized: q.materialized, Align: q.align}
			if opt.Materialized {
				store, err := openStore(cmd.Context(), cfg)
				if err != nil {
					return err
				}
				defer store.Close()
				eng.Tiles = store
			}
			keysFor := func(f *feature.Feature) (string, tile.Keys, error) {
				name := keyCols[f.Name]
				return name, keysOfColumn(spine.Column(name)), nil
			}
			res, err := tessera.QueryByKey(cmd.Context(), eng, refs, times, keysFor, opt)
			if err != nil {
				return err
			}
			out := &source.Table{Rows: spine.Rows, Columns: append([]*source.Column(nil), spine.Columns...)}
			for _, c := range res.Columns {
				out.Columns = append(out.Columns, resultColumn(c))
			}
			if err := source.Write(q.output, out); err != nil {
				return err
			}
			printSummary(cmd.ErrOrStderr(), res, len(refs), time.Since(start))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.spine, "spine", "", "spine file (.parquet or .csv): keys, input times, labels")
	f.StringVarP(&q.output, "output", "o", "", "output file (.parquet or .csv)")
	f.StringArrayVarP(&q.features, "feature", "f", nil, "feature window to compute, e.g. 'user.total_transaction_amount[7d]' (repeatable)")
	f.BoolVar(&q.materialized, "materialized", false, "read tiles (use_materialized_offline_query)")
	f.BoolVar(&q.align, "align", false, "align windows with the bucket grid as online serving does (align_offline_window_with_materialization)")
	f.StringVar(&q.keyColumn, "key-column", "", "spine column holding the keys (default: each feature's entity key)")
	f.StringVar(&q.timeColumn, "time-column", "ts", "spine column holding the input times")
	return cmd
}

func checkOutputExt(path string) error {
	l := strings.ToLower(path)
	if !strings.HasSuffix(l, ".parquet") && !strings.HasSuffix(l, ".csv") {
		return usageError{fmt.Errorf("--output %s: name a .parquet or .csv file", path)}
	}
	return nil
}

// readSpine reads every spine column, the key columns as keys and the time
// column as times, and returns the key column of each requested feature.
func readSpine(cfg *feature.Config, q *queryFlags, refs []feature.Ref) (*source.Table, map[string]string, error) {
	info, err := source.Schema(q.spine)
	if err != nil {
		return nil, nil, fmt.Errorf("read spine: %w", err)
	}
	have := map[string]bool{}
	var names []string
	for _, c := range info {
		have[c.Name] = true
		names = append(names, c.Name)
	}
	keyCols := map[string]string{}
	roles := map[string]source.Role{}
	if !have[q.timeColumn] {
		return nil, nil, fmt.Errorf("spine %s has no time column %q (columns: %s); name it with --time-column", q.spine, q.timeColumn, strings.Join(names, ", "))
	}
	roles[q.timeColumn] = source.Time
	for _, r := range refs {
		f, err := cfg.Resolve(r)
		if err != nil {
			return nil, nil, err
		}
		col := q.keyColumn
		if col == "" {
			col = f.Key
		}
		if !have[col] {
			return nil, nil, fmt.Errorf("spine %s has no key column %q for %s (columns: %s); name it with --key-column", q.spine, col, r.Text, strings.Join(names, ", "))
		}
		keyCols[f.Name] = col
		roles[col] = source.Key
	}
	req := make([]source.Request, len(names))
	for i, n := range names {
		req[i] = source.Request{Name: n, Role: roles[n]}
	}
	t, err := source.Read(q.spine, req, source.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("read spine: %w", err)
	}
	return t, keyCols, nil
}

func keysOfColumn(c *source.Column) tile.Keys {
	if c.Kind == source.String {
		return tile.Keys{String: true, Str: c.Strs}
	}
	return tile.Keys{Int: c.Ints}
}

// resultColumn turns a result column into a table column: counts as int64,
// the rest as float64, nulls where the value is null.
func resultColumn(c *offline.Column) *source.Column {
	if c.Integer {
		ints := make([]int64, len(c.Values))
		for i, v := range c.Values {
			ints[i] = int64(v)
		}
		return &source.Column{Name: c.Name, Kind: source.Int64, Ints: ints}
	}
	return &source.Column{Name: c.Name, Kind: source.Float64, Floats: c.Values, Valid: c.Valid}
}

func printSummary(w io.Writer, res *offline.Result, features int, d time.Duration) {
	st := res.Stats
	fmt.Fprintf(w, "offline-query: %d rows x %d features, mode %s, %.2fs (%.0f rows/s)", st.Rows, features, st.Mode, d.Seconds(), float64(st.Rows)/max(d.Seconds(), 1e-9))
	if st.TilesRead > 0 || st.EventsRead > 0 {
		fmt.Fprintf(w, "; read %d tiles, %d raw events", st.TilesRead, st.EventsRead)
	}
	if st.Partitions > 1 {
		fmt.Fprintf(w, "; in %d key partitions to stay under the memory limit", st.Partitions)
	}
	fmt.Fprintln(w)
	for _, o := range st.OffBoundary {
		fmt.Fprintf(w, "  leakage: %d rows are off a %s bucket boundary of %s: their values include events up to %s after their input time (add --align to cut them)\n",
			o.Rows, feature.FormatDuration(o.Bucket), o.TileSet, feature.FormatDuration(o.Bucket))
	}
	for _, f := range st.Fallback {
		fmt.Fprintf(w, "  fallback: %s %s not covered by tiles, computed from raw events\n", f.TileSet, fmtRange(f.From, f.To))
	}
}
