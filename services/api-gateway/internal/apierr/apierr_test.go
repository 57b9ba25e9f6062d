package apierr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestEveryCodeIsMapped(t *testing.T) {
	// A code may share its HTTP status only with the code it refines, so a
	// client that reads the status alone still acts rightly.
	refines := map[Code]Code{MessageTooLarge: PayloadTooLarge, RecipientRateLimited: RateLimited, BadConversation: InvalidRequest,
		SignalTooLarge: PayloadTooLarge, SignalRateLimited: RateLimited, BadSignal: InvalidRequest, TooManyUsers: InvalidRequest}
	statuses := map[int]Code{}
	for _, c := range Codes {
		s := HTTPStatus(c)
		if prev, dup := statuses[s]; dup && refines[c] != prev {
			t.Errorf("%s and %s share HTTP %d", prev, c, s)
		}
		if _, dup := statuses[s]; !dup {
			statuses[s] = c
		}
		if Title(c) == Title("unknown") && c != Internal {
			t.Errorf("%s has no title", c)
		}
		if GRPCCode(c) == codes.Internal && c != Internal {
			t.Errorf("%s maps to gRPC Internal", c)
		}
	}
}

func TestFrom(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Code
	}{
		{New(NotFound, "x"), NotFound},
		{fmt.Errorf("wrapped: %w", New(RateLimited, "x")), RateLimited},
		{context.DeadlineExceeded, Unavailable},
		{fmt.Errorf("publish: %w", status.Error(codes.Unavailable, "down")), Unavailable},
		{status.Error(codes.DeadlineExceeded, "slow"), Unavailable},
		{status.Error(codes.PermissionDenied, "iam"), Internal},
		{errors.New("bug"), Internal},
	} {
		if got := From(tc.err); got.Code != tc.want {
			t.Errorf("From(%v) = %s, want %s", tc.err, got.Code, tc.want)
		}
	}
	if e := From(errors.New("secret")); e.Detail != "internal error" || e.Err.Error() != "secret" {
		t.Errorf("internal detail: %q", e.Detail)
	}
}
