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
	// AllowDevTokens (DEV_TOKENS=true) asks for the development token
	// endpoint; it is never on by default.
	AllowDevTokens bool
}

// DevTokens reports whether development tokens may be minted: only when
// asked for in so many words (DEV_TOKENS=true), with an HS256 secret and no
// JWKS URL, so a secret left in a production environment never mints
// tokens for anyone who asks.
func (c Config) DevTokens() bool { return c.AllowDevTokens && c.HS256Secret != "" && c.JWKSURL == "" }

// ConfigFromEnv reads AUTH_JWKS_URL, AUTH_HS256_SECRET, AUTH_ISSUER,
// AUTH_AUDIENCE and DEV_TOKENS (default false); with neither key source set it records an error naming
// both, and with a JWKS URL it requires the issuer and the audience.
func ConfigFromEnv(e *config.Env) Config {
	c := Config{
		JWKSURL:     e.String("AUTH_JWKS_URL", ""),
		HS256Secret: e.String("AUTH_HS256_SECRET", ""),
		Issuer:      e.String("AUTH_ISSUER", ""),
		Audience:    e.String("AUTH_AUDIENCE", ""),
		// Development tokens: POST /dev/token on ws-edge. Only make run and
		// the dev chart values set it.
		AllowDevTokens: e.Bool("DEV_TOKENS", false),
	}
	if c.JWKSURL == "" && c.HS256Secret == "" {
		e.Check("AUTH_JWKS_URL", errors.New("set AUTH_JWKS_URL (production: the identity provider's JWKS) or AUTH_HS256_SECRET (development: a shared secret of at least 16 bytes)"))
	} else if c.JWKSURL == "" && len(c.HS256Secret) < 16 {
		e.Check("AUTH_HS256_SECRET", errors.New("must be at least 16 bytes"))
	}
	if c.AllowDevTokens && (c.JWKSURL != "" || c.HS256Secret == "") {
		e.Check("DEV_TOKENS", errors.New("development tokens need AUTH_HS256_SECRET and no AUTH_JWKS_URL; never set DEV_TOKENS in production"))
	}
	if c.JWKSURL != "" {
		e.Check("AUTH_ISSUER", c.checkIssuer())
		e.Check("AUTH_AUDIENCE", c.checkAudience())
	}
	return c
}

// A JWKS (Firebase's, Google's) serves the keys of every tenant of the
// identity provider: without the issuer and the audience, a token anyone
// mints in their own project for sub=victim would pass.
func (c Config) checkIssuer() error {
	if c.Issuer == "" {
		return errors.New("required with AUTH_JWKS_URL (e.g. https://securetoken.google.com/<project>): the key set also signs other projects' tokens")
	}
	return nil
}

func (c Config) checkAudience() error {
	if c.Audience == "" {
		return errors.New("required with AUTH_JWKS_URL (e.g. the Firebase project id): the key set also signs other projects' tokens")
	}
	return nil
}

// NewFromConfig builds the verifier of c. A JWKS URL wins over a secret.
// Cancel ctx (or Close the verifier) to stop the JWKS background refresh.
func NewFromConfig(ctx context.Context, c Config) (*Verifier, error) {
	o := Options{Issuer: c.Issuer, Audience: c.Audience}
	switch {
	case c.JWKSURL != "":
		if err := errors.Join(c.checkIssuer(), c.checkAudience()); err != nil {
			return nil, fmt.Errorf("auth verifier: AUTH_ISSUER and AUTH_AUDIENCE: %w", err)
		}
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
