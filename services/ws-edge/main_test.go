package main

import (
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/config"
)

func TestReadSettings(t *testing.T) {
	env := config.FromMap(map[string]string{
		"AUTH_HS256_SECRET": "dev-secret-0123456789", "POD_NAME": "WS-Edge_0", "WS_SEND_QUEUE": "8",
		"WS_ALLOWED_ORIGINS": "a.example, https://*.b.example", "EDGE_TARGETED_ROUTING": "true",
	})
	s := readSettings(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	if s.edge.Pod != "ws-edge-0" || s.edge.Session.QueueSize != 8 || len(s.edge.AllowedOrigins) != 2 || !s.edge.TargetedRouting {
		t.Errorf("settings = %+v", s.edge)
	}
	if s.httpAddr != ":8081" || s.adminAddr != ":9464" || s.shutdownTimeout != 25*time.Second || s.edge.Session.PingInterval != 20*time.Second ||
		s.edge.Session.ReadLimit != 4096 || s.edge.MaxSessionsPerUser != 16 || s.edge.DevSecret == nil {
		t.Errorf("defaults = %+v", s)
	}

	// JWKS wins: no development tokens then.
	env = config.FromMap(map[string]string{"AUTH_HS256_SECRET": "dev-secret-0123456789", "AUTH_JWKS_URL": "https://idp/jwks", "POD_NAME": "p"})
	if s := readSettings(env); s.edge.DevSecret != nil {
		t.Error("dev tokens enabled alongside a JWKS URL")
	}

	env = config.FromMap(map[string]string{"POD_NAME": "---", "WS_SEND_QUEUE": "0"})
	readSettings(env)
	err := env.Err()
	for _, name := range []string{"AUTH_JWKS_URL", "POD_NAME", "WS_SEND_QUEUE"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}
