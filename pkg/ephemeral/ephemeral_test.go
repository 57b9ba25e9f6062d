package ephemeral_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/courierhq/courier/pkg/ephemeral"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
)

func TestKindLabel(t *testing.T) {
	for in, want := range map[string]string{"signal": "signal", "read": "read", "typing": "other", "": "other"} {
		if got := ephemeral.KindLabel(in); got != want {
			t.Errorf("KindLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// newTopic makes a topic and a subscription to it on the emulator.
func newTopic(t *testing.T) (*pubsub.Client, string, string) {
	t.Helper()
	project := testenv.Project(t)
	client := testenv.PubSub(t, project)
	ctx := testenv.Context(t, time.Minute)
	topic := "projects/" + project + "/topics/" + testenv.ID("eph-")
	if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	sub := "projects/" + project + "/subscriptions/" + testenv.ID("eph-sub-")
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic}); err != nil {
		t.Fatal(err)
	}
	return client, topic, sub
}

func TestPublishReachesTheTopic(t *testing.T) {
	client, topic, sub := newTopic(t)
	m, err := ephemeral.NewMetrics(prometheus.NewRegistry(), "test")
	if err != nil {
		t.Fatal(err)
	}
	p := ephemeral.New(client, topic, ephemeral.Options{}, m, nil)
	frame := []byte(`{"type":"signal","from":"alice","kind":"typing"}`)
	if !p.Publish(context.Background(), []string{"bob", "carol"}, "signal", frame) {
		t.Fatal("a valid event was dropped")
	}
	ctx, cancel := context.WithTimeout(testenv.Context(t, time.Minute), 30*time.Second)
	defer cancel()
	var once sync.Once
	var got *pubsub.Message
	err = client.Subscriber(sub).Receive(ctx, func(_ context.Context, msg *pubsub.Message) {
		msg.Ack()
		once.Do(func() { got = msg; cancel() })
	})
	if err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatal("no event received")
	}
	if got.Attributes[wire.AttrSchema] != wire.SchemaEphemeral || got.Attributes[wire.AttrRecipients] != "bob,carol" || got.OrderingKey != "" {
		t.Fatalf("attributes %v ordering key %q", got.Attributes, got.OrderingKey)
	}
	e, err := wire.DecodeEphemeral(got.Data)
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Frame) != string(frame) || e.Kind != "signal" || e.SentAt == nil {
		t.Fatalf("event %v", e)
	}
	testenv.Eventually(t, 10*time.Second, "published counter", func() bool {
		return testutil.ToFloat64(m.Published.WithLabelValues("signal")) == 1
	})
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.Publish(context.Background(), []string{"bob"}, "signal", frame) {
		t.Error("Publish after Stop took the event")
	}
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues("signal", "stopped")); got != 1 {
		t.Errorf("dropped{stopped} = %v", got)
	}
}

func TestPublishDropsWhatItCannotTakeAtOnce(t *testing.T) {
	client, topic, _ := newTopic(t)
	m, err := ephemeral.NewMetrics(prometheus.NewRegistry(), "test")
	if err != nil {
		t.Fatal(err)
	}
	// One slot, and a batch delay long enough that the first event is still
	// in flight when the next ones come.
	p := ephemeral.New(client, topic, ephemeral.Options{MaxOutstanding: 1, DelayThreshold: 2 * time.Second}, m, nil)
	defer func() { _ = p.Stop(context.Background()) }()
	frame := []byte(`{"type":"presence","user":"bob","online":true}`)
	start := time.Now()
	taken := 0
	for range 5 {
		if p.Publish(context.Background(), []string{"alice"}, "presence", frame) {
			taken++
		}
	}
	if time.Since(start) > time.Second {
		t.Errorf("Publish blocked for %s", time.Since(start))
	}
	if taken != 1 {
		t.Fatalf("%d events taken with one slot, want 1", taken)
	}
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues("presence", "queue_full")); got != 4 {
		t.Fatalf("dropped{queue_full} = %v, want 4", got)
	}
	if p.Publish(context.Background(), nil, "presence", frame) {
		t.Fatal("an event without users was taken")
	}
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues("presence", "invalid")); got != 1 {
		t.Fatalf("dropped{invalid} = %v, want 1", got)
	}
	testenv.Eventually(t, 20*time.Second, "the slot is given back once Pub/Sub confirms", func() bool {
		return p.Publish(context.Background(), []string{"alice"}, "presence", frame)
	})
}
