// Command tessera builds training sets for windowed aggregation features
// from pre-aggregated tiles. Run `tessera --help` for the verbs.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "tessera:", err)
		var u usageError
		if errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command") {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks errors in how the command was called.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// globals are the flags every verb shares.
type globals struct {
	config     string
	store      string
	cpuprofile string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "tessera",
		Short: "Build point-in-time training sets from pre-aggregated tiles",
		Long: `tessera bins events once into fixed-width buckets of partial aggregate state
(tiles), stores them, and builds training sets by merging a few tiles per spine
row instead of re-scanning raw events.

Start with 'tessera demo', which makes sample data, backfills tiles and runs the
same query in every planner mode.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.config, "config", "c", "tessera.yaml", "feature definitions (YAML)")
	root.PersistentFlags().StringVar(&g.store, "store", "", "tile store: a directory or URL (file://, s3://bucket/prefix); default: the config's store, else .tessera beside the config")
	root.PersistentFlags().StringVar(&g.cpuprofile, "cpuprofile", "", "write a CPU profile (pprof) of the command to this file")
	var prof *os.File
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if g.cpuprofile == "" {
			return nil
		}
		f, err := os.Create(g.cpuprofile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		prof = f
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRunE = func(*cobra.Command, []string) error {
		if prof == nil {
			return nil
		}
		pprof.StopCPUProfile()
		return prof.Close()
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	agg := &cobra.Command{Use: "aggregate", Short: "Build and inspect tiles (backfill, list, verify, gc)",
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return usageError{fmt.Errorf("aggregate needs a verb: backfill, list, verify or gc (see tessera aggregate --help)")}
		}}
	agg.AddCommand(newBackfill(g), newList(g), newVerify(g), newGC(g))
	root.AddCommand(agg, newOfflineQuery(g), newDemo(), newBench(), newServe(g))
	return root
}
