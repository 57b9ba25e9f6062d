package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestMetricsOnlyOnAdminPort: each real binary serves Prometheus metrics on
// its admin listener (ADMIN_ADDR) and answers 404 for /metrics on its public
// HTTP port — the port an ingress or load balancer routes to — while the
// kubelet's probes stay there.
func TestMetricsOnlyOnAdminPort(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 1})
	own := map[string]string{
		"api-gateway":     "courier_api_gateway_",
		"pipeline-worker": "courier_pipeline_worker_",
		"ws-edge-edge-a":  "courier_ws_edge_",
	}
	for _, p := range c.All() {
		t.Run(p.Name, func(t *testing.T) {
			// courier_dependency_up has a series once the background probe's
			// first check is done, which may come just after /readyz.
			testenv.WaitFor(t, 10*time.Second, 50*time.Millisecond, func() error {
				status, body := fetchURL(t, "http://"+p.AdminAddr+"/metrics")
				if status != http.StatusOK || !strings.Contains(body, "\n"+own[p.Name]) || !strings.Contains(body, "courier_dependency_up") {
					return fmt.Errorf("GET /metrics on ADMIN_ADDR %s: %d, %d bytes without %s* or courier_dependency_up", p.AdminAddr, status, len(body), own[p.Name])
				}
				return nil
			})
			if status, body := fetchURL(t, "http://"+p.Addr+"/metrics"); status != http.StatusNotFound {
				t.Errorf("GET /metrics on HTTP_ADDR %s: %d %.120q, want 404", p.Addr, status, body)
			}
			for _, probe := range []string{"/healthz", "/readyz"} {
				if status, _ := fetchURL(t, "http://"+p.Addr+probe); status != http.StatusOK {
					t.Errorf("GET %s on HTTP_ADDR: %d, want 200 (the kubelet probes it there)", probe, status)
				}
			}
		})
	}
}

func fetchURL(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
