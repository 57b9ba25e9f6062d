package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// Problem is the error body (RFC 9457 problem details) with Courier's
// stable machine code.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Detail    string `json:"detail"`
	RequestID string `json:"request_id,omitempty"`
}

// ProblemType is the problem "type" URI of code.
func ProblemType(code apierr.Code) string { return "urn:courier:problem:" + string(code) }

// MediaTypeProblem is the Content-Type of error responses.
const MediaTypeProblem = "application/problem+json"

// toAPIError maps any error a handler or echo itself produced to a code:
// echo's route-not-found, method-not-allowed and the like get the same
// shape as ours.
func toAPIError(err error) *apierr.Error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(mbe.Limit)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return apierr.Wrap(apierr.NotFound, errNoRoute, "no such resource")
		case http.StatusMethodNotAllowed:
			return apierr.Wrap(apierr.MethodNotAllowed, err, "method not allowed on this resource")
		case http.StatusRequestEntityTooLarge:
			return apierr.Wrap(apierr.PayloadTooLarge, err, "the request body is too large")
		case http.StatusUnsupportedMediaType:
			return apierr.Wrap(apierr.UnsupportedMediaType, err, "unsupported media type")
		case http.StatusUnauthorized:
			return apierr.Wrap(apierr.Unauthenticated, err, "authentication required")
		case http.StatusTooManyRequests:
			return apierr.Wrap(apierr.RateLimited, err, "too many requests")
		case http.StatusServiceUnavailable:
			return apierr.Wrap(apierr.Unavailable, err, "service unavailable")
		}
		if he.Code >= 400 && he.Code < 500 {
			return apierr.Wrap(apierr.InvalidRequest, err, http.StatusText(he.Code))
		}
		return apierr.Wrap(apierr.Internal, err, "internal error")
	}
	return apierr.From(err)
}

// handleError is echo's HTTPErrorHandler: every error leaves as
// application/problem+json.
func (s *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	e := toAPIError(err)
	status := apierr.HTTPStatus(e.Code)
	h := c.Response().Header()
	switch e.Code {
	case apierr.Unauthenticated:
		// RFC 6750 §3: name the error only when a token was presented.
		v := `Bearer realm="courier"`
		if e.InvalidToken {
			v += `, error="invalid_token"`
		}
		h.Set(echo.HeaderWWWAuthenticate, v)
	case apierr.RateLimited, apierr.RecipientRateLimited, apierr.SignalRateLimited:
		h.Set(echo.HeaderRetryAfter, retrySeconds(e.RetryAfter))
	case apierr.Unavailable:
		h.Set(echo.HeaderRetryAfter, "1")
	}
	body, _ := json.Marshal(Problem{
		Type: ProblemType(e.Code), Title: apierr.Title(e.Code), Status: status,
		Code: string(e.Code), Detail: e.Detail, RequestID: requestIDOf(c),
	})
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	h.Set(echo.HeaderContentType, MediaTypeProblem)
	h.Set("Cache-Control", "no-store")
	c.Response().WriteHeader(status)
	_, _ = c.Response().Write(append(body, '\n'))
}
