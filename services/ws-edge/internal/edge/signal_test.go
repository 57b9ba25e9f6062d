package edge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

func (c *wsClient) sendText(t *testing.T, s string) {
	t.Helper()
	c.send(t, websocket.MessageText, s)
}

// A signal frame crosses pods to the sessions of its recipients (listed,
// or a conversation's other members), once, and is refused with its code
// when too large, invalid or over the session's rate.
func TestSignalFramesCrossPodsAndAreBounded(t *testing.T) {
	w := newWorld(t)
	rate := func(c *edge.Config, _ *edge.Deps) { c.Session.SignalRate, c.Session.SignalBurst = 10, 20 }
	a := startEdge(t, w, "edge-a", rate)
	b := startEdge(t, w, "edge-b", rate)
	alice := dial(t, a, "alice", dialOpts{})
	bob := dial(t, b, "bob", dialOpts{})
	bob2 := dial(t, a, "bob", dialOpts{})
	for _, c := range []*wsClient{alice, bob, bob2} {
		c.expect(t, "hello", "synced")
	}

	alice.sendText(t, `{"type":"signal","to":["bob"],"kind":"typing","data":{"on":true}}`)
	for _, c := range []*wsClient{bob, bob2} {
		if f := c.expect(t, "signal:typing")[0]; f.From != "alice" || string(f.Data) != `{"on":true}` {
			t.Fatalf("frame %+v", f)
		}
	}

	// By conversation: bob's inbox holds alice's message, so bob is in
	// the conversation of {alice, bob}; alice gets it, bob's sessions not.
	st := w.commit(t, "m1", "alice", "", "bob")
	w.publish(t, st)
	bob.expect(t, "message:m1")
	bob2.expect(t, "message:m1")
	alice.expect(t, "message:m1") // her own copy (outgoing)
	conv := wire.DeriveConversationID([]string{"alice", "bob"})
	bob.sendText(t, `{"type":"signal","conversation":"`+conv+`","kind":"typing"}`)
	alice.expect(t, "signal:typing")

	// Refusals, each with its code.
	alice.sendText(t, `{"type":"signal","to":["bob"],"kind":"typing","data":"`+strings.Repeat("x", 1100)+`"}`)
	alice.expect(t, "error:signal_too_large")
	alice.sendText(t, `{"type":"signal","to":["bob"],"kind":"Bad Kind"}`)
	alice.expect(t, "error:bad_signal")
	alice.sendText(t, `{"type":"signal","conversation":"d.0000","kind":"typing"}`)
	alice.expect(t, "error:bad_signal")

	// Over the rate (burst 20 by default, refilled at 10/s): some of 40
	// at once are refused, and every one is answered or delivered.
	for range 40 {
		alice.sendText(t, `{"type":"signal","to":["carol"],"kind":"typing"}`)
	}
	alice.expect(t, "error:signal_rate_limited")
	testenv.Eventually(t, 10*time.Second, "signals counted", func() bool {
		return a.counter(t, "courier_ws_edge_signals_total", "result", "rate_limited") >= 1 &&
			a.counter(t, "courier_ws_edge_signals_total", "result", "too_large") == 1 &&
			a.counter(t, "courier_ws_edge_signals_total", "result", "bad") == 2
	})

	// Once each: the next frame of bob's sessions is this message, not a
	// second copy of a signal.
	st = w.commit(t, "m2", "alice", "", "bob")
	w.publish(t, st)
	bob.expect(t, "message:m2")
	bob2.expect(t, "message:m2")
}
