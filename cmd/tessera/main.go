// Command tessera builds training sets for windowed aggregation features
// from pre-aggregated tiles. Run `tessera --help` for the verbs.
package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
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

// parseBytes reads a size as GOMEMLIMIT writes it: a number of bytes with
// an optional B, KiB, MiB, GiB or TiB suffix.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		scale  float64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, scale := s, 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, scale = strings.TrimSuffix(s, u.suffix), u.scale
			break
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || f <= 0 || f*scale > math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a size; write e.g. 2GiB, 512MiB or 1073741824", s)
	}
	return int64(f * scale), nil
}

// globals are the flags every verb shares.
type globals struct {
	config     string
	store      string
	cpuprofile string
	memLimit   string
	spillDir   string
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
	root.PersistentFlags().StringVar(&g.memLimit, "memory-limit", "", "memory to stay under, e.g. 2GiB (as GOMEMLIMIT, which is the default); work larger than it runs in key partitions spilled to disk")
	root.PersistentFlags().StringVar(&g.spillDir, "spill-dir", "", "directory for events spilled by work larger than memory (default $TMPDIR)")
	var prof *os.File
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if g.memLimit != "" {
			n, err := parseBytes(g.memLimit)
			if err != nil {
				return usageError{fmt.Errorf("--memory-limit: %w", err)}
			}
			debug.SetMemoryLimit(n)
		}
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
