package classify

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/pkg/wire"
)

func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("commit message m1: %w", err) }
	for _, tc := range []struct {
		name   string
		err    error
		class  Class
		reason string
	}{
		{"nil", nil, Transient, ""},
		{"undecodable envelope", &wire.EnvelopeError{Reason: wire.ReasonUndecodable, Err: errors.New("x")}, Permanent, "undecodable"},
		{"invalid envelope, wrapped", wrap(&wire.EnvelopeError{Reason: wire.ReasonInvalid, Err: errors.New("x")}), Permanent, "invalid"},
		{"too large envelope", &wire.EnvelopeError{Reason: wire.ReasonTooLarge, Err: errors.New("x")}, Permanent, "too_large"},
		{"firestore unavailable", wrap(status.Error(codes.Unavailable, "connection refused")), Transient, ""},
		{"deadline", wrap(status.Error(codes.DeadlineExceeded, "slow")), Transient, ""},
		{"contention", wrap(status.Error(codes.Aborted, "too much contention")), Transient, ""},
		{"quota", wrap(status.Error(codes.ResourceExhausted, "quota")), Transient, ""},
		{"internal", wrap(status.Error(codes.Internal, "oops")), Transient, ""},
		{"topic missing", wrap(status.Error(codes.NotFound, "topic")), Transient, ""},
		{"permission", wrap(status.Error(codes.PermissionDenied, "iam")), Transient, ""},
		{"index missing", wrap(status.Error(codes.FailedPrecondition, "index")), Transient, ""},
		{"invalid argument", wrap(status.Error(codes.InvalidArgument, "document too big")), Permanent, "rejected"},
		{"out of range", wrap(status.Error(codes.OutOfRange, "x")), Permanent, "rejected"},
		{"oversized publish", wrap(pubsub.ErrOversizedMessage), Permanent, "rejected"},
		{"context deadline", wrap(context.DeadlineExceeded), Transient, ""},
		{"context canceled", wrap(context.Canceled), Transient, ""},
		{"panic", wrap(&PanicError{Value: "boom"}), Transient, ""},
		{"unknown error", errors.New("mystery"), Transient, ""},
		{"joined: a permanent cause wins", errors.Join(status.Error(codes.Unavailable, "x"), &wire.EnvelopeError{Reason: "invalid", Err: errors.New("y")}), Permanent, "invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			class, reason := Classify(tc.err)
			if class != tc.class || reason != tc.reason {
				t.Fatalf("Classify(%v) = %v %q, want %v %q", tc.err, class, reason, tc.class, tc.reason)
			}
		})
	}
}
