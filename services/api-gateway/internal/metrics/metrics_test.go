package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestRateLimitedExistsAtZero: both transports' refusal counters are
// exported before the first refusal.
func TestRateLimitedExistsAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg, nil)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
		if f.GetName() != "courier_api_gateway_rate_limited_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				got[l.GetName()+"="+l.GetValue()] = m.GetCounter().GetValue() == 0
			}
		}
	}
	for _, want := range []string{"transport=http", "transport=grpc"} {
		if !got[want] {
			t.Errorf("courier_api_gateway_rate_limited_total{%s} not exported at 0 (got %v)", want, got)
		}
	}
}
