// Package metrics holds the pipeline-worker's Prometheus collectors, all
// named courier_pipeline_worker_*.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/pipeline-worker/internal/classify"
)

// DeadLetterReasons are every reason the worker dead-letters with; their
// series exist from the start, so the first dead letter is an increase
// that rate() and the CourierDeadLettersArriving alert see (a counter born
// at 1 is not).
var DeadLetterReasons = []string{wire.ReasonUndecodable, wire.ReasonInvalid, wire.ReasonTooLarge,
	classify.ReasonRejected, classify.ReasonExhausted}

// NackReasons are every reason a message is handed back to Pub/Sub.
var NackReasons = []string{"retry_budget", "shutdown", "dead_letter_failed"}

const namespace = "courier_pipeline_worker"

// Metrics are the worker's collectors. A nil *Metrics is not allowed; tests
// use New with their own registry.
type Metrics struct {
	// Processed counts messages acked after success, by result: "stored"
	// (new), "duplicate" (already stored: nothing written, its delivery
	// published again).
	Processed *prometheus.CounterVec
	// Failures counts failed attempts by class (transient, permanent).
	Failures *prometheus.CounterVec
	// Retries counts in-process retries after a transient failure.
	Retries prometheus.Counter
	// Nacked counts messages handed back to Pub/Sub, by reason
	// ("retry_budget", "shutdown", "dead_letter_failed").
	Nacked *prometheus.CounterVec
	// DeadLettered counts messages the worker published to the dead-letter
	// topic, by reason.
	DeadLettered *prometheus.CounterVec
	// Duration is the time from receipt to ack/nack, by outcome ("ack",
	// "nack", "dead_letter").
	Duration *prometheus.HistogramVec
	// Age is how old a message is (since its publish) when processing starts:
	// the ingress backlog as the worker sees it.
	Age prometheus.Histogram
	// InFlight is the number of messages being processed.
	InFlight prometheus.Gauge
	// PullErrors counts Pull requests that failed (each is retried after a
	// backoff).
	PullErrors prometheus.Counter
	// Receiving is 1 while Pulls succeed, 0 from a failed Pull until the
	// next one succeeds (an alert, not readiness: see pkg/health).
	Receiving prometheus.Gauge
	// LeaseExtensions counts ack-deadline extensions of messages in hand;
	// LeaseErrors the extension requests that failed.
	LeaseExtensions prometheus.Counter
	LeaseErrors     prometheus.Counter
	// AckErrors counts ack and nack requests that failed after retries, by
	// kind ("ack", "nack"): those messages are redelivered.
	AckErrors *prometheus.CounterVec
	// Routing counts deliveries by targeted-routing result: "routed" (to
	// the pods holding recipients), "nowhere" (no recipient connected),
	// "unrouted" (presence unreadable: sent to every pod).
	Routing *prometheus.CounterVec
	// Notify counts offline-notification events (NOTIFY_ENABLED) by
	// result: "published", "dropped" (the bounded queue was full: the
	// durable path never waits for notifications), "error" (Pub/Sub or the
	// presence read failed), and the recipients "online" (no event).
	Notify *prometheus.CounterVec
	// FirestoreRoundTrips counts the Firestore requests of the commit path,
	// by op: "commit" (one per batch), "get_messages" (one batched read of a
	// batch's message documents), "read_head" (one user's inbox head),
	// "read_presence" (one batched read of a batch's presence records).
	FirestoreRoundTrips *prometheus.CounterVec
	// BatchMessages is the number of messages per committed batch.
	BatchMessages prometheus.Histogram
}

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "messages_processed_total",
			Help: "Ingress messages acked after success, by result (stored, duplicate).",
		}, []string{"result"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "failures_total",
			Help: "Failed processing attempts, by class (transient, permanent).",
		}, []string{"class"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "retries_total",
			Help: "In-process retries after a transient failure.",
		}),
		Nacked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "messages_nacked_total",
			Help: "Messages handed back to Pub/Sub for redelivery, by reason.",
		}, []string{"reason"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "messages_dead_lettered_total",
			Help: "Messages published to the dead-letter topic by the worker, by reason.",
		}, []string{"reason"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "processing_duration_seconds",
			Help:    "Time from receipt to ack, nack or dead letter, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"outcome"}),
		Age: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "message_age_seconds",
			Help:    "Age of an ingress message (since publish) when its processing starts.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "messages_in_flight",
			Help: "Messages being processed.",
		}),
		PullErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "pull_errors_total",
			Help: "Pull requests on the ingress subscription that failed (retried after a backoff).",
		}),
		Receiving: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "receiving",
			Help: "1 while Pulls on the ingress subscription succeed, 0 from a failed Pull until the next one succeeds.",
		}),
		LeaseExtensions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "lease_extensions_total",
			Help: "Ack-deadline extensions of messages in hand.",
		}),
		LeaseErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "lease_extension_errors_total",
			Help: "Ack-deadline extension requests that failed.",
		}),
		AckErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ack_errors_total",
			Help: "Ack or nack requests that failed after retries, by kind; those messages are redelivered.",
		}, []string{"kind"}),
		Routing: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "deliveries_routing_total",
			Help: "Deliveries by targeted-routing result (routed, nowhere, unrouted); only with WORKER_TARGETED_ROUTING.",
		}, []string{"result"}),
		Notify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "notify_events_total",
			Help: "Offline-notification events by result (published, dropped, error; online: a recipient with a session, no event); only with NOTIFY_ENABLED.",
		}, []string{"result"}),
		FirestoreRoundTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "firestore_round_trips_total",
			Help: "Firestore requests of the commit path, by op (commit, get_messages, read_head, read_presence).",
		}, []string{"op"}),
		BatchMessages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "batch_messages",
			Help:    "Messages per committed batch.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
	}
	reg.MustRegister(m.Processed, m.Failures, m.Retries, m.Nacked, m.DeadLettered, m.Duration, m.Age, m.InFlight,
		m.PullErrors, m.Receiving, m.LeaseExtensions, m.LeaseErrors, m.AckErrors, m.Routing, m.Notify, m.FirestoreRoundTrips, m.BatchMessages)
	// Pre-create the usual series so dashboards see zeros, not gaps.
	for _, r := range []string{"stored", "duplicate"} {
		m.Processed.WithLabelValues(r)
	}
	for _, r := range []string{"published", "dropped", "error", "online"} {
		m.Notify.WithLabelValues(r)
	}
	for _, op := range []string{"commit", "get_messages", "read_head", "read_presence"} {
		m.FirestoreRoundTrips.WithLabelValues(op)
	}
	for _, c := range []string{"transient", "permanent"} {
		m.Failures.WithLabelValues(c)
	}
	for _, k := range []string{"ack", "nack"} {
		m.AckErrors.WithLabelValues(k)
	}
	for _, r := range DeadLetterReasons {
		m.DeadLettered.WithLabelValues(r)
	}
	for _, r := range NackReasons {
		m.Nacked.WithLabelValues(r)
	}
	return m
}

// RoundTrip counts one Firestore request of kind op
// (inbox.CommitterOptions.RoundTrip).
func (m *Metrics) RoundTrip(op string) { m.FirestoreRoundTrips.WithLabelValues(op).Inc() }
