package processor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/pubsubx"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/backoff"
	"github.com/courierhq/courier/services/pipeline-worker/internal/deadletter"
	"github.com/courierhq/courier/services/pipeline-worker/internal/envelope"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// fakeStore is a Store of func fields; nil fields behave like a healthy
// empty store.
type fakeStore struct {
	commit    func(ctx context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error)
	fannedOut func(ctx context.Context, id string) (bool, error)
	mark      func(ctx context.Context, id string) error
}

func (f *fakeStore) Commit(ctx context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error) {
	if f.commit != nil {
		return f.commit(ctx, env)
	}
	return stored(env), true, nil
}

func (f *fakeStore) FannedOut(ctx context.Context, id string) (bool, error) {
	if f.fannedOut != nil {
		return f.fannedOut(ctx, id)
	}
	return false, nil
}

func (f *fakeStore) MarkFannedOut(ctx context.Context, id string) error {
	if f.mark != nil {
		return f.mark(ctx, id)
	}
	return nil
}

type fakeDL struct {
	mu      sync.Mutex
	letters []deadletter.Letter
	err     error
}

func (f *fakeDL) Send(_ context.Context, _ *pubsub.Message, l deadletter.Letter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.letters = append(f.letters, l)
	return nil
}

func stored(env *courierv1.Envelope) inbox.Stored {
	seqs := map[string]int64{}
	for i, r := range env.Recipients {
		seqs[r] = int64(i + 1)
	}
	return inbox.Stored{Message: &courierv1.Message{Id: env.MessageId, From: env.Sender, To: env.Recipients, Payload: env.Payload}, Seqs: seqs}
}

func envelopeMsg(t testing.TB, id string, to ...string) *pubsub.Message {
	t.Helper()
	b, err := proto.Marshal(&courierv1.Envelope{
		MessageId: id, Sender: "alice", Recipients: to, Payload: []byte(`{"n":1}`),
		ContentType: "application/json", SentAt: timestamppb.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	attempt := 1
	return &pubsub.Message{ID: "ps-" + id, Data: b, OrderingKey: "alice", DeliveryAttempt: &attempt,
		PublishTime: time.Now(), Attributes: map[string]string{pubsubx.AttrMessageID: id}}
}

type harness struct {
	p         *Processor
	store     *fakeStore
	dl        *fakeDL
	m         *metrics.Metrics
	mu        sync.Mutex
	published []*pubsub.Message
	pubErr    func() error
}

func newHarness(t testing.TB, mutate func(*Config)) *harness {
	h := &harness{store: &fakeStore{}, dl: &fakeDL{}, m: metrics.New(prometheus.NewRegistry())}
	cfg := Config{
		Subscription: "courier-ingress-worker", MaxDeliveryAttempts: 5,
		Limits:         envelope.Limits{MaxEnvelopeBytes: 1 << 20, MaxPayloadBytes: 1 << 16, MaxRecipients: 10},
		Retry:          backoff.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Budget: time.Second},
		AttemptTimeout: time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	publish := func(_ context.Context, msg *pubsub.Message, _ string) error {
		if h.pubErr != nil {
			if err := h.pubErr(); err != nil {
				return err
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.published = append(h.published, msg)
		return nil
	}
	h.p = New(cfg, h.store, publish, h.dl, h.m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return h
}

func (h *harness) handle(m *pubsub.Message) Outcome {
	return h.p.Handle(context.Background(), make(chan struct{}), m)
}

func TestValidMessageIsStoredPublishedAndAcked(t *testing.T) {
	h := newHarness(t, nil)
	var marked string
	h.store.mark = func(_ context.Context, id string) error { marked = id; return nil }
	if out := h.handle(envelopeMsg(t, "m1", "bob", "carol")); out != Ack {
		t.Fatalf("outcome %v", out)
	}
	if len(h.published) != 1 {
		t.Fatalf("published %d deliveries", len(h.published))
	}
	d := h.published[0]
	want := map[string]string{
		pubsubx.AttrMessageID: "m1", pubsubx.AttrSender: "alice", pubsubx.AttrRecipients: "bob,carol",
		pubsubx.AttrSchema: "courier.v1.Delivery", pubsubx.AttrContentType: "application/protobuf",
	}
	for k, v := range want {
		if d.Attributes[k] != v {
			t.Errorf("delivery attribute %s = %q, want %q", k, d.Attributes[k], v)
		}
	}
	if d.OrderingKey != "alice" {
		t.Errorf("ordering key %q", d.OrderingKey)
	}
	var del courierv1.Delivery
	if err := proto.Unmarshal(d.Data, &del); err != nil || del.Message.Id != "m1" || len(del.Recipients) != 2 ||
		del.Recipients[1].Cursor != inbox.EncodeCursor(2) {
		t.Fatalf("delivery body %v %v", &del, err)
	}
	if marked != "m1" {
		t.Errorf("fan-out not marked")
	}
	if got := testutil.ToFloat64(h.m.Processed.WithLabelValues("stored")); got != 1 {
		t.Errorf("processed{stored} = %v", got)
	}
}

func TestRedeliveryPublishesOnlyWhenNotFannedOut(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fannedOut  bool
		publishes  int
		wantResult string
	}{
		{"already fanned out: nothing", true, 0, "duplicate"},
		{"stored but not fanned out (crash in between): publish", false, 1, "refanned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.store.commit = func(_ context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error) {
				return stored(env), false, nil
			}
			h.store.fannedOut = func(context.Context, string) (bool, error) { return tc.fannedOut, nil }
			if out := h.handle(envelopeMsg(t, "m1", "bob")); out != Ack {
				t.Fatalf("outcome %v", out)
			}
			if len(h.published) != tc.publishes {
				t.Fatalf("published %d", len(h.published))
			}
			if got := testutil.ToFloat64(h.m.Processed.WithLabelValues(tc.wantResult)); got != 1 {
				t.Errorf("processed{%s} = %v", tc.wantResult, got)
			}
		})
	}
}

func TestPermanentFailureIsDeadLetteredAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		msg    func(t *testing.T) *pubsub.Message
		commit error
		reason string
	}{
		{"undecodable", func(*testing.T) *pubsub.Message {
			return &pubsub.Message{ID: "x", Data: []byte{0xff, 0x01}}
		}, nil, "undecodable"},
		{"invalid", func(t *testing.T) *pubsub.Message { return envelopeMsg(t, "m1") }, nil, "invalid"},
		{"rejected by Firestore", func(t *testing.T) *pubsub.Message { return envelopeMsg(t, "m1", "bob") },
			status.Error(codes.InvalidArgument, "document too large"), "rejected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			var commits atomic.Int32
			h.store.commit = func(_ context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error) {
				commits.Add(1)
				if tc.commit != nil {
					return inbox.Stored{}, false, tc.commit
				}
				return stored(env), true, nil
			}
			if out := h.handle(tc.msg(t)); out != DeadLettered {
				t.Fatalf("outcome %v", out)
			}
			if len(h.dl.letters) != 1 || h.dl.letters[0].Reason != tc.reason || h.dl.letters[0].Err == nil {
				t.Fatalf("letters %+v", h.dl.letters)
			}
			if tc.commit != nil && commits.Load() != 1 {
				t.Errorf("a permanent failure was retried: %d commits", commits.Load())
			}
			if len(h.published) != 0 {
				t.Errorf("published a delivery")
			}
			if got := testutil.ToFloat64(h.m.DeadLettered.WithLabelValues(tc.reason)); got != 1 {
				t.Errorf("dead_lettered{%s} = %v", tc.reason, got)
			}
		})
	}
}

func TestTransientFailureIsRetriedInProcess(t *testing.T) {
	h := newHarness(t, nil)
	var commits atomic.Int32
	h.store.commit = func(_ context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error) {
		if commits.Add(1) <= 3 {
			return inbox.Stored{}, false, status.Error(codes.Unavailable, "firestore down")
		}
		return stored(env), true, nil
	}
	if out := h.handle(envelopeMsg(t, "m1", "bob")); out != Ack {
		t.Fatalf("outcome %v", out)
	}
	if commits.Load() != 4 || testutil.ToFloat64(h.m.Retries) != 3 || testutil.ToFloat64(h.m.Failures.WithLabelValues("transient")) != 3 {
		t.Fatalf("commits %d retries %v", commits.Load(), testutil.ToFloat64(h.m.Retries))
	}
	if len(h.dl.letters) != 0 {
		t.Fatal("dead-lettered a transient failure")
	}
}

func TestPublishFailureRetriesWithoutRecommitting(t *testing.T) {
	h := newHarness(t, nil)
	var n atomic.Int32
	h.pubErr = func() error {
		if n.Add(1) == 1 {
			return status.Error(codes.Unavailable, "pubsub down")
		}
		return nil
	}
	var commits atomic.Int32
	h.store.commit = func(_ context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error) {
		return stored(env), commits.Add(1) == 1, nil // the retry finds it stored
	}
	if out := h.handle(envelopeMsg(t, "m1", "bob")); out != Ack {
		t.Fatalf("outcome %v", out)
	}
	if len(h.published) != 1 || testutil.ToFloat64(h.m.Processed.WithLabelValues("refanned")) != 1 {
		t.Fatalf("published %d", len(h.published))
	}
}

func TestRetryBudgetSpentNacksBeforeTheLastAttempt(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    Outcome
	}{{1, Nack}, {4, Nack}, {5, DeadLettered}, {7, DeadLettered}} {
		h := newHarness(t, func(c *Config) { c.Retry.Budget = 30 * time.Millisecond })
		h.store.commit = func(context.Context, *courierv1.Envelope) (inbox.Stored, bool, error) {
			return inbox.Stored{}, false, status.Error(codes.Unavailable, "down")
		}
		m := envelopeMsg(t, "m1", "bob")
		m.DeliveryAttempt = &tc.attempt
		start := time.Now()
		if out := h.handle(m); out != tc.want {
			t.Fatalf("attempt %d: outcome %v, want %v", tc.attempt, out, tc.want)
		}
		if el := time.Since(start); el < 15*time.Millisecond {
			t.Errorf("attempt %d: gave up after %s, before spending the budget", tc.attempt, el)
		}
		if tc.want == DeadLettered && (h.dl.letters[0].Reason != "exhausted" || h.dl.letters[0].Attempt != tc.attempt) {
			t.Errorf("letter %+v", h.dl.letters[0])
		}
		if tc.want == Nack && testutil.ToFloat64(h.m.Nacked.WithLabelValues("retry_budget")) != 1 {
			t.Errorf("nacked{retry_budget} not counted")
		}
	}
}

func TestNoDeliveryAttemptNeverExhausts(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retry.Budget = 10 * time.Millisecond })
	h.store.commit = func(context.Context, *courierv1.Envelope) (inbox.Stored, bool, error) {
		return inbox.Stored{}, false, status.Error(codes.Unavailable, "down")
	}
	m := envelopeMsg(t, "m1", "bob")
	m.DeliveryAttempt = nil // subscription without a dead-letter policy
	if out := h.handle(m); out != Nack {
		t.Fatalf("outcome %v", out)
	}
}

func TestPanicIsRecoveredAsTransient(t *testing.T) {
	h := newHarness(t, nil)
	var n atomic.Int32
	h.store.commit = func(_ context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error) {
		if n.Add(1) == 1 {
			panic("boom")
		}
		return stored(env), true, nil
	}
	if out := h.handle(envelopeMsg(t, "m1", "bob")); out != Ack {
		t.Fatalf("outcome %v", out)
	}
	if testutil.ToFloat64(h.m.Failures.WithLabelValues("transient")) != 1 {
		t.Fatal("panic not counted as a transient failure")
	}
}

func TestShutdownStopsRetryingAndNacks(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Retry = backoff.Policy{Initial: time.Hour, Max: time.Hour, Budget: 10 * time.Hour}
	})
	attempted := make(chan struct{}, 1)
	h.store.commit = func(context.Context, *courierv1.Envelope) (inbox.Stored, bool, error) {
		select {
		case attempted <- struct{}{}:
		default:
		}
		return inbox.Stored{}, false, status.Error(codes.Unavailable, "down")
	}
	stop := make(chan struct{})
	done := make(chan Outcome)
	go func() { done <- h.p.Handle(context.Background(), stop, envelopeMsg(t, "m1", "bob")) }()
	<-attempted
	close(stop)
	select {
	case out := <-done:
		if out != Nack {
			t.Fatalf("outcome %v", out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Handle kept waiting for its retry after shutdown began")
	}
	if testutil.ToFloat64(h.m.Nacked.WithLabelValues("shutdown")) != 1 {
		t.Error("nacked{shutdown} not counted")
	}
}

func TestDeadLetterPublishFailureNacks(t *testing.T) {
	h := newHarness(t, nil)
	h.dl.err = errors.New("pubsub down")
	if out := h.handle(&pubsub.Message{ID: "x", Data: []byte{0xff}}); out != Nack {
		t.Fatalf("outcome %v", out)
	}
}

func TestFanOutMarkFailureStillAcks(t *testing.T) {
	h := newHarness(t, nil)
	h.store.mark = func(context.Context, string) error { return status.Error(codes.Unavailable, "down") }
	if out := h.handle(envelopeMsg(t, "m1", "bob")); out != Ack || len(h.published) != 1 {
		t.Fatalf("outcome %v, published %d", out, len(h.published))
	}
}

func TestFirstFailureTimeSurvivesRedelivery(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retry.Budget = 5 * time.Millisecond })
	h.store.commit = func(context.Context, *courierv1.Envelope) (inbox.Stored, bool, error) {
		return inbox.Stored{}, false, status.Error(codes.Unavailable, "down")
	}
	t0, base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Now()
	h.p.now = func() time.Time { return t0.Add(time.Since(base)) }
	if out := h.handle(envelopeMsg(t, "m1", "bob")); out != Nack {
		t.Fatalf("first attempt: %v", out)
	}
	h.p.now = time.Now
	last := envelopeMsg(t, "m1", "bob")
	five := 5
	last.DeliveryAttempt = &five
	if out := h.handle(last); out != DeadLettered {
		t.Fatalf("last attempt: %v", out)
	}
	if got := h.dl.letters[0].FirstFailure; got.Before(t0) || got.After(t0.Add(time.Minute)) {
		t.Fatalf("first failure %s, want %s", got, t0)
	}
}

// Commits to a shared recipient never overlap inside one process.
func TestCommitsSerializePerRecipient(t *testing.T) {
	h := newHarness(t, nil)
	var mu sync.Mutex
	inside := map[string]int{}
	var overlaps atomic.Int32
	h.store.commit = func(_ context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error) {
		mu.Lock()
		for _, r := range env.Recipients {
			if inside[r]++; inside[r] > 1 {
				overlaps.Add(1)
			}
		}
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		for _, r := range env.Recipients {
			inside[r]--
		}
		mu.Unlock()
		return stored(env), true, nil
	}
	recipients := [][]string{{"bob"}, {"bob", "carol"}, {"carol", "dave"}, {"dave", "bob"}}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out := h.handle(envelopeMsg(t, "m"+string(rune('a'+i%26))+string(rune('a'+i/26)), recipients[i%4]...)); out != Ack {
				t.Errorf("outcome %v", out)
			}
		}()
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping commits to one recipient", overlaps.Load())
	}
}

type routerFunc func(ctx context.Context, users []string) ([]string, error)

func (f routerFunc) Pods(ctx context.Context, users []string) ([]string, error) { return f(ctx, users) }

// With a router, each delivery names the pods holding its recipients, and
// presence is read only after the commit (package routing's argument that
// nothing is lost depends on that order).
func TestDeliveryIsRoutedAfterTheCommit(t *testing.T) {
	var order []string
	h := newHarness(t, func(c *Config) {
		c.Router = routerFunc(func(_ context.Context, users []string) ([]string, error) {
			order = append(order, "presence")
			if !slices.Equal(users, []string{"bob", "carol"}) {
				t.Errorf("presence read for %v", users)
			}
			return []string{"edge-a", "edge-b"}, nil
		})
	})
	h.store.commit = func(_ context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error) {
		order = append(order, "commit")
		return stored(env), true, nil
	}
	if out := h.handle(envelopeMsg(t, "m1", "bob", "carol")); out != Ack {
		t.Fatalf("outcome %v", out)
	}
	if !slices.Equal(order, []string{"commit", "presence"}) {
		t.Fatalf("order %v", order)
	}
	a := h.published[0].Attributes
	if a["courier_routed"] != "1" || a["courier_route_edge_a"] != "1" || a["courier_route_edge_b"] != "1" {
		t.Fatalf("delivery attributes %v", a)
	}
	if got := testutil.ToFloat64(h.m.Routing.WithLabelValues("routed")); got != 1 {
		t.Fatalf("routing{routed} = %v", got)
	}
}

// Presence that cannot be read costs fan-out, not delivery: the delivery
// goes out unrouted, to every pod. No recipient connected anywhere: routed
// to no pod (it waits in the inboxes).
func TestRoutingFallsBackToEveryPod(t *testing.T) {
	var fail bool
	h := newHarness(t, func(c *Config) {
		c.Router = routerFunc(func(context.Context, []string) ([]string, error) {
			if fail {
				return nil, errors.New("firestore unavailable")
			}
			return nil, nil
		})
	})
	if out := h.handle(envelopeMsg(t, "m1", "bob")); out != Ack {
		t.Fatalf("outcome %v", out)
	}
	fail = true
	if out := h.handle(envelopeMsg(t, "m2", "bob")); out != Ack {
		t.Fatalf("outcome %v", out)
	}
	nowhere, unrouted := h.published[0].Attributes, h.published[1].Attributes
	if nowhere["courier_routed"] != "1" || len(nowhere) != 6 {
		t.Fatalf("delivery to nobody connected: %v", nowhere)
	}
	if _, ok := unrouted["courier_routed"]; ok {
		t.Fatalf("delivery with unknown presence is routed: %v", unrouted)
	}
	if testutil.ToFloat64(h.m.Routing.WithLabelValues("nowhere")) != 1 || testutil.ToFloat64(h.m.Routing.WithLabelValues("unrouted")) != 1 {
		t.Fatal("routing metrics")
	}
}
