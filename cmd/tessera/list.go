package main

import (
	"fmt"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-fe/tessera/feature"
)

func newList(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tile sets in the store: features served, bucket, coverage, keys, tiles, bytes",
		Long: `list prints one line per tile set in the store: the features it serves, its
bucket width, its coverage (the time ranges backfills proved complete; queries
compute anything outside them from raw events), whether its keys are integers
or strings, its tile count, its size in bytes and its manifest version.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			store, err := openStore(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer store.Close()
			ms, err := store.List(cmd.Context())
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no tile sets in %s: run `tessera aggregate backfill`\n", cfg.Store)
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TILE SET\tFEATURES\tBUCKET\tCOVERAGE\tKEYS\tTILES\tBYTES\tVERSION")
			for _, m := range ms {
				var bytes, tiles int64
				for _, o := range m.Objects {
					bytes += o.Bytes
					tiles += o.Rows
				}
				var cov []string
				for _, c := range m.Coverage {
					cov = append(cov, fmtRange(c.From, c.To))
				}
				// distinct keys (≤ when objects' key ranges overlap) and their type
				n, exact := m.Keys()
				keys := fmt.Sprintf("%d", n)
				if !exact {
					keys = "≤" + keys
				}
				if m.StringKeys {
					keys += " string"
				} else {
					keys += " int"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\tv%d\n", m.TileSet, strings.Join(m.Features, ","),
					feature.FormatDuration(m.Grid.Width), strings.Join(cov, " "), keys, tiles, bytes, m.Version)
			}
			return w.Flush()
		},
	}
}

func fmtRange(from, to int64) string {
	f := "-inf"
	if from != math.MinInt64 {
		f = time.UnixMicro(from).UTC().Format(time.RFC3339)
	}
	t := "+inf"
	if to != math.MaxInt64 {
		t = time.UnixMicro(to).UTC().Format(time.RFC3339)
	}
	return "[" + f + ", " + t + ")"
}
