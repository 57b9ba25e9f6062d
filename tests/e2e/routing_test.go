package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestTargetedRouting runs two edges and the worker with targeted routing:
// bob is on edge a, carol on edge b, dave on both, erin nowhere. Every
// session still receives exactly its user's messages, in order, and each
// delivery is routed to exactly the pods holding its recipient. The
// emulator applies no subscription filter, so every edge still receives
// every delivery; each edge counts the ones routed elsewhere, which is
// what the filter keeps away on GCP, and those counts are asserted exactly.
func TestTargetedRouting(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 2,
		WorkerEnv: []string{"WORKER_TARGETED_ROUTING=true"},
		EdgeEnv:   []string{"EDGE_TARGETED_ROUTING=true"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := c.Edges[0].Addr, c.Edges[1].Addr
	sessions := map[string]*harness.WSClient{
		"bob@a":   mustDial(t, ctx, a, c.Token("bob"), ""),
		"carol@b": mustDial(t, ctx, b, c.Token("carol"), ""),
		"dave@a":  mustDial(t, ctx, a, c.Token("dave"), ""),
		"dave@b":  mustDial(t, ctx, b, c.Token("dave"), ""),
	}
	waitSubscribed(t, c)

	counts := map[string]int{"bob": 10, "carol": 10, "dave": 10, "erin": 5}
	sent := map[string][]string{}
	total := 0
	for round := range 10 {
		for _, user := range []string{"bob", "carol", "dave", "erin"} {
			if round >= counts[user] {
				continue
			}
			res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{user}, map[string]any{"n": round}, "")
			if err != nil || res.Status != 202 {
				t.Fatalf("send to %s: %v %+v", user, err, res)
			}
			sent[user] = append(sent[user], res.ID)
			total++
		}
	}
	for name, s := range sessions {
		user := name[:len(name)-2]
		if err := s.WaitMessages(len(sent[user]), time.Minute); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		assertExactly(t, name, s.Messages(), sent[user])
	}
	// Erin was offline: her messages wait in her inbox.
	if entries, err := harness.Inbox(ctx, c.GatewayURL(), c.Token("erin"), ""); err != nil || len(entries) != counts["erin"] {
		t.Fatalf("erin's inbox: %d entries, err %v", len(entries), err)
	}

	// Every edge has received every delivery (no filter on the emulator);
	// wait for that, then compare what each would have been spared.
	for _, e := range c.Edges {
		waitMetric(t, e.AdminAddr, "courier_ws_edge_deliveries_received_total", float64(total))
	}
	want := map[string]float64{ // by admin address, where the metrics are
		c.Edges[0].AdminAddr: float64(counts["carol"] + counts["erin"]), // routed to b only, or nowhere
		c.Edges[1].AdminAddr: float64(counts["bob"] + counts["erin"]),
	}
	for addr, n := range want {
		if got := metricSum(addr, "courier_ws_edge_deliveries_routed_elsewhere_total"); got != n {
			t.Errorf("edge %s: %v deliveries routed elsewhere, want %v", addr, got, n)
		}
	}
	if got := metricSum(c.Worker.AdminAddr, `courier_pipeline_worker_deliveries_routing_total{result="routed"}`); got != float64(total-counts["erin"]) {
		t.Errorf("worker routed %v deliveries, want %d", got, total-counts["erin"])
	}
	if got := metricSum(c.Worker.AdminAddr, `courier_pipeline_worker_deliveries_routing_total{result="nowhere"}`); got != float64(counts["erin"]) {
		t.Errorf("worker routed %v deliveries nowhere, want %d", got, counts["erin"])
	}
	t.Logf("%d deliveries; a GCP filter would have spared edge a %v and edge b %v of them", total, want[a], want[b])
}

// waitMetric waits until the samples of prefix at addr sum to want.
func waitMetric(t *testing.T, addr, prefix string, want float64) {
	t.Helper()
	testenv.WaitFor(t, time.Minute, 50*time.Millisecond, func() error {
		if got := metricSum(addr, prefix); got != want {
			return fmt.Errorf("%s at %s is %v, want %v", prefix, addr, got, want)
		}
		return nil
	})
}

// TestTargetedRoutingWhileSessionsMove sends to bob steadily while bob
// keeps hopping between the two edges, resuming with his cursor each time.
// The edges drop what is routed elsewhere (as their subscription filters do
// on GCP), so a message routed before bob's presence on the new edge was
// recorded reaches him only through that session's inbox read. He must end
// with every message exactly once, in order: the ordering of presence
// write, inbox read and routing (pkg/presence) leaves no gap. Then six more
// hops, each followed by one message that must arrive live on the new
// session: with no later message to reveal a gap, this fails if presence
// were recorded after the connection is up (checked by that mutation).
func TestTargetedRoutingWhileSessionsMove(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 2,
		WorkerEnv: []string{"WORKER_TARGETED_ROUTING=true"},
		EdgeEnv:   []string{"EDGE_TARGETED_ROUTING=true"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const n = 60
	ids := make(chan string, n)
	sendErr := make(chan error, 1)
	go func() {
		defer close(ids)
		for i := range n {
			res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, i, "")
			if err != nil || res.Status != 202 {
				sendErr <- fmt.Errorf("send %d: %v %+v", i, err, res)
				return
			}
			ids <- res.ID
			time.Sleep(50 * time.Millisecond) // a steady 20 msg/s
		}
	}()

	var got []harness.Frame
	cursor := ""
	edge := 0
	sess := mustDial(t, ctx, c.Edges[edge].Addr, c.Token("bob"), cursor)
	waitSynced(t, sess)
	moves := 0
	for sending := true; sending; moves++ {
		select {
		case err := <-sendErr:
			t.Fatal(err)
		case <-time.After(300 * time.Millisecond): // bob stays a moment, then moves
		}
		if len(ids) == n || ctx.Err() != nil {
			sending = false
		}
		// Close first, then read: nothing may arrive between taking the
		// frames and taking the cursor.
		sess.Close()
		<-sess.Closed()
		got = append(got, sess.Messages()...)
		if lc := sess.LastCursor(); lc != "" {
			cursor = lc
		}
		edge = 1 - edge
		sess = mustDial(t, ctx, c.Edges[edge].Addr, c.Token("bob"), cursor)
	}
	var want []string
	for id := range ids {
		want = append(want, id)
	}
	if len(want) != n {
		t.Fatalf("%d of %d sends accepted", len(want), n)
	}
	deadline := time.Now().Add(time.Minute)
	for len(got)+len(sess.Messages()) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got = append(got, sess.Messages()...)
	assertExactly(t, "bob", got, want)

	// No later message reveals a gap here: a message sent right after bob
	// lands on an edge must reach that session live, so his presence there
	// must be visible to the worker by the time the connection is up.
	for hop := range 6 {
		sess.Close()
		<-sess.Closed()
		if lc := sess.LastCursor(); lc != "" {
			cursor = lc
		}
		edge = 1 - edge
		sess = mustDial(t, ctx, c.Edges[edge].Addr, c.Token("bob"), cursor)
		res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, "hop", "")
		if err != nil || res.Status != 202 {
			t.Fatalf("send after hop %d: %v %+v", hop, err, res)
		}
		if err := waitFor(sess, res.ID, 30*time.Second); err != nil {
			t.Fatalf("hop %d to edge %d: %v", hop, edge, err)
		}
	}
	dropped := 0.0
	for _, e := range c.Edges {
		dropped += metricSum(e.AdminAddr, `courier_ws_edge_deliveries_dropped_total{reason="routed_elsewhere"}`)
	}
	t.Logf("bob moved %d times; %d messages arrived exactly once, in order; the edges dropped %v deliveries routed elsewhere", moves, n, dropped)
}

// waitSynced waits for a live-only session's starting cursor.
func waitSynced(t *testing.T, s *harness.WSClient) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "no synced frame", func() bool { return s.LastCursor() != "" })
}

// waitFor waits until the session received message id.
func waitFor(s *harness.WSClient, id string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		for _, f := range s.Messages() {
			if f.Message.ID == id {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("message %s sent right after connecting never arrived on the session within %s", id, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
