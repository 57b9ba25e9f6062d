package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestAlertedSeriesExistAtZero: the dead-letter and nack counters the
// alerts read are exported at 0 for every reason before the first event,
// so that event is an increase rate() sees.
func TestAlertedSeriesExistAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"courier_pipeline_worker_messages_dead_lettered_total": DeadLetterReasons,
		"courier_pipeline_worker_messages_nacked_total":        NackReasons,
	}
	for _, f := range fams {
		reasons, ok := want[f.GetName()]
		if !ok {
			continue
		}
		got := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && m.GetCounter().GetValue() == 0 {
					got[l.GetValue()] = true
				}
			}
		}
		for _, r := range reasons {
			if !got[r] {
				t.Errorf("%s{reason=%q} is not exported at 0", f.GetName(), r)
			}
		}
		delete(want, f.GetName())
	}
	for name := range want {
		t.Errorf("%s is not exported before its first event", name)
	}
}
