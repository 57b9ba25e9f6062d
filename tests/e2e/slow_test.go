package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestSlowConsumer: a burst of group messages reaches sessions on two edges
// while one of bob's sessions stops reading. That session is closed with
// 1008 "client not reading" (its socket stopped taking writes; before that
// its overflowing queue only made it catch up from the inbox); every other
// session, bob's other one included, gets every message once and in order,
// and nobody else is closed.
func TestSlowConsumer(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 2, EdgeEnv: []string{"WS_SEND_QUEUE=8", "WS_WRITE_TIMEOUT=3s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	group := []string{"bob"}
	for i := range 11 {
		group = append(group, fmt.Sprintf("member%02d", i))
	}
	sessions := map[string]*harness.WSClient{}
	for i, u := range group {
		sessions[u] = mustDial(t, ctx, c.Edges[i%2].Addr, c.Token(u), "")
	}
	sessions["bob (on b)"] = mustDial(t, ctx, c.Edges[1].Addr, c.Token("bob"), "")
	// The stalled session: dialled on edge a, then never read.
	stalled, _, err := websocket.Dial(ctx, "ws://"+c.Edges[0].Addr+"/v1/ws?token="+c.Token("bob"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.CloseNow()

	payload := strings.Repeat("x", 40_000)
	const n = 120
	var ids []string
	for i := range n {
		res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), group, payload, "")
		if err != nil || res.Status != 202 {
			t.Fatalf("send %d: %v %+v", i, err, res)
		}
		ids = append(ids, res.ID)
	}
	for name, s := range sessions {
		if err := s.WaitMessages(n, 3*time.Minute); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertExactly(t, name, s.Messages(), ids)
	}
	// Edge a counts the 1008 close of the stalled session, and no other.
	testenv.WaitFor(t, time.Minute, 200*time.Millisecond, func() error {
		if metricSum(c.Edges[0].AdminAddr, `courier_ws_edge_stalled_total`) == 0 {
			return errors.New("the stalled session was not closed with 1008")
		}
		return nil
	})
	for _, e := range c.Edges {
		if n := metricSum(e.AdminAddr, `courier_ws_edge_disconnects_total{code="1008"}`); n > 1 {
			t.Errorf("%s closed %v sessions with 1008, want only the stalled one", e.Addr, n)
		}
	}
	for name, s := range sessions {
		select {
		case <-s.Closed():
			t.Errorf("%s was closed: %v", name, s.Err())
		default:
		}
	}
}
