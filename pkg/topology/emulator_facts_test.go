package topology_test

// These tests pin the Pub/Sub emulator behaviours Courier relies on or works
// around (docs/emulators.md). If an emulator upgrade changes one, the test
// says which workaround to revisit.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/topology"
)

// Fact: the dead-letter policy is enforced: after MaxDeliveryAttempts nacks
// the message lands on the dead-letter topic with the source delivery count,
// and DeliveryAttempt is set on the way.
func TestEmulatorEnforcesDeadLetterPolicy(t *testing.T) {
	client, c := testenv.Topology(t, testenv.Project(t), func(c *topology.Config) {
		c.MinBackoff, c.MaxBackoff = 100*time.Millisecond, 200*time.Millisecond
		c.IngressOrdering = false // see TestEmulatorOrderedSubscriptionsNeverDeadLetter
	})
	ctx := testenv.Context(t, time.Minute)
	if _, err := client.Publisher(c.IngressTopic).Publish(ctx, &pubsub.Message{Data: []byte("poison")}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	var attempts []int
	var mu sync.Mutex
	rctx, stop := context.WithCancel(ctx)
	go func() {
		_ = client.Subscriber(c.IngressSubscription).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			mu.Lock()
			if m.DeliveryAttempt != nil {
				attempts = append(attempts, *m.DeliveryAttempt)
			}
			mu.Unlock()
			m.Nack()
		})
	}()
	var dead *pubsub.Message
	dctx, dstop := context.WithTimeout(ctx, 45*time.Second)
	_ = client.Subscriber(c.DeadLetterSubscription).Receive(dctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		dead = m
		dstop()
	})
	stop()
	dstop()
	if dead == nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("nothing reached the dead-letter subscription; attempts seen %v", attempts)
	}
	if got := dead.Attributes["CloudPubSubDeadLetterSourceDeliveryCount"]; got != "5" {
		t.Errorf("source delivery count = %q, want 5 (attrs %v)", got, dead.Attributes)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) < 5 || attempts[0] != 1 {
		t.Errorf("delivery attempts seen = %v", attempts)
	}
}

// Fact: subscription filters are accepted and echoed but not applied: every
// message reaches a filtered subscription. Targeted routing therefore also
// filters in the edge itself (it drops deliveries for users it does not hold).
func TestEmulatorIgnoresFilters(t *testing.T) {
	client, c := testenv.Topology(t, testenv.Project(t), nil)
	ctx := testenv.Context(t, time.Minute)
	want := c.EdgeSubscription("filtered", `attributes.courier_recipients = "nobody"`)
	if _, err := topology.EnsureSubscription(ctx, client, want); err != nil {
		t.Fatal(err)
	}
	got, err := client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: want.Name})
	if err != nil || got.Filter != want.Filter {
		t.Fatalf("filter not echoed: %v %v", got.GetFilter(), err)
	}
	if got.GetExpirationPolicy().GetTtl().AsDuration() != 24*time.Hour {
		t.Errorf("expiration policy not echoed: %v", got.GetExpirationPolicy())
	}
	if _, err := client.Publisher(c.DeliveriesTopic).Publish(ctx, &pubsub.Message{Data: []byte("x"), Attributes: map[string]string{"courier_recipients": "alice"}}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	rctx, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	_ = client.Subscriber(c.EdgeSubscriptionID("filtered")).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		n.Add(1)
		stop()
	})
	if n.Load() != 1 {
		t.Fatalf("the emulator applied the filter (got %d messages): revisit docs/emulators.md", n.Load())
	}
}

// Fact: the first redelivery after a nack is immediate even with a retry
// policy, which is why the worker backs off in process before nacking.
func TestEmulatorFirstRedeliveryIsImmediate(t *testing.T) {
	client, c := testenv.Topology(t, testenv.Project(t), func(c *topology.Config) {
		c.MinBackoff, c.MaxBackoff = 10*time.Second, 60*time.Second
	})
	ctx := testenv.Context(t, time.Minute)
	if _, err := client.Publisher(c.IngressTopic).Publish(ctx, &pubsub.Message{Data: []byte("x")}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	rctx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	_ = client.Subscriber(c.IngressSubscription).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		times = append(times, time.Now())
		if len(times) == 2 {
			m.Ack()
			stop()
			return
		}
		m.Nack()
	})
	if len(times) != 2 {
		t.Fatalf("got %d deliveries", len(times))
	}
	if gap := times[1].Sub(times[0]); gap >= 10*time.Second {
		t.Fatalf("first redelivery waited %s: the emulator now honours min backoff; revisit the worker's in-process backoff", gap)
	}
}

// Fact: on a subscription with message ordering enabled the emulator counts
// delivery attempts but never forwards to the dead-letter topic. The worker
// therefore dead-letters by itself on the last attempt (with a reason, which
// Pub/Sub's own forwarding does not carry), leaving the policy as a backstop.
func TestEmulatorOrderedSubscriptionsNeverDeadLetter(t *testing.T) {
	client, c := testenv.Topology(t, testenv.Project(t), func(c *topology.Config) {
		c.MinBackoff, c.MaxBackoff = 100*time.Millisecond, 200*time.Millisecond
	})
	ctx := testenv.Context(t, time.Minute)
	if _, err := client.Publisher(c.IngressTopic).Publish(ctx, &pubsub.Message{Data: []byte("poison")}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	var maxAttempt atomic.Int32
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = client.Subscriber(c.IngressSubscription).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
			if m.DeliveryAttempt != nil {
				maxAttempt.Store(int32(*m.DeliveryAttempt))
			}
			m.Nack()
		})
	}()
	testenv.Eventually(t, 30*time.Second, "five delivery attempts", func() bool { return maxAttempt.Load() >= 5 })
	var dead atomic.Int32
	dctx, dstop := context.WithTimeout(ctx, 8*time.Second)
	defer dstop()
	_ = client.Subscriber(c.DeadLetterSubscription).Receive(dctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		dead.Add(1)
	})
	if dead.Load() != 0 {
		t.Fatalf("the emulator now dead-letters on ordered subscriptions; the worker's own last-attempt dead-lettering could become optional")
	}
	if maxAttempt.Load() <= 5 {
		t.Logf("attempts seen: %d", maxAttempt.Load())
	}
}

// Fact: with unary Pull, a lease nobody acks or extends expires at the ack
// deadline and the message is redelivered, also on an ordered subscription,
// and a sender's later messages wait behind it meanwhile. This is what the
// worker's receiver (unary Pull, its own lease extension) relies on to get
// a SIGKILLed worker's messages back; a StreamingPull consumer killed with
// SIGKILL strands its leases on the emulator for good (docs/emulators.md).
func TestEmulatorUnaryPullLeaseExpires(t *testing.T) {
	client, c := testenv.Topology(t, testenv.Project(t), func(c *topology.Config) {
		c.IngressAckDeadline = 10 * time.Second // the minimum
	})
	ctx := testenv.Context(t, time.Minute)
	pub := client.Publisher(c.IngressTopic)
	pub.EnableMessageOrdering = true
	defer pub.Stop()
	for _, data := range []string{"first", "second"} {
		if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte(data), OrderingKey: "alice"}).Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sub := c.SubscriptionPath(c.IngressSubscription)
	pull := func(max int32) []*pubsubpb.ReceivedMessage {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		r, err := client.SubscriptionAdminClient.Pull(pctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: max})
		if err != nil && pctx.Err() == nil {
			t.Fatal(err)
		}
		return r.GetReceivedMessages()
	}
	var leased []*pubsubpb.ReceivedMessage
	for deadline := time.Now().Add(20 * time.Second); len(leased) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("nothing pulled")
		}
		leased = pull(1)
	}
	if got := string(leased[0].GetMessage().GetData()); got != "first" {
		t.Fatalf("pulled %q first", got)
	}
	leasedAt := time.Now()
	// The holder "dies": no ack, no extension. Until the lease expires the
	// key is held: "second" is not delivered.
	var again []*pubsubpb.ReceivedMessage
	for len(again) == 0 {
		if time.Since(leasedAt) > 25*time.Second {
			t.Fatal("the unextended lease was never redelivered: revisit the worker's receiver (internal/receiver) and the worker-kill e2e test")
		}
		again = pull(10)
	}
	waited := time.Since(leasedAt)
	if got := string(again[0].GetMessage().GetData()); got != "first" {
		t.Fatalf("after the lease expired the key resumed with %q, not the unacked message", got)
	}
	if waited < 9*time.Second {
		t.Fatalf("redelivered after %s, before the 10 s ack deadline", waited)
	}
	t.Logf("unextended lease redelivered after %s (ack deadline 10 s)", waited.Round(10*time.Millisecond))
}

// On an ordered subscription a unary Pull returns every available message of
// a key at once, in order, and no further message of that key while any is
// unacked; once they are acked the next ones come. The worker relies on the
// first half to commit a sender's backlog in one batch (its receiver hands a
// key's messages over as one run), and acks a run as soon as it is done.
func TestEmulatorOrderedPullDeliversAKeysBacklogTogether(t *testing.T) {
	client, c := testenv.Topology(t, testenv.Project(t), nil)
	ctx := testenv.Context(t, time.Minute)
	pub := client.Publisher(c.IngressTopic)
	pub.EnableMessageOrdering = true
	defer pub.Stop()
	publish := func(from, to int) {
		var rs []*pubsub.PublishResult
		for i := from; i < to; i++ {
			rs = append(rs, pub.Publish(ctx, &pubsub.Message{Data: []byte(fmt.Sprint(i)), OrderingKey: "alice"}))
		}
		for _, r := range rs {
			if _, err := r.Get(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	sub := c.SubscriptionPath(c.IngressSubscription)
	pull := func() []*pubsubpb.ReceivedMessage {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		r, err := client.SubscriptionAdminClient.Pull(pctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: 100})
		if err != nil && pctx.Err() == nil {
			t.Fatal(err)
		}
		return r.GetReceivedMessages()
	}
	data := func(ms []*pubsubpb.ReceivedMessage) []string {
		var out []string
		for _, m := range ms {
			out = append(out, string(m.GetMessage().GetData()))
		}
		return out
	}
	publish(0, 20)
	first := pull()
	if got := fmt.Sprint(data(first)); got != "[0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19]" {
		t.Fatalf("first Pull brought %s: revisit how the worker's receiver forms runs", got)
	}
	publish(20, 25)
	if more := pull(); len(more) != 0 {
		t.Fatalf("a Pull brought %v of the key while its earlier messages were unacked", data(more))
	}
	var ids []string
	for _, m := range first {
		ids = append(ids, m.GetAckId())
	}
	if err := client.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: sub, AckIds: ids}); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(data(pull())); got != "[20 21 22 23 24]" {
		t.Fatalf("after the acks the key resumed with %s", got)
	}
}
