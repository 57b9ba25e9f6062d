// Package transport holds what the gateway's two faces, REST (httpapi) and
// gRPC (grpcapi), share: the core they adapt and what guards and watches
// each request. Both configs embed Config, so a dependency added to one
// transport is added to both.
package transport

import (
	"log/slog"
	"time"

	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/services/api-gateway/internal/authn"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
	"github.com/courierhq/courier/services/api-gateway/internal/metrics"
)

// Config is the part of httpapi.Config and grpcapi.Config they have in
// common.
type Config struct {
	Service  *messages.Service
	Verifier authn.Verifier
	Limiter  ratelimit.Allower // nil: no per-user limit
	Metrics  *metrics.Metrics  // nil: not measured
	Logger   *slog.Logger      // nil: slog.Default()
	// RequestTimeout bounds each request's work (REQUEST_TIMEOUT).
	RequestTimeout time.Duration
}

// testRequestTimeout stands in for a zero RequestTimeout. The binary
// always sets it (settings.go, REQUEST_TIMEOUT); the fallback exists
// because tests build servers from partial configs, and a zero timeout
// would fail every request at once.
const testRequestTimeout = 10 * time.Second

// Safe returns c with its zero fields made safe to serve with.
func (c Config) Safe() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = testRequestTimeout
	}
	return c
}
