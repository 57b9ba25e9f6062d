// Package pipeline assembles the worker from its parts: the ingress
// receiver, the processor (policy), the attempts (commit and fan-out), the
// group commit over the Firestore store, and the publishers of the fan-out
// and dead-letter topics. main and the integration tests build the same
// thing through it.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/pipeline-worker/internal/attempt"
	"github.com/courierhq/courier/services/pipeline-worker/internal/batch"
	"github.com/courierhq/courier/services/pipeline-worker/internal/deadletter"
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
	Limits                 wire.Limits
	PublishDelay           time.Duration // WORKER_PUBLISH_DELAY: fan-out batching delay
	AckExtensionStep       time.Duration // WORKER_ACK_EXTENSION_STEP: bound of one lease extension
	TargetedRouting        bool          // WORKER_TARGETED_ROUTING: route deliveries by presence
	DrainTimeout           time.Duration // how long in-flight messages get at shutdown

	BatchMaxMessages int           // WORKER_BATCH_MAX_MESSAGES: messages per commit
	BatchMaxWrites   int           // WORKER_BATCH_MAX_WRITES: Firestore writes per commit
	BatchMaxBytes    int           // WORKER_BATCH_MAX_BYTES: commit request bytes
	BatchLinger      time.Duration // WORKER_BATCH_LINGER: wait for company when the committer is idle
	HeadCacheSize    int           // WORKER_HEAD_CACHE_SIZE: users whose inbox head is remembered
}

// SettingsFromEnv reads the settings; problems are recorded on e.
// shutdownTimeout is the process's whole shutdown budget (SHUTDOWN_TIMEOUT);
// draining gets most of it, the rest is for flushing publishers and spans.
func SettingsFromEnv(e *config.Env, shutdownTimeout time.Duration) Settings {
	s := Settings{
		Topology: topology.FromEnv(e),
		// Enough in hand for batches to fill while the previous ones
		// commit and publish (a sender's next messages arrive only after
		// its previous ones are acked).
		MaxOutstandingMessages: e.Int("WORKER_MAX_OUTSTANDING_MESSAGES", 1000, 1, 100000),
		MaxOutstandingBytes:    e.Int("WORKER_MAX_OUTSTANDING_BYTES", 64<<20, 1<<10, 1<<34),
		PullConcurrency:        e.Int("WORKER_PULL_CONCURRENCY", 4, 1, 64),
		PullTimeout:            e.Duration("WORKER_PULL_TIMEOUT", 5*time.Second, 2*time.Second),
		Retry: backoff.Policy{
			Initial: e.Duration("WORKER_RETRY_INITIAL", 200*time.Millisecond, time.Millisecond),
			Max:     e.Duration("WORKER_RETRY_MAX", 5*time.Second, time.Millisecond),
			Budget:  e.Duration("WORKER_RETRY_BUDGET", 30*time.Second, 0),
		},
		AttemptTimeout: e.Duration("WORKER_ATTEMPT_TIMEOUT", 10*time.Second, 100*time.Millisecond),
		Limits: wire.Limits{
			MaxEnvelopeBytes: e.Int("WORKER_MAX_ENVELOPE_BYTES", wire.DefaultMaxEnvelopeBytes, 1<<10, 10<<20),
			MaxPayloadBytes:  e.Int("WORKER_MAX_PAYLOAD_BYTES", 256<<10, 1, 1<<20),
			MaxRecipients:    e.Int("WORKER_MAX_RECIPIENTS", 100, 1, 1000),
		},
		PublishDelay:     e.Duration("WORKER_PUBLISH_DELAY", time.Millisecond, 0),
		AckExtensionStep: e.Duration("WORKER_ACK_EXTENSION_STEP", 15*time.Second, 10*time.Second),
		TargetedRouting:  e.Bool("WORKER_TARGETED_ROUTING", false),
		DrainTimeout:     max(shutdownTimeout-3*time.Second, shutdownTimeout/2),
		BatchMaxMessages: e.Int("WORKER_BATCH_MAX_MESSAGES", 200, 1, 10000),
		BatchMaxWrites:   e.Int("WORKER_BATCH_MAX_WRITES", 500, 1, 10000),
		// The emulator refuses gRPC requests over 4 MiB, GCP API requests
		// over 10 MiB: 3 MiB works on both (at 200-byte payloads that is
		// thousands of messages, far more than MaxMessages).
		BatchMaxBytes: e.Int("WORKER_BATCH_MAX_BYTES", 3<<20, 64<<10, 9<<20),
		BatchLinger:   e.Duration("WORKER_BATCH_LINGER", 2*time.Millisecond, 0),
		HeadCacheSize: e.Int("WORKER_HEAD_CACHE_SIZE", 100000, 0, 10000000),
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
	batches    *batch.Batcher
	deliveries *pubsub.Publisher
	deadLetter *pubsub.Publisher
}

// Committer returns the inbox committer the worker uses on store: its head
// cache sized by s, its Firestore requests counted in m.
func Committer(s Settings, store *inbox.Store, m *metrics.Metrics) *inbox.Committer {
	return store.NewCommitter(inbox.CommitterOptions{HeadCacheSize: s.HeadCacheSize, RoundTrip: m.RoundTrip})
}

// Router reads presence for targeted routing (presence.Table).
type Router = batch.Router

// New assembles the worker on ps, committing through committer (Committer
// in production; tests wrap it). router is used only with
// s.TargetedRouting.
func New(s Settings, ps *pubsub.Client, committer batch.Committer, router Router, m *metrics.Metrics, log *slog.Logger) *Pipeline {
	if !s.TargetedRouting {
		router = nil
	}
	deliveries := ps.Publisher(s.Topology.DeliveriesTopic)
	// Deliveries carry no ordering key (wire/delivery.go says why).
	deliveries.PublishSettings.DelayThreshold = s.PublishDelay
	dlTopic := ps.Publisher(s.Topology.DeadLetterTopic)

	batches := batch.New(batch.Config{
		MaxMessages: s.BatchMaxMessages, MaxWrites: s.BatchMaxWrites, MaxBytes: s.BatchMaxBytes,
		Linger: s.BatchLinger, Timeout: s.AttemptTimeout,
	}, committer, router, m, log)
	attempts := attempt.New(batches, func(out []pubsubx.Outgoing) []error { return pubsubx.PublishAll(deliveries, out) },
		router != nil, m, log)
	dl := deadletter.New(func(ctx context.Context, msg *pubsub.Message, courierID string) error {
		_, err := pubsubx.Publish(ctx, dlTopic, msg, courierID)
		return err
	}, s.Topology.IngressSubscription)
	proc := processor.New(processor.Config{
		Subscription:        s.Topology.IngressSubscription,
		MaxDeliveryAttempts: s.Topology.MaxDeliveryAttempts,
		Limits:              s.Limits,
		Retry:               s.Retry,
		AttemptTimeout:      s.AttemptTimeout,
	}, attempts, dl, m, log)
	recv := receiver.New(ps.SubscriptionAdminClient, proc, s.ReceiverConfig(), m, log)
	return &Pipeline{recv: recv, batches: batches, deliveries: deliveries, deadLetter: dlTopic}
}

// Run receives until ctx is done, drains, and flushes the publishers. The
// group commit runs until the receiver has drained: the messages finishing
// during the drain still need it.
func (p *Pipeline) Run(ctx context.Context) error {
	defer p.deadLetter.Stop()
	defer p.deliveries.Stop()
	bctx, stopBatches := context.WithCancel(context.WithoutCancel(ctx))
	var committer sync.WaitGroup
	committer.Go(func() { p.batches.Run(bctx) })
	defer committer.Wait()
	defer stopBatches()
	return p.recv.Run(ctx)
}
