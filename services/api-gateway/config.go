package main

import (
	"fmt"
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
	Topology       topology.Config
	Auth           authn.Config
	Limits         messages.Limits
	MaxBodyBytes   int
	RequestTimeout time.Duration
	// The HTTP server's own bounds, beside RequestTimeout (which bounds a
	// handler): reading a request whole, writing its answer, keeping an
	// idle keep-alive connection.
	HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout time.Duration
	ShutdownTimeout                                    time.Duration
	PublishTimeout                                     time.Duration
	PublishMaxOut                                      int
	PublishDelay                                       time.Duration
	RatePerSecond                                      int
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

// loadSettings reads the environment; the error names every missing or
// malformed variable at once.
func loadSettings(e *config.Env) (settings, error) {
	s := settings{
		HTTPAddr: e.String("HTTP_ADDR", ":8080"),
		GRPCAddr: e.String("GRPC_ADDR", ":9090"),
		Topology: topology.FromEnv(e),
		Auth:     authn.ConfigFromEnv(e),
		Limits: messages.Limits{
			MaxRecipients:   e.Int("MAX_RECIPIENTS", 100, 1, 1000),
			MaxPayloadBytes: e.Int("MAX_PAYLOAD_BYTES", 64<<10, 1, 8<<20),
			DefaultPageSize: 50,
			MaxPageSize:     200,
			MaxPageBytes:    e.Int("MAX_PAGE_BYTES", inbox.DefaultPageBytes, 4<<10, 16<<20),
			// Keep at most the worker's WORKER_MAX_ENVELOPE_BYTES.
			MaxEnvelopeBytes: e.Int("MAX_ENVELOPE_BYTES", wire.DefaultMaxEnvelopeBytes, 1<<10, 10<<20),
		},
		MaxBodyBytes:   e.Int("MAX_BODY_BYTES", 256<<10, 1024, 9<<20),
		RequestTimeout: e.Duration("REQUEST_TIMEOUT", 10*time.Second, 100*time.Millisecond),
		// A 256 KiB body arrives in well under 30 s on any phone; a client
		// dripping it slower holds a connection and a goroutine for nothing.
		HTTPReadTimeout: e.Duration("HTTP_READ_TIMEOUT", 30*time.Second, time.Second),
		// Above REQUEST_TIMEOUT, so a handler cut by its own timeout still
		// writes its 503; an inbox page (MAX_PAGE_BYTES) is written well
		// within it to any client that reads.
		HTTPWriteTimeout: e.Duration("HTTP_WRITE_TIMEOUT", 30*time.Second, time.Second),
		HTTPIdleTimeout:  e.Duration("HTTP_IDLE_TIMEOUT", 2*time.Minute, time.Second),
		ShutdownTimeout:  e.Duration("SHUTDOWN_TIMEOUT", 20*time.Second, time.Second),
		PublishTimeout:   e.Duration("PUBLISH_TIMEOUT", 5*time.Second, 100*time.Millisecond),
		PublishMaxOut:    e.Int("PUBLISH_MAX_OUTSTANDING", 1000, 1, 1_000_000),
		PublishDelay:     e.Duration("PUBLISH_DELAY_THRESHOLD", 5*time.Millisecond, time.Millisecond),
		RatePerSecond:    e.Int("RATE_LIMIT_PER_SECOND", 20, 1, 1_000_000),
		RateBurst:        e.Int("RATE_LIMIT_BURST", 40, 1, 1_000_000),
		RateMaxUsers:     e.Int("RATE_LIMIT_MAX_USERS", 100_000, 100, 10_000_000),
		// 2 MiB/s stored per sender, bursts of 16 MiB: far above a person's
		// chat (a 1 KiB message to a 1,000-member group stores ~1.3 MiB),
		// far below what 20 requests/s of 64 KiB × 100 recipients would
		// make Firestore write (128 MiB/s).
		StoredKiBPerSecond: e.Int("RATE_LIMIT_STORED_KIB_PER_SECOND", 2048, 1, 1<<30),
		StoredKiBBurst:     e.Int("RATE_LIMIT_STORED_KIB_BURST", 16384, 1, 1<<30),
		InboundPerSecond:   e.Int("RATE_LIMIT_INBOUND_PER_SECOND", 50, 1, 1_000_000),
		InboundBurst:       e.Int("RATE_LIMIT_INBOUND_BURST", 200, 1, 1_000_000),
		CORSOrigins:        e.List("CORS_ALLOWED_ORIGINS", nil),
		ReadyTimeout:       e.Duration("READY_TIMEOUT", 2*time.Second, 100*time.Millisecond),
		// Metrics only, never behind the ingress (package adminserver).
		AdminAddr: e.String(adminserver.Env, adminserver.DefaultAddr),
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

type settingsError string

func (e settingsError) Error() string { return string(e) }

const errBodyBelowPayload = settingsError("must be at least MAX_PAYLOAD_BYTES, or no payload of the allowed size could be sent")
