package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-fe/tessera/feature"
)

// gcSafeAge is the age below which gc may remove the data of a commit that
// is still running; see tilestore.Store.GC.
const gcSafeAge = time.Hour

func newGC(g *globals) *cobra.Command {
	var olderThan string
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove tile objects and old manifest versions that no current manifest needs",
		Long: `gc removes, for every tile set, manifest versions older than the newest ten and
data objects that no remaining manifest version lists (left by crashed or failed
backfills, or replaced by later ones), when they were last modified more than
--older-than ago. Objects a manifest lists are never removed. It prints each key
it removed. A commit in flight has written data that no manifest lists yet: keep
--older-than above the longest commit (1h is safe).`,
		Example: `  tessera aggregate gc --older-than 1h
  tessera aggregate gc --older-than 7d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if olderThan == "" {
				return usageError{fmt.Errorf("gc needs --older-than, like --older-than 1h: objects younger than that are kept")}
			}
			us, err := feature.ParseDuration(olderThan)
			if err != nil {
				return usageError{fmt.Errorf("--older-than %q: %w", olderThan, err)}
			}
			age := time.Duration(us) * time.Microsecond
			if age < gcSafeAge {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: --older-than %s is under %s: a backfill running now may lose data it has not published yet\n", olderThan, gcSafeAge)
			}
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			store, err := openStore(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer store.Close()
			removed, err := store.GC(cmd.Context(), age)
			out := cmd.OutOrStdout()
			for _, k := range removed {
				fmt.Fprintln(out, "removed", k)
			}
			if err != nil {
				return fmt.Errorf("gc of %s stopped after removing %d objects: %w", cfg.Store, len(removed), err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "gc: removed %d objects older than %s from %s\n", len(removed), olderThan, cfg.Store)
			return nil
		},
	}
	cmd.Flags().StringVar(&olderThan, "older-than", "", "remove only what was last modified longer ago than this, like 1h or 7d (required)")
	return cmd
}
