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

	"cloud.google.com/go/firestore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/debugserver"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/routing"
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
	// Flushed last, with a fresh context: ctx is cancelled by then.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		err = errors.Join(err, shutdownTelemetry(sctx))
	}()

	ps, err := pubsubx.NewClient(ctx, project)
	if err != nil {
		return err
	}
	defer ps.Close()
	fs, err := firestore.NewClient(ctx, project)
	if err != nil {
		return fmt.Errorf("firestore client for project %s: %w", project, err)
	}
	defer fs.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	worker := pipeline.New(settings, ps, inbox.New(fs), routing.NewTable(fs), metrics.New(reg), log)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", health.Live)
	mux.Handle("GET /readyz", health.Ready(map[string]health.Check{
		"pubsub":    health.PubSubTopic(ps, settings.Topology.TopicPath(settings.Topology.DeliveriesTopic)),
		"firestore": health.Firestore(fs),
		"receive":   worker.Check,
	}, 2*time.Second))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Addr: httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", httpAddr, err)
	}

	log.Info("pipeline-worker starting", "version", version, "project", project, "http_addr", ln.Addr().String(),
		"subscription", settings.Topology.IngressSubscription,
		"max_outstanding_messages", settings.MaxOutstandingMessages, "pull_concurrency", settings.PullConcurrency, "targeted_routing", settings.TargetedRouting)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		// The worker stops pulling when gctx is done (a signal, or the HTTP
		// server failing) and drains within its own deadline; the HTTP
		// server keeps answering /metrics until then.
		runErr := worker.Run(gctx)
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return errors.Join(runErr, srv.Shutdown(sctx))
	})
	err = g.Wait()
	log.Info("pipeline-worker stopped", "err", err)
	return err
}
