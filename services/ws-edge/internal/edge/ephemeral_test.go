package edge_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/pkg/ephemeral"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
)

// An ephemeral event published to the deliveries topic reaches every
// session of its users on every pod, once, as it was published, and no
// one else's; a message of an unknown schema on the topic is acked,
// counted and dropped by every pod without disturbing the sessions.
func TestEphemeralEventReachesSessionsOfItsUsersOnEveryPod(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a")
	b := startEdge(t, w, "edge-b")
	bobA := dial(t, a, "bob", dialOpts{})
	bobB := dial(t, b, "bob", dialOpts{})
	carolB := dial(t, b, "carol", dialOpts{})
	daveA := dial(t, a, "dave", dialOpts{})
	for _, c := range []*wsClient{bobA, bobB, carolB, daveA} {
		c.expect(t, "hello", "synced")
	}

	m, err := ephemeral.NewMetrics(prometheus.NewRegistry(), "test")
	if err != nil {
		t.Fatal(err)
	}
	pub := ephemeral.New(w.ps, w.topo.DeliveriesTopic, ephemeral.Options{}, m, nil)
	t.Cleanup(func() { _ = pub.Stop(context.Background()) })
	if !pub.Publish(context.Background(), []string{"bob", "carol"}, "signal",
		[]byte(`{"type":"signal","from":"alice","kind":"typing","data":{"n":1}}`)) {
		t.Fatal("event dropped")
	}
	for _, c := range []*wsClient{bobA, bobB, carolB} {
		f := c.expect(t, "signal:typing")[0]
		if f.From != "alice" || string(f.Data) != `{"n":1}` {
			t.Fatalf("frame %+v", f)
		}
	}

	// Not a schema of ours: every pod counts it and goes on.
	unknown := &pubsub.Message{Data: []byte("?"), Attributes: map[string]string{wire.AttrSchema: "example.v1.Other"}}
	if _, err := pubsubx.Publish(testenv.Context(t, 30*time.Second), w.pub, unknown, ""); err != nil {
		t.Fatal(err)
	}
	for _, te := range []*testEdge{a, b} {
		testenv.Eventually(t, 20*time.Second, "the unknown schema is counted", func() bool {
			return te.counter(t, "courier_ws_edge_unknown_schema_total") == 1
		})
	}

	// dave got nothing (his next frame is this message); each of the
	// others got the signal once (their next frame is this message too).
	st := w.commit(t, "m1", "alice", "", "dave", "bob", "carol")
	w.publish(t, st)
	for _, c := range []*wsClient{daveA, bobA, bobB, carolB} {
		c.expect(t, "message:m1")
	}
	if got := a.counter(t, "courier_ws_edge_ephemeral_total", "kind", "signal", "result", "written"); got != 1 {
		t.Errorf("pod A wrote %v signal frames, want 1 (bob)", got)
	}
	if got := b.counter(t, "courier_ws_edge_ephemeral_total", "kind", "signal", "result", "written"); got != 2 {
		t.Errorf("pod B wrote %v signal frames, want 2 (bob, carol)", got)
	}
}
