package main

import (
	"fmt"
	"time"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"

	"github.com/courierhq/courier/services/pipeline-worker/internal/batch"
	"github.com/courierhq/courier/services/pipeline-worker/internal/handler"
	"github.com/courierhq/courier/services/pipeline-worker/internal/receiver"
)

// settings is every knob of the worker, each from one env variable. This
// file is the only place a default lives: the packages validate what they
// are given and fill in nothing.
type settings struct {
	HTTPAddr        string        // HTTP_ADDR: /healthz, /readyz
	AdminAddr       string        // ADMIN_ADDR: /metrics
	DebugAddr       string        // DEBUG_ADDR: pprof, memstats (off when empty)
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT: the whole shutdown
	DrainTimeout    time.Duration // what in-flight messages get of it
	Topology        topology.Config

	MaxOutstandingMessages int            // WORKER_MAX_OUTSTANDING_MESSAGES
	MaxOutstandingBytes    int            // WORKER_MAX_OUTSTANDING_BYTES
	PullConcurrency        int            // WORKER_PULL_CONCURRENCY: Pull requests in flight at once
	PullTimeout            time.Duration  // WORKER_PULL_TIMEOUT: how long one Pull waits for messages
	AckExtensionStep       time.Duration  // WORKER_ACK_EXTENSION_STEP: bound of one lease extension
	Retry                  backoff.Policy // WORKER_RETRY_INITIAL, _MAX, _BUDGET
	AttemptTimeout         time.Duration  // WORKER_ATTEMPT_TIMEOUT
	Limits                 wire.Limits    // WORKER_MAX_ENVELOPE_BYTES, _PAYLOAD_BYTES, _RECIPIENTS
	PublishDelay           time.Duration  // WORKER_PUBLISH_DELAY: fan-out batching delay
	TargetedRouting        bool           // WORKER_TARGETED_ROUTING: route deliveries by presence
	NotifyEnabled          bool           // NOTIFY_ENABLED: offline-notification events (internal/notify)
	NotifyQueue            int            // NOTIFY_QUEUE: messages waiting for their events
	PresenceStaleAfter     time.Duration  // PRESENCE_STALE_AFTER: a pod beating less recently holds nobody

	BatchMaxMessages int           // WORKER_BATCH_MAX_MESSAGES: messages per commit
	BatchMaxWrites   int           // WORKER_BATCH_MAX_WRITES: Firestore writes per commit
	BatchMaxBytes    int           // WORKER_BATCH_MAX_BYTES: commit request bytes
	BatchLinger      time.Duration // WORKER_BATCH_LINGER: wait for company when the committer is idle
	Retention        time.Duration // INBOX_RETENTION: inbox entries' expire_at (0: kept forever)
	HeadCacheSize    int           // WORKER_HEAD_CACHE_SIZE: users whose inbox head is remembered
}

// loadSettings reads the environment; the error names every missing or
// malformed variable at once. Shared ones: topology.FromEnv (topic and
// subscription names, INGRESS_*), telemetry (LOG_*, OTEL_*).
func loadSettings(e *config.Env) (settings, error) {
	s := settings{
		HTTPAddr:        e.String("HTTP_ADDR", ":8083"),
		AdminAddr:       e.String(adminserver.Env, adminserver.DefaultAddr),
		DebugAddr:       e.String("DEBUG_ADDR", ""),
		ShutdownTimeout: e.Duration("SHUTDOWN_TIMEOUT", 25*time.Second, time.Second),
		Topology:        topology.FromEnv(e),
		// Enough in hand for batches to fill while the previous ones
		// commit and publish (a sender's next messages arrive only after
		// its previous ones are acked).
		MaxOutstandingMessages: e.Int("WORKER_MAX_OUTSTANDING_MESSAGES", 1000, 1, 100000),
		MaxOutstandingBytes:    e.Int("WORKER_MAX_OUTSTANDING_BYTES", 64<<20, 1<<10, 1<<34),
		PullConcurrency:        e.Int("WORKER_PULL_CONCURRENCY", 4, 1, 64),
		PullTimeout:            e.Duration("WORKER_PULL_TIMEOUT", 5*time.Second, 2*time.Second),
		// Short, so a dead worker's messages return within one step.
		AckExtensionStep: e.Duration("WORKER_ACK_EXTENSION_STEP", 15*time.Second, 10*time.Second),
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
		PublishDelay:    e.Duration("WORKER_PUBLISH_DELAY", time.Millisecond, 0),
		TargetedRouting: e.Bool("WORKER_TARGETED_ROUTING", false),
		NotifyEnabled:   e.Bool("NOTIFY_ENABLED", false),
		NotifyQueue:     e.Int("NOTIFY_QUEUE", 10000, 1, 10_000_000),
		// Edges beat every 10s (EDGE_HEARTBEAT_INTERVAL): three missed
		// beats and a margin.
		PresenceStaleAfter: e.Duration("PRESENCE_STALE_AFTER", 35*time.Second, time.Second),
		BatchMaxMessages:   e.Int("WORKER_BATCH_MAX_MESSAGES", 200, 1, 10000),
		BatchMaxWrites:     e.Int("WORKER_BATCH_MAX_WRITES", 500, 1, 10000),
		// The emulator refuses gRPC requests over 4 MiB, GCP API requests
		// over 10 MiB: 3 MiB works on both (at 200-byte payloads that is
		// thousands of messages, far more than MaxMessages).
		BatchMaxBytes: e.Int("WORKER_BATCH_MAX_BYTES", 3<<20, 64<<10, 9<<20),
		BatchLinger:   e.Duration("WORKER_BATCH_LINGER", 2*time.Millisecond, 0),
		HeadCacheSize: e.Int("WORKER_HEAD_CACHE_SIZE", 100000, 0, 10000000),
		// Keep equal on the worker, the gateway and the edges: readers
		// answer cursor_expired behind it (docs/firestore.md).
		Retention: e.Duration("INBOX_RETENTION", 0, 0),
	}
	// Draining gets most of the shutdown; the rest is for flushing
	// publishers and spans.
	s.DrainTimeout = max(s.ShutdownTimeout-3*time.Second, s.ShutdownTimeout/2)
	if s.AckExtensionStep > 10*time.Minute {
		// Pub/Sub's longest ack deadline.
		e.Check("WORKER_ACK_EXTENSION_STEP", fmt.Errorf("%s exceeds Pub/Sub's maximum ack deadline of 10m", s.AckExtensionStep))
	}
	if s.Retry.Initial > s.Retry.Max {
		e.Check("WORKER_RETRY_INITIAL", fmt.Errorf("%s exceeds WORKER_RETRY_MAX %s", s.Retry.Initial, s.Retry.Max))
	}
	return s, e.Err()
}

// receiverConfig is the receive loop's configuration.
func (s settings) receiverConfig() receiver.Config {
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

// batchConfig is the group commit's configuration.
func (s settings) batchConfig() batch.Config {
	return batch.Config{MaxMessages: s.BatchMaxMessages, MaxWrites: s.BatchMaxWrites, MaxBytes: s.BatchMaxBytes,
		Linger: s.BatchLinger, Timeout: s.AttemptTimeout}
}

// handlerConfig is the policies' configuration.
func (s settings) handlerConfig() handler.Config {
	return handler.Config{Subscription: s.Topology.IngressSubscription, MaxDeliveryAttempts: s.Topology.MaxDeliveryAttempts,
		Limits: s.Limits, Retry: s.Retry, AttemptTimeout: s.AttemptTimeout}
}
