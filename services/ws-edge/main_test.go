package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

func TestLoadSettings(t *testing.T) {
	env := config.FromMap(map[string]string{
		"AUTH_HS256_SECRET": "dev-secret-0123456789", "DEV_TOKENS": "true", "POD_NAME": "WS-Edge_0", "WS_SEND_QUEUE": "8",
		"WS_ALLOWED_ORIGINS": "a.example, https://*.b.example", "EDGE_TARGETED_ROUTING": "true",
	})
	s, err := loadSettings(env)
	if err != nil {
		t.Fatal(err)
	}
	if s.Edge.Pod != "ws-edge-0" || s.Edge.Session.QueueSize != 8 || len(s.Edge.AllowedOrigins) != 2 || !s.Edge.TargetedRouting {
		t.Errorf("settings = %+v", s.Edge)
	}
	if s.HTTPAddr != ":8081" || s.AdminAddr != ":9464" || s.ShutdownTimeout != 25*time.Second || s.Edge.Session.PingInterval != 20*time.Second ||
		s.Edge.Session.ReadLimit != 4096 || s.Edge.MaxSessionsPerUser != 16 || s.Edge.DevSecret == nil {
		t.Errorf("defaults = %+v", s)
	}

	// JWKS wins: no development tokens then.
	env = config.FromMap(map[string]string{"AUTH_HS256_SECRET": "dev-secret-0123456789", "AUTH_JWKS_URL": "https://idp/jwks", "POD_NAME": "p"})
	s, err = loadSettings(env)
	if s.Edge.DevSecret != nil {
		t.Error("dev tokens enabled alongside a JWKS URL")
	}
	// A JWKS URL without the issuer and the audience refuses to start.
	if err == nil || !strings.Contains(err.Error(), "AUTH_ISSUER") || !strings.Contains(err.Error(), "AUTH_AUDIENCE") {
		t.Errorf("JWKS without issuer and audience: %v", err)
	}

	env = config.FromMap(map[string]string{"POD_NAME": "---", "WS_SEND_QUEUE": "0"})
	_, err = loadSettings(env)
	for _, name := range []string{"AUTH_JWKS_URL", "POD_NAME", "WS_SEND_QUEUE"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}

type nopHeartbeats struct{}

func (nopHeartbeats) Beat(context.Context, string, string, time.Time) error { return nil }
func (nopHeartbeats) Remove(context.Context, string) error                  { return nil }

// TestDevTokensOnlyWhenAsked: an HS256 secret alone no longer opens POST
// /dev/token to anyone; DEV_TOKENS=true does.
func TestDevTokensOnlyWhenAsked(t *testing.T) {
	const secret = "dev-secret-0123456789"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want int
	}{
		{"secret alone", map[string]string{"AUTH_HS256_SECRET": secret}, http.StatusNotFound},
		{"DEV_TOKENS=false", map[string]string{"AUTH_HS256_SECRET": secret, "DEV_TOKENS": "false"}, http.StatusNotFound},
		{"DEV_TOKENS=true", map[string]string{"AUTH_HS256_SECRET": secret, "DEV_TOKENS": "true"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["POD_NAME"] = "p"
			env := config.FromMap(tc.env)
			s, err := loadSettings(env)
			if err != nil {
				t.Fatal(err)
			}
			v, err := auth.NewFromConfig(context.Background(), s.Auth)
			if err != nil {
				t.Fatal(err)
			}
			e, err := edge.New(s.Edge, edge.Deps{Verifier: v, Heartbeats: nopHeartbeats{}})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			e.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/dev/token", strings.NewReader(`{"user":"alice"}`)))
			if rec.Code != tc.want {
				t.Fatalf("POST /dev/token: %d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want != http.StatusOK {
				return
			}
			var body struct{ Token string }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if p, err := v.Verify(body.Token); err != nil || p.UserID != "alice" {
				t.Fatalf("minted token: %v %v", p, err)
			}
		})
	}
	env := config.FromMap(map[string]string{"AUTH_JWKS_URL": "https://idp/jwks", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a", "DEV_TOKENS": "true", "POD_NAME": "p"})
	if _, err := loadSettings(env); err == nil || !strings.Contains(err.Error(), "DEV_TOKENS") {
		t.Errorf("DEV_TOKENS with a JWKS URL: %v", err)
	}
}
