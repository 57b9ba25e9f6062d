package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// deadLetters reads what sits on the cluster's dead-letter subscription for
// window, without acknowledging it (nack keeps it for the next reader).
func deadLetters(t *testing.T, c *harness.Cluster, window time.Duration) []*pubsub.Message {
	t.Helper()
	client, err := pubsub.NewClient(context.Background(), c.Project)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var mu sync.Mutex
	seen := map[string]*pubsub.Message{}
	_ = client.Subscriber(c.Topo.DeadLetterSubscription).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		mu.Lock()
		seen[m.ID] = m
		mu.Unlock()
		m.Nack()
	})
	out := make([]*pubsub.Message, 0, len(seen))
	for _, m := range seen {
		out = append(out, m)
	}
	return out
}

func assertNoDeadLetters(t *testing.T, c *harness.Cluster) {
	t.Helper()
	if dl := deadLetters(t, c, 3*time.Second); len(dl) != 0 {
		t.Fatalf("%d dead letters, first: %v", len(dl), dl[0].Attributes)
	}
}

// TestPoisonTenPercent publishes malformed envelopes straight to the ingress
// topic between valid messages sent through the gateway: every poison
// message is dead-lettered with its reason, every valid one delivered.
func TestPoisonTenPercent(t *testing.T) {
	c := env.NewCluster(t, harness.Options{Edges: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bob := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")

	client, err := pubsub.NewClient(ctx, c.Project)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pub := client.Publisher(c.Topo.IngressTopic)
	defer pub.Stop()

	poison := [][]byte{
		[]byte("not a protobuf"),
		{0xff, 0xff, 0xff, 0xff},
		{},
		[]byte(`{"json":"is not an envelope"}`),
	}
	var ids []string
	const total = 100
	nPoison := 0
	for i := range total {
		if i%10 == 5 {
			data := poison[nPoison%len(poison)]
			if _, err := pub.Publish(ctx, &pubsub.Message{Data: data, Attributes: map[string]string{"test_poison": fmt.Sprint(i)}}).Get(ctx); err != nil {
				t.Fatal(err)
			}
			nPoison++
			continue
		}
		res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, i, "")
		if err != nil || res.Status != 202 {
			t.Fatalf("send %d: %v %+v", i, err, res)
		}
		ids = append(ids, res.ID)
	}
	if err := bob.WaitMessages(len(ids), 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	assertExactly(t, "bob", bob.Messages(), ids)

	var dl []*pubsub.Message
	deadline := time.Now().Add(time.Minute)
	for {
		dl = deadLetters(t, c, 3*time.Second)
		if len(dl) >= nPoison || time.Now().After(deadline) {
			break
		}
	}
	if len(dl) != nPoison {
		t.Fatalf("%d dead letters, want %d", len(dl), nPoison)
	}
	for _, m := range dl {
		if m.Attributes["test_poison"] == "" {
			t.Errorf("a valid message was dead-lettered: %v", m.Attributes)
		}
		if reason := m.Attributes["courier_dead_letter_reason"]; reason == "" || strings.Contains(reason, "exhausted") {
			t.Errorf("poison without an immediate reason: %v", m.Attributes)
		}
	}
}
