package fanout

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
	eph   []string
}

func (h *hub) Deliver(_ string, it frame.Item) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items = append(h.items, it)
	return true
}

func (h *hub) HasUser(u string) bool { return u != "nobody" }

func (h *hub) Presence(user string, b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.eph = append(h.eph, "watchers of "+user+" "+string(b))
}

func (h *hub) Watched(u string) bool { return u == "bob" }

func (h *hub) SendEphemeral(user string, b []byte) (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.eph = append(h.eph, user+" "+string(b))
	if user == "full" {
		return 0, 1
	}
	return 1, 0
}

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
	f := New(nil, nil, Config{Topology: topology.Default("p"), Pod: "pod-1"}, h, h, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
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

// Handle dispatches on courier_schema: an ephemeral event goes to the
// sessions of its users (no sequencer), an unknown schema is counted and
// dropped, an undecodable event too; none of them reaches the sequencer.
func TestHandleDispatchesOnSchema(t *testing.T) {
	m := metrics.Discard()
	h := &hub{}
	f := New(nil, nil, Config{Topology: topology.Default("p"), Pod: "pod-1"}, h, h, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ev, err := wire.EncodeEphemeral(wire.NewEphemeral([]string{"bob", "full"}, "signal", []byte(`{"type":"signal","kind":"typing"}`), timestamppb.Now()))
	if err != nil {
		t.Fatal(err)
	}
	f.Handle(context.Background(), ev)
	other, err := wire.EncodeEphemeral(wire.NewEphemeral([]string{"nobody"}, "receipt", []byte(`{"type":"receipt"}`), nil))
	if err != nil {
		t.Fatal(err)
	}
	f.Handle(context.Background(), other)
	// A presence event goes to the watchers of its user, not the user's
	// sessions; one about a user nobody here watches is dropped.
	for _, u := range []string{"bob", "carol"} {
		pres, err := wire.EncodeEphemeral(wire.NewEphemeral([]string{u}, "presence", []byte(`{"type":"presence","user":"`+u+`"}`), nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, listed := pres.Attributes[wire.AttrRecipients]; listed {
			t.Fatal("a presence event lists its subject as recipient")
		}
		f.Handle(context.Background(), pres)
	}
	f.Handle(context.Background(), &pubsub.Message{Data: []byte("x"), Attributes: map[string]string{wire.AttrSchema: "courier.v9.Unknown"}})
	f.Handle(context.Background(), &pubsub.Message{Data: []byte("x"), Attributes: map[string]string{wire.AttrSchema: wire.SchemaEphemeral}})

	h.mu.Lock()
	defer h.mu.Unlock()
	want := []string{`bob {"type":"signal","kind":"typing"}`, `full {"type":"signal","kind":"typing"}`,
		`watchers of bob {"type":"presence","user":"bob"}`}
	if !slices.Equal(h.eph, want) || len(h.items) != 0 {
		t.Fatalf("ephemeral %q, deliveries %d", h.eph, len(h.items))
	}
	for _, c := range []struct {
		kind, result string
		want         float64
	}{{"signal", "written", 1}, {"signal", "dropped_queue_full", 1}, {"other", "no_local_session", 1}, {"other", "bad_data", 1},
		{"presence", "no_local_session", 1}} {
		if got := testutil.ToFloat64(m.Ephemeral.WithLabelValues(c.kind, c.result)); got != c.want {
			t.Errorf("ephemeral{%s,%s} = %v, want %v", c.kind, c.result, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.UnknownSchema); got != 1 {
		t.Errorf("unknown_schema = %v", got)
	}
	if got := testutil.ToFloat64(m.Received); got != 0 {
		t.Errorf("deliveries received = %v, want 0", got)
	}
}
