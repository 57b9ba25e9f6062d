package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A client's close code labels the disconnect counter only when RFC 6455
// registers it; anything else lands in "other", so a client cannot mint
// series.
func TestDisconnectCodesAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{1000, 1001, 1006, 1008, 1015, 1004, 999, 1016, 3000, 4321, 65535, -1} {
		m.Disconnect(code)
	}
	for label, want := range map[string]float64{"1000": 1, "1001": 1, "1006": 1, "1008": 1, "1015": 1, "other": 7} {
		if got := testutil.ToFloat64(m.Disconnects.WithLabelValues(label)); got != want {
			t.Errorf("disconnects{code=%q} = %v, want %v", label, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.Disconnects); n != 6 {
		t.Errorf("%d series, want 6", n)
	}
}
