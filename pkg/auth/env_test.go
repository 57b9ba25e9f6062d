package auth

import (
	"context"
	"strings"
	"testing"

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
		{"short secret", map[string]string{"AUTH_HS256_SECRET": "short"}, "AUTH_HS256_SECRET", true},
		{"dev", map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef"}, "", true},
		{"jwks wins", map[string]string{"AUTH_HS256_SECRET": "0123456789abcdef", "AUTH_JWKS_URL": "https://idp/jwks"}, "", false},
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
}
