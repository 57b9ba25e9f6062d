package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/courierhq/courier/pkg/config"
)

// Config selects the key source: JWKSURL in production, HS256Secret in
// development. Issuer and Audience are checked when set.
type Config struct {
	JWKSURL     string
	HS256Secret string
	Issuer      string
	Audience    string
}

// DevTokens reports whether development tokens may be minted: only with an
// HS256 secret and no JWKS URL, so a secret left in a production
// environment never enables them.
func (c Config) DevTokens() bool { return c.HS256Secret != "" && c.JWKSURL == "" }

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

// NewFromConfig builds the verifier of c. A JWKS URL wins over a secret.
// Cancel ctx (or Close the verifier) to stop the JWKS background refresh.
func NewFromConfig(ctx context.Context, c Config) (*Verifier, error) {
	o := Options{Issuer: c.Issuer, Audience: c.Audience}
	switch {
	case c.JWKSURL != "":
		v, err := NewJWKS(ctx, c.JWKSURL, o)
		if err != nil {
			return nil, fmt.Errorf("auth verifier: %w", err)
		}
		return v, nil
	case c.HS256Secret != "":
		v, err := NewHS256([]byte(c.HS256Secret), o)
		if err != nil {
			return nil, fmt.Errorf("auth verifier: %w", err)
		}
		return v, nil
	}
	return nil, errors.New("auth verifier: neither AUTH_JWKS_URL nor AUTH_HS256_SECRET is set")
}
