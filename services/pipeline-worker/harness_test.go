package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/batch"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// spans records every span the tests create (the global provider, as in
// production, so pubsubx's spans land here too).
var spans = testenv.RecordSpans()

// world is one test's project: topology applied, clients, and collectors on
// the deliveries and dead-letter topics.
type world struct {
	t          testing.TB
	project    string
	ps         *pubsub.Client
	fs         *firestore.Client
	store      *inbox.Store
	topo       topology.Config
	ingress    *pubsub.Publisher
	deliveries *collector
	dead       *collector
	pending    []*pubsub.PublishResult
}

func newWorld(t testing.TB, mutate func(*topology.Config)) *world {
	t.Helper()
	project := testenv.Project(t)
	w := &world{t: t, project: project, fs: testenv.Firestore(t, project)}
	w.store = inbox.New(w.fs)
	w.ps, w.topo = testenv.Topology(t, project, func(c *topology.Config) {
		// Short Pub/Sub backoff so redeliveries in tests are quick.
		c.MinBackoff, c.MaxBackoff = 100*time.Millisecond, 500*time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
	ctx := testenv.Context(t, 30*time.Second)
	// A subscription on the deliveries topic standing in for an edge pod
	// (not ordered, like an edge's: edges order by inbox position).
	subID := "test-deliveries"
	if _, err := w.ps.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: w.topo.SubscriptionPath(subID), Topic: w.topo.TopicPath(w.topo.DeliveriesTopic),
		AckDeadlineSeconds: 10,
	}); err != nil {
		t.Fatal(err)
	}
	w.ingress = w.ps.Publisher(w.topo.IngressTopic)
	w.ingress.EnableMessageOrdering = true
	w.ingress.PublishSettings.DelayThreshold = time.Millisecond
	t.Cleanup(w.ingress.Stop)
	w.deliveries = collect(t, w.ps, subID)
	w.dead = collect(t, w.ps, w.topo.DeadLetterSubscription)
	return w
}

// settings are the defaults for w's topology, with a short drain.
func (w *world) settings() settings {
	s, err := loadSettings(config.FromMap(map[string]string{"SHUTDOWN_TIMEOUT": "5s"}))
	if err != nil {
		w.t.Fatal(err)
	}
	s.Topology = w.topo
	s.PullTimeout = 2 * time.Second // each stop waits for the Pulls in progress
	return s
}

// running is one running worker.
type running struct {
	m    *metrics.Metrics
	stop func() error // cancels and waits for Run
	done chan struct{}
}

// start runs a worker (what main assembles, without its listeners) with
// settings s; wrap, when set, wraps its inbox
// committer (to inject failures).
func (w *world) start(s settings, wrap func(batch.Committer) batch.Committer) *running {
	w.t.Helper()
	logs := &testenv.LogBuffer{}
	logs.ShowOnFailure(w.t, "worker log")
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := assemble(s, w.ps, w.fs, log, wrap)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wk := &running{m: p.m, done: make(chan struct{})}
	go func() { defer close(wk.done); err = p.Run(ctx) }()
	var once sync.Once
	wk.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case <-wk.done:
			case <-time.After(30 * time.Second):
				w.t.Error("pipeline did not stop within 30s")
			}
		})
		return err
	}
	w.t.Cleanup(func() { _ = wk.stop() })
	return wk
}

func (wk *running) processed(result string) float64 {
	return testutil.ToFloat64(wk.m.Processed.WithLabelValues(result))
}

// env returns a valid envelope.
var env = inboxtest.Envelope

// publish publishes e the way api-gateway does and returns the trace id of
// the publishing span.
func (w *world) publish(e *courierv1.Envelope) string {
	w.t.Helper()
	data, err := proto.Marshal(e)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.publishRaw(data, e.MessageId, e.Sender)
}

func (w *world) publishRaw(data []byte, id, sender string) string {
	w.t.Helper()
	ctx, span := otel.Tracer("test").Start(testenv.Context(w.t, 20*time.Second), "test send")
	defer span.End()
	msg := &pubsub.Message{Data: data, OrderingKey: sender, Attributes: map[string]string{
		wire.AttrMessageID: id, wire.AttrSender: sender,
		wire.AttrSchema: wire.SchemaEnvelope, wire.AttrContentType: "application/protobuf",
	}}
	if _, err := pubsubx.Publish(ctx, w.ingress, msg, id); err != nil {
		w.t.Fatal(err)
	}
	return span.SpanContext().TraceID().String()
}

// publishAsync publishes like publishRaw without waiting for the
// confirmation, so that many messages reach the worker together; flush
// waits for every confirmation.
func (w *world) publishAsync(data []byte, id, sender string) {
	w.t.Helper()
	msg := &pubsub.Message{Data: data, OrderingKey: sender, Attributes: map[string]string{
		wire.AttrMessageID: id, wire.AttrSender: sender,
		wire.AttrSchema: wire.SchemaEnvelope, wire.AttrContentType: "application/protobuf",
	}}
	w.pending = append(w.pending, w.ingress.Publish(context.Background(), msg))
}

func (w *world) flush() {
	w.t.Helper()
	ctx := testenv.Context(w.t, time.Minute)
	for _, r := range w.pending {
		if _, err := r.Get(ctx); err != nil {
			w.t.Fatal(err)
		}
	}
	w.pending = nil
}

// inboxIDs lists user's inbox as message ids, oldest first, checking that
// positions are 1..n without a gap.
func (w *world) inboxIDs(user string) []string {
	w.t.Helper()
	entries, err := w.store.List(testenv.Context(w.t, 20*time.Second), user, 0, 1000)
	if err != nil {
		w.t.Fatal(err)
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		if e.Seq != int64(i+1) {
			w.t.Fatalf("inbox of %s: position %d at index %d", user, e.Seq, i)
		}
		ids[i] = e.Message.Id
	}
	return ids
}

// collector receives everything on a subscription, acking it.
type collector struct {
	mu   sync.Mutex
	msgs []*pubsub.Message
	at   []time.Time // arrival times
}

func collect(t testing.TB, ps *pubsub.Client, subID string) *collector {
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ps.Subscriber(subID).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.at = append(c.at, time.Now())
			c.mu.Unlock()
			m.Ack()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// with returns the messages whose courier_message_id is id.
func (c *collector) with(id string) []*pubsub.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*pubsub.Message
	for _, m := range c.msgs {
		if m.Attributes[wire.AttrMessageID] == id {
			out = append(out, m)
		}
	}
	return out
}

// ids returns the courier message ids received, in arrival order.
func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.msgs))
	for i, m := range c.msgs {
		out[i] = m.Attributes[wire.AttrMessageID]
	}
	return out
}

// byPosition returns the ids of the deliveries to user, in the order of
// user's inbox positions they carry (what an edge writes them in).
func (c *collector) byPosition(t testing.TB, user string) []string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	type at struct {
		id  string
		pos int64
	}
	var got []at
	for _, m := range c.msgs {
		d, err := wire.DecodeDelivery(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range d.GetRecipients() {
			if r.GetUserId() == user {
				pos, err := inbox.DecodeCursor(r.GetCursor())
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, at{d.GetMessage().GetId(), pos})
			}
		}
	}
	slices.SortStableFunc(got, func(a, b at) int { return cmp.Compare(a.pos, b.pos) })
	ids := make([]string, len(got))
	for i, g := range got {
		ids[i] = g.id
	}
	return ids
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// waitFor waits until every id has at least one message.
func (c *collector) waitFor(t testing.TB, d time.Duration, ids ...string) {
	t.Helper()
	testenv.Eventually(t, d, fmt.Sprintf("messages %v", ids), func() bool {
		got := c.ids()
		for _, id := range ids {
			if !slices.Contains(got, id) {
				return false
			}
		}
		return true
	})
}

// subsequence returns the elements of s that are in keep, in order.
func subsequence(s []string, keep func(string) bool) []string {
	var out []string
	for _, x := range s {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}
