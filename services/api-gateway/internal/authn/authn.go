// Package authn turns a bearer Authorization value into the calling user for
// both transports, and builds the shared JWT verifier from its settings.
package authn

import (
	"context"
	"errors"
	"fmt"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/config"

	"github.com/courierhq/courier/services/api-gateway/internal/apierr"
)

// Verifier checks a compact JWT (auth.Verifier satisfies it).
type Verifier interface {
	Verify(token string) (auth.Principal, error)
}

// Config selects the key source: JWKSURL in production, HS256Secret in
// development. Issuer and Audience are checked when set.
type Config struct {
	JWKSURL     string
	HS256Secret string
	Issuer      string
	Audience    string
}

// ConfigFromEnv reads AUTH_JWKS_URL, AUTH_HS256_SECRET, AUTH_ISSUER and
// AUTH_AUDIENCE; with neither key source set it records an error naming both.
func ConfigFromEnv(e *config.Env) Config {
	c := Config{
		JWKSURL:     e.String("AUTH_JWKS_URL", ""),
		HS256Secret: e.String("AUTH_HS256_SECRET", ""),
		Issuer:      e.String("AUTH_ISSUER", ""),
		Audience:    e.String("AUTH_AUDIENCE", ""),
	}
	if c.JWKSURL == "" && c.HS256Secret == "" {
		e.Check("AUTH_JWKS_URL", errors.New("set AUTH_JWKS_URL (production: the identity provider's JWKS) or AUTH_HS256_SECRET (development: a shared secret of at least 16 bytes)"))
	} else if c.JWKSURL == "" && len(c.HS256Secret) < 16 {
		e.Check("AUTH_HS256_SECRET", errors.New("must be at least 16 bytes"))
	}
	return c
}

// NewVerifier builds the verifier of c. A JWKS URL wins over a secret, so a
// development secret left in a production environment is never used. The
// JWKS is fetched now; cancel ctx (or Close the verifier) to stop its
// background refresh.
func NewVerifier(ctx context.Context, c Config) (*auth.Verifier, error) {
	o := auth.Options{Issuer: c.Issuer, Audience: c.Audience}
	switch {
	case c.JWKSURL != "":
		v, err := auth.NewJWKS(ctx, c.JWKSURL, o)
		if err != nil {
			return nil, fmt.Errorf("auth verifier: %w", err)
		}
		return v, nil
	case c.HS256Secret != "":
		v, err := auth.NewHS256([]byte(c.HS256Secret), o)
		if err != nil {
			return nil, fmt.Errorf("auth verifier: %w", err)
		}
		return v, nil
	}
	return nil, errors.New("auth verifier: neither AUTH_JWKS_URL nor AUTH_HS256_SECRET is set")
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
