package grpcapi_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/auth/authtest"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// TestGRPCJWKSIssuerAndAudience: with a JWKS verifier (production), a token
// from another tenant of the identity provider (wrong or missing iss or aud)
// is Unauthenticated; the configured tenant's token is served.
func TestGRPCJWKSIssuerAndAudience(t *testing.T) {
	idp := authtest.New(t)
	v, err := auth.NewFromConfig(context.Background(), auth.Config{JWKSURL: idp.URL, Issuer: authtest.Issuer, Audience: authtest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	c := serve(t, options{verifier: v})
	good, bad := idp.Cases(t, "victim")
	with := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	}
	req := &courierv1.SendRequest{To: []string{"bob"}, PayloadJson: []byte(`{"a":1}`)}
	if _, err := c.Send(with(good), req); err != nil {
		t.Fatalf("good token: %v", err)
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := c.Send(with(tok), req)
			wantStatus(t, err, codes.Unauthenticated, "")
		})
	}
}
