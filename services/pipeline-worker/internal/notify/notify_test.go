package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/edges"
	"github.com/courierhq/courier/pkg/online"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
	"github.com/courierhq/courier/services/pipeline-worker/internal/notify"
)

func TestEventsAndPreview(t *testing.T) {
	env := &courierv1.Envelope{MessageId: "m1", Sender: "alice", Recipients: []string{"bob", "alice", "carol"},
		Payload: []byte(`{"text":"secret","notify_preview":"Hi from Alice"}`), SentAt: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
	evs := notify.Events(env, func(u string) bool { return u == "bob" })
	if len(evs) != 1 {
		t.Fatalf("events %+v: want carol's only (bob online, alice the sender)", evs)
	}
	want := notify.Event{User: "carol", MessageID: "m1", ConversationID: wire.DeriveConversationID([]string{"alice", "bob", "carol"}),
		From: "alice", SentAt: "2026-01-02T03:04:05Z", Preview: "Hi from Alice"}
	if evs[0] != want {
		t.Fatalf("event %+v, want %+v", evs[0], want)
	}
	// A conversation the sender named is the event's, not the derived one.
	env.ConversationId = "team-1"
	if evs := notify.Events(env, func(u string) bool { return u == "bob" }); len(evs) != 1 || evs[0].ConversationID != "team-1" {
		t.Fatalf("events of a named conversation %+v: want carol's, conversation team-1", evs)
	}
	if p := notify.Preview([]byte(`{"text":"secret"}`)); p != "" {
		t.Fatalf("preview without opt-in: %q", p)
	}
	if p := notify.Preview([]byte(`"just a string"`)); p != "" {
		t.Fatalf("preview of a non-object: %q", p)
	}
}

// On the emulators: events exactly for the recipients without a session
// on a live pod — not for one connected to a live pod, not for the
// sender — and for one held only by a pod whose heartbeat is stale.
func TestEventsOnlyForRecipientsWithoutSessions(t *testing.T) {
	project := testenv.Project(t)
	client, topo := testenv.Topology(t, project, nil)
	fs := testenv.Firestore(t, project)
	ctx := testenv.Context(t, time.Minute)
	sub := topo.SubscriptionPath(testenv.ID("notify-"))
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topo.TopicPath(topo.NotifyTopic)}); err != nil {
		t.Fatal(err)
	}
	table := presence.NewTable(fs)
	if err := edges.New(fs).Beat(ctx, "edge-live", "sub-live", time.Now()); err != nil {
		t.Fatal(err)
	}
	// edge-dead last beat a minute ago (written directly: Beat stamps now).
	if _, err := fs.Collection(edges.Collection).Doc("edge-dead").Set(ctx, map[string]any{
		"subscription": "sub-dead", "heartbeat": time.Now().Add(-time.Minute), "started_at": time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for user, pod := range map[string]string{"bob": "edge-live", "dave": "edge-dead", "alice": "edge-live"} {
		if err := table.Join(ctx, user, pod); err != nil {
			t.Fatal(err)
		}
	}
	m := metrics.New(prometheus.NewRegistry())
	n := notify.New(client, topo.NotifyTopic, online.NewReader(fs, online.Options{StaleAfter: 35 * time.Second}), 10, 10*time.Second, m,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(runCtx) }()
	defer func() { stop(); <-done }()

	n.Offer(&courierv1.Envelope{MessageId: "m1", Sender: "alice", Recipients: []string{"bob", "carol", "dave", "alice"},
		Payload: []byte(`{"t":1}`), SentAt: timestamppb.Now()})

	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []notify.Event
	err := client.Subscriber(sub).Receive(rctx, func(_ context.Context, msg *pubsub.Message) {
		msg.Ack()
		var ev notify.Event
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			t.Errorf("event %s: %v", msg.Data, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev)
		if len(got) == 2 {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, ev := range got {
		users = append(users, ev.User)
		if ev.MessageID != "m1" || ev.From != "alice" || ev.Preview != "" || ev.ConversationID == "" {
			t.Errorf("event %+v", ev)
		}
	}
	slices.Sort(users)
	if !slices.Equal(users, []string{"carol", "dave"}) {
		t.Fatalf("events for %v, want carol and dave", users)
	}
	testenv.Eventually(t, 10*time.Second, "two events confirmed, bob counted online", func() bool {
		return testutil.ToFloat64(m.Notify.WithLabelValues("published")) == 2 && testutil.ToFloat64(m.Notify.WithLabelValues("online")) == 1
	})
}

// Offer never blocks: beyond the queue, messages are dropped and counted.
func TestOfferDropsWhenTheQueueIsFull(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	project := testenv.Project(t)
	client := testenv.PubSub(t, project)
	n := notify.New(client, "courier-notify", nil, 1, time.Second, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	env := &courierv1.Envelope{MessageId: "m", Sender: "a", Recipients: []string{"b", "c"}}
	n.Offer(env) // queued (nothing runs)
	n.Offer(env) // dropped
	if got := testutil.ToFloat64(m.Notify.WithLabelValues("dropped")); got != 2 {
		t.Fatalf("dropped = %v, want 2 (one message of two recipients)", got)
	}
}
