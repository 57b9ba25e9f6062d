// Package httpapi is the gateway's REST face (echo v4): routes, the
// middleware chain (request id, tracing, access log and metrics, recover,
// CORS, timeout, auth, rate limit, body limit), problem+json errors, and the
// thin handlers over the messages core.
package httpapi

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"

	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/pkg/telemetry"

	"github.com/courierhq/courier/services/api-gateway/internal/transport"
)

// Config is everything the REST server needs.
type Config struct {
	transport.Config
	// Ready are the /readyz checks (e.g. pubsub, firestore).
	Ready        map[string]health.Check
	ReadyTimeout time.Duration // READY_TIMEOUT
	// MaxBodyBytes caps a request body (MAX_BODY_BYTES).
	MaxBodyBytes int64
	// CORSOrigins are the browser origins allowed to call the API; empty
	// disables CORS.
	CORSOrigins []string
	// OpenAPI is served at /v1/openapi.yaml.
	OpenAPI []byte
	// Signals, when set, serves POST /v1/signals; SignalLimiter bounds each
	// user's signals (SIGNAL_RATE, SIGNAL_BURST).
	Signals       Signals
	SignalLimiter ratelimit.Allower
	// Presence, when set, serves GET /v1/presence.
	Presence Presence
}

// Routes that need no token. /metrics is not among them: it is served on
// the admin listener (ADMIN_ADDR, package adminserver), never on this public
// port.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathOpenAPI = "/v1/openapi.yaml"
)

type server struct {
	cfg    Config
	routes map[string]bool
}

// New returns the echo instance serving the REST API; run it with an
// http.Server of the caller's own (echo's Start is not used, so the caller
// controls listeners and shutdown).
func New(cfg Config) *echo.Echo {
	// The binary sets every field (settings.go); these fallbacks keep the
	// partial configs of tests safe, where zero would refuse every body
	// or fail every readiness check.
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 256 << 10
	}
	cfg.Config = cfg.Config.Safe()
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	s := &server{cfg: cfg, routes: map[string]bool{}}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = echo.ExtractIPFromXFFHeader()

	e.Use(requestID)
	// Clients are outside Courier: their traceparent is only linked and
	// their baggage dropped (telemetry.Untrusted).
	e.Use(otelecho.Middleware("api-gateway", otelecho.WithSkipper(isInfra), otelecho.WithPropagators(telemetry.Untrusted)))
	e.Use(linkCaller)
	e.Use(s.observe)
	e.Use(s.recoverer)
	if len(cfg.CORSOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:  cfg.CORSOrigins,
			AllowMethods:  []string{http.MethodGet, http.MethodPost},
			AllowHeaders:  []string{echo.HeaderAuthorization, echo.HeaderContentType, "Idempotency-Key", echo.HeaderXRequestID},
			ExposeHeaders: []string{echo.HeaderXRequestID, echo.HeaderRetryAfter, echo.HeaderLocation, echo.HeaderWWWAuthenticate},
			MaxAge:        600,
		}))
	}
	e.Use(s.timeout)

	api := []echo.MiddlewareFunc{s.authenticate, s.rateLimit}
	e.POST("/v1/messages", s.send, append(api, s.bodyLimit)...)
	e.GET("/v1/messages", s.list, api...)
	e.GET("/v1/messages/:id", s.get, api...)
	e.POST("/v1/messages/:id/ack", s.ack, append(api, s.bodyLimit)...)
	e.GET("/v1/conversations", s.listConversations, api...)
	e.GET("/v1/conversations/:id/messages", s.conversationMessages, api...)
	e.POST("/v1/conversations/:id/read", s.markRead, append(api, s.bodyLimit)...)
	if cfg.Presence != nil {
		e.GET("/v1/presence", s.presence, api...)
	}
	if cfg.Signals != nil {
		e.POST("/v1/signals", s.sendSignal, append(api, s.bodyLimit)...)
	}

	e.GET(PathOpenAPI, s.openapi)
	e.GET(PathHealthz, echo.WrapHandler(http.HandlerFunc(health.Live)))
	e.GET(PathReadyz, echo.WrapHandler(health.Ready(cfg.Ready, cfg.ReadyTimeout)))
	for _, r := range e.Routes() {
		s.routes[r.Path] = true
	}
	return e
}

// isInfra skips tracing for probes, which would drown the interesting
// traces.
func isInfra(c echo.Context) bool {
	switch c.Path() {
	case PathHealthz, PathReadyz:
		return true
	}
	return false
}

func (s *server) openapi(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", s.cfg.OpenAPI)
}
