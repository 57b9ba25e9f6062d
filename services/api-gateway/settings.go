package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"

	"github.com/courierhq/courier/services/api-gateway/internal/authn"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
)

// settings is every knob of the gateway, each from one env variable.
type settings struct {
	HTTPAddr       string
	GRPCAddr       string
	AdminAddr      string
	DebugAddr      string
	Topology       topology.Config // shared variables (pkg/topology, root README)
	Auth           authn.Config    // shared variables (pkg/auth, root README)
	Limits         messages.Limits
	MaxBodyBytes   int
	RequestTimeout time.Duration
	// InboxRetention is INBOX_RETENTION: cursors behind it answer 410.
	InboxRetention time.Duration
	// The HTTP server's own bounds, beside RequestTimeout (which bounds a
	// handler): reading a request whole, writing its answer, keeping an
	// idle keep-alive connection.
	HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout time.Duration
	ShutdownTimeout                                    time.Duration
	PublishTimeout                                     time.Duration
	PublishMaxOut                                      int
	PublishDelay                                       time.Duration
	RatePerSecond                                      int
	SignalPerSecond, SignalBurst                       int
	PresenceStaleAfter                                 time.Duration
	RateBurst                                          int
	RateMaxUsers                                       int
	// Sends weighted by cost (messages.Budgets).
	StoredKiBPerSecond int
	StoredKiBBurst     int
	InboundPerSecond   int
	InboundBurst       int
	CORSOrigins        []string
	ReadyTimeout       time.Duration
}

// The inbox page sizes are the API's contract (docs/openapi.yaml), not a
// deployment's choice, so they have no variable.
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

// setting is one row of the gateway's own configuration: its variable, its
// default as the README shows it, its bounds, what it means, and how it is
// read into settings. The table is the only place a default lives; the
// README's table is generated from it (TestREADMEEnvironmentIsGenerated).
type setting struct {
	name, def, bounds, doc string
	read                   func(e *config.Env, s *settings)
}

func intSetting(name string, def, lo, hi int, doc string, field func(*settings) *int) setting {
	return setting{name, "`" + strconv.Itoa(def) + "`", fmt.Sprintf("%d–%d", lo, hi), doc,
		func(e *config.Env, s *settings) { *field(s) = e.Int(name, def, lo, hi) }}
}

func durationSetting(name string, def, lo time.Duration, doc string, field func(*settings) *time.Duration) setting {
	return setting{name, "`" + shortDuration(def) + "`", "≥ " + shortDuration(lo), doc,
		func(e *config.Env, s *settings) { *field(s) = e.Duration(name, def, lo) }}
}

func stringSetting(name, def, doc string, field func(*settings) *string) setting {
	shown := "unset"
	if def != "" {
		shown = "`" + def + "`"
	}
	return setting{name, shown, "", doc, func(e *config.Env, s *settings) { *field(s) = e.String(name, def) }}
}

// shortDuration writes d as an operator would: 2m, not 2m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// table is the gateway's own variables; cross-variable rules are in
// loadSettings below it.
var table = []setting{
	stringSetting("HTTP_ADDR", ":8080", "REST listen address (API, `/healthz`, `/readyz`; no `/metrics`)", func(s *settings) *string { return &s.HTTPAddr }),
	stringSetting("GRPC_ADDR", ":9090", "gRPC listen address", func(s *settings) *string { return &s.GRPCAddr }),
	// Metrics only, never behind the ingress (package adminserver).
	stringSetting(adminserver.Env, adminserver.DefaultAddr, "admin listener: Prometheus `/metrics` only (`pkg/adminserver`), never behind the ingress", func(s *settings) *string { return &s.AdminAddr }),
	stringSetting("DEBUG_ADDR", "", "debug listener: pprof and `/debug/memstats` (`pkg/debugserver`; root README: Configuration); unset = off", func(s *settings) *string { return &s.DebugAddr }),
	intSetting("MAX_RECIPIENTS", 100, 1, 1000, "recipients per message", func(s *settings) *int { return &s.Limits.MaxRecipients }),
	intSetting("MAX_PAYLOAD_BYTES", 64<<10, 1, 8<<20, "compacted payload", func(s *settings) *int { return &s.Limits.MaxPayloadBytes }),
	intSetting("MAX_BODY_BYTES", 256<<10, 1024, 9<<20, "whole request body (also gRPC max receive size); ≥ `MAX_PAYLOAD_BYTES`", func(s *settings) *int { return &s.MaxBodyBytes }),
	intSetting("MAX_PAGE_BYTES", inbox.DefaultPageBytes, 4<<10, 16<<20, "byte bound of an inbox page (REST and gRPC); `has_more` says more may follow", func(s *settings) *int { return &s.Limits.MaxPageBytes }),
	intSetting("MAX_ENVELOPE_BYTES", wire.DefaultMaxEnvelopeBytes, 1<<10, 10<<20, "encoded envelope; keep ≤ the worker's `WORKER_MAX_ENVELOPE_BYTES`. Larger, or payload × (recipients + 1) above one Firestore commit: 413 `message_too_large`", func(s *settings) *int { return &s.Limits.MaxEnvelopeBytes }),
	durationSetting("INBOX_RETENTION", 0, 0, "how long inbox entries are kept (keep equal to the worker's); a cursor behind it answers 410 `cursor_expired`; `0` = forever", func(s *settings) *time.Duration { return &s.InboxRetention }),
	durationSetting("REQUEST_TIMEOUT", 10*time.Second, 100*time.Millisecond, "per request (REST and gRPC)", func(s *settings) *time.Duration { return &s.RequestTimeout }),
	// A 256 KiB body arrives in well under 30 s on any phone; a client
	// dripping it slower holds a connection and a goroutine for nothing.
	durationSetting("HTTP_READ_TIMEOUT", 30*time.Second, time.Second, "the HTTP server's bound on reading a request", func(s *settings) *time.Duration { return &s.HTTPReadTimeout }),
	// Above REQUEST_TIMEOUT, so a handler cut by its own timeout still
	// writes its 503; an inbox page (MAX_PAGE_BYTES) is written well
	// within it to any client that reads.
	durationSetting("HTTP_WRITE_TIMEOUT", 30*time.Second, time.Second, "the HTTP server's bound on writing an answer; must exceed `REQUEST_TIMEOUT`", func(s *settings) *time.Duration { return &s.HTTPWriteTimeout }),
	durationSetting("HTTP_IDLE_TIMEOUT", 2*time.Minute, time.Second, "an idle keep-alive connection is closed after it", func(s *settings) *time.Duration { return &s.HTTPIdleTimeout }),
	durationSetting("PUBLISH_TIMEOUT", 5*time.Second, 100*time.Millisecond, "wait for Pub/Sub's confirmation, then 503", func(s *settings) *time.Duration { return &s.PublishTimeout }),
	intSetting("PUBLISH_MAX_OUTSTANDING", 1000, 1, 1_000_000, "unconfirmed publishes before new ones fail fast with 503", func(s *settings) *int { return &s.PublishMaxOut }),
	durationSetting("PUBLISH_DELAY_THRESHOLD", 5*time.Millisecond, time.Millisecond, "publisher batching delay (each send waits for it)", func(s *settings) *time.Duration { return &s.PublishDelay }),
	intSetting("RATE_LIMIT_PER_SECOND", 20, 1, 1_000_000, "per-user sustained rate of requests", func(s *settings) *int { return &s.RatePerSecond }),
	intSetting("RATE_LIMIT_BURST", 40, 1, 1_000_000, "per-user burst of requests", func(s *settings) *int { return &s.RateBurst }),
	durationSetting("PRESENCE_STALE_AFTER", 35*time.Second, time.Second, "GET /v1/presence: a pod whose heartbeat is older holds nobody (edges beat every `EDGE_HEARTBEAT_INTERVAL`, 10s)", func(s *settings) *time.Duration { return &s.PresenceStaleAfter }),
	intSetting("SIGNAL_RATE", 5, 1, 1_000_000, "per-user signals per second on POST /v1/signals, per gateway pod; over it 429 `signal_rate_limited`", func(s *settings) *int { return &s.SignalPerSecond }),
	intSetting("SIGNAL_BURST", 10, 1, 1_000_000, "burst of the above", func(s *settings) *int { return &s.SignalBurst }),
	intSetting("RATE_LIMIT_MAX_USERS", 100_000, 100, 10_000_000, "bound of each limiter's map", func(s *settings) *int { return &s.RateMaxUsers }),
	// 2 MiB/s stored per sender, bursts of 16 MiB: far above a person's
	// chat (a 1 KiB message to a 1,000-member group stores ~1.3 MiB), far
	// below what 20 requests/s of 64 KiB × 100 recipients would make
	// Firestore write (128 MiB/s).
	intSetting("RATE_LIMIT_STORED_KIB_PER_SECOND", 2048, 1, 1<<30, "per sender: KiB its sends store, (payload + 256 B) × (recipients + 1) each; over it 429 `rate_limited`", func(s *settings) *int { return &s.StoredKiBPerSecond }),
	intSetting("RATE_LIMIT_STORED_KIB_BURST", 16384, 1, 1<<30, "burst of the above; must hold the largest message one commit may store (≥ 9,217)", func(s *settings) *int { return &s.StoredKiBBurst }),
	intSetting("RATE_LIMIT_INBOUND_PER_SECOND", 50, 1, 1_000_000, "per recipient, per gateway pod: messages it receives from anyone; over it 429 `recipient_rate_limited` (the send is refused whole)", func(s *settings) *int { return &s.InboundPerSecond }),
	intSetting("RATE_LIMIT_INBOUND_BURST", 200, 1, 1_000_000, "burst of the above", func(s *settings) *int { return &s.InboundBurst }),
	{"CORS_ALLOWED_ORIGINS", "unset (no CORS)", "", "comma list, e.g. the ws-edge demo client `http://localhost:8081`",
		func(e *config.Env, s *settings) { s.CORSOrigins = e.List("CORS_ALLOWED_ORIGINS", nil) }},
	durationSetting("READY_TIMEOUT", 2*time.Second, 100*time.Millisecond, "per dependency check of the background probe (every 10 s)", func(s *settings) *time.Duration { return &s.ReadyTimeout }),
	durationSetting("SHUTDOWN_TIMEOUT", 20*time.Second, time.Second, "drain deadline", func(s *settings) *time.Duration { return &s.ShutdownTimeout }),
}

// loadSettings reads the environment; the error names every missing or
// malformed variable at once.
func loadSettings(e *config.Env) (settings, error) {
	s := settings{
		Topology: topology.FromEnv(e),
		Auth:     authn.ConfigFromEnv(e),
		Limits:   messages.Limits{DefaultPageSize: defaultPageSize, MaxPageSize: maxPageSize},
	}
	for _, v := range table {
		v.read(e, &s)
	}
	if s.MaxBodyBytes < s.Limits.MaxPayloadBytes {
		e.Check("MAX_BODY_BYTES", errBodyBelowPayload)
	}
	if s.HTTPWriteTimeout <= s.RequestTimeout {
		e.Check("HTTP_WRITE_TIMEOUT", fmt.Errorf("must exceed REQUEST_TIMEOUT (%s), or a timed-out request could not be answered", s.RequestTimeout))
	}
	if largest := int(messages.StoredKiB(wire.MaxCommitBytes, 0)); s.StoredKiBBurst < largest {
		e.Check("RATE_LIMIT_STORED_KIB_BURST", fmt.Errorf("must be at least %d, the cost of the largest message one commit may store, or such a message could never be sent", largest))
	}
	return s, e.Err()
}

// markdownTable renders table as the README's configuration table.
func markdownTable() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Bounds | Meaning |\n|---|---|---|---|\n")
	for _, v := range table {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", v.name, v.def, v.bounds, v.doc)
	}
	return b.String()
}

type settingsError string

func (e settingsError) Error() string { return string(e) }

const errBodyBelowPayload = settingsError("must be at least MAX_PAYLOAD_BYTES, or no payload of the allowed size could be sent")
