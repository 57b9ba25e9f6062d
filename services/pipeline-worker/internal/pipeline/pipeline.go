// Package pipeline assembles the worker from its parts: the ingress
// receiver, the processor, the Firestore store, and the publishers of the
// fan-out and dead-letter topics. main and the integration tests build the
// same thing through it.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/services/pipeline-worker/internal/backoff"
	"github.com/courierhq/courier/services/pipeline-worker/internal/deadletter"
	"github.com/courierhq/courier/services/pipeline-worker/internal/envelope"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
	"github.com/courierhq/courier/services/pipeline-worker/internal/processor"
	"github.com/courierhq/courier/services/pipeline-worker/internal/receiver"
)

// Settings are the worker's tunables; every one has an environment variable.
type Settings struct {
	Topology topology.Config

	MaxOutstandingMessages int            // WORKER_MAX_OUTSTANDING_MESSAGES
	MaxOutstandingBytes    int            // WORKER_MAX_OUTSTANDING_BYTES
	PullConcurrency        int            // WORKER_PULL_CONCURRENCY: Pull requests in flight at once
	PullTimeout            time.Duration  // WORKER_PULL_TIMEOUT: how long one Pull waits for messages
	Retry                  backoff.Policy // WORKER_RETRY_INITIAL, _MAX, _BUDGET
	AttemptTimeout         time.Duration  // WORKER_ATTEMPT_TIMEOUT
	Limits                 envelope.Limits
	PublishDelay           time.Duration // WORKER_PUBLISH_DELAY: fan-out batching delay
	AckExtensionStep       time.Duration // WORKER_ACK_EXTENSION_STEP: bound of one lease extension
	TargetedRouting        bool          // WORKER_TARGETED_ROUTING: route deliveries by presence
	DrainTimeout           time.Duration // how long in-flight messages get at shutdown
}

// SettingsFromEnv reads the settings; problems are recorded on e.
// shutdownTimeout is the process's whole shutdown budget (SHUTDOWN_TIMEOUT);
// draining gets most of it, the rest is for flushing publishers and spans.
func SettingsFromEnv(e *config.Env, shutdownTimeout time.Duration) Settings {
	s := Settings{
		Topology:               topology.FromEnv(e),
		MaxOutstandingMessages: e.Int("WORKER_MAX_OUTSTANDING_MESSAGES", 100, 1, 100000),
		MaxOutstandingBytes:    e.Int("WORKER_MAX_OUTSTANDING_BYTES", 64<<20, 1<<10, 1<<34),
		PullConcurrency:        e.Int("WORKER_PULL_CONCURRENCY", 4, 1, 64),
		PullTimeout:            e.Duration("WORKER_PULL_TIMEOUT", 5*time.Second, 2*time.Second),
		Retry: backoff.Policy{
			Initial: e.Duration("WORKER_RETRY_INITIAL", 200*time.Millisecond, time.Millisecond),
			Max:     e.Duration("WORKER_RETRY_MAX", 5*time.Second, time.Millisecond),
			Budget:  e.Duration("WORKER_RETRY_BUDGET", 30*time.Second, 0),
		},
		AttemptTimeout: e.Duration("WORKER_ATTEMPT_TIMEOUT", 10*time.Second, 100*time.Millisecond),
		Limits: envelope.Limits{
			MaxEnvelopeBytes: e.Int("WORKER_MAX_ENVELOPE_BYTES", 1<<20, 1<<10, 10<<20),
			MaxPayloadBytes:  e.Int("WORKER_MAX_PAYLOAD_BYTES", 256<<10, 1, 1<<20),
			MaxRecipients:    e.Int("WORKER_MAX_RECIPIENTS", 100, 1, 249),
		},
		PublishDelay:     e.Duration("WORKER_PUBLISH_DELAY", time.Millisecond, 0),
		AckExtensionStep: e.Duration("WORKER_ACK_EXTENSION_STEP", 15*time.Second, 10*time.Second),
		TargetedRouting:  e.Bool("WORKER_TARGETED_ROUTING", false),
		DrainTimeout:     max(shutdownTimeout-3*time.Second, shutdownTimeout/2),
	}
	if s.AckExtensionStep > 10*time.Minute {
		// Pub/Sub's longest ack deadline.
		e.Check("WORKER_ACK_EXTENSION_STEP", fmt.Errorf("%s exceeds Pub/Sub's maximum ack deadline of 10m", s.AckExtensionStep))
	}
	if s.Retry.Initial > s.Retry.Max {
		e.Check("WORKER_RETRY_INITIAL", fmt.Errorf("%s exceeds WORKER_RETRY_MAX %s", s.Retry.Initial, s.Retry.Max))
	}
	return s
}

// ReceiverConfig is the receive loop's configuration.
func (s Settings) ReceiverConfig() receiver.Config {
	return receiver.Config{
		Subscription:           s.Topology.SubscriptionPath(s.Topology.IngressSubscription),
		MaxOutstandingMessages: s.MaxOutstandingMessages,
		MaxOutstandingBytes:    s.MaxOutstandingBytes,
		Pullers:                s.PullConcurrency,
		PullTimeout:            s.PullTimeout,
		AckDeadline:            s.Topology.IngressAckDeadline,
		// Each extension is short, so the leases of a worker that dies
		// (SIGKILL, OOM, node loss) expire within one step and another
		// worker gets its messages (and, on the ordered subscription,
		// every later message of their senders, which waits behind them).
		ExtensionStep: s.AckExtensionStep,
		// Far beyond the in-process retry budget: only a stuck handler
		// reaches it.
		MaxExtension: max(10*time.Minute, 4*s.Retry.Budget),
		DrainTimeout: s.DrainTimeout,
		Restart:      backoff.Policy{Initial: time.Second, Max: 30 * time.Second},
	}
}

// Pipeline is the assembled worker.
type Pipeline struct {
	recv       *receiver.Receiver
	deliveries *pubsub.Publisher
	deadLetter *pubsub.Publisher
}

// New assembles the worker on ps and store. router is used only with
// s.TargetedRouting.
func New(s Settings, ps *pubsub.Client, store processor.Store, router processor.Router, m *metrics.Metrics, log *slog.Logger) *Pipeline {
	if !s.TargetedRouting {
		router = nil
	}
	deliveries := ps.Publisher(s.Topology.DeliveriesTopic)
	// Deliveries carry the sender as ordering key (see
	// processor.DeliveryMessage); the client needs ordering enabled for it.
	deliveries.EnableMessageOrdering = true
	deliveries.PublishSettings.DelayThreshold = s.PublishDelay
	dlTopic := ps.Publisher(s.Topology.DeadLetterTopic)

	dl := deadletter.New(publishTo(dlTopic), s.Topology.IngressSubscription)
	proc := processor.New(processor.Config{
		Subscription:        s.Topology.IngressSubscription,
		MaxDeliveryAttempts: s.Topology.MaxDeliveryAttempts,
		Limits:              s.Limits,
		Retry:               s.Retry,
		AttemptTimeout:      s.AttemptTimeout,
		Router:              router,
	}, store, publishTo(deliveries), dl, m, log)
	recv := receiver.New(ps.SubscriptionAdminClient, proc, s.ReceiverConfig(), m, log)
	return &Pipeline{recv: recv, deliveries: deliveries, deadLetter: dlTopic}
}

func publishTo(p *pubsub.Publisher) func(context.Context, *pubsub.Message, string) error {
	return func(ctx context.Context, msg *pubsub.Message, courierID string) error {
		_, err := pubsubx.Publish(ctx, p, msg, courierID)
		return err
	}
}

// Run receives until ctx is done, drains, and flushes the publishers.
func (p *Pipeline) Run(ctx context.Context) error {
	defer p.deadLetter.Stop()
	defer p.deliveries.Stop()
	return p.recv.Run(ctx)
}

// Check is the readiness check of the receive loop.
func (p *Pipeline) Check(ctx context.Context) error { return p.recv.Check(ctx) }
