package topology_test

import (
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/topology"
)

func TestFromEnvValidates(t *testing.T) {
	e := config.FromMap(map[string]string{"INGRESS_MIN_BACKOFF": "2m", "INGRESS_MAX_BACKOFF": "1m", "INGRESS_MAX_DELIVERY_ATTEMPTS": "3"})
	topology.FromEnv(e)
	if e.Err() == nil {
		t.Fatal("min > max backoff and 3 attempts (below Pub/Sub's 5) accepted")
	}
	c := topology.Default("p")
	if c.MaxDeliveryAttempts != 5 || c.IngressSubscription != "courier-ingress-worker" || c.EdgeSubscriptionID("pod-a") != "courier-edge-pod-a" {
		t.Fatalf("defaults differ from the contract: %+v", c)
	}
}

func TestDiff(t *testing.T) {
	c := topology.Default("p")
	_, subs := c.Desired()
	want := subs[0]
	got := proto.Clone(want).(*pubsubpb.Subscription)
	if mask, drift := topology.Diff(got, want); len(mask)+len(drift) != 0 {
		t.Fatalf("identical subscriptions differ: %v %v", mask, drift)
	}
	got.DeadLetterPolicy.MaxDeliveryAttempts = 10
	got.AckDeadlineSeconds = 99
	got.EnableMessageOrdering = !want.EnableMessageOrdering
	mask, drift := topology.Diff(got, want)
	if len(mask) != 2 || mask[0] != "ack_deadline_seconds" || mask[1] != "dead_letter_policy" {
		t.Errorf("mask = %v", mask)
	}
	if len(drift) != 1 || drift[0] != "enable_message_ordering" {
		t.Errorf("drift = %v", drift)
	}
}

// TestApplyIsIdempotent applies the topology to a fresh emulator project
// twice: the first run creates everything, the second changes nothing, and
// the ingress subscription's policies read back as declared.
func TestApplyIsIdempotent(t *testing.T) {
	project := testenv.Project(t)
	client := testenv.PubSub(t, project)
	ctx := testenv.Context(t, time.Minute)
	c := topology.Default(project)
	c.MaxDeliveryAttempts = 7
	c.MinBackoff, c.MaxBackoff = 2*time.Second, 30*time.Second

	first, err := topology.Apply(ctx, client, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 6 {
		t.Fatalf("first apply: %v", first)
	}
	for _, a := range first {
		if a.Result != "created" {
			t.Errorf("first apply: %v", a)
		}
	}
	second, err := topology.Apply(ctx, client, c)
	if err != nil {
		t.Fatal(err)
	}
	if second.Changed() {
		t.Fatalf("second apply changed something: %v", second)
	}

	sub, err := client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: c.SubscriptionPath(c.IngressSubscription)})
	if err != nil {
		t.Fatal(err)
	}
	if got := sub.GetDeadLetterPolicy(); got.GetMaxDeliveryAttempts() != 7 || got.GetDeadLetterTopic() != c.TopicPath(c.DeadLetterTopic) {
		t.Errorf("dead-letter policy = %v", got)
	}
	if rp := sub.GetRetryPolicy(); rp.GetMinimumBackoff().AsDuration() != 2*time.Second || rp.GetMaximumBackoff().AsDuration() != 30*time.Second {
		t.Errorf("retry policy = %v", rp)
	}
	if !sub.GetEnableMessageOrdering() {
		t.Error("ingress subscription not ordered")
	}

	// A changed setting is updated in place, and reported.
	c.MaxDeliveryAttempts = 9
	third, err := topology.Apply(ctx, client, c)
	if err != nil {
		t.Fatal(err)
	}
	if !third.Changed() || third[4].Result != "updated" || third[4].Detail != "dead_letter_policy" {
		t.Fatalf("third apply: %v", third)
	}
	sub, _ = client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: c.SubscriptionPath(c.IngressSubscription)})
	if sub.GetDeadLetterPolicy().GetMaxDeliveryAttempts() != 9 {
		t.Errorf("update not applied: %v", sub.GetDeadLetterPolicy())
	}
}

func TestEdgeSubscriptionLifecycle(t *testing.T) {
	client, c := testenv.Topology(t, testenv.Project(t), nil)
	ctx := testenv.Context(t, time.Minute)
	want := c.EdgeSubscription("pod-a", "")
	if a, err := topology.EnsureSubscription(ctx, client, want); err != nil || a.Result != "created" {
		t.Fatalf("create edge subscription: %v %v", a, err)
	}
	if a, err := topology.EnsureSubscription(ctx, client, want); err != nil || a.Result != "unchanged" {
		t.Fatalf("re-ensure edge subscription: %v %v", a, err)
	}
	if err := topology.DeleteSubscription(ctx, client, want.Name); err != nil {
		t.Fatal(err)
	}
	if err := topology.DeleteSubscription(ctx, client, want.Name); err != nil {
		t.Fatalf("deleting a missing subscription must succeed: %v", err)
	}
}
