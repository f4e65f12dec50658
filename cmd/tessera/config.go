package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/source"
	"github.com/tessera-fe/tessera/tilestore"
)

// loadConfig reads and validates the configuration, checks every source's
// columns against its files and prints the config's warnings.
func loadConfig(g *globals) (*feature.Config, error) {
	data, err := os.ReadFile(g.config)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("no config at %s: write one (see README.md) or pass --config FILE; `tessera demo` writes an example", g.config)
		}
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := feature.Parse(g.config, data)
	if err != nil {
		return nil, err
	}
	if g.store != "" {
		cfg.Store = g.store
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	names := make([]string, 0, len(cfg.Sources))
	for n := range cfg.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		infos, err := source.Schema(cfg.Sources[n].Path)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", n, err)
		}
		cols := make([]feature.Column, len(infos))
		for i, c := range infos {
			cols[i] = feature.Column{Name: c.Name, Kind: c.Kind.String()}
		}
		if err := cfg.CheckSource(n, cols); err != nil {
			return nil, fmt.Errorf("%w (source %s reads %s)", err, n, cfg.Sources[n].Path)
		}
	}
	return cfg, nil
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments, got %q; see %s --help", cmd.CommandPath(), strings.Join(args, " "), cmd.CommandPath())}
	}
	return nil
}

// openStore opens the configured tile store; its errors name the location.
func openStore(ctx context.Context, cfg *feature.Config) (*tilestore.Store, error) {
	return tilestore.Open(ctx, cfg.Store)
}
