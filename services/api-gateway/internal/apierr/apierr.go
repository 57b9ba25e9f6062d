// Package apierr is the gateway's error vocabulary: a stable machine code per
// kind of failure, shared by the core and both transports, so REST (problem
// JSON) and gRPC (status codes) report the same thing the same way.
package apierr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Code is a stable, documented machine code; clients branch on it.
type Code string

// The codes clients can see. docs/openapi.yaml lists them; keep both in sync.
const (
	InvalidRequest       Code = "invalid_request"
	Unauthenticated      Code = "unauthenticated"
	NotFound             Code = "not_found"
	MethodNotAllowed     Code = "method_not_allowed"
	PayloadTooLarge      Code = "payload_too_large"
	UnsupportedMediaType Code = "unsupported_media_type"
	RateLimited          Code = "rate_limited"
	// MessageTooLarge: the payload fits its own limit, but copied into every
	// recipient's inbox it exceeds what one Firestore commit may hold.
	MessageTooLarge Code = "message_too_large"
	// RecipientRateLimited: a recipient's inbound budget is spent (many
	// senders at once); the send is refused whole, retry later.
	RecipientRateLimited Code = "recipient_rate_limited"
	Unavailable          Code = "unavailable"
	Internal             Code = "internal"
	// IdempotencyKeyReused: the sender's Idempotency-Key already names a
	// message with other content (409).
	IdempotencyKeyReused Code = "idempotency_key_reused"
	// BadConversation: conversation_id is not a valid id, or names a
	// derived conversation ("d." prefix, reserved) (400).
	BadConversation Code = "bad_conversation"
	// CursorExpired: the cursor points behind what INBOX_RETENTION keeps
	// (410); reload the newest page and continue from there.
	CursorExpired Code = "cursor_expired"
	// Signals (POST /v1/signals; the WebSocket answers the same codes in
	// error frames): invalid (400), over 1 KiB (413), over the caller's
	// signal rate (429).
	BadSignal         Code = "bad_signal"
	SignalTooLarge    Code = "signal_too_large"
	SignalRateLimited Code = "signal_rate_limited"
	// TooManyUsers: GET /v1/presence asked for more than 100 users (400).
	TooManyUsers Code = "too_many_users"
)

// Codes lists every code, for tests and documentation checks.
var Codes = []Code{InvalidRequest, Unauthenticated, NotFound, MethodNotAllowed, PayloadTooLarge,
	UnsupportedMediaType, RateLimited, MessageTooLarge, RecipientRateLimited, Unavailable, Internal, IdempotencyKeyReused,
	BadConversation, CursorExpired, BadSignal, SignalTooLarge, SignalRateLimited, TooManyUsers}

// Error is a failure with its code and a message safe to show the caller.
// Err, when set, is the underlying cause: logged, never shown.
type Error struct {
	Code   Code
	Detail string
	Err    error
	// RetryAfter, for RateLimited, is when the caller may try again.
	RetryAfter time.Duration
	// InvalidToken marks an Unauthenticated error caused by a token that was
	// presented but refused (as opposed to no token at all); RFC 6750 wants
	// error="invalid_token" in WWW-Authenticate only then.
	InvalidToken bool
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error with code and a formatted detail.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with code and detail whose cause is err.
func Wrap(code Code, err error, detail string) *Error {
	return &Error{Code: code, Detail: detail, Err: err}
}

// From classifies any error: an *Error keeps its code; a context deadline or
// cancellation, or a dependency answering Unavailable / DeadlineExceeded /
// ResourceExhausted / Aborted, is Unavailable (worth retrying); anything
// else is Internal with a generic detail, so internals never leak.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Wrap(Unavailable, err, "the request timed out; retry later")
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Canceled:
			return Wrap(Unavailable, err, "a dependency is unavailable; retry later")
		}
	}
	return Wrap(Internal, err, "internal error")
}

// HTTPStatus is the HTTP status of code.
func HTTPStatus(code Code) int {
	switch code {
	case InvalidRequest, BadConversation, BadSignal, TooManyUsers:
		return 400
	case CursorExpired:
		return 410
	case Unauthenticated:
		return 401
	case NotFound:
		return 404
	case MethodNotAllowed:
		return 405
	case PayloadTooLarge, MessageTooLarge, SignalTooLarge:
		return 413
	case UnsupportedMediaType:
		return 415
	case RateLimited, RecipientRateLimited, SignalRateLimited:
		return 429
	case IdempotencyKeyReused:
		return 409
	case Unavailable:
		return 503
	default:
		return 500
	}
}

// Title is the short human summary of code (problem+json "title").
func Title(code Code) string {
	switch code {
	case InvalidRequest:
		return "Invalid request"
	case Unauthenticated:
		return "Authentication required"
	case NotFound:
		return "Not found"
	case MethodNotAllowed:
		return "Method not allowed"
	case PayloadTooLarge:
		return "Payload too large"
	case UnsupportedMediaType:
		return "Unsupported media type"
	case RateLimited:
		return "Too many requests"
	case MessageTooLarge:
		return "Message too large for its recipients"
	case RecipientRateLimited:
		return "A recipient receives too much"
	case IdempotencyKeyReused:
		return "Idempotency key reused"
	case BadConversation:
		return "Invalid conversation id"
	case CursorExpired:
		return "Cursor expired"
	case BadSignal:
		return "Invalid signal"
	case SignalTooLarge:
		return "Signal too large"
	case SignalRateLimited:
		return "Too many signals"
	case TooManyUsers:
		return "Too many users"
	case Unavailable:
		return "Service unavailable"
	default:
		return "Internal error"
	}
}

// GRPCCode is the gRPC status code of code. A too large payload is
// InvalidArgument (as Google APIs answer for oversized requests); gRPC itself
// answers ResourceExhausted for a message above the server's receive limit.
func GRPCCode(code Code) codes.Code {
	switch code {
	case InvalidRequest, PayloadTooLarge, MessageTooLarge, UnsupportedMediaType, BadConversation, BadSignal, SignalTooLarge, TooManyUsers:
		return codes.InvalidArgument
	case CursorExpired:
		return codes.OutOfRange
	case Unauthenticated:
		return codes.Unauthenticated
	case NotFound:
		return codes.NotFound
	case MethodNotAllowed:
		return codes.Unimplemented
	case RateLimited, RecipientRateLimited, SignalRateLimited:
		return codes.ResourceExhausted
	case IdempotencyKeyReused:
		return codes.AlreadyExists
	case Unavailable:
		return codes.Unavailable
	default:
		return codes.Internal
	}
}
