// Package adminserver is the admin listener every service shares
// (ADMIN_ADDR, default :9464): Prometheus metrics at /metrics, and nothing
// else.
//
// It is a listener of its own, never the service's public HTTP port, so an
// Ingress or load balancer in front of the public port cannot expose the
// metrics (which name pods, subscriptions and error rates) to the internet;
// Prometheus scrapes the admin port of each pod directly, and the chart's
// NetworkPolicy admits only the monitoring namespace to it. Health probes
// (/healthz, /readyz) stay on the public port, where the kubelet and the
// load balancer's health checks look. pprof is the separate, opt-in
// DEBUG_ADDR (package debugserver).
package adminserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Env is the variable naming the admin address; DefaultAddr is its default,
// the one place it is set (a pod runs one service, so the three share it;
// `make run` gives each process its own).
const (
	Env         = "ADMIN_ADDR"
	DefaultAddr = ":9464"
	// PathMetrics is where the Prometheus exposition is served.
	PathMetrics = "/metrics"
)

// Server is a running admin listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Start binds addr at once (a taken port fails the service's start rather
// than leaving it unscrapeable) and serves g's metrics in the background
// until Close.
func Start(addr string, g prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	if addr == "" {
		return nil, fmt.Errorf("%s is empty: set a host:port for the metrics listener (default %s)", Env, DefaultAddr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", Env, addr, err)
	}
	s := &Server{ln: ln, srv: &http.Server{
		Handler:           Handler(g),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("admin listener stopped", "addr", addr, "err", err)
		}
	}()
	log.Info("admin listener started", "addr", ln.Addr().String(), "metrics", PathMetrics)
	return s, nil
}

// Addr is the bound address (host:port; the real port when addr ended in :0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the listener at once. Services close it last, after their
// drain, so the drain itself stays observable.
func (s *Server) Close() error { return s.srv.Close() }

// Handler serves GET /metrics from g on a mux of its own; every other path
// is 404.
func Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}
