package e2e

import (
	"context"
	"testing"
	"time"

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
		waitMetric(t, e.Addr, "courier_ws_edge_deliveries_received_total", float64(total))
	}
	want := map[string]float64{
		a: float64(counts["carol"] + counts["erin"]), // routed to b only, or nowhere
		b: float64(counts["bob"] + counts["erin"]),
	}
	for addr, n := range want {
		if got := metricSum(addr, "courier_ws_edge_deliveries_routed_elsewhere_total"); got != n {
			t.Errorf("edge %s: %v deliveries routed elsewhere, want %v", addr, got, n)
		}
	}
	if got := metricSum(c.Worker.Addr, `courier_pipeline_worker_deliveries_routing_total{result="routed"}`); got != float64(total-counts["erin"]) {
		t.Errorf("worker routed %v deliveries, want %d", got, total-counts["erin"])
	}
	if got := metricSum(c.Worker.Addr, `courier_pipeline_worker_deliveries_routing_total{result="nowhere"}`); got != float64(counts["erin"]) {
		t.Errorf("worker routed %v deliveries nowhere, want %d", got, counts["erin"])
	}
	t.Logf("%d deliveries; a GCP filter would have spared edge a %v and edge b %v of them", total, want[a], want[b])
}

// waitMetric waits until the samples of prefix at addr sum to want.
func waitMetric(t *testing.T, addr, prefix string, want float64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := metricSum(addr, prefix)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %s is %v, want %v", prefix, addr, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
