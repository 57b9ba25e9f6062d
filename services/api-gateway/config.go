package main

import (
	"time"

	"github.com/courierhq/courier/pkg/adminserver"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/topology"

	"github.com/courierhq/courier/services/api-gateway/internal/authn"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
)

// settings is every knob of the gateway, each from one env variable.
type settings struct {
	HTTPAddr        string
	GRPCAddr        string
	AdminAddr       string
	Topology        topology.Config
	Auth            authn.Config
	Limits          messages.Limits
	MaxBodyBytes    int
	RequestTimeout  time.Duration
	ShutdownTimeout time.Duration
	PublishTimeout  time.Duration
	PublishMaxOut   int
	PublishDelay    time.Duration
	RatePerSecond   int
	RateBurst       int
	RateMaxUsers    int
	CORSOrigins     []string
	ReadyTimeout    time.Duration
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
		},
		MaxBodyBytes:    e.Int("MAX_BODY_BYTES", 256<<10, 1024, 9<<20),
		RequestTimeout:  e.Duration("REQUEST_TIMEOUT", 10*time.Second, 100*time.Millisecond),
		ShutdownTimeout: e.Duration("SHUTDOWN_TIMEOUT", 20*time.Second, time.Second),
		PublishTimeout:  e.Duration("PUBLISH_TIMEOUT", 5*time.Second, 100*time.Millisecond),
		PublishMaxOut:   e.Int("PUBLISH_MAX_OUTSTANDING", 1000, 1, 1_000_000),
		PublishDelay:    e.Duration("PUBLISH_DELAY_THRESHOLD", 5*time.Millisecond, time.Millisecond),
		RatePerSecond:   e.Int("RATE_LIMIT_PER_SECOND", 20, 1, 1_000_000),
		RateBurst:       e.Int("RATE_LIMIT_BURST", 40, 1, 1_000_000),
		RateMaxUsers:    e.Int("RATE_LIMIT_MAX_USERS", 100_000, 100, 10_000_000),
		CORSOrigins:     e.List("CORS_ALLOWED_ORIGINS", nil),
		ReadyTimeout:    e.Duration("READY_TIMEOUT", 2*time.Second, 100*time.Millisecond),
		// Metrics only, never behind the ingress (package adminserver).
		AdminAddr: e.String(adminserver.Env, adminserver.DefaultAddr),
	}
	if s.MaxBodyBytes < s.Limits.MaxPayloadBytes {
		e.Check("MAX_BODY_BYTES", errBodyBelowPayload)
	}
	return s, e.Err()
}

type settingsError string

func (e settingsError) Error() string { return string(e) }

const errBodyBelowPayload = settingsError("must be at least MAX_PAYLOAD_BYTES, or no payload of the allowed size could be sent")
