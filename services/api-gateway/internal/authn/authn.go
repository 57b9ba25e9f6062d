// Package authn turns a bearer Authorization value into the calling user for
// both transports, and builds the shared JWT verifier from its settings.
package authn

import (
	"context"
	"errors"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/config"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// Verifier checks a compact JWT (auth.Verifier satisfies it).
type Verifier interface {
	Verify(token string) (auth.Principal, error)
}

// Config selects the key source; see auth.Config.
type Config = auth.Config

// ConfigFromEnv reads the AUTH_* variables (auth.ConfigFromEnv).
func ConfigFromEnv(e *config.Env) Config { return auth.ConfigFromEnv(e) }

// NewVerifier builds the verifier of c (auth.NewFromConfig). A JWKS URL wins
// over a secret, so a development secret left in a production environment
// is never used.
func NewVerifier(ctx context.Context, c Config) (*auth.Verifier, error) {
	return auth.NewFromConfig(ctx, c)
}

// Authenticate returns the principal of an Authorization header value
// ("Bearer <JWT>"), or an Unauthenticated *apierr.Error whose detail says
// what is wrong without echoing the token.
func Authenticate(v Verifier, header string) (auth.Principal, error) {
	tok, err := auth.BearerToken(header)
	if errors.Is(err, auth.ErrNoToken) {
		return auth.Principal{}, &apierr.Error{Code: apierr.Unauthenticated, Err: err,
			Detail: "a bearer token is required (Authorization: Bearer <JWT>)"}
	}
	if err != nil {
		return auth.Principal{}, &apierr.Error{Code: apierr.Unauthenticated, Err: err, InvalidToken: true,
			Detail: `the Authorization header must be "Bearer <JWT>"`}
	}
	p, err := v.Verify(tok)
	if err != nil {
		return auth.Principal{}, &apierr.Error{Code: apierr.Unauthenticated, Err: err, InvalidToken: true,
			Detail: "the bearer token is invalid or expired"}
	}
	return p, nil
}

type principalKey struct{}

// WithPrincipal returns ctx carrying the authenticated caller.
func WithPrincipal(ctx context.Context, p auth.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller stored by WithPrincipal.
func PrincipalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(auth.Principal)
	return p, ok
}
