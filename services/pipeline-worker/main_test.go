package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/courierhq/courier/pkg/health"
)

// TestProbesServeNoMetrics: the worker's HTTP_ADDR answers the kubelet's
// probes only; /metrics lives on ADMIN_ADDR (tests/e2e
// TestMetricsOnlyOnAdminPort scrapes the real binary there).
func TestProbesServeNoMetrics(t *testing.T) {
	var state health.State
	state.Started()
	h := probes(&state)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 404, "/debug/pprof/": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s on HTTP_ADDR: %d, want %d", path, rec.Code, want)
		}
	}
}
