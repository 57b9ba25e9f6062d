package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestSlowConsumer has one of bob's sessions stop reading while large
// messages flow: that session is closed with 1008 (its send queue
// overflowed), and bob's other session and carol keep receiving everything.
func TestSlowConsumer(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 1, EdgeEnv: []string{"WS_SEND_QUEUE=8"}})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fast := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")
	carol := mustDial(t, ctx, c.Edges[0].Addr, c.Token("carol"), "")
	// The stalled session: dialled, then never read.
	stalled, _, err := websocket.Dial(ctx, "ws://"+c.Edges[0].Addr+"/v1/ws?token="+c.Token("bob"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.CloseNow()

	payload := strings.Repeat("x", 60_000)
	const n = 150
	var ids []string
	for i := range n {
		res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob", "carol"}, payload, "")
		if err != nil || res.Status != 202 {
			t.Fatalf("send %d: %v %+v", i, err, res)
		}
		ids = append(ids, res.ID)
	}
	for name, s := range map[string]*harness.WSClient{"bob (fast)": fast, "carol": carol} {
		if err := s.WaitMessages(n, 2*time.Minute); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertExactly(t, name, s.Messages(), ids)
	}
	// The edge counts the 1008 close of the stalled session.
	deadline := time.Now().Add(time.Minute)
	for metricSum(c.Edges[0].Addr, `courier_ws_edge_disconnects_total{code="1008"}`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no session closed with 1008 for queue overflow")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
