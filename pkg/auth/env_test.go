package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/courierhq/courier/pkg/auth/authtest"

	"github.com/courierhq/courier/pkg/config"
)

func TestConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr string
		dev     bool
	}{
		{"neither", map[string]string{}, "AUTH_JWKS_URL", false},
		{"short secret", map[string]string{"AUTH_HS256_SECRET": "short", "DEV_TOKENS": "true"}, "AUTH_HS256_SECRET", true},
		{"secret without DEV_TOKENS", map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef"}, "", false},
		{"dev", map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef", "DEV_TOKENS": "true"}, "", true},
		{"dev tokens with jwks", map[string]string{"AUTH_JWKS_URL": "https://idp/jwks", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a", "DEV_TOKENS": "true"}, "DEV_TOKENS", false},
		{"jwks wins", map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef", "AUTH_JWKS_URL": "https://idp/jwks", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a"}, "", false},
		{"jwks without issuer", map[string]string{"AUTH_JWKS_URL": "https://idp/jwks", "AUTH_AUDIENCE": "a"}, "AUTH_ISSUER", false},
		{"jwks without audience", map[string]string{"AUTH_JWKS_URL": "https://idp/jwks", "AUTH_ISSUER": "i"}, "AUTH_AUDIENCE", false},
		{"jwks alone", map[string]string{"AUTH_JWKS_URL": "https://idp/jwks"}, "AUTH_ISSUER", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := config.FromMap(tc.env)
			c := ConfigFromEnv(e)
			err := e.Err()
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want mention of %q", err, tc.wantErr)
			}
			if c.DevTokens() != tc.dev {
				t.Fatalf("DevTokens = %v, want %v", c.DevTokens(), tc.dev)
			}
		})
	}
	v, err := NewFromConfig(context.Background(), Config{HS256Secret: "0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := Mint([]byte("0123456789abcdef"), "alice", 60e9)
	if p, err := v.Verify(tok); err != nil || p.UserID != "alice" {
		t.Fatalf("verify: %v %v", p, err)
	}
	if _, err := NewFromConfig(context.Background(), Config{}); err == nil {
		t.Fatal("empty config accepted")
	}
	for _, c := range []Config{{JWKSURL: "http://127.0.0.1:1/jwks", Issuer: "i"}, {JWKSURL: "http://127.0.0.1:1/jwks", Audience: "a"}} {
		if _, err := NewFromConfig(context.Background(), c); err == nil || !strings.Contains(err.Error(), "AUTH_ISSUER and AUTH_AUDIENCE") {
			t.Errorf("JWKS config %+v: err %v, want a refusal naming AUTH_ISSUER and AUTH_AUDIENCE", c, err)
		}
	}
}

// TestJWKSChecksIssuerAndAudience: a key set serves every tenant of the
// identity provider, so tokens from another tenant (wrong or missing iss or
// aud) are refused and only the configured tenant's token passes.
func TestJWKSChecksIssuerAndAudience(t *testing.T) {
	idp := authtest.New(t)
	v, err := NewFromConfig(context.Background(), Config{JWKSURL: idp.URL, Issuer: authtest.Issuer, Audience: authtest.Audience})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	good, bad := idp.Cases(t, "victim")
	if p, err := v.Verify(good); err != nil || p.UserID != "victim" {
		t.Fatalf("good token: %v %v", p, err)
	}
	for name, tok := range bad {
		if _, err := v.Verify(tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: err %v, want ErrInvalidToken", name, err)
		}
	}
}
