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

	"cloud.google.com/go/firestore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/debugserver"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/routing"
	"github.com/courierhq/courier/pkg/telemetry"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
	"github.com/courierhq/courier/services/ws-edge/internal/session"
)

var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ws-edge:", err)
		os.Exit(1)
	}
}

type settings struct {
	httpAddr        string
	shutdownTimeout time.Duration
	auth            auth.Config
	edge            edge.Config
}

func readSettings(env *config.Env) settings {
	s := settings{
		httpAddr:        env.String("HTTP_ADDR", ":8081"),
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
			QueueSize:    env.Int("WS_SEND_QUEUE", 64, 1, 100_000),
			ReadLimit:    int64(env.Int("WS_READ_LIMIT", 4096, 128, 1<<20)),
			PingInterval: env.Duration("WS_PING_INTERVAL", 20*time.Second, time.Second),
			WriteTimeout: env.Duration("WS_WRITE_TIMEOUT", 5*time.Second, 100*time.Millisecond),
			ReplayLimit:  env.Int("WS_REPLAY_LIMIT", 500, 1, 10_000),
			ReorderWait:  env.Duration("WS_REORDER_WAIT", 100*time.Millisecond, time.Millisecond),
		},
		GatewayURL:        env.String("GATEWAY_URL", "http://localhost:8080"),
		TargetedRouting:   env.Bool("EDGE_TARGETED_ROUTING", false),
		HeartbeatInterval: env.Duration("EDGE_HEARTBEAT_INTERVAL", time.Minute, time.Second),
	}
	// Development tokens only when nothing else can verify tokens.
	if s.auth.DevTokens() {
		s.edge.DevSecret = []byte(s.auth.HS256Secret)
	}
	return s
}

func run() (err error) {
	env := config.FromOS()
	logger := telemetry.LoggerFromEnv(env)
	s := readSettings(env)
	if err := env.Err(); err != nil {
		return err
	}
	slog.SetDefault(logger)
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
	defer func() {
		// Last, with its own deadline, so the shutdown's spans are exported.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, shutdownTelemetry(ctx))
	}()

	verifier, err := auth.NewFromConfig(sigCtx, s.auth)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer verifier.Close()

	project := s.edge.Topology.Project
	ps, err := pubsubx.NewClient(sigCtx, project)
	if err != nil {
		return err
	}
	defer ps.Close()
	fs, err := firestore.NewClient(sigCtx, project)
	if err != nil {
		return fmt.Errorf("firestore client for project %s: %w", project, err)
	}
	defer fs.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	e, err := edge.New(s.edge, edge.Deps{
		PubSub: ps, Store: inbox.New(fs), Presence: presence.New(fs), Routes: routing.NewTable(fs),
		Verifier: verifier, Registry: reg, Logger: logger,
		ReadyChecks: map[string]health.Check{
			"pubsub":    health.PubSubTopic(ps, s.edge.Topology.TopicPath(s.edge.Topology.DeliveriesTopic)),
			"firestore": health.Firestore(fs),
		},
	})
	if err != nil {
		return err
	}
	if err := e.Start(sigCtx); err != nil {
		return err
	}

	srv := &http.Server{
		Addr:              s.httpAddr,
		Handler:           e.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	g, gctx := errgroup.WithContext(sigCtx)
	g.Go(func() error {
		logger.Info("ws-edge listening", "addr", s.httpAddr, "pod", s.edge.Pod, "subscription", e.SubscriptionName(), "version", version)
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	// Not gctx: receiving continues while the sessions are closed, and
	// Shutdown stops it before deleting the subscription.
	g.Go(func() error { return e.Run(context.Background()) })
	g.Go(func() error {
		<-gctx.Done()
		logger.Info("draining")
		// A fresh deadline: gctx is already cancelled.
		ctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
		defer cancel()
		drainErr := e.Shutdown(ctx)
		// Hijacked WebSocket connections are not the server's any more;
		// Shutdown waits for the remaining plain requests.
		return errors.Join(drainErr, srv.Shutdown(ctx))
	})
	if err := g.Wait(); err != nil {
		return err
	}
	logger.Info("ws-edge stopped")
	return nil
}
