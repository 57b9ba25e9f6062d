package e2e

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestPubSubRestarted restarts the Pub/Sub emulator. It comes back empty
// (the emulator keeps no state: no topic, no subscription, no message; GCP
// loses none of them), so this proves recovery, not durability: no Courier
// process is restarted, the gateway answers 503 and never 202 while it
// cannot publish, and once the topology is provisioned again the edge
// recreates its own subscription, the worker resumes pulling, and every
// message accepted afterwards reaches the session that stayed open all
// along, in order after the ones before the restart.
func TestPubSubRestarted(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 1, GatewayEnv: []string{"REQUEST_TIMEOUT=3s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")

	var accepted []string
	send := func(i int, key string) harness.SendResult {
		res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, i, key)
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if res.Status == 202 {
			accepted = append(accepted, res.ID)
		}
		return res
	}
	for i := range 5 {
		if res := send(i, ""); res.Status != 202 {
			t.Fatalf("send %d before the restart: %+v", i, res)
		}
	}
	if err := bob.WaitMessages(5, time.Minute); err != nil {
		t.Fatal(err)
	}

	if err := env.Emu.Restart("pubsub"); err != nil {
		t.Fatal(err)
	}
	// No topic: nothing can be accepted.
	for i := 100; i < 105; i++ {
		if res := send(i, ""); res.Status != http.StatusServiceUnavailable || res.Code != "unavailable" {
			t.Fatalf("send with the ingress topic gone: %d %s, want 503 unavailable", res.Status, res.Code)
		}
	}
	// Every service says Pub/Sub is down in its metrics (what the alerts
	// watch), and the worker that it cannot pull; none turns unready, which
	// would only take the whole fleet out of its load balancer.
	for _, p := range c.All() {
		waitGauge(t, p.AdminAddr, `courier_dependency_up{dependency="pubsub"}`, 0)
	}
	waitGauge(t, c.Worker.AdminAddr, "courier_pipeline_worker_receiving", 0)
	for _, p := range c.All() {
		waitStatus(t, "http://"+p.Addr+"/readyz", http.StatusOK)
	}

	if err := c.Courierctl("provision"); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, c.Worker.AdminAddr, "courier_pipeline_worker_receiving", 1)
	// The edge recreates its subscription when its pull finds it gone; a
	// delivery published before that would reach no subscription of the
	// edge (its session would get it only from its inbox on a resume).
	waitEdgeSubscription(t, c, "courier-edge-edge-a")

	// Every message accepted from now on arrives on the open session. A 503
	// is retried with its idempotency key, as the API tells clients to.
	for i := 5; i < 15; i++ {
		key := "after-restart-" + string(rune('a'+i))
		for attempt := 0; ; attempt++ {
			res := send(i, key)
			if res.Status == 202 {
				break
			}
			if res.Status != http.StatusServiceUnavailable || attempt == 20 {
				t.Fatalf("send %d after recovery: %+v", i, res)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	if err := bob.WaitMessages(len(accepted), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	assertExactly(t, "bob", bob.Messages(), accepted)
	assertNoDeadLetters(t, c)
}

// waitStatus waits until url answers status.
func waitStatus(t *testing.T, url string, status int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d", url, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEdgeSubscription waits until `courierctl sweep --dry-run` lists the
// subscription named id as kept.
func waitEdgeSubscription(t *testing.T, c *harness.Cluster, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := c.CourierctlOutput("sweep", "--dry-run", "--stale", "1h")
		if err == nil && strings.Contains(out, "/subscriptions/"+id) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge subscription %s not recreated: %v %s", id, err, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitGauge waits until the metric (name with labels, as exposed) of the
// service at addr has value want.
func waitGauge(t *testing.T, addr, metric string, want float64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if v, ok := gauge(addr, metric); ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			v, ok := gauge(addr, metric)
			t.Fatalf("%s on %s = %v (found %v), want %v", metric, addr, v, ok, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func gauge(addr, metric string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, metric+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
