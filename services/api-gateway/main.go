// Command api-gateway is Courier's front door for mobile apps and back-end
// callers: REST (echo) and gRPC over one core that validates messages,
// publishes them to the ingress topic and reads inboxes from Firestore.
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

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/debugserver"
	"github.com/courierhq/courier/pkg/gcp"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/telemetry"

	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/services/api-gateway/internal/authn"
	"github.com/courierhq/courier/services/api-gateway/internal/grpcapi"
	"github.com/courierhq/courier/services/api-gateway/internal/httpapi"
	"github.com/courierhq/courier/services/api-gateway/internal/ingress"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
	"github.com/courierhq/courier/services/api-gateway/internal/metrics"
	"github.com/courierhq/courier/services/api-gateway/internal/openapi"
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

// run serves until ctx is cancelled, then shuts down in order: stop
// accepting and finish in-flight requests (REST and gRPC), flush the
// publisher, close clients, and flush telemetry last.
func run(ctx context.Context, env *config.Env, ready listening) (err error) {
	logger := telemetry.LoggerFromEnv(env)
	slog.SetDefault(logger)
	cfg, err := loadSettings(env)
	if err != nil {
		return err
	}
	dbg, err := debugserver.Start(env.String("DEBUG_ADDR", ""), logger)
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
	httpLn, grpcLn, err := listen(cfg)
	if err != nil {
		return err
	}
	logger.Info("api-gateway listening", "version", version, "http", httpLn.Addr().String(),
		"grpc", grpcLn.Addr().String(), "project", cfg.Topology.Project, "ingress_topic", cfg.Topology.IngressTopic)
	if ready != nil {
		ready(httpLn.Addr(), grpcLn.Addr(), admin.Addr())
	}
	gw.state.Started()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := gw.http.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := gw.grpc.Serve(grpcLn); err != nil {
			return fmt.Errorf("grpc server: %w", err)
		}
		return nil
	})
	g.Go(func() error { return gw.probe.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("api-gateway shutting down")
		return gw.drain(cfg.ShutdownTimeout)
	})
	err = g.Wait()
	logger.Info("api-gateway stopped", "err", err)
	return err
}

// gateway is the wired service: the messages core behind both transports,
// the publisher they share, and what watches them.
type gateway struct {
	http       *http.Server
	grpc       *grpc.Server
	grpcHealth *grpchealth.Server
	pub        *ingress.Publisher
	probe      *health.Probe
	state      health.State
	// reg holds every metric; the admin listener serves it, the public
	// HTTP port does not.
	reg *prometheus.Registry
}

// assemble builds the gateway's parts on its clients.
func assemble(cfg settings, gc *gcp.Clients, verifier authn.Verifier, logger *slog.Logger) (*gateway, error) {
	limiter := ratelimit.New(ratelimit.Options{PerSecond: float64(cfg.RatePerSecond), Burst: cfg.RateBurst, MaxKeys: cfg.RateMaxUsers})
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, func() float64 { return float64(limiter.Len()) })
	gw := &gateway{reg: reg, pub: ingress.New(gc.PubSub, cfg.Topology.IngressTopic, ingress.Options{
		Timeout: cfg.PublishTimeout, MaxOutstanding: cfg.PublishMaxOut, DelayThreshold: cfg.PublishDelay, Latency: m.PublishDuration,
	})}
	svc := messages.New(gw.pub, inbox.New(gc.Firestore), cfg.Limits).WithBudgets(messages.Budgets{
		StoredKiB: ratelimit.New(ratelimit.Options{PerSecond: float64(cfg.StoredKiBPerSecond), Burst: cfg.StoredKiBBurst, MaxKeys: cfg.RateMaxUsers}),
		Inbound:   ratelimit.New(ratelimit.Options{PerSecond: float64(cfg.InboundPerSecond), Burst: cfg.InboundBurst, MaxKeys: cfg.RateMaxUsers}),
	})
	var err error
	gw.probe, err = health.NewProbe(reg, map[string]health.Check{
		"pubsub":    health.PubSubTopic(gc.PubSub, cfg.Topology.TopicPath(cfg.Topology.IngressTopic)),
		"firestore": health.Firestore(gc.Firestore),
	}, 10*time.Second, cfg.ReadyTimeout, logger)
	if err != nil {
		return nil, err
	}
	gw.http = &http.Server{
		Handler: httpapi.New(httpapi.Config{
			Service: svc, Verifier: verifier, Limiter: limiter, Metrics: m, Logger: logger,
			Ready:        map[string]health.Check{"gateway": gw.state.Check},
			ReadyTimeout: cfg.ReadyTimeout, MaxBodyBytes: int64(cfg.MaxBodyBytes),
			RequestTimeout: cfg.RequestTimeout, CORSOrigins: cfg.CORSOrigins, OpenAPI: openapi.Spec,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	gw.grpc, gw.grpcHealth = grpcapi.NewServer(grpcapi.Config{
		Service: svc, Verifier: verifier, Limiter: limiter, Metrics: m, Logger: logger,
		MaxRecvBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout,
	})
	return gw, nil
}

// listen binds both addresses before anything is served, so a taken port
// fails the start instead of half the gateway.
func listen(cfg settings) (httpLn, grpcLn net.Listener, err error) {
	httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	grpcLn, err = net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		httpLn.Close()
		return nil, nil, fmt.Errorf("listen GRPC_ADDR %s: %w", cfg.GRPCAddr, err)
	}
	return httpLn, grpcLn, nil
}

// drain is the gateway's shutdown, within one fresh deadline (ctx is
// already cancelled): readiness and the gRPC health service turn
// unavailable, REST and gRPC stop accepting and finish their requests
// concurrently, then — no handler can publish any more — the publisher
// flushes what is in flight. Clients and telemetry are closed after, by run.
func (gw *gateway) drain(timeout time.Duration) error {
	gw.state.Draining()
	gw.grpcHealth.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	grpcDone := make(chan struct{})
	go func() { gw.grpc.GracefulStop(); close(grpcDone) }()
	if err := gw.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	select {
	case <-grpcDone:
	case <-ctx.Done():
		gw.grpc.Stop()
		<-grpcDone
		errs = append(errs, errors.New("grpc shutdown: deadline exceeded, connections closed"))
	}
	gw.pub.Stop()
	return errors.Join(errs...)
}
