package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tessera-fe/tessera/internal/bench"
)

func newBench() *cobra.Command {
	var scale, dir, peer string
	var naiveRows int
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure backfill and every planner mode on generated Zipf data",
		Long: `bench generates card transactions with Zipf-distributed users at a scale
(1M, 20M or 100M events; spines of 100k, 2M, 10M rows), backfills them, builds the
same training set naively (on a sample of rows), with the exact sweep and from tiles,
and prints rates, ratios, peak memory and tile bytes against event bytes. Steps
shorter than a second run three times and report the median (each backfill commits
to a fresh store).
The decode and the backfill first run once unmeasured, since the first run of a
process pays for fresh memory; the backfill's first run is shown beside it.
The data stays in --dir and is reused by later runs of the same scale.`,
		Example: "  tessera bench --scale 1M\n  GOMAXPROCS=1 tessera bench --scale 20M --dir /var/tmp/tessera-bench",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := bench.ScaleByName(scale)
			if err != nil {
				return usageError{err}
			}
			if dir == "" {
				dir = filepath.Join(os.TempDir(), "tessera-bench-"+s.Name)
			}
			_, err = bench.Run(cmd.Context(), bench.Options{Scale: s, Dir: dir, NaiveRows: naiveRows, Out: cmd.OutOrStdout(), Peer: peer})
			return err
		},
	}
	cmd.Flags().StringVar(&scale, "scale", "1M", "events to generate: 1M, 20M or 100M")
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the generated data and store (default: a directory under the system temp dir)")
	cmd.Flags().StringVar(&peer, "peer", "", "peer program to time on the same data after tessera, e.g. the DuckDB peer built from bench/duckdb (make bench-peer)")
	cmd.Flags().IntVar(&naiveRows, "naive-rows", 0, "spine rows the naive baseline runs on (default: 2000, 300, 100 by scale)")
	return cmd
}
