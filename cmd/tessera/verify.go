package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tessera-fe/tessera/tilestore"
)

func newVerify(g *globals) *cobra.Command {
	var tileSet string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every tile object against its manifest: sizes, checksums, order, coverage",
		Long: `verify reads the newest manifest of every tile set (or of --tile-set) and every
object it lists, whole, and checks each object's size, SHA-256 and CRC-32C
(where recorded), the row group and footer checksums ranged reads rely on,
that its tiles decode, are sorted and lie inside its recorded range and the
coverage, that no tile is held twice, and that the coverage has no
overlaps. It prints one line per problem, naming the tile set and the
object, and exits with status 1 when it found any.`,
		Example: `  tessera aggregate verify
  tessera aggregate verify --tile-set transactions.user_id.amount.4h-1a2b3c4d`,
		Args: cobra.NoArgs,
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
			var ms []*tilestore.Manifest
			if tileSet != "" {
				m, err := store.Manifest(cmd.Context(), tileSet)
				if err != nil {
					return err
				}
				if m == nil {
					return usageError{fmt.Errorf("--tile-set %s: no such tile set in %s; `tessera aggregate list` shows them", tileSet, cfg.Store)}
				}
				ms = append(ms, m)
			} else if ms, err = store.List(cmd.Context()); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(ms) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no tile sets in %s: nothing to verify\n", cfg.Store)
				return nil
			}
			problems, bad := 0, 0
			for _, m := range ms {
				ps, err := store.Verify(cmd.Context(), m.TileSet)
				if err != nil {
					return err
				}
				if len(ps) == 0 {
					fmt.Fprintf(out, "ok  %s v%d: %d objects, %d tiles\n", m.TileSet, m.Version, len(m.Objects), m.Rows())
					continue
				}
				bad++
				problems += len(ps)
				for _, p := range ps {
					fmt.Fprintf(out, "BAD %s: %s\n", m.TileSet, p)
				}
			}
			if problems > 0 {
				return fmt.Errorf("verify: %d problems in %d of %d tile sets in %s; re-run `tessera aggregate backfill` over the ranges named above", problems, bad, len(ms), cfg.Store)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tileSet, "tile-set", "", "verify only this tile set (an ID from `tessera aggregate list`)")
	return cmd
}
