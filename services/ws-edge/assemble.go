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
	"github.com/courierhq/courier/pkg/online"
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
		Online:   online.NewReader(gc.Firestore, online.Options{StaleAfter: cfg.Edge.StaleAfter}),
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

// Run serves every component until ctx ends or one fails, then drains:
// the edge drains itself when its context ends (sessions, receiving, the
// subscription; edge.Run), then the HTTP server stops, all within
// drainTimeout of ctx's end.
func (w *wsEdge) Run(ctx context.Context, drainTimeout time.Duration, logger *slog.Logger) error {
	g, gctx := errgroup.WithContext(ctx)
	deadline := make(chan time.Time, 1)
	context.AfterFunc(gctx, func() {
		logger.Info("draining")
		deadline <- time.Now().Add(drainTimeout)
	})
	g.Go(w.serveHTTP)
	g.Go(func() error { return w.probe.Run(gctx) })
	g.Go(func() error {
		err := w.edge.Run(gctx)
		return errors.Join(err, w.drain(gctx, deadline))
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

// drain is the pod's shutdown once the edge has drained (readiness failed,
// every session closed with 1001 so clients resume on another pod,
// receiving stopped, the subscription deleted: edge.Run's drain): the HTTP
// server stops (hijacked WebSockets are not its own any more; it waits for
// plain requests) by the deadline set when ctx ended. Clients and telemetry
// are closed after, by run, telemetry last.
func (w *wsEdge) drain(ctx context.Context, deadline <-chan time.Time) error {
	by := time.Now().Add(time.Second) // the edge stopped on its own: a component failed
	if ctx.Err() != nil {
		by = <-deadline
	}
	ctx, cancel := context.WithDeadline(context.Background(), by)
	defer cancel()
	if err := w.http.Shutdown(ctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
