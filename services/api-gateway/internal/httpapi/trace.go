package httpapi

import (
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/propagation"

	"github.com/courierhq/courier/pkg/telemetry"
)

// linkCaller links the request's server span (otelecho's, a new root: the
// caller's trace context is not trusted) to the caller's span, if its
// traceparent names one (pkg/telemetry, inbound.go).
func linkCaller(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Header.Get("traceparent") != "" {
			telemetry.LinkCaller(c.Request().Context(), propagation.HeaderCarrier(c.Request().Header))
		}
		return next(c)
	}
}
