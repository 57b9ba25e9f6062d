// Command pipeline-worker pulls message envelopes from the ingress
// subscription, stores each message and its recipients' inbox entries in
// Firestore, publishes one delivery per message to the fan-out topic, and
// dead-letters what can never succeed. README.md lists its environment;
// settings.go reads it, assemble.go builds the parts.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/debugserver"
	"github.com/courierhq/courier/pkg/gcp"
	"github.com/courierhq/courier/pkg/telemetry"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, config.FromOS()); err != nil {
		slog.Error("pipeline-worker failed", "err", err)
		os.Exit(1)
	}
}

// run works until ctx is cancelled, then drains (worker.drain) and flushes
// telemetry last.
func run(ctx context.Context, env *config.Env) (err error) {
	log := telemetry.LoggerFromEnv(env)
	slog.SetDefault(log)
	s, err := loadSettings(env)
	if err != nil {
		return err
	}
	dbg, err := debugserver.Start(s.DebugAddr, log)
	if err != nil {
		return err
	}
	defer dbg.Close()

	shutdownTelemetry, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "pipeline-worker", Version: version, Logger: log})
	if err != nil {
		return err
	}
	defer telemetry.FlushLast(shutdownTelemetry, &err)

	gc, err := gcp.Connect(ctx, s.Topology.Project)
	if err != nil {
		return err
	}
	defer gc.Close()
	w, err := assemble(s, gc.PubSub, gc.Firestore, log, nil)
	if err != nil {
		return err
	}
	// Closed when run returns, after the drain, so the drain stays observable.
	admin, err := adminserver.Start(s.AdminAddr, w.reg, log)
	if err != nil {
		return err
	}
	defer admin.Close()
	ln, err := net.Listen("tcp", s.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on HTTP_ADDR %s: %w", s.HTTPAddr, err)
	}
	log.Info("pipeline-worker starting", "version", version, "project", s.Topology.Project, "http_addr", ln.Addr().String(),
		"admin_addr", admin.Addr(), "subscription", s.Topology.IngressSubscription,
		"max_outstanding_messages", s.MaxOutstandingMessages, "pull_concurrency", s.PullConcurrency, "targeted_routing", s.TargetedRouting,
		"batch_max_messages", s.BatchMaxMessages, "batch_max_writes", s.BatchMaxWrites, "batch_linger", s.BatchLinger.String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.serve(ln) })
	g.Go(func() error { return w.probe.Run(gctx) })
	g.Go(func() error { return w.Run(gctx) })
	err = g.Wait()
	log.Info("pipeline-worker stopped", "err", err)
	return err
}
