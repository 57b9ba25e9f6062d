package session

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

// A written live frame's queue wait runs from its hand-over to the start
// of the write that carries it, and the write itself is measured once per
// write; frames read from the inbox (no hand-over time) have no queue wait.
func TestWroteMeasuresQueueWaitAndSocketWrite(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{QueueSize: 10}.WithDefaults()
	s := New(Params{User: "bob"}, &Deps{Options: &opts, Metrics: m, Log: discard})
	msg := newMsg(t)
	its := items(msg, 1, 2, 3)
	began := time.Now()
	its[0].Handed = began.Add(-300 * time.Millisecond)
	its[1].Handed = began.Add(-100 * time.Millisecond)
	// its[2] came from the inbox: no hand-over time.
	(&writer{s: s}).wrote(its, began)

	got := map[string][2]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if h := mf.GetMetric()[0].GetHistogram(); h != nil {
			got[mf.GetName()] = [2]float64{float64(h.GetSampleCount()), h.GetSampleSum()}
		}
	}
	q := got["courier_ws_edge_queue_wait_seconds"]
	if q[0] != 2 || q[1] < 0.4 || q[1] > 0.41 {
		t.Fatalf("queue wait: %v samples/sum, want 2 summing 0.4 s", q)
	}
	if w := got["courier_ws_edge_socket_write_seconds"]; w[0] != 1 {
		t.Fatalf("socket write: %v, want one sample for one write", w)
	}
}
