package fanout

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

type hub struct {
	mu    sync.Mutex
	items []frame.Item
}

func (h *hub) Deliver(_ string, it frame.Item) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items = append(h.items, it)
	return true
}

func (h *hub) HasUser(string) bool { return true }

// A delivery's Pub/Sub hop is measured from its publish time to the
// handler, and the time it reached the handler travels with its frame (the
// reorder wait starts there).
func TestHandleMeasuresThePubSubHop(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{}
	f := New(nil, nil, Config{Topology: topology.Default("p"), Pod: "pod-1"}, h, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	now := timestamppb.Now()
	msg, err := wire.EncodeDelivery(&courierv1.Delivery{
		Message:    &courierv1.Message{Id: "m1", From: "alice", To: []string{"bob"}, Payload: []byte(`{}`), SentAt: now, StoredAt: now},
		Recipients: []*courierv1.RecipientCursor{{UserId: "bob", Cursor: inbox.EncodeCursor(1)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	msg.PublishTime = time.Now().Add(-150 * time.Millisecond)
	before := time.Now()
	f.Handle(context.Background(), msg)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "courier_ws_edge_pubsub_hop_seconds" {
			n, sum = mf.GetMetric()[0].GetHistogram().GetSampleCount(), mf.GetMetric()[0].GetHistogram().GetSampleSum()
		}
	}
	if n != 1 || sum < 0.15 || sum > 5 {
		t.Fatalf("pubsub hop: %d samples summing %.3f s, want one of ≥ 0.15 s", n, sum)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.items) != 1 || h.items[0].M.Received.Before(before) {
		t.Fatalf("handed %+v: want one frame stamped with its receipt", h.items)
	}
}
