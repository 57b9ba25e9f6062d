package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/courierhq/courier/pkg/auth"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
	"github.com/courierhq/courier/services/api-gateway/internal/authn"
)

const (
	ctxRequestID = "courier.request_id"
	ctxUser      = "courier.user"
)

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// requestID keeps a caller's X-Request-ID when it is well formed (so a
// client or a proxy can correlate), generates one otherwise, and echoes it
// in the response.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !requestIDPattern.MatchString(id) {
			var b [16]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// observe renders any error as a problem (so the status is final), then
// records the request's metrics and writes its access log line, which
// carries trace_id/span_id because it runs inside the otelecho span.
func (s *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		ctx := c.Request().Context()
		if s.cfg.Metrics != nil && !isInfra(c) {
			s.cfg.Metrics.HTTPInFlight.Inc()
			defer s.cfg.Metrics.HTTPInFlight.Dec()
		}
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		dur := time.Since(start)
		status := c.Response().Status
		route := c.Path()
		if !s.routes[route] {
			route = "unmatched" // keeps label cardinality bounded
		}
		method := c.Request().Method
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.HTTPRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
			s.cfg.Metrics.HTTPDuration.WithLabelValues(route, method).Observe(dur.Seconds())
		}
		level := slog.LevelInfo
		switch {
		case isInfra(c) && status < 500:
			level = slog.LevelDebug
		case status >= 500:
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("method", method),
			slog.String("route", route),
			slog.String("path", c.Request().URL.Path),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(dur.Microseconds())/1000),
			slog.Int64("bytes_out", c.Response().Size),
			slog.String("request_id", requestIDOf(c)),
			slog.String("remote_ip", c.RealIP()),
		}
		if u, ok := c.Get(ctxUser).(string); ok {
			attrs = append(attrs, slog.String("user", u))
		}
		if err != nil {
			e := toAPIError(err)
			attrs = append(attrs, slog.String("code", string(e.Code)))
			if e.Err != nil {
				attrs = append(attrs, slog.String("err", e.Err.Error()))
			}
		}
		s.cfg.Logger.LogAttrs(ctx, level, "http request", attrs...)
		return nil
	}
}

// recoverer turns a handler panic into a 500 with the stack in the log, so
// one bad request cannot take the process down.
func (s *server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r) // the client is gone; let net/http handle it
				}
				s.cfg.Logger.ErrorContext(c.Request().Context(), "panic in handler",
					"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = apierr.Wrap(apierr.Internal, fmt.Errorf("panic: %v", r), "internal error")
			}
		}()
		return next(c)
	}
}

// timeout bounds the request's work with a context deadline. Unlike echo's
// Timeout middleware it never writes from another goroutine: the handler
// sees its context expire, returns, and the error becomes a 503.
func (s *server) timeout(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
		defer cancel()
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

// authenticate requires a valid bearer token and records its user.
func (s *server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p, err := authn.Authenticate(s.cfg.Verifier, c.Request().Header.Get(echo.HeaderAuthorization))
		if err != nil {
			return err
		}
		c.Set(ctxUser, p.UserID)
		c.SetRequest(c.Request().WithContext(authn.WithPrincipal(c.Request().Context(), p)))
		return next(c)
	}
}

// rateLimit spends one token of the caller's bucket (shared with gRPC).
func (s *server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.Limiter == nil {
			return next(c)
		}
		user, _ := c.Get(ctxUser).(string)
		if ok, retry := s.cfg.Limiter.Allow(user); !ok {
			if s.cfg.Metrics != nil {
				s.cfg.Metrics.RateLimited.WithLabelValues("http").Inc()
			}
			return &apierr.Error{Code: apierr.RateLimited, RetryAfter: retry,
				Detail: fmt.Sprintf("too many requests; retry in %s", retrySeconds(retry)+"s")}
		}
		return next(c)
	}
}

// bodyLimit refuses a declared Content-Length above the cap at once and caps
// what the handler can read otherwise (chunked bodies).
func (s *server) bodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > s.cfg.MaxBodyBytes {
			return tooLarge(s.cfg.MaxBodyBytes)
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBodyBytes)
		return next(c)
	}
}

func tooLarge(limit int64) *apierr.Error {
	return apierr.New(apierr.PayloadTooLarge, "the request body exceeds %d bytes", limit)
}

func requestIDOf(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

func userOf(c echo.Context) auth.Principal {
	p, _ := authn.PrincipalFrom(c.Request().Context())
	return p
}

// retrySeconds renders d as whole seconds, rounded up, at least 1, as
// Retry-After wants.
func retrySeconds(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 || d < 0 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

var errNoRoute = errors.New("no such route")
