// Command api-gateway is Courier's front door for mobile apps and back-end
// callers: REST (echo) and gRPC over one core that validates messages,
// publishes them to the ingress topic and reads inboxes from Firestore.
//
// The wiring follows one template: settings.go (every variable, its
// default and its bounds, in one table), assemble (gateway.go) builds the
// parts, each part runs as Run(ctx) error under one errgroup, and one
// named drain stops them in order.
package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/debugserver"
	"github.com/courierhq/courier/pkg/gcp"
	"github.com/courierhq/courier/pkg/telemetry"

	"github.com/courierhq/courier/services/api-gateway/internal/authn"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, config.FromOS(), nil); err != nil {
		slog.Error("api-gateway failed", "err", err)
		os.Exit(1)
	}
}

// listening, when not nil, is told the bound addresses (tests listen on :0).
type listening func(httpAddr, grpcAddr net.Addr, adminAddr string)

// run serves until ctx is cancelled, then drains (gateway.drain), closes
// the clients, and flushes telemetry last.
func run(ctx context.Context, env *config.Env, ready listening) (err error) {
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

	shutdownTelemetry, err := telemetry.Setup(ctx, telemetry.Options{ServiceName: "api-gateway", Version: version, Logger: logger})
	if err != nil {
		return err
	}
	defer telemetry.FlushLast(shutdownTelemetry, &err)

	verifier, err := authn.NewVerifier(ctx, cfg.Auth)
	if err != nil {
		return err
	}
	defer verifier.Close()

	gc, err := gcp.Connect(ctx, cfg.Topology.Project)
	if err != nil {
		return err
	}
	defer gc.Close()
	gw, err := assemble(cfg, gc, verifier, logger)
	if err != nil {
		return err
	}
	// Closed when run returns, after the drain, so the drain stays observable.
	admin, err := adminserver.Start(cfg.AdminAddr, gw.reg, logger)
	if err != nil {
		return err
	}
	defer admin.Close()
	// Both ports are bound before anything is served, so a taken port
	// fails the start instead of half the gateway.
	if err := gw.listen(cfg); err != nil {
		return err
	}
	logger.Info("api-gateway listening", "version", version, "http", gw.httpLn.Addr().String(),
		"grpc", gw.grpcLn.Addr().String(), "project", cfg.Topology.Project, "ingress_topic", cfg.Topology.IngressTopic)
	if ready != nil {
		ready(gw.httpLn.Addr(), gw.grpcLn.Addr(), admin.Addr())
	}
	err = gw.Run(ctx, cfg.ShutdownTimeout)
	logger.Info("api-gateway stopped", "err", err)
	return err
}
