package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestReady(t *testing.T) {
	ok := func(context.Context) error { return nil }
	bad := func(context.Context) error { return errors.New("down") }
	slow := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for _, tc := range []struct {
		name   string
		checks map[string]Check
		code   int
	}{
		{"all ok", map[string]Check{"a": ok, "b": ok}, 200},
		{"one down", map[string]Check{"a": ok, "b": bad}, 503},
		{"one hangs", map[string]Check{"a": ok, "b": slow}, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Ready(tc.checks, 50*time.Millisecond)(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tc.code {
				t.Fatalf("code %d, want %d", rec.Code, tc.code)
			}
			var body struct {
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Checks) != len(tc.checks) {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
		})
	}
}

// Readiness is the pod's own state: starting, ready, draining.
func TestState(t *testing.T) {
	var s State
	status := func() int {
		rec := httptest.NewRecorder()
		Ready(map[string]Check{"pod": s.Check}, time.Second)(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	if got := status(); got != 503 {
		t.Fatalf("before Started: %d", got)
	}
	s.Started()
	if got := status(); got != 200 {
		t.Fatalf("started: %d", got)
	}
	s.Draining()
	if got := status(); got != 503 {
		t.Fatalf("draining: %d", got)
	}
}

// The probe exports each dependency's state, and follows it down and up.
func TestProbe(t *testing.T) {
	reg := prometheus.NewRegistry()
	var down atomic.Bool
	p, err := NewProbe(reg, map[string]Check{
		"firestore": func(context.Context) error {
			if down.Load() {
				return errors.New("unavailable")
			}
			return nil
		},
		"pubsub": func(context.Context) error { return nil },
	}, time.Hour, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	up := func(dep string) float64 { return testutil.ToFloat64(p.up.WithLabelValues(dep)) }
	p.CheckAll(context.Background())
	if up("firestore") != 1 || up("pubsub") != 1 {
		t.Fatalf("all up: firestore %v pubsub %v", up("firestore"), up("pubsub"))
	}
	down.Store(true)
	p.CheckAll(context.Background())
	if up("firestore") != 0 || up("pubsub") != 1 {
		t.Fatalf("firestore down: firestore %v pubsub %v", up("firestore"), up("pubsub"))
	}
	down.Store(false)
	p.CheckAll(context.Background())
	if up("firestore") != 1 {
		t.Fatal("firestore back up not seen")
	}
	if _, err := NewProbe(reg, nil, time.Hour, time.Second, slog.Default()); err == nil {
		t.Fatal("registering the probe twice on one registry did not fail")
	}
}
