package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-fe/tessera/feature"
	"github.com/tessera-fe/tessera/materialize"
	"github.com/tessera-fe/tessera/online"
	"github.com/tessera-fe/tessera/online/store"
	"github.com/tessera-fe/tessera/tilestore"
)

func newServe(g *globals) *cobra.Command {
	var listen, onlineStore, tokenFile string
	var retention, refresh, timeout, idemWindow time.Duration
	var maxBody int64
	var maxKeys, maxEvents int
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve feature values online over HTTP and run scheduled backfills",
		Long: `serve answers POST /v1/query with the value of each feature window as of now,
merging committed tiles with the events ingested through POST /v1/events/{source}
since the tile store's watermark. It equals offline-query --materialized --align
for a spine row at now. /healthz, /readyz and /metrics (Prometheus) report its
state.

Ingested events live in the online store: an embedded file under the tile store
directory by default, or Redis (--online-store redis://127.0.0.1:6379/0) for
several replicas. An event is acknowledged only once it is durable. When
features set materialization.backfill_schedule, serve also runs incremental
backfills on that schedule and prunes ingested events the tiles now cover.

See docs/online.md for the API.`,
		Example: `  tessera serve
  tessera serve --listen 127.0.0.1:9090 --online-store redis://127.0.0.1:6379/0 --auth-token-file token.txt
  curl -s localhost:8080/v1/query -d '{"inputs": {"user.id": [1, 2]}, "outputs": ["user.total_transaction_amount[7d]"]}'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			var token string
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return usageError{fmt.Errorf("--auth-token-file: %w", err)}
				}
				if token = strings.TrimSpace(string(b)); token == "" {
					return usageError{fmt.Errorf("--auth-token-file %s is empty: write the bearer token clients must send", tokenFile)}
				}
			}
			cfg, err := loadConfig(g)
			if err != nil {
				return err
			}
			tiles, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer tiles.Close()
			if idemWindow <= 0 {
				return usageError{fmt.Errorf("--idempotency-window %s: want a positive duration such as 24h", idemWindow)}
			}
			events, err := openOnlineStore(cfg, onlineStore)
			if err != nil {
				return err
			}
			defer events.Close()
			if r, ok := events.(*store.Redis); ok && r.Warning != "" {
				log.Warn("online store: " + r.Warning)
			}
			svc, err := online.New(cfg, tiles, events, online.Options{Retention: retention, MaxRows: maxKeys, MaxEvents: maxEvents, IdempotencyWindow: idemWindow, Logger: log})
			if err != nil {
				return err
			}
			if err := svc.Refresh(ctx); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return usageError{fmt.Errorf("--listen %s: %w", listen, err)}
			}
			srv := &http.Server{
				Handler:           svc.Handler(online.HTTPOptions{AuthToken: token, MaxBody: maxBody, Timeout: timeout}),
				ReadHeaderTimeout: 5 * time.Second,
				ReadTimeout:       timeout + 5*time.Second,
				WriteTimeout:      timeout + 5*time.Second,
				IdleTimeout:       2 * time.Minute,
			}
			bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
			var wg sync.WaitGroup
			if refresh > 0 {
				wg.Go(func() { tick(bg, refresh, "refresh tiles", log, svc.Refresh) })
			}
			// Expired idempotency receipts are removed.
			wg.Go(func() {
				tick(bg, max(time.Second, min(time.Minute, idemWindow/2)), "prune idempotency receipts", log, func(ctx context.Context) error {
					_, err := svc.PruneReceipts(ctx)
					return err
				})
			})
			if sched, err := materialize.Scheduled(cfg); err != nil {
				stopBG()
				return err
			} else if len(sched) > 0 {
				s := &materialize.Scheduler{Config: cfg, Store: tiles, After: func(r materialize.Run) { afterRun(bg, svc, r, log) }}
				wg.Go(func() { _ = s.Loop(bg) })
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "tessera serve: listening on http://%s\n", ln.Addr())
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			select {
			case err = <-served:
			case <-ctx.Done():
				// Stop accepting, let in-flight requests finish: an ingest
				// answered 200 has been written durably.
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err = srv.Shutdown(sctx)
				cancel()
				fmt.Fprintln(cmd.ErrOrStderr(), "tessera serve: stopped")
			}
			stopBG()
			wg.Wait()
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&onlineStore, "online-store", "", "where ingested events live: a file path (embedded bbolt) or redis://host:port/db; default online/events.db in the tile store directory")
	f.StringVar(&tokenFile, "auth-token-file", "", "file holding a bearer token that /v1/ requests must send")
	f.DurationVar(&retention, "retention", 2*time.Hour, "keep ingested events this long before the watermark; also how far back --now may go")
	f.DurationVar(&refresh, "refresh", 10*time.Second, "how often to look for tiles committed by other processes")
	f.DurationVar(&timeout, "timeout", 10*time.Second, "bound on the work of one request")
	f.Int64Var(&maxBody, "max-body", 8<<20, "largest request body, in bytes")
	f.IntVar(&maxKeys, "max-keys", 1000, "most keys (rows) in one query")
	f.IntVar(&maxEvents, "max-events", 100_000, "most events in one ingest request")
	f.DurationVar(&idemWindow, "idempotency-window", 24*time.Hour, "how long an ingest's Idempotency-Key is remembered: a retry within it is answered without storing again")
	return cmd
}

// openOnlineStore opens --online-store, or the embedded file under a local
// tile store.
func openOnlineStore(cfg *feature.Config, location string) (store.Store, error) {
	if location == "" {
		dir := cfg.Store
		if strings.HasPrefix(dir, "file://") {
			dir = strings.TrimPrefix(dir, "file://")
		} else if strings.Contains(dir, "://") {
			return nil, usageError{fmt.Errorf("the tile store %s is not a local directory: give --online-store (a file path or redis://host:port/db)", cfg.Store)}
		}
		location = filepath.Join(dir, "online", "events.db")
	}
	s, err := store.Open(location)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// tick calls f every interval until ctx ends, logging its errors as what.
func tick(ctx context.Context, every time.Duration, what string, log *slog.Logger, f func(context.Context) error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f(ctx); err != nil && ctx.Err() == nil {
				log.Error(what, "err", err)
			}
		}
	}
}

// afterRun records a scheduled backfill, loads its tiles and prunes the
// ingested events they now cover.
func afterRun(ctx context.Context, svc *online.Service, r materialize.Run, log *slog.Logger) {
	svc.Metrics.BackfillSeconds.Observe(r.Duration.Seconds())
	if r.Err != nil {
		svc.Metrics.Backfills.WithLabelValues("error").Inc()
		if ctx.Err() == nil {
			log.Error("scheduled backfill", "tile_sets", r.TileSets, "err", r.Err)
		}
		return
	}
	svc.Metrics.Backfills.WithLabelValues("ok").Inc()
	for _, s := range r.Summary.Sets {
		log.Info("scheduled backfill", "tile_set", s.TileSet, "cover", fmtRange(s.Cover.From, s.Cover.To), "tiles", s.Tiles, "manifest_version", s.Version)
	}
	if err := svc.Refresh(ctx); err != nil {
		log.Error("refresh tiles after backfill", "err", err)
		return
	}
	if n, err := svc.Prune(ctx); err != nil {
		log.Error("prune online store", "err", err)
	} else if n > 0 {
		log.Info("pruned ingested events covered by tiles", "events", n)
	}
}

// watchBackfill runs incremental backfills on the config's schedules until
// interrupted (backfill --watch).
func watchBackfill(ctx context.Context, w io.Writer, cfg *feature.Config, tiles *tilestore.Store, opt materialize.Options) error {
	s := &materialize.Scheduler{Config: cfg, Store: tiles, Options: materialize.Options{Stats: opt.Stats}, After: func(r materialize.Run) {
		if r.Err != nil {
			fmt.Fprintf(w, "%s backfill of %s failed: %v\n", r.Start.UTC().Format(time.RFC3339), strings.Join(r.TileSets, ", "), r.Err)
			return
		}
		if len(r.Summary.Sets) == 0 {
			fmt.Fprintf(w, "%s %s: up to date\n", r.Start.UTC().Format(time.RFC3339), strings.Join(r.TileSets, ", "))
		}
		for _, st := range r.Summary.Sets {
			fmt.Fprintf(w, "%s %s: %d tiles over %s, manifest v%d\n", r.Start.UTC().Format(time.RFC3339), st.TileSet, st.Tiles, fmtRange(st.Cover.From, st.Cover.To), st.Version)
		}
	}}
	if len(opt.Features) > 0 {
		return usageError{errors.New("--watch backfills every tile set with a backfill_schedule; drop --feature")}
	}
	err := s.Loop(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
