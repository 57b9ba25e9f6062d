package hub_test

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/hub"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

// handedConn records the items it is handed.
type handedConn struct {
	*fakeConn
	mu    sync.Mutex
	items []frame.Item
}

func (c *handedConn) Deliver(items []frame.Item) {
	c.mu.Lock()
	c.items = append(c.items, items...)
	c.mu.Unlock()
	c.fakeConn.Deliver(items)
}

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
	h := hub.New[*handedConn](hub.Config{MaxSessions: 10, MaxSessionsPerUser: 2, ReorderWait: time.Minute, ReorderWaitMax: time.Minute},
		nil, m, slog.Default())
	c := &handedConn{fakeConn: newConn("b1", "bob")}
	if err := h.Add(c); err != nil {
		t.Fatal(err)
	}
	h.Start("bob", 0)
	early, late := newMessage(t), newMessage(t)
	early.Received = time.Now().Add(-200 * time.Millisecond) // position 2 arrived first
	late.Received = time.Now()
	h.Deliver("bob", frame.Item{M: early, Seq: 2})
	if n, _ := histogram(t, reg, "courier_ws_edge_reorder_wait_seconds"); n != 0 {
		t.Fatalf("a held item was counted as handed (%d)", n)
	}
	h.Deliver("bob", frame.Item{M: late, Seq: 1})
	n, sum := histogram(t, reg, "courier_ws_edge_reorder_wait_seconds")
	if n != 2 || sum < 0.2 {
		t.Fatalf("reorder wait: %d samples summing %.3f s, want 2 with position 2's ≥ 0.2 s", n, sum)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.items) != 2 || c.items[0].Handed.IsZero() || c.items[1].Handed.Before(c.items[1].M.Received) {
		t.Fatalf("handed items %+v: want both stamped at the hand-over", c.items)
	}
}
