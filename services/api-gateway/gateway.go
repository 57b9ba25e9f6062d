package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/courierhq/courier/pkg/ephemeral"
	"github.com/courierhq/courier/pkg/gcp"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/online"
	"github.com/courierhq/courier/pkg/peers"
	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/pkg/receipts"
	"github.com/courierhq/courier/pkg/signal"

	"github.com/courierhq/courier/services/api-gateway/internal/authn"
	"github.com/courierhq/courier/services/api-gateway/internal/grpcapi"
	"github.com/courierhq/courier/services/api-gateway/internal/httpapi"
	"github.com/courierhq/courier/services/api-gateway/internal/ingress"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
	"github.com/courierhq/courier/services/api-gateway/internal/metrics"
	"github.com/courierhq/courier/services/api-gateway/internal/openapi"
	"github.com/courierhq/courier/services/api-gateway/internal/transport"
)

// gateway is the wired service: the messages core behind both transports,
// the publisher they share, and what watches them.
type gateway struct {
	http           *http.Server
	grpc           *grpc.Server
	grpcHealth     *grpchealth.Server
	httpLn, grpcLn net.Listener
	pub            *ingress.Publisher
	ephemeral      *ephemeral.Publisher
	receipts       *receipts.Coalescer
	probe          *health.Probe
	state          health.State
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
	svc := messages.New(gw.pub, inbox.New(gc.Firestore).WithRetention(cfg.InboxRetention), cfg.Limits).WithBudgets(messages.Budgets{
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
	em, err := ephemeral.NewMetrics(reg, "courier_api_gateway")
	if err != nil {
		return nil, err
	}
	gw.ephemeral = ephemeral.New(gc.PubSub, cfg.Topology.DeliveriesTopic, ephemeral.Options{}, em, logger)
	// Receipts to senders, coalesced per second (pkg/receipts); counts for
	// large sends are read from the store at flush time.
	store := inbox.New(gc.Firestore).WithRetention(cfg.InboxRetention)
	gw.receipts = receipts.New(gw.ephemeral.Publish, func(ctx context.Context, kind, id string) (int, error) {
		if kind == receipts.Delivered {
			_, n, err := store.DeliveryState(ctx, id, false)
			return n, err
		}
		st, err := store.Get(ctx, id)
		if err != nil {
			return 0, err
		}
		return store.ReadCount(ctx, st)
	}, time.Second)
	svc.WithEvents(gatewayEvents{gw.ephemeral, gw.receipts})
	// Who shares a conversation with whom: the stored conversations and
	// the users' recent inboxes (pkg/peers).
	directory := peers.New(inbox.New(gc.Firestore), peers.Options{})
	pres := presenceReader{online.NewReader(gc.Firestore, online.Options{StaleAfter: cfg.PresenceStaleAfter}), directory}
	shared := transport.Config{Service: svc, Verifier: verifier, Limiter: limiter, Metrics: m, Logger: logger, RequestTimeout: cfg.RequestTimeout}
	gw.http = &http.Server{
		Handler: httpapi.New(httpapi.Config{
			Config:       shared,
			Ready:        map[string]health.Check{"gateway": gw.state.Check},
			ReadyTimeout: cfg.ReadyTimeout, MaxBodyBytes: int64(cfg.MaxBodyBytes),
			CORSOrigins: cfg.CORSOrigins, OpenAPI: openapi.Spec,
			Signals:  signal.NewSender(gw.ephemeral, directory),
			Presence: pres,
			SignalLimiter: ratelimit.New(ratelimit.Options{
				PerSecond: float64(cfg.SignalPerSecond), Burst: cfg.SignalBurst, MaxKeys: cfg.RateMaxUsers}),
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	gw.grpc, gw.grpcHealth = grpcapi.NewServer(grpcapi.Config{Config: shared, MaxRecvBytes: cfg.MaxBodyBytes, Presence: pres})
	return gw, nil
}

// presenceReader is who is online (pkg/online) and who may see whom
// (pkg/peers), for GET /v1/presence.
type presenceReader struct {
	*online.Reader
	*peers.Directory
}

// listen binds both addresses.
func (gw *gateway) listen(cfg settings) (err error) {
	gw.httpLn, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	gw.grpcLn, err = net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		gw.httpLn.Close()
		return fmt.Errorf("listen GRPC_ADDR %s: %w", cfg.GRPCAddr, err)
	}
	return nil
}

// Run serves every component until ctx ends or one fails, then drains
// within drainTimeout. Each component is a Run(ctx) error; the servers
// ignore ctx because the drain, not the context, stops them in order.
func (gw *gateway) Run(ctx context.Context, drainTimeout time.Duration) error {
	gw.state.Started()
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range []func(context.Context) error{gw.serveHTTP, gw.serveGRPC, gw.probe.Run, gw.receipts.Run} {
		g.Go(func() error { return run(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		slog.Info("api-gateway shutting down")
		return gw.drain(drainTimeout)
	})
	return g.Wait()
}

func (gw *gateway) serveHTTP(context.Context) error {
	if err := gw.http.Serve(gw.httpLn); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

func (gw *gateway) serveGRPC(context.Context) error {
	if err := gw.grpc.Serve(gw.grpcLn); err != nil {
		return fmt.Errorf("grpc server: %w", err)
	}
	return nil
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
	if err := gw.ephemeral.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// gatewayEvents is messages.Events on the ephemeral publisher and the
// receipts coalescer.
type gatewayEvents struct {
	*ephemeral.Publisher
	c *receipts.Coalescer
}

func (e gatewayEvents) Receipt(r receipts.Receipt) { e.c.Add(r) }
