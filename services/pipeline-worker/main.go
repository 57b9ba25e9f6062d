// Command pipeline-worker pulls message envelopes from the ingress
// subscription, stores each message and its recipients' inbox entries in
// Firestore, publishes one delivery per message to the fan-out topic, and
// dead-letters what can never succeed. README.md lists its environment.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/debugserver"
	"github.com/courierhq/courier/pkg/gcp"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/telemetry"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
	"github.com/courierhq/courier/services/pipeline-worker/internal/pipeline"
)

var version = "dev"

func main() {
	if err := run(); err != nil {
		slog.Error("pipeline-worker failed", "err", err)
		os.Exit(1)
	}
}

func run() (err error) {
	env := config.FromOS()
	log := telemetry.LoggerFromEnv(env)
	slog.SetDefault(log)
	shutdownTimeout := env.Duration("SHUTDOWN_TIMEOUT", 25*time.Second, time.Second)
	httpAddr := env.String("HTTP_ADDR", ":8083")
	adminAddr := env.String(adminserver.Env, adminserver.DefaultAddr)
	settings := pipeline.SettingsFromEnv(env, shutdownTimeout)
	if err := env.Err(); err != nil {
		return err
	}
	project := settings.Topology.Project
	dbg, err := debugserver.Start(env.String("DEBUG_ADDR", ""), log)
	if err != nil {
		return err
	}
	defer dbg.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	shutdownTelemetry, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "pipeline-worker", Version: version, Logger: log})
	if err != nil {
		return err
	}
	defer telemetry.FlushLast(shutdownTelemetry, &err)

	gc, err := gcp.Connect(ctx, project)
	if err != nil {
		return err
	}
	defer gc.Close()
	ps, fs := gc.PubSub, gc.Firestore

	reg := telemetry.NewRegistry()
	m := metrics.New(reg)
	worker := pipeline.New(settings, ps, pipeline.Committer(settings, inbox.New(fs), m), presence.NewTable(fs), m, log)

	probe, err := health.NewProbe(reg, map[string]health.Check{
		"pubsub":    health.PubSubTopic(ps, settings.Topology.TopicPath(settings.Topology.DeliveriesTopic)),
		"firestore": health.Firestore(fs),
	}, 10*time.Second, 2*time.Second, log)
	if err != nil {
		return err
	}
	// Closed when run returns, after the drain, so the drain stays observable.
	admin, err := adminserver.Start(adminAddr, reg, log)
	if err != nil {
		return err
	}
	defer admin.Close()
	var state health.State
	// Probes only: short bounds on every phase.
	srv := &http.Server{Addr: httpAddr, Handler: probes(&state), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", httpAddr, err)
	}
	log.Info("pipeline-worker starting", "version", version, "project", project, "http_addr", ln.Addr().String(), "admin_addr", admin.Addr(),
		"subscription", settings.Topology.IngressSubscription,
		"max_outstanding_messages", settings.MaxOutstandingMessages, "pull_concurrency", settings.PullConcurrency, "targeted_routing", settings.TargetedRouting,
		"batch_max_messages", settings.BatchMaxMessages, "batch_max_writes", settings.BatchMaxWrites, "batch_linger", settings.BatchLinger.String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error { return probe.Run(gctx) })
	g.Go(func() error { return work(gctx, worker, &state, srv) })
	err = g.Wait()
	log.Info("pipeline-worker stopped", "err", err)
	return err
}

// probes is the worker's HTTP_ADDR: the kubelet's /healthz and /readyz and
// nothing else (metrics are on ADMIN_ADDR).
func probes(state *health.State) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health.Live)
	mux.Handle("GET /readyz", health.Ready(map[string]health.Check{"worker": state.Check}, time.Second))
	return mux
}

// work runs the pipeline until ctx ends (a signal, or the HTTP server
// failing), then drains: readiness fails, pulling stops, the messages in
// hand finish or are nacked within the drain deadline and the last acks go
// out (pipeline.Run), and only then does the HTTP server stop (the admin
// listener serves /metrics until run returns). Telemetry is flushed after,
// by run.
func work(ctx context.Context, worker *pipeline.Pipeline, state *health.State, srv *http.Server) error {
	state.Started()
	context.AfterFunc(ctx, state.Draining)
	runErr := worker.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return errors.Join(runErr, srv.Shutdown(sctx))
}
