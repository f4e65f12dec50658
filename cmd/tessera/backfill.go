package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/source"
)

func newBackfill(g *globals) *cobra.Command {
	var features []string
	var from, to string
	var watch bool
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Build tiles from raw events and publish them to the tile store",
		Long: `backfill reads each source once, bins its events into the buckets of every
materialized feature and commits the tiles to the store. It covers [--from, --to)
rounded out to whole buckets: --from defaults to the beginning of time (or the
feature's backfill_start_time), --to to the start of the current bucket. Running
it again over the same events gives the same tiles. Tiles are committed only
after every source has been read: a bad source file leaves the store as it was.`,
		Example: `  tessera aggregate backfill
  tessera aggregate backfill --feature user.total_transaction_amount --from 2026-01-01T00:00:00Z`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt := materialize.Options{Features: features, Stats: &source.Stats{}, SpillDir: g.spillDir}
			var err error
			if opt.From, err = parseTimeFlag("--from", from); err != nil {
				return err
			}
			if opt.To, err = parseTimeFlag("--to", to); err != nil {
				return err
			}
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			for _, n := range features {
				if cfg.Features[n] == nil {
					return usageError{fmt.Errorf("--feature %s: %s defines no such feature; features are: %s", n, cfg.File, strings.Join(cfg.FeatureNames(), ", "))}
				}
			}
			store, err := openStore(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer store.Close()
			if watch {
				return watchBackfill(cmd.Context(), cmd.ErrOrStderr(), cfg, store, opt)
			}
			stderr := cmd.ErrOrStderr()
			var bar *progressbar.ProgressBar
			if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("backfill"),
					progressbar.OptionClearOnFinish(), progressbar.OptionShowCount())
				opt.Progress = func(step string, done, total int) {
					bar.ChangeMax(total)
					bar.Describe(step)
					_ = bar.Set(done)
				}
			}
			start := time.Now()
			sum, err := materialize.Backfill(cmd.Context(), cfg, store, opt)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return err
			}
			secs := time.Since(start).Seconds()
			for _, s := range sum.Sets {
				how := ""
				if s.Partitions > 1 {
					how = fmt.Sprintf(", built in %d key partitions spilled to disk (memory limit)", s.Partitions)
				}
				fmt.Fprintf(stderr, "  %s: %d tiles over %s, manifest v%d%s\n", s.TileSet, s.Tiles, fmtRange(s.Cover.From, s.Cover.To), s.Version, how)
			}
			fmt.Fprintf(stderr, "backfill: %d events read, %d tiles written to %d tile sets in %.2fs (%.0f events/s)\n",
				sum.Events, sum.Tiles, len(sum.Sets), secs, float64(sum.Events)/max(secs, 1e-9))
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&features, "feature", "f", nil, "backfill only the tile sets serving this feature (repeatable)")
	cmd.Flags().StringVar(&from, "from", "", "first event time to tile, RFC 3339 (default: the beginning of time)")
	cmd.Flags().StringVar(&to, "to", "", "end of the range, RFC 3339, exclusive (default: the start of the current bucket)")
	cmd.Flags().BoolVar(&watch, "watch", false, "keep running: backfill incrementally on each feature's backfill_schedule (from the last watermark, minus backfill_lookback_duration) until interrupted")
	return cmd
}

func parseTimeFlag(name, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-01-01T00:00:00Z", name, v)}
	}
	return &t, nil
}
