// Package metrics declares the gateway's Prometheus metrics in one place, so
// their names and labels are documented together (README) and registered
// on a registry the caller owns (tests use a fresh one each).
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every collector the gateway updates.
type Metrics struct {
	// HTTPRequests counts REST requests by route template, method and status.
	HTTPRequests *prometheus.CounterVec
	// HTTPDuration observes REST latency by route template and method.
	HTTPDuration *prometheus.HistogramVec
	// HTTPInFlight is the number of API requests being served (probes and
	// scrapes excluded); graceful shutdown drains it to zero.
	HTTPInFlight prometheus.Gauge
	// GRPCRequests counts gRPC calls by method and status code.
	GRPCRequests *prometheus.CounterVec
	// GRPCDuration observes gRPC latency by method.
	GRPCDuration *prometheus.HistogramVec
	// PublishDuration observes ingress publishes until Pub/Sub confirmed
	// them, by result (ok, error).
	PublishDuration *prometheus.HistogramVec
	// RateLimited counts requests refused by the per-user limiter.
	RateLimited *prometheus.CounterVec
	// RateLimiterKeys is the number of users with a live token bucket.
	RateLimiterKeys prometheus.GaugeFunc
	// Signals counts POST /v1/signals by result (sent, bad, too_large,
	// rate_limited, unavailable).
	Signals *prometheus.CounterVec
	// PresenceReads counts GET /v1/presence by result (ok, error) and the
	// users answered (PresenceUsers).
	PresenceReads *prometheus.CounterVec
	PresenceUsers prometheus.Counter
}

const ns = "courier_api_gateway"

// New registers the gateway's metrics, plus the Go and process collectors,
// on reg. limiterKeys reports the rate limiter's size (may be nil).
func New(reg prometheus.Registerer, limiterKeys func() float64) *Metrics {
	if limiterKeys == nil {
		limiterKeys = func() float64 { return 0 }
	}
	// Latency buckets from 1ms to ~10s: publishes to Pub/Sub take tens of
	// milliseconds, inbox reads a few; the tail matters up to the timeout.
	buckets := prometheus.ExponentialBuckets(0.001, 2, 14)
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "http_requests_total",
			Help: "REST requests by route template, method and HTTP status code.",
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "http_request_duration_seconds",
			Help: "REST request latency by route template and method.", Buckets: buckets,
		}, []string{"route", "method"}),
		HTTPInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Name: "http_requests_in_flight",
			Help: "API requests being served (probes and scrapes excluded).",
		}),
		GRPCRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "grpc_requests_total",
			Help: "gRPC calls by full method and status code.",
		}, []string{"method", "code"}),
		GRPCDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "grpc_request_duration_seconds",
			Help: "gRPC call latency by full method.", Buckets: buckets,
		}, []string{"method"}),
		PublishDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "publish_duration_seconds",
			Help: "Time from publishing an envelope to the ingress topic until Pub/Sub confirmed it, by result.", Buckets: buckets,
		}, []string{"result"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "rate_limited_total",
			Help: "Requests refused by the per-user rate limit, by transport (http, grpc).",
		}, []string{"transport"}),
		RateLimiterKeys: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: ns, Name: "rate_limiter_users",
			Help: "Users with a live token bucket in the rate limiter.",
		}, limiterKeys),
		Signals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "signals_total",
			Help: "POST /v1/signals by result (sent, bad, too_large, rate_limited, unavailable).",
		}, []string{"result"}),
		PresenceReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "presence_reads_total",
			Help: "GET /v1/presence requests by result (ok, error).",
		}, []string{"result"}),
		PresenceUsers: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "presence_users_total",
			Help: "Users answered by GET /v1/presence.",
		}),
	}
	reg.MustRegister(m.HTTPRequests, m.HTTPDuration, m.HTTPInFlight, m.GRPCRequests, m.GRPCDuration,
		m.PublishDuration, m.RateLimited, m.RateLimiterKeys, m.Signals, m.PresenceReads, m.PresenceUsers,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Exported at 0 from the start, so the first refusal is an increase
	// rate() sees, and dashboards show zero rather than no data.
	for _, tr := range []string{"http", "grpc"} {
		m.RateLimited.WithLabelValues(tr)
	}
	for _, r := range []string{"sent", "bad", "too_large", "rate_limited", "unavailable"} {
		m.Signals.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error"} {
		m.PresenceReads.WithLabelValues(r)
	}
	return m
}
