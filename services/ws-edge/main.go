// Command ws-edge holds the web clients' WebSocket sessions. At start it
// creates its own subscription to the deliveries topic and writes each
// delivery to the local sessions of its recipients; on SIGTERM it closes
// every session with 1001, deletes the subscription and exits. README.md
// lists its settings and metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/debugserver"
	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/gcp"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/telemetry"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
	"github.com/courierhq/courier/services/ws-edge/internal/session"
)

var version = "dev"

func main() {
	if err := run(); err != nil {
		slog.Error("ws-edge failed", "err", err)
		os.Exit(1)
	}
}

type settings struct {
	httpAddr        string
	adminAddr       string
	shutdownTimeout time.Duration
	auth            auth.Config
	edge            edge.Config
}

func readSettings(env *config.Env) settings {
	s := settings{
		httpAddr:        env.String("HTTP_ADDR", ":8081"),
		adminAddr:       env.String(adminserver.Env, adminserver.DefaultAddr),
		shutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 25*time.Second, time.Second),
		auth:            auth.ConfigFromEnv(env),
	}
	pod := env.String("POD_NAME", "")
	if pod == "" {
		host, err := os.Hostname()
		env.Check("POD_NAME", err)
		pod = host
	}
	pod = edge.SanitizePodName(pod)
	env.Check("POD_NAME", edge.ValidatePodName(pod))
	s.edge = edge.Config{
		Pod:                pod,
		Topology:           topology.FromEnv(env),
		AllowedOrigins:     env.List("WS_ALLOWED_ORIGINS", nil),
		MaxSessions:        env.Int("WS_MAX_SESSIONS", 10000, 1, 10_000_000),
		MaxSessionsPerUser: env.Int("WS_MAX_SESSIONS_PER_USER", 16, 1, 10_000),
		Session: session.Options{
			QueueSize:        env.Int("WS_SEND_QUEUE", 1024, 1, 100_000),
			ReadLimit:        int64(env.Int("WS_READ_LIMIT", 4096, 128, 1<<20)),
			PingInterval:     env.Duration("WS_PING_INTERVAL", 20*time.Second, time.Second),
			WriteTimeout:     env.Duration("WS_WRITE_TIMEOUT", 10*time.Second, 100*time.Millisecond),
			ReplayLimit:      env.Int("WS_REPLAY_LIMIT", 500, 1, 10_000),
			MaxBatchBytes:    env.Int("WS_MAX_BATCH_BYTES", 64<<10, 1<<10, 16<<20),
			PageWriteTimeout: env.Duration("WS_PAGE_WRITE_TIMEOUT", 30*time.Second, time.Second),
			AckRate:          float64(env.Int("WS_ACK_RATE", 100, 1, 1_000_000)),
			AckBurst:         env.Int("WS_ACK_BURST", 500, 1, 1_000_000),
		},
		ReorderWait:       env.Duration("WS_REORDER_WAIT", 2*time.Second, time.Millisecond),
		ReorderWaitMax:    env.Duration("WS_REORDER_WAIT_MAX", 30*time.Second, time.Millisecond),
		MaxHeld:           env.Int("WS_MAX_HELD", 1024, 1, 1_000_000),
		ReadConcurrency:   env.Int("WS_READ_CONCURRENCY", 32, 1, 10_000),
		PageBytes:         env.Int("WS_PAGE_BYTES", inbox.DefaultPageBytes, 4<<10, 16<<20),
		ReadBudgetBytes:   env.Int("WS_READ_BUDGET_BYTES", inboxreader.DefaultBudgetBytes, 64<<10, 1<<34),
		UserReadPages:     env.Int("WS_USER_READ_PAGES", 4, 1, 1000),
		AckQueue:          env.Int("WS_ACK_QUEUE", 10_000, 1, 10_000_000),
		GatewayURL:        env.String("GATEWAY_URL", "http://localhost:8080"),
		TargetedRouting:   env.Bool("EDGE_TARGETED_ROUTING", false),
		HeartbeatInterval: env.Duration("EDGE_HEARTBEAT_INTERVAL", time.Minute, time.Second),
		// A connection opened without a credential sends its token in its
		// first frame within this time (package wsauth).
		AuthTimeout:        env.Duration("WS_AUTH_TIMEOUT", 5*time.Second, 10*time.Millisecond),
		ConnectRate:        float64(env.Int("WS_CONNECT_RATE", 2, 1, 1_000_000)),
		ConnectBurst:       env.Int("WS_CONNECT_BURST", 20, 1, 1_000_000),
		MaxUnauthenticated: env.Int("WS_MAX_UNAUTHENTICATED", 1000, 1, 1_000_000),
	}
	if s.edge.ReadBudgetBytes < s.edge.PageBytes {
		env.Check("WS_READ_BUDGET_BYTES", fmt.Errorf("must be at least WS_PAGE_BYTES (%d)", s.edge.PageBytes))
	}
	// Development tokens only when asked for (DEV_TOKENS=true) and nothing
	// else can verify tokens.
	if s.auth.DevTokens() {
		s.edge.DevSecret = []byte(s.auth.HS256Secret)
	}
	return s
}

// run wires the pod and runs its components until SIGTERM, then drains.
func run() (err error) {
	env := config.FromOS()
	logger := telemetry.LoggerFromEnv(env)
	slog.SetDefault(logger)
	s := readSettings(env)
	if err := env.Err(); err != nil {
		return err
	}
	dbg, err := debugserver.Start(env.String("DEBUG_ADDR", ""), logger)
	if err != nil {
		return err
	}
	defer dbg.Close()

	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	shutdownTelemetry, err := telemetry.Setup(sigCtx, telemetry.Options{ServiceName: "ws-edge", Version: version, Logger: logger})
	if err != nil {
		return err
	}
	defer telemetry.FlushLast(shutdownTelemetry, &err)
	verifier, err := auth.NewFromConfig(sigCtx, s.auth)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer verifier.Close()
	gc, err := gcp.Connect(sigCtx, s.edge.Topology.Project)
	if err != nil {
		return err
	}
	defer gc.Close()
	ps, fs := gc.PubSub, gc.Firestore

	reg := telemetry.NewRegistry()
	e, err := edge.New(s.edge, edge.Deps{
		PubSub: ps, Store: inbox.New(fs), Heartbeats: edges.New(fs), Presence: presence.NewTable(fs),
		Verifier: verifier, Registry: reg, Logger: logger,
	})
	if err != nil {
		return err
	}
	probe, err := health.NewProbe(reg, map[string]health.Check{
		"pubsub":    health.PubSubTopic(ps, s.edge.Topology.TopicPath(s.edge.Topology.DeliveriesTopic)),
		"firestore": health.Firestore(fs),
	}, 10*time.Second, 2*time.Second, logger)
	if err != nil {
		return err
	}
	// Closed when run returns, after the drain, so the drain stays observable.
	admin, err := adminserver.Start(s.adminAddr, reg, logger)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := e.Start(sigCtx); err != nil {
		return err
	}
	// The bounds are for plain requests (probes, the demo, tokens); the
	// WebSocket handler clears them on its connection before upgrading,
	// since a hijacked connection keeps the deadlines the server set.
	srv := &http.Server{Addr: s.httpAddr, Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}

	g, gctx := errgroup.WithContext(sigCtx)
	g.Go(func() error {
		return serve(srv, logger, "pod", s.edge.Pod, "subscription", e.SubscriptionName(), "version", version)
	})
	// Not gctx: receiving goes on while the sessions are closed; drain
	// stops it before deleting the subscription.
	g.Go(func() error { return e.Run(context.Background()) })
	g.Go(func() error { return probe.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		return drain(e, srv, s.shutdownTimeout, logger)
	})
	err = g.Wait()
	logger.Info("ws-edge stopped", "err", err)
	return err
}

// serve runs the HTTP server until drain shuts it down.
func serve(srv *http.Server, logger *slog.Logger, attrs ...any) error {
	logger.Info("ws-edge listening", append([]any{"addr", srv.Addr}, attrs...)...)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// drain is the pod's shutdown, within one fresh deadline (the signal's
// context is already cancelled): readiness fails and every session is
// closed with 1001 (clients resume on another pod), then receiving stops and
// the subscription is deleted (edge.Shutdown), then the HTTP server stops
// (hijacked WebSockets are not its own any more; it waits for plain
// requests). Telemetry is flushed after, by run.
func drain(e *edge.Edge, srv *http.Server, timeout time.Duration, logger *slog.Logger) error {
	logger.Info("draining")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return errors.Join(e.Shutdown(ctx), srv.Shutdown(ctx))
}
