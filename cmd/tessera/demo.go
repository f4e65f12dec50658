package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-fe/tessera"
	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/internal/sample"
	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/offline"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tile"
)

func newDemo() *cobra.Command {
	var dir string
	var events, rows, naiveRows int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Make sample data, backfill tiles and build one training set in every planner mode",
		Long: `demo writes a realistic sample (card transactions whose users and merchants follow
Zipf distributions, and a labelled spine), a tessera.yaml over it, backfills the
tiles into a local store and builds the same training set naively, with the exact
sweep and from tiles, printing the first rows and the timings side by side.

Everything stays in --dir (default: a new temporary directory), so the commands it
prints can be re-run by hand.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := os.MkdirTemp("", "tessera-demo-")
				if err != nil {
					return err
				}
				dir = d
			} else if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			return runDemo(cmd, dir, events, rows, naiveRows)
		},
	}
	def := sample.Default()
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the sample, config, tiles and output (default: a new temporary directory)")
	cmd.Flags().IntVar(&events, "events", def.Events, "sample events")
	cmd.Flags().IntVar(&rows, "rows", def.SpineRows, "spine rows")
	cmd.Flags().IntVar(&naiveRows, "naive-rows", 5_000, "spine rows the naive baseline runs on (it is slow); its rate is compared")
	return cmd
}

func runDemo(cmd *cobra.Command, dir string, nEvents, nRows, naiveRows int) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	spec := sample.Default()
	spec.Events, spec.SpineRows = nEvents, nRows
	fmt.Fprintf(out, "tessera demo in %s\n\n", dir)

	start := time.Now()
	events := sample.Events(spec)
	spine := sample.Spine(spec, events)
	cfgPath := filepath.Join(dir, "tessera.yaml")
	for name, t := range map[string]*source.Table{"events.parquet": events, "spine.parquet": spine} {
		if err := source.Write(filepath.Join(dir, name), t); err != nil {
			return err
		}
	}
	if err := os.WriteFile(cfgPath, []byte(sample.Config()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "1. sample: %d transactions (Zipf users and merchants), %d spine rows  [%.2fs]\n", events.Rows, spine.Rows, time.Since(start).Seconds())

	g := &globals{config: cfgPath}
	cfg, err := loadConfig(g)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	start = time.Now()
	sum, err := materialize.Backfill(ctx, cfg, store, materialize.Options{})
	if err != nil {
		return err
	}
	bf := time.Since(start)
	fmt.Fprintf(out, "2. backfill: %d events -> %d tiles in %d tile sets  [%.2fs, %.0f events/s]\n",
		sum.Events, sum.Tiles, len(sum.Sets), bf.Seconds(), float64(sum.Events)/bf.Seconds())

	refs := make([]feature.Ref, 0, len(sample.Features()))
	for _, s := range sample.Features() {
		r, err := feature.ParseRef(s)
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	times := spine.Column("ts").Ints
	keysFor := func(t *source.Table, n int) tessera.KeysFor {
		return func(f *feature.Feature) (string, tile.Keys, error) {
			c := t.Column(f.Key)
			k := keysOfColumn(c)
			if n < k.Len() {
				k.Int, k.Str = head(k.Int, n), head(k.Str, n)
			}
			return f.Key, k, nil
		}
	}
	type run struct {
		name string
		rows int
		d    time.Duration
		res  *offline.Result
	}
	var runs []run
	eng := &offline.Engine{Config: cfg, Events: &offline.FileEvents{Config: cfg}, Tiles: store}
	// warm the event cache so every mode is timed on data in memory
	if _, err := tessera.QueryByKey(ctx, eng, refs[:1], times[:1], keysFor(spine, 1), offline.Options{}); err != nil {
		return err
	}
	nNaive := min(naiveRows, len(times))
	start = time.Now()
	if _, err := naiveByKey(ctx, eng, refs, times[:nNaive], keysFor(spine, nNaive)); err != nil {
		return err
	}
	runs = append(runs, run{"naive per-row scan", nNaive, time.Since(start), nil})
	for _, m := range []struct {
		name string
		opt  offline.Options
	}{{"exact sweep", offline.Options{}}, {"materialized", offline.Options{Materialized: true}}, {"materialized+align", offline.Options{Materialized: true, Align: true}}} {
		start = time.Now()
		res, err := tessera.QueryByKey(ctx, eng, refs, times, keysFor(spine, len(times)), m.opt)
		if err != nil {
			return err
		}
		runs = append(runs, run{m.name, len(times), time.Since(start), res})
	}
	fmt.Fprintf(out, "3. training set: %d rows x %d feature windows, in each planner mode:\n\n", len(times), len(refs))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\trows\tseconds\trows/s\tvs naive\t")
	naiveRate := float64(runs[0].rows) / runs[0].d.Seconds()
	for _, r := range runs {
		rate := float64(r.rows) / r.d.Seconds()
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.0f\t%.1fx\t\n", r.name, r.rows, r.d.Seconds(), rate, rate/naiveRate)
	}
	tw.Flush()

	exact, mat := runs[1].res, runs[2].res
	fmt.Fprintf(out, "\nFirst rows (exact | materialized):\n\n")
	printRows(out, spine, exact, mat, 5, []int{0, 1, 3, 7})
	for _, o := range mat.Stats.OffBoundary {
		fmt.Fprintf(out, "\n%d of %d rows are off a %s bucket boundary: their materialized values include up to %s of events after the input time;\n--align cuts the head bucket at the input time, reading that bucket's raw events instead.\n",
			o.Rows, len(times), feature.FormatDuration(o.Bucket), feature.FormatDuration(o.Bucket))
		break
	}
	outPath := filepath.Join(dir, "training_set.parquet")
	fmt.Fprintf(out, "\nRun it yourself (`go install ./cmd/tessera` puts tessera on your PATH):\n  cd %s\n  tessera offline-query --spine spine.parquet --output %s --materialized \\\n", dir, filepath.Base(outPath))
	fmt.Fprintf(out, "      --feature '%s' --feature '%s'\n  tessera aggregate list\n", refs[0].Text, refs[1].Text)
	return nil
}

func naiveByKey(ctx context.Context, eng *offline.Engine, refs []feature.Ref, times []int64, keysFor tessera.KeysFor) (*offline.Result, error) {
	res := &offline.Result{}
	for _, r := range refs {
		f, err := eng.Config.Resolve(r)
		if err != nil {
			return nil, err
		}
		_, keys, err := keysFor(f)
		if err != nil {
			return nil, err
		}
		one, err := eng.Naive(ctx, &offline.Spine{Keys: keys, Times: times}, []feature.Ref{r}, offline.Options{})
		if err != nil {
			return nil, err
		}
		res.Columns = append(res.Columns, one.Columns...)
	}
	return res, nil
}

func head[T any](s []T, n int) []T {
	if s == nil {
		return nil
	}
	return s[:n]
}

func printRows(out io.Writer, spine *source.Table, a, b *offline.Result, n int, cols []int) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	hdr := []string{"user_id", "ts", "is_fraud"}
	for _, c := range cols {
		hdr = append(hdr, a.Columns[c].Name)
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for r := range min(n, spine.Rows) {
		cells := []string{}
		for _, name := range []string{"user_id", "ts", "is_fraud"} {
			v, _ := spine.Column(name).Text(r)
			cells = append(cells, v)
		}
		for _, c := range cols {
			cells = append(cells, cell(a.Columns[c], r)+" | "+cell(b.Columns[c], r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func cell(c *offline.Column, r int) string {
	if c.Valid != nil && !c.Valid[r] {
		return "null"
	}
	if c.Integer {
		return fmt.Sprintf("%d", int64(c.Values[r]))
	}
	return fmt.Sprintf("%.2f", c.Values[r])
}
