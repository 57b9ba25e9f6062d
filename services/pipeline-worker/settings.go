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

// table is the worker's own variables, one row each: its default, its
// bounds and what it means. It is the only place a default lives: the
// README's table is generated from it (TestREADMEEnvironmentIsGenerated)
// and the chart's worker env is checked against it; cross-variable rules
// are in loadSettings below it. Shared variables: topology.FromEnv (topic
// and subscription names, INGRESS_*), telemetry (LOG_*, OTEL_*), documented
// in the root README.
var table = []config.Setting[settings]{
	str("HTTP_ADDR", ":8083", "`/healthz`, `/readyz` (started, not draining)", func(s *settings) *string { return &s.HTTPAddr }),
	str(adminserver.Env, adminserver.DefaultAddr, "admin listener: `/metrics` (with `courier_dependency_up{dependency}` from the background probe; `pkg/adminserver`), served until the drain ends", func(s *settings) *string { return &s.AdminAddr }),
	// Enough in hand for batches to fill while the previous ones commit
	// and publish (a sender's next messages arrive only after its previous
	// ones are acked).
	integer("WORKER_MAX_OUTSTANDING_MESSAGES", 1000, 1, 100000, "flow control: messages held at once (enough for batches to fill while earlier ones commit)", func(s *settings) *int { return &s.MaxOutstandingMessages }),
	integer("WORKER_MAX_OUTSTANDING_BYTES", 64<<20, 1<<10, 1<<34, "flow control: bytes held at once", func(s *settings) *int { return &s.MaxOutstandingBytes }),
	integer("WORKER_PULL_CONCURRENCY", 4, 1, 64, "`Pull` requests in flight at once", func(s *settings) *int { return &s.PullConcurrency }),
	duration("WORKER_PULL_TIMEOUT", 5*time.Second, 2*time.Second, "how long one `Pull` waits for messages; also the longest shutdown waits for Pulls in progress", func(s *settings) *time.Duration { return &s.PullTimeout }),
	// Short, so a dead worker's messages return within one step.
	duration("WORKER_ACK_EXTENSION_STEP", 15*time.Second, 10*time.Second, "length of each lease extension (≤ 10m, Pub/Sub's longest ack deadline): a dead worker's messages return within it", func(s *settings) *time.Duration { return &s.AckExtensionStep }),
	duration("WORKER_RETRY_INITIAL", 200*time.Millisecond, time.Millisecond, "first in-process retry wait (≤ `WORKER_RETRY_MAX`)", func(s *settings) *time.Duration { return &s.Retry.Initial }),
	duration("WORKER_RETRY_MAX", 5*time.Second, time.Millisecond, "cap on one wait", func(s *settings) *time.Duration { return &s.Retry.Max }),
	duration("WORKER_RETRY_BUDGET", 30*time.Second, 0, "total in-process retry time before nacking", func(s *settings) *time.Duration { return &s.Retry.Budget }),
	duration("WORKER_ATTEMPT_TIMEOUT", 10*time.Second, 100*time.Millisecond, "bound on one attempt (wait for the batch, commit, publish), on one batch's commit, and on a dead-letter publish", func(s *settings) *time.Duration { return &s.AttemptTimeout }),
	integer("WORKER_MAX_ENVELOPE_BYTES", wire.DefaultMaxEnvelopeBytes, 1<<10, 10<<20, "larger envelopes are dead-lettered `too_large`", func(s *settings) *int { return &s.Limits.MaxEnvelopeBytes }),
	integer("WORKER_MAX_PAYLOAD_BYTES", 256<<10, 1, 1<<20, "larger payloads are dead-lettered `too_large` (keep ≥ the gateway's cap)", func(s *settings) *int { return &s.Limits.MaxPayloadBytes }),
	integer("WORKER_MAX_RECIPIENTS", 100, 1, 1000, "more recipients are dead-lettered `invalid` (keep ≥ the gateway's cap)", func(s *settings) *int { return &s.Limits.MaxRecipients }),
	duration("WORKER_PUBLISH_DELAY", time.Millisecond, 0, "fan-out publisher batching delay", func(s *settings) *time.Duration { return &s.PublishDelay }),
	integer("WORKER_BATCH_MAX_MESSAGES", 200, 1, 10000, "group commit: most messages in one Firestore commit", func(s *settings) *int { return &s.BatchMaxMessages }),
	integer("WORKER_BATCH_MAX_WRITES", 500, 1, 10000, "group commit: most writes in one commit (one per recipient, the sender's copy and the message); a message with more is committed alone", func(s *settings) *int { return &s.BatchMaxWrites }),
	// The emulator refuses gRPC requests over 4 MiB, GCP API requests over
	// 10 MiB: 3 MiB works on both (at 200-byte payloads that is thousands
	// of messages, far more than WORKER_BATCH_MAX_MESSAGES).
	integer("WORKER_BATCH_MAX_BYTES", 3<<20, 64<<10, 9<<20, "group commit: most bytes of one commit request (Firestore allows 10 MiB, its emulator 4 MiB)", func(s *settings) *int { return &s.BatchMaxBytes }),
	duration("WORKER_BATCH_LINGER", 2*time.Millisecond, 0, "group commit: how long the oldest queued message waits for company when fewer than a full batch are queued", func(s *settings) *time.Duration { return &s.BatchLinger }),
	integer("WORKER_HEAD_CACHE_SIZE", 100000, 0, 10000000, "users whose inbox head the worker remembers between commits (0: read every head)", func(s *settings) *int { return &s.HeadCacheSize }),
	// Keep equal on the worker, the gateway and the edges: readers answer
	// cursor_expired behind it (docs/firestore.md).
	duration("INBOX_RETENTION", 0, 0, "how long inbox entries are kept: each entry gets `expire_at` (the Firestore TTL field, docs/deploy.md); `0` keeps them forever. Keep equal on the gateway and the edges, which answer `cursor_expired` behind it", func(s *settings) *time.Duration { return &s.Retention }),
	boolean("WORKER_TARGETED_ROUTING", false, "mark each delivery with the edge pods holding its recipients (`pkg/presence`; pair with `EDGE_TARGETED_ROUTING`)", func(s *settings) *bool { return &s.TargetedRouting }),
	boolean("NOTIFY_ENABLED", false, "offline-notification hook (`internal/notify`): after a message's delivery is published, one JSON event per recipient without a session anywhere goes to `NOTIFY_TOPIC` (`courier-notify`, created by `courierctl provision`)", func(s *settings) *bool { return &s.NotifyEnabled }),
	integer("NOTIFY_QUEUE", 10000, 1, 10_000_000, "published messages waiting for their notify events; full → dropped, counted in `courier_pipeline_worker_notify_events_total{result=\"dropped\"}` (the durable path never waits)", func(s *settings) *int { return &s.NotifyQueue }),
	// Edges beat every 10s (EDGE_HEARTBEAT_INTERVAL): three missed beats
	// and a margin.
	duration("PRESENCE_STALE_AFTER", 35*time.Second, time.Second, "a pod whose heartbeat is older holds nobody (`pkg/online`): its users count as offline for notify events", func(s *settings) *time.Duration { return &s.PresenceStaleAfter }),
	duration("SHUTDOWN_TIMEOUT", 25*time.Second, time.Second, "whole shutdown; in-flight messages get it minus 3 s", func(s *settings) *time.Duration { return &s.ShutdownTimeout }),
	str("DEBUG_ADDR", "", "debug listener: pprof and `/debug/memstats` (`pkg/debugserver`; root README: Configuration); unset = off", func(s *settings) *string { return &s.DebugAddr }),
}

func integer(name string, def, lo, hi int, doc string, field func(*settings) *int) config.Setting[settings] {
	return config.IntSetting(name, def, lo, hi, doc, func(s *settings, v int) { *field(s) = v })
}

var (
	duration = config.DurationSetting[settings]
	str      = config.StringSetting[settings]
	boolean  = config.BoolSetting[settings]
)

// loadSettings reads the environment; the error names every missing or
// malformed variable at once.
func loadSettings(e *config.Env) (settings, error) {
	s := settings{Topology: topology.FromEnv(e)}
	config.ReadTable(e, table, &s)
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

// markdownTable renders table as the README's configuration table.
func markdownTable() string { return config.Markdown(table) }

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
