// Package auth verifies the bearer JWTs that callers present to the gateway
// and the edge. The user id is the token's "sub" claim. Two key sources:
// an HS256 shared secret (local development) and a JWKS URL (production,
// e.g. Firebase Auth / Identity Platform), whose keys are refreshed in the
// background and on an unknown key id.
package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/courierhq/courier/pkg/clip"
)

// Errors returned by Verify; callers map both to 401.
var (
	ErrNoToken      = errors.New("no bearer token")
	ErrInvalidToken = errors.New("invalid token")
)

// Principal is the authenticated caller.
type Principal struct {
	UserID    string
	ExpiresAt time.Time
}

// Options tighten verification; empty fields are not checked.
type Options struct {
	Issuer   string
	Audience string
	// Leeway tolerates clock skew on exp/nbf/iat (default 30s).
	Leeway time.Duration
}

// Verifier checks signatures, algorithms, expiry and the subject.
type Verifier struct {
	keyfunc jwt.Keyfunc
	parser  *jwt.Parser
	close   func()
}

// NewHS256 verifies tokens signed with secret. Only HS256 is accepted, so a
// token claiming "alg: none" or an asymmetric algorithm is refused.
func NewHS256(secret []byte, o Options) (*Verifier, error) {
	if len(secret) < 16 {
		return nil, errors.New("hs256 secret must be at least 16 bytes")
	}
	kf := func(*jwt.Token) (any, error) { return secret, nil }
	return newVerifier(kf, []string{"HS256"}, o, func() {}), nil
}

// NewJWKS verifies tokens against the keys published at url. The key set is
// fetched now, refreshed hourly and when a token names an unknown key id
// (rate limited). A failed first fetch is not an error here: the identity
// provider may be briefly down at start, and the next token with an unknown
// key id triggers a refetch; until then tokens are refused with 401.
// Cancel ctx (or Close) to stop the refresher. The issuer and the audience
// are required: a provider's key set signs every tenant's tokens.
func NewJWKS(ctx context.Context, url string, o Options) (*Verifier, error) {
	if o.Issuer == "" || o.Audience == "" {
		return nil, fmt.Errorf("jwks %s: the issuer and the audience are required", url)
	}
	ctx, cancel := context.WithCancel(ctx)
	k, err := keyfunc.NewDefaultCtx(ctx, []string{url})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("jwks %s: %w", url, err)
	}
	algs := []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"}
	// A token must name its key: identity providers always do, and
	// without a key id a token would be tried against whichever key the
	// library picks rather than the one its issuer meant.
	kf := func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid == "" {
			return nil, errors.New("token has no key id (kid)")
		}
		return k.Keyfunc(t)
	}
	return newVerifier(kf, algs, o, cancel), nil
}

func newVerifier(kf jwt.Keyfunc, algs []string, o Options, closeFn func()) *Verifier {
	leeway := o.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
	}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	return &Verifier{keyfunc: kf, parser: jwt.NewParser(popts...), close: closeFn}
}

// Close stops background key refresh.
func (v *Verifier) Close() { v.close() }

// Verify checks a compact JWT and returns its principal.
func (v *Verifier) Verify(token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	if len(token) > 8192 {
		return Principal{}, fmt.Errorf("%w: token too long", ErrInvalidToken)
	}
	claims := &jwt.RegisteredClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keyfunc); err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if err := ValidateUserID(claims.Subject); err != nil {
		return Principal{}, fmt.Errorf("%w: sub: %v", ErrInvalidToken, err)
	}
	p := Principal{UserID: claims.Subject}
	if claims.ExpiresAt != nil {
		p.ExpiresAt = claims.ExpiresAt.Time
	}
	return p, nil
}

// BearerToken extracts the token from an Authorization header value.
func BearerToken(header string) (string, error) {
	if header == "" {
		return "", ErrNoToken
	}
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", fmt.Errorf("%w: authorization header is not \"Bearer <token>\"", ErrInvalidToken)
	}
	return strings.TrimSpace(tok), nil
}

// Mint signs an HS256 token for sub, valid for ttl. For local development and
// tests only: production tokens come from the identity provider.
func Mint(secret []byte, sub string, ttl time.Duration) (string, error) {
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	})
	s, err := t.SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:@+-]{1,128}$`)

// ValidateUserID reports whether id can name a user: 1–128 characters of
// letters, digits and ._:@+-, and usable as a Firestore document id (no
// "/", not "." or "..", not __reserved__).
func ValidateUserID(id string) error {
	switch {
	case id == "":
		return errors.New("empty user id")
	case !userIDPattern.MatchString(id):
		return fmt.Errorf("user id %q: want 1-128 characters of [A-Za-z0-9._:@+-]", clip.Text(id, 40))
	case id == "." || id == "..":
		return fmt.Errorf("user id %q is reserved", id)
	case strings.HasPrefix(id, "__") && strings.HasSuffix(id, "__"):
		return fmt.Errorf("user id %q is reserved", id)
	}
	return nil
}
