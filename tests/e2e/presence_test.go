package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// presenceOf returns the presence frames about user that s has received.
func presenceOf(s *harness.WSClient, user string) []map[string]any {
	var out []map[string]any
	for _, f := range s.Raw("presence") {
		if f["user"] == user {
			out = append(out, f)
		}
	}
	return out
}

// waitPresence waits until the n-th presence frame about user arrives and
// returns it.
func waitPresence(t *testing.T, s *harness.WSClient, user string, n int, d time.Duration) map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if got := presenceOf(s, user); len(got) >= n {
			return got[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence frames about %s: %v, want %d within %s", user, presenceOf(s, user), n, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPresenceAcrossEdgesAndAKilledEdge: bob, on edge a, watches alice
// (they share a conversation) and carol (they do not). He is told at once
// that both are offline; alice connecting on edge b reaches him as online
// within a second or two; alice reconnecting within the offline delay,
// again and again, is no frame at all (coalesced, debounced); edge b
// SIGKILLed, alice goes offline for bob within the stated bound (60 s)
// and GET /v1/presence agrees.
func TestPresenceAcrossEdgesAndAKilledEdge(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitSubscribed(t, c)
	res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, map[string]any{"text": "hi"}, "")
	if err != nil || res.Status != 202 {
		t.Fatalf("send: %v %+v", err, res)
	}
	bob := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")
	if err := bob.WaitMessages(1, 30*time.Second); err != nil { // alice's message is in bob's inbox
		t.Fatal(err)
	}
	if err := bob.Write(ctx, `{"type":"watch","users":["alice","carol"]}`); err != nil {
		t.Fatal(err)
	}
	if f := waitPresence(t, bob, "alice", 1, 10*time.Second); f["online"] != false {
		t.Fatalf("initial: %v", f)
	}
	if f := waitPresence(t, bob, "carol", 1, 10*time.Second); f["online"] != false || f["last_seen"] != nil {
		t.Fatalf("carol, whom bob may not watch: %v", f)
	}

	start := time.Now()
	alice := mustDial(t, ctx, c.Edges[1].Addr, c.Token("alice"), "")
	if f := waitPresence(t, bob, "alice", 2, 10*time.Second); f["online"] != true {
		t.Fatalf("alice connected: %v", f)
	}
	t.Logf("online seen by a watcher on the other edge after %s", time.Since(start).Round(time.Millisecond))

	// Flapping: five reconnects, each within the offline delay.
	for i := range 5 {
		alice.Close()
		<-alice.Closed()
		alice = mustDial(t, ctx, c.Edges[1].Addr, c.Token("alice"), "")
		if _, err := alice.WaitFrames("hello", 1, 10*time.Second); err != nil {
			t.Fatalf("reconnect %d: %v", i, err)
		}
	}

	start = time.Now()
	c.Edges[1].Kill(t)
	f := waitPresence(t, bob, "alice", 3, 90*time.Second)
	took := time.Since(start)
	t.Logf("offline seen %s after SIGKILL of alice's edge", took.Round(time.Millisecond))
	if f["online"] != false || f["last_seen"] == nil {
		t.Fatalf("after the kill: %v", f)
	}
	if took > 60*time.Second {
		t.Fatalf("offline after %s, over the 60 s bound", took)
	}
	if got := presenceOf(bob, "alice"); len(got) != 3 {
		t.Fatalf("presence frames about alice: %v; want offline, online, offline (the flaps coalesced)", got)
	}
	status, body, err := harness.Get(ctx, c.GatewayURL()+"/v1/presence?users=alice", c.Token("bob"))
	if err != nil || status != http.StatusOK || !strings.Contains(string(body), `"online":false`) {
		t.Fatalf("GET /v1/presence: %d %s %v", status, body, err)
	}
}
