package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/courierhq/courier/pkg/signal"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// Signals sends ephemeral signals (signal.Sender): published on the
// fan-out topic, never through ingress or Firestore.
type Signals interface {
	Send(ctx context.Context, from string, r signal.Request) error
}

// signalLabels are the signals_total results of pkg/signal's codes.
var signalLabels = map[string]string{
	signal.CodeBad: "bad", signal.CodeTooLarge: "too_large", signal.CodeRateLimited: "rate_limited", signal.CodeUnavailable: "unavailable",
}

// signalCodes maps pkg/signal's codes to the gateway's.
var signalCodes = map[string]apierr.Code{
	signal.CodeBad:         apierr.BadSignal,
	signal.CodeTooLarge:    apierr.SignalTooLarge,
	signal.CodeRateLimited: apierr.SignalRateLimited,
	signal.CodeUnavailable: apierr.Unavailable,
}

// sendSignal is POST /v1/signals: {"to":[…]|"conversation_id", "kind",
// "data"?} → 202 with no body worth reading. At most once: a refused or
// lost signal is not retried by the gateway.
func (s *server) sendSignal(c echo.Context) error {
	r := c.Request()
	if err := CheckJSONContentType(r.Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	user := userOf(c).UserID
	if s.cfg.SignalLimiter != nil {
		if ok, retry := s.cfg.SignalLimiter.Allow(user); !ok {
			s.countSignal("rate_limited")
			return &apierr.Error{Code: apierr.SignalRateLimited, RetryAfter: retry,
				Detail: fmt.Sprintf("too many signals; retry in %ss", retrySeconds(retry))}
		}
	}
	// Read one byte past the limit to tell "too large" from "just fits".
	body, err := io.ReadAll(io.LimitReader(r.Body, signal.MaxBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.countSignal("too_large")
			return apierr.New(apierr.SignalTooLarge, "a signal is at most %d bytes", signal.MaxBytes)
		}
		return apierr.Wrap(apierr.InvalidRequest, err, "could not read the request body")
	}
	req, err := signal.Parse(body)
	if err == nil {
		err = s.cfg.Signals.Send(r.Context(), user, req)
	}
	var se *signal.Error
	switch {
	case err == nil:
		s.countSignal("sent")
		return c.JSON(http.StatusAccepted, struct {
			Status string `json:"status"`
		}{"accepted"})
	case errors.As(err, &se):
		s.countSignal(signalLabels[se.Code])
		return &apierr.Error{Code: signalCodes[se.Code], Detail: se.Message, Err: se.Err}
	default:
		s.countSignal("unavailable")
		return apierr.From(err)
	}
}

func (s *server) countSignal(result string) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Signals.WithLabelValues(result).Inc()
	}
}
