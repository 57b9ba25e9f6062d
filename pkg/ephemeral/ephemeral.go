// Package ephemeral publishes ephemeral events (wire.EncodeEphemeral: a
// frame for the live sessions of some users — a signal, a presence change,
// a receipt, a read marker) to the deliveries fan-out topic, fire and
// forget. The gateway, the worker and the edge use it.
//
// Publish never blocks its caller and never retries beyond the Pub/Sub
// client's own retries: an ephemeral event is worth something only now, and
// the caller is on a path (a request, a socket read, the worker's commit)
// that must not wait for it. What cannot be taken at once (more than
// MaxOutstanding events in flight) is dropped and counted; so is what
// Pub/Sub refuses. No ordering key: ephemeral events are not ordered with
// one another nor with messages.
package ephemeral

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/wire"
)

// Kinds are the event kinds Courier publishes (the metric label; any other
// valid kind is counted as "other").
var Kinds = []string{"signal", "presence", "receipt", "read"}

// KindLabel maps kind to its metric label: one of Kinds, or "other", so
// that what arrives from Pub/Sub cannot grow a metric's label set.
func KindLabel(kind string) string {
	for _, k := range Kinds {
		if k == kind {
			return k
		}
	}
	return "other"
}

// Options tune a Publisher.
type Options struct {
	// MaxOutstanding bounds the events handed to Pub/Sub and not yet
	// confirmed; beyond it Publish drops (default 1000).
	MaxOutstanding int
	// DelayThreshold is how long the Pub/Sub client batches before sending
	// (default 5ms: a signal is worth its latency).
	DelayThreshold time.Duration
	// Timeout bounds one publish, the client's retries included (default 10s).
	Timeout time.Duration
}

// Metrics are the publisher's counters, named <namespace>_ephemeral_*.
type Metrics struct {
	// Published counts events Pub/Sub confirmed, by kind.
	Published *prometheus.CounterVec
	// Dropped counts events not published, by kind and reason: queue_full
	// (MaxOutstanding in flight), invalid (refused by
	// wire.ValidateEphemeral), error (Pub/Sub failed or timed out),
	// stopped (published after Stop).
	Dropped *prometheus.CounterVec
}

// NewMetrics registers the publisher's metrics on reg as
// <namespace>_ephemeral_published_total and
// <namespace>_ephemeral_dropped_total.
func NewMetrics(reg prometheus.Registerer, namespace string) (*Metrics, error) {
	m := &Metrics{
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ephemeral_published_total",
			Help: "Ephemeral events (signals, presence, receipts, read markers) published to the fan-out topic, by kind.",
		}, []string{"kind"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "ephemeral_dropped_total",
			Help: "Ephemeral events not published, by kind and reason (queue_full, invalid, error, stopped).",
		}, []string{"kind", "reason"}),
	}
	for _, c := range []prometheus.Collector{m.Published, m.Dropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register ephemeral metrics: %w", err)
		}
	}
	// Exported at 0 from the start, so dashboards and alerts see zeros.
	for _, k := range Kinds {
		m.Published.WithLabelValues(k)
		for _, r := range []string{"queue_full", "invalid", "error", "stopped"} {
			m.Dropped.WithLabelValues(k, r)
		}
	}
	return m, nil
}

// Publisher publishes ephemeral events to one topic. Safe for concurrent use.
type Publisher struct {
	p     *pubsub.Publisher
	m     *Metrics
	log   *slog.Logger
	slots chan struct{}
	opts  Options

	mu      sync.RWMutex // guards stopped against in-flight Publish calls
	stopped bool
	wg      sync.WaitGroup
}

// New returns a Publisher on topic (an id or a full name) of client.
func New(client *pubsub.Client, topic string, o Options, m *Metrics, log *slog.Logger) *Publisher {
	if o.MaxOutstanding <= 0 {
		o.MaxOutstanding = 1000
	}
	if o.DelayThreshold <= 0 {
		o.DelayThreshold = 5 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	p := client.Publisher(topic)
	p.PublishSettings.DelayThreshold = o.DelayThreshold
	p.PublishSettings.Timeout = o.Timeout
	return &Publisher{p: p, m: m, log: log, slots: make(chan struct{}, o.MaxOutstanding), opts: o}
}

// Publish hands the event of frame for users to Pub/Sub and returns at once.
// It reports whether the event was taken; a false result was dropped and
// counted (the caller may tell its client, e.g. a signal's sender, or
// ignore it). The trace context of ctx rides along; ctx does not bound the
// publish (the caller has usually moved on by the time Pub/Sub confirms).
func (p *Publisher) Publish(ctx context.Context, users []string, kind string, frame []byte) bool {
	label := KindLabel(kind)
	msg, err := wire.EncodeEphemeral(wire.NewEphemeral(users, kind, frame, timestamppb.Now()))
	if err != nil {
		p.m.Dropped.WithLabelValues(label, "invalid").Inc()
		p.log.WarnContext(ctx, "dropping an invalid ephemeral event", "kind", kind, "err", err)
		return false
	}
	pubsubx.Inject(ctx, msg.Attributes)
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.stopped {
		p.m.Dropped.WithLabelValues(label, "stopped").Inc()
		return false
	}
	select {
	case p.slots <- struct{}{}:
	default:
		p.m.Dropped.WithLabelValues(label, "queue_full").Inc()
		return false
	}
	res := p.p.Publish(context.WithoutCancel(ctx), msg)
	p.wg.Go(func() {
		defer func() { <-p.slots }()
		// The client's own Timeout bounds this wait.
		if _, err := res.Get(context.Background()); err != nil {
			p.m.Dropped.WithLabelValues(label, "error").Inc()
			p.log.Warn("publish ephemeral event", "kind", kind, "err", err)
			return
		}
		p.m.Published.WithLabelValues(label).Inc()
	})
	return true
}

// Stop flushes the events in flight, waits for their confirmations (at
// most until ctx ends) and stops the publisher; later Publish calls drop.
func (p *Publisher) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.p.Stop()
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop ephemeral publisher: %w", ctx.Err())
	}
}
