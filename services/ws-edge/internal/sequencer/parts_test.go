package sequencer_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
	"github.com/courierhq/courier/services/ws-edge/internal/sequencer"
)

// histogram returns the sample count and sum of the named histogram.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0, 0
}

// The reorder wait is measured per live frame from the pod's receipt to
// the hand-over, and the hand-over time travels with the item (the
// session's queue wait starts there): a position held behind a missing one
// waits as long as that one took; inbox reads carry no times.
func TestReorderWaitIsTheHoldBehindAGap(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var handed []frame.Item
	sink := func(_ string, items []frame.Item) {
		mu.Lock()
		handed = append(handed, items...) // the slice is reused: copy
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := sequencer.New(ctx, sequencer.Config{ReorderWait: time.Minute, ReorderWaitMax: time.Minute}, nil, sink, m, slog.Default())
	t.Cleanup(func() { cancel(); s.Wait() })
	s.Open("bob")
	s.Start("bob", 0)
	early, late := newMessage(t), newMessage(t)
	early.Received = time.Now().Add(-200 * time.Millisecond) // position 2 arrived first
	late.Received = time.Now()
	s.Deliver("bob", frame.Item{M: early, Seq: 2})
	if n, _ := histogram(t, reg, "courier_ws_edge_reorder_wait_seconds"); n != 0 {
		t.Fatalf("a held item was counted as handed (%d)", n)
	}
	s.Deliver("bob", frame.Item{M: late, Seq: 1})
	n, sum := histogram(t, reg, "courier_ws_edge_reorder_wait_seconds")
	if n != 2 || sum < 0.2 {
		t.Fatalf("reorder wait: %d samples summing %.3f s, want 2 with position 2's ≥ 0.2 s", n, sum)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(handed) != 2 || handed[0].Handed.IsZero() || handed[1].Handed.Before(handed[1].M.Received) {
		t.Fatalf("handed items %+v: want both stamped at the hand-over", handed)
	}
}
