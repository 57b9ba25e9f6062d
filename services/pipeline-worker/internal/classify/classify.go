// Package classify decides, once and in one place, whether a failed attempt
// at processing a message is worth retrying (transient) or never will
// succeed (permanent, with the reason that goes on the dead letter).
package classify

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Class of a failure.
type Class int

const (
	Transient Class = iota
	Permanent
)

func (c Class) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "transient"
}

// Dead-letter reasons decided here (envelope validation brings its own).
const (
	// ReasonRejected: a dependency refused the request itself (invalid
	// argument, oversized publish), so a retry would be refused again.
	ReasonRejected = "rejected"
	// ReasonExhausted: transient failures on the last delivery attempt.
	ReasonExhausted = "exhausted"
)

// Reasoned is implemented by errors that are permanent by construction
// (a rejected envelope) and know their dead-letter reason.
type Reasoned interface {
	DeadLetterReason() string
}

// PanicError is a recovered panic. It is transient: a panic is a bug or a
// corrupt state in this process, and another attempt (maybe on another pod,
// maybe after a fix) may succeed; the delivery-attempt limit still bounds it.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }

// Classify returns the class of err and, for a permanent one, its reason.
// Anything it does not recognise is transient: retrying a permanent failure
// costs a few attempts and ends on the dead-letter topic anyway, while
// dead-lettering a transient one loses a message until someone replays it.
func Classify(err error) (Class, string) {
	if err == nil {
		return Transient, ""
	}
	var r Reasoned
	if errors.As(err, &r) {
		return Permanent, r.DeadLetterReason()
	}
	var p *PanicError
	if errors.As(err, &p) {
		return Transient, ""
	}
	if errors.Is(err, pubsub.ErrOversizedMessage) {
		return Permanent, ReasonRejected
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Transient, ""
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.InvalidArgument, codes.OutOfRange:
			// The request itself is wrong (e.g. a document over 1 MiB).
			return Permanent, ReasonRejected
		default:
			// Unavailable, DeadlineExceeded, Aborted (contention),
			// ResourceExhausted, Internal, Unknown: the service's state.
			// NotFound, PermissionDenied, FailedPrecondition: a missing
			// topic, a missing grant or index, i.e. our configuration,
			// which an operator fixes; the message itself is fine.
			return Transient, ""
		}
	}
	return Transient, ""
}
