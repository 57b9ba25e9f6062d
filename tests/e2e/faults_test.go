package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// TestFirestoreFrozen freezes the Firestore emulator for ten seconds
// (SIGSTOP: an outage that keeps its data) while traffic flows: nothing
// accepted is lost, nothing is dead-lettered, delivery resumes after the thaw.
func TestFirestoreFrozen(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")

	var ids []string
	send := func(i int) {
		res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, i, "")
		if err != nil || res.Status != 202 {
			t.Fatalf("send %d: %v %+v", i, err, res)
		}
		ids = append(ids, res.ID)
	}
	for i := range 5 {
		send(i)
	}
	if err := env.Emu.Freeze("firestore", true); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = env.Emu.Freeze("firestore", false)
		}
	}()
	frozenAt := time.Now()
	for i := 5; time.Since(frozenAt) < 10*time.Second; i++ {
		send(i) // the gateway does not need Firestore to accept
		time.Sleep(200 * time.Millisecond)
	}
	if err := env.Emu.Freeze("firestore", false); err != nil {
		t.Fatal(err)
	}
	thawed = true
	for i, n := len(ids), len(ids)+5; i < n; i++ {
		send(i)
	}
	if err := bob.WaitMessages(len(ids), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range bob.Messages() {
		got[f.Message.ID] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Fatalf("message %s accepted during the outage never arrived", id)
		}
	}
	assertNoDeadLetters(t, c)
}

// TestPubSubFrozen freezes the Pub/Sub emulator: the gateway never answers
// 202 for a message it could not publish (it answers 503 or waits within its
// request timeout), and every 202 is delivered after the thaw.
func TestPubSubFrozen(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 1, GatewayEnv: []string{"REQUEST_TIMEOUT=3s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bob := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")

	var accepted []string
	statuses := map[int]int{}
	if err := env.Emu.Freeze("pubsub", true); err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = env.Emu.Freeze("pubsub", false)
		}
	}()
	frozenAt := time.Now()
	for i := 0; time.Since(frozenAt) < 10*time.Second; i++ {
		rctx, rcancel := context.WithTimeout(ctx, 8*time.Second)
		res, err := harness.Send(rctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, i, fmt.Sprintf("frozen-%d", i))
		rcancel()
		if err != nil {
			t.Fatalf("request %d: the gateway did not answer within its timeout: %v", i, err)
		}
		statuses[res.Status]++
		switch res.Status {
		case 202:
			accepted = append(accepted, res.ID)
		case 503:
			if res.Code != "unavailable" {
				t.Fatalf("503 with code %q", res.Code)
			}
		default:
			t.Fatalf("request %d during the freeze: %d %s", i, res.Status, res.Body)
		}
	}
	if statuses[503] == 0 {
		t.Fatalf("no 503 while Pub/Sub was frozen: %v", statuses)
	}
	if err := env.Emu.Freeze("pubsub", false); err != nil {
		t.Fatal(err)
	}
	thawed = true
	for i := range 5 {
		res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, i, "")
		for attempt := 0; err == nil && res.Status == 503 && attempt < 100; attempt++ {
			time.Sleep(200 * time.Millisecond)
			res, err = harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, i, "")
		}
		if err != nil || res.Status != 202 {
			t.Fatalf("send after thaw: %v %+v", err, res)
		}
		accepted = append(accepted, res.ID)
	}
	if err := bob.WaitMessages(len(accepted), 2*time.Minute); err != nil {
		t.Fatalf("%v (statuses during the freeze: %v)", err, statuses)
	}
	got := map[string]bool{}
	for _, f := range bob.Messages() {
		got[f.Message.ID] = true
	}
	for _, id := range accepted {
		if !got[id] {
			t.Fatalf("accepted message %s was not delivered", id)
		}
	}
	t.Logf("statuses during the freeze: %v", statuses)
}
