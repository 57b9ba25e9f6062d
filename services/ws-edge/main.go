// Command ws-edge holds the web clients' WebSocket sessions. At start it
// creates its own subscription to the deliveries topic and writes each
// delivery to the local sessions of its recipients; on SIGTERM it closes
// every session with 1001, deletes the subscription and exits. README.md
// lists its settings and metrics.
//
// The wiring follows the services' one template: settings.go (every
// variable, its default and its bounds, in one table), assemble
// (assemble.go) builds the parts, each part runs as Run(ctx) error under
// one errgroup, and one named drain stops them in order.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/auth"
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
		slog.Error("ws-edge failed", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx is cancelled, then drains (wsEdge.drain), closes
// the clients, and flushes telemetry last.
func run(ctx context.Context, env *config.Env) (err error) {
	logger := telemetry.LoggerFromEnv(env)
	slog.SetDefault(logger)
	cfg, err := loadSettings(env)
	if err != nil {
		return err
	}
	dbg, err := debugserver.Start(cfg.DebugAddr, logger)
	if err != nil {
		return err
	}
	defer dbg.Close()

	shutdownTelemetry, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "ws-edge", Version: version, Logger: logger})
	if err != nil {
		return err
	}
	defer telemetry.FlushLast(shutdownTelemetry, &err)
	verifier, err := auth.NewFromConfig(ctx, cfg.Auth)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer verifier.Close()
	gc, err := gcp.Connect(ctx, cfg.Edge.Topology.Project)
	if err != nil {
		return err
	}
	defer gc.Close()

	w, err := assemble(cfg, gc, verifier, logger)
	if err != nil {
		return err
	}
	// Closed when run returns, after the drain, so the drain stays observable.
	admin, err := adminserver.Start(cfg.AdminAddr, w.reg, logger)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := w.listen(); err != nil {
		return err
	}
	// Served only once the subscription exists.
	if err := w.edge.Start(ctx); err != nil {
		w.httpLn.Close()
		return err
	}
	logger.Info("ws-edge listening", "addr", w.httpLn.Addr().String(), "pod", cfg.Edge.Pod,
		"subscription", w.edge.SubscriptionName(), "version", version)
	err = w.Run(ctx, cfg.ShutdownTimeout, logger)
	logger.Info("ws-edge stopped", "err", err)
	return err
}
