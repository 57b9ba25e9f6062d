// Package authtest is an identity provider for tests: an RSA key set served
// over HTTP as a JWKS, and RS256 tokens signed with it, so tests exercise
// the production verifier (auth.NewJWKS) rather than the HS256 dev path.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer and Audience are what the provider's good tokens carry.
const (
	Issuer   = "https://idp.courier.test/project-a"
	Audience = "project-a"
	KeyID    = "test-key-1"
)

// IdP is a running test identity provider.
type IdP struct {
	Key *rsa.PrivateKey
	// URL serves the JWKS.
	URL string
}

// New starts an IdP whose server stops with the test.
func New(t testing.TB) *IdP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(map[string]any{"keys": []map[string]string{PublicJWK(key, KeyID)}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	t.Cleanup(srv.Close)
	return &IdP{Key: key, URL: srv.URL}
}

// PublicJWK is key's public half as a JWK.
func PublicJWK(key *rsa.PrivateKey, kid string) map[string]string {
	return map[string]string{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}
}

// Claims returns good claims for sub: the provider's issuer and audience,
// valid for an hour.
func Claims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": sub, "iss": Issuer, "aud": Audience, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// Token signs claims with the provider's key (RS256, its key id).
func (p *IdP) Token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = KeyID
	s, err := tok.SignedString(p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Cases are tokens for sub that a verifier configured with Issuer and
// Audience must refuse, by name, and "good", which it must accept.
func (p *IdP) Cases(t testing.TB, sub string) (good string, bad map[string]string) {
	t.Helper()
	with := func(k string, v any) string {
		c := Claims(sub)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return p.Token(t, c)
	}
	return p.Token(t, Claims(sub)), map[string]string{
		"wrong aud":   with("aud", "project-b"),
		"wrong iss":   with("iss", "https://idp.courier.test/project-b"),
		"missing aud": with("aud", nil),
		"missing iss": with("iss", nil),
	}
}
