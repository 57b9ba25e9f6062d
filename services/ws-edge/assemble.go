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

	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/gcp"
	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/telemetry"

	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

// wsEdge is the wired pod: the edge (sessions, fan-out, acks), the HTTP
// server in front of it, and the background dependency probe.
type wsEdge struct {
	edge   *edge.Edge
	http   *http.Server
	httpLn net.Listener
	probe  *health.Probe
	// reg holds every metric; the admin listener serves it, the public
	// HTTP port does not.
	reg *prometheus.Registry
}

// assemble builds the pod's parts on its clients.
func assemble(cfg settings, gc *gcp.Clients, verifier edge.Verifier, logger *slog.Logger) (*wsEdge, error) {
	w := &wsEdge{reg: telemetry.NewRegistry()}
	var err error
	w.edge, err = edge.New(cfg.Edge, edge.Deps{
		PubSub: gc.PubSub, Store: inbox.New(gc.Firestore).WithRetention(cfg.InboxRetention), Heartbeats: edges.New(gc.Firestore), Presence: presence.NewTable(gc.Firestore),
		Verifier: verifier, Registry: w.reg, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	w.probe, err = health.NewProbe(w.reg, map[string]health.Check{
		"pubsub":    health.PubSubTopic(gc.PubSub, cfg.Edge.Topology.TopicPath(cfg.Edge.Topology.DeliveriesTopic)),
		"firestore": health.Firestore(gc.Firestore),
	}, 10*time.Second, 2*time.Second, logger)
	if err != nil {
		return nil, err
	}
	// The bounds are for plain requests (probes, the demo, tokens); the
	// WebSocket handler clears them on its connection before upgrading,
	// since a hijacked connection keeps the deadlines the server set.
	w.http = &http.Server{Addr: cfg.HTTPAddr, Handler: w.edge.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	return w, nil
}

// listen binds HTTP_ADDR, so a taken port fails the start before the
// pod's subscription is created.
func (w *wsEdge) listen() (err error) {
	w.httpLn, err = net.Listen("tcp", w.http.Addr)
	if err != nil {
		return fmt.Errorf("listen HTTP_ADDR %s: %w", w.http.Addr, err)
	}
	return nil
}

// Run serves every component until ctx ends or one fails, then drains
// within drainTimeout. Receiving is not given gctx: it goes on while the
// sessions are closed, and the drain stops it before deleting the
// subscription; the HTTP server likewise stops only in the drain.
func (w *wsEdge) Run(ctx context.Context, drainTimeout time.Duration, logger *slog.Logger) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(w.serveHTTP)
	g.Go(func() error { return w.edge.Run(context.Background()) })
	g.Go(func() error { return w.probe.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		return w.drain(drainTimeout, logger)
	})
	return g.Wait()
}

// serveHTTP runs the HTTP server until the drain shuts it down.
func (w *wsEdge) serveHTTP() error {
	if err := w.http.Serve(w.httpLn); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// drain is the pod's shutdown, within one fresh deadline (the signal's
// context is already cancelled): readiness fails and every session is
// closed with 1001 (clients resume on another pod), then receiving stops and
// the subscription is deleted (edge.Shutdown), then the HTTP server stops
// (hijacked WebSockets are not its own any more; it waits for plain
// requests). Clients and telemetry are closed after, by run, telemetry last.
func (w *wsEdge) drain(timeout time.Duration, logger *slog.Logger) error {
	logger.Info("draining")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return errors.Join(w.edge.Shutdown(ctx), w.http.Shutdown(ctx))
}
