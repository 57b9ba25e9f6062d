// Package metrics declares the edge's Prometheus metrics in one place, on a
// registry the caller provides, so several edges in one test process do not
// collide on the default registry.
package metrics

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the edge's collectors; every name starts with courier_ws_edge_.
type Metrics struct {
	// Sessions is the number of open WebSocket sessions on this pod.
	Sessions prometheus.Gauge
	// Connects counts accepted WebSocket sessions.
	Connects prometheus.Counter
	// Rejected counts upgrade requests refused before the upgrade, by reason
	// (unauthorized, origin, bad_cursor, user_limit, pod_limit, draining,
	// presence).
	Rejected *prometheus.CounterVec
	// Disconnects counts ended sessions by WebSocket close code.
	Disconnects *prometheus.CounterVec
	// Received counts deliveries pulled from this pod's subscription.
	Received prometheus.Counter
	// Queued counts frames queued on sessions by fan-out (a delivery to a
	// user with two local sessions queues two).
	Queued prometheus.Counter
	// Written counts message frames written to sockets, by source (live,
	// replay: resume or gap fill from Firestore).
	Written *prometheus.CounterVec
	// Dropped counts deliveries not written, by reason (no_local_session,
	// bad_data, duplicate, session_closed, routed_elsewhere).
	Dropped *prometheus.CounterVec
	// QueueOverflows counts sessions closed because their send queue was full.
	QueueOverflows prometheus.Counter
	// DeliveryLatency is the time from the message's sent_at (gateway
	// acceptance) to the socket write of a live delivery.
	DeliveryLatency prometheus.Histogram
	// BadFrames counts malformed or unknown client frames.
	BadFrames prometheus.Counter
	// Acks counts client ack frames by result (ok, not_found, error).
	Acks *prometheus.CounterVec
	// ReceiveErrors counts Receive calls that ended with an error (each is
	// retried after a backoff).
	ReceiveErrors prometheus.Counter
	// RoutedElsewhere counts deliveries received although targeted routing
	// sent them to other pods only (the pod then drops them). On GCP the
	// subscription filter keeps them away (it stays 0); the emulator applies
	// no filter, so there it measures what the filter saves.
	RoutedElsewhere prometheus.Counter
}

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	const ns = "courier_ws_edge_"
	m := &Metrics{
		Sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "sessions", Help: "Open WebSocket sessions."}),
		Connects: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "connects_total", Help: "Accepted WebSocket sessions."}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "rejected_total", Help: "WebSocket upgrade requests refused before the upgrade, by reason.",
		}, []string{"reason"}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "disconnects_total", Help: "Ended sessions by WebSocket close code.",
		}, []string{"code"}),
		Received: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "deliveries_received_total", Help: "Deliveries pulled from this pod's subscription."}),
		Queued:   prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "frames_queued_total", Help: "Frames queued on sessions by fan-out."}),
		Written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "deliveries_written_total", Help: "Message frames written to sockets, by source (live, replay).",
		}, []string{"source"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ns + "deliveries_dropped_total", Help: "Deliveries or frames not written, by reason.",
		}, []string{"reason"}),
		QueueOverflows: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "queue_overflows_total", Help: "Sessions closed with 1008 because their send queue was full."}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    ns + "delivery_latency_seconds",
			Help:    "From the message's sent_at to the socket write of a live delivery.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		BadFrames:     prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "bad_frames_total", Help: "Malformed or unknown client frames."}),
		Acks:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "acks_total", Help: "Client ack frames by result."}, []string{"result"}),
		ReceiveErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "receive_errors_total", Help: "Subscription Receive calls that failed and were retried."}),
		RoutedElsewhere: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "deliveries_routed_elsewhere_total",
			Help: "Deliveries received although targeted routing sent them to other pods only (a subscription filter keeps them away on GCP)."}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.Sessions, m.Connects, m.Rejected, m.Disconnects, m.Received,
		m.Queued, m.Written, m.Dropped, m.QueueOverflows, m.DeliveryLatency, m.BadFrames, m.Acks, m.ReceiveErrors, m.RoutedElsewhere} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

// Discard returns metrics registered nowhere, for unit tests.
func Discard() *Metrics {
	m, _ := New(prometheus.NewRegistry())
	return m
}

// Disconnect counts one ended session with its close code.
func (m *Metrics) Disconnect(code int) {
	m.Disconnects.WithLabelValues(strconv.Itoa(code)).Inc()
}
