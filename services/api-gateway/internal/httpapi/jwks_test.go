package httpapi_test

import (
	"context"
	"testing"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/auth/authtest"
)

// TestJWKSIssuerAndAudience: with a JWKS verifier (production), a token from
// another tenant of the identity provider (wrong or missing iss or aud) is a
// 401; the configured tenant's token is served.
func TestJWKSIssuerAndAudience(t *testing.T) {
	idp := authtest.New(t)
	v, err := auth.NewFromConfig(context.Background(), auth.Config{JWKSURL: idp.URL, Issuer: authtest.Issuer, Audience: authtest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	s := newServer(t, options{verifier: v})
	good, bad := idp.Cases(t, "victim")
	if r := s.do(t, req{method: "POST", path: "/v1/messages", token: good, body: okBody}); r.status != 202 {
		t.Fatalf("good token: %d %s", r.status, r.body)
	}
	for name, tok := range bad {
		t.Run(name, func(t *testing.T) {
			r := s.do(t, req{method: "POST", path: "/v1/messages", token: tok, body: okBody})
			wantProblem(t, r, 401, "unauthenticated")
		})
	}
}
