package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/pkg/config"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/batch"
)

// The same envelope published twice (a client retry with its idempotency
// key, or a redelivery) is stored once; its delivery is published again,
// with the same positions, so an edge drops it as a duplicate.
func TestStoredOnceWhenRepeated(t *testing.T) {
	w := newWorld(t, nil)
	wk := w.start(w.settings(), nil)

	e := env("once-1", "alice", "bob", "carol")
	w.publish(e)
	w.publish(e)
	testenv.Eventually(t, 30*time.Second, "both copies processed", func() bool {
		return wk.processed("stored") == 1 && wk.processed("duplicate") == 1
	})
	// A later message of the same sender: deliveries are published in
	// order per sender and the test subscription is ordered, so once it
	// arrives, any repeat of once-1 would have arrived before it.
	w.publish(env("once-2", "alice", "bob"))
	w.deliveries.waitFor(t, 30*time.Second, "once-2")

	got := w.deliveries.with("once-1")
	if len(got) != 2 || !bytes.Equal(got[0].Data, got[1].Data) { // same message, same cursors
		t.Fatalf("once-1 delivered %d times (want the delivery and its identical repeat)", len(got))
	}
	d := got[0]
	if d.Attributes[wire.AttrRecipients] != "bob,carol,alice" || d.Attributes[wire.AttrSchema] != "courier.v1.Delivery" ||
		d.Attributes[wire.AttrSender] != "alice" || d.Attributes["traceparent"] == "" {
		t.Errorf("delivery attributes %v", d.Attributes)
	}
	var del courierv1.Delivery
	if err := proto.Unmarshal(d.Data, &del); err != nil || del.Message.Id != "once-1" || string(del.Message.Payload) != `{"text":"once-1"}` {
		t.Fatalf("delivery %v %v", &del, err)
	}
	// alice's own copy, exactly once too.
	for _, u := range []string{"bob", "carol", "alice"} {
		ids := w.inboxIDs(u)
		if n := len(subsequence(ids, func(id string) bool { return id == "once-1" })); n != 1 {
			t.Errorf("inbox of %s holds once-1 %d times: %v", u, n, ids)
		}
	}
	for _, rc := range del.Recipients {
		if rc.UserId == "bob" && rc.Cursor != inbox.EncodeCursor(1) {
			t.Errorf("bob's cursor %q", rc.Cursor)
		}
	}
	if n := w.dead.len(); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}

// A poison message is dead-lettered at once with its reason, and the valid
// messages of the same sender before and after it flow without waiting.
func TestPoisonIsDeadLetteredWhileOthersFlow(t *testing.T) {
	w := newWorld(t, nil)
	wk := w.start(w.settings(), nil)

	w.publish(env("before", "alice", "bob"))
	poisonTrace := w.publishRaw([]byte{0xff, 0xff, 0x01}, "poison", "alice")
	bad := env("invalid", "alice") // no recipients
	w.publish(bad)
	afterAt := time.Now()
	w.publish(env("after", "alice", "bob"))

	w.deliveries.waitFor(t, 30*time.Second, "before", "after")
	promptly := time.Since(afterAt)
	w.dead.waitFor(t, 30*time.Second, "poison", "invalid")
	t.Logf("message after the poison delivered %s after its publish", promptly)
	if promptly > 5*time.Second {
		t.Errorf("the message behind the poison took %s", promptly)
	}
	if got := w.inboxIDs("bob"); !slices.Equal(got, []string{"before", "after"}) {
		t.Errorf("bob's inbox %v", got)
	}

	for id, reason := range map[string]string{"poison": "undecodable", "invalid": "invalid"} {
		letters := w.dead.with(id)
		if len(letters) != 1 {
			t.Fatalf("%s dead-lettered %d times", id, len(letters))
		}
		a := letters[0].Attributes
		if a[wire.AttrDeadLetterReason] != reason {
			t.Errorf("%s: reason %q, want %q", id, a[wire.AttrDeadLetterReason], reason)
		}
		if a[wire.AttrDeadLetterError] == "" || a[wire.AttrSourceSubscription] != w.topo.IngressSubscription ||
			a[wire.AttrDeliveryAttempt] != "1" || a[wire.AttrOrderingKey] != "alice" || a[wire.AttrSender] != "alice" {
			t.Errorf("%s: attributes %v", id, a)
		}
		if _, err := time.Parse(time.RFC3339Nano, a[wire.AttrFirstFailureTime]); err != nil {
			t.Errorf("%s: first failure time %q", id, a[wire.AttrFirstFailureTime])
		}
	}
	// The dead letter keeps the original data and the original trace.
	poison := w.dead.with("poison")[0]
	if string(poison.Data) != "\xff\xff\x01" {
		t.Errorf("poison data %q", poison.Data)
	}
	if tp := poison.Attributes["traceparent"]; !strings.Contains(tp, poisonTrace) {
		t.Errorf("dead letter traceparent %q is not in the publisher's trace %s", tp, poisonTrace)
	}
	if got := testutil.ToFloat64(wk.m.DeadLettered.WithLabelValues("undecodable")); got != 1 {
		t.Errorf("dead_lettered{undecodable} = %v", got)
	}
	if got := testutil.ToFloat64(wk.m.Retries); got != 0 {
		t.Errorf("%v retries: a permanent failure was retried", got)
	}
}

// One sender's messages are stored, and delivered with positions, in
// publish order, while other senders' messages interleave freely.
// Deliveries carry no ordering key (pkg/wire): the positions are the order.
func TestPerSenderOrderIsKept(t *testing.T) {
	w := newWorld(t, nil)
	w.start(w.settings(), nil)

	const n = 15
	var all []string
	for i := range n {
		for _, s := range []string{"alice", "carol", "erin"} {
			id := fmt.Sprintf("%s-%02d", s, i)
			all = append(all, id)
			// Everyone writes to bob; alice also to dave.
			to := []string{"bob"}
			if s == "alice" {
				to = append(to, "dave")
			}
			w.publish(env(id, s, to...))
		}
	}
	w.deliveries.waitFor(t, 60*time.Second, all...)
	bob := w.inboxIDs("bob")
	if len(bob) != len(all) {
		t.Fatalf("bob has %d messages, want %d", len(bob), len(all))
	}
	inSenderOrder(t, "bob's inbox", bob, n, "alice", "carol", "erin")
	inSenderOrder(t, "bob's deliveries by position", w.deliveries.byPosition(t, "bob"), n, "alice", "carol", "erin")
	if got := w.inboxIDs("dave"); len(got) != n || !slices.IsSorted(got) {
		t.Errorf("dave's inbox %v", got)
	}
}

// The worker's spans continue the publisher's trace: process (consumer) →
// firestore commit, and process → publish to the deliveries topic
// (producer), all carrying the Courier message id; the delivery's trace
// context points at that producer span.
func TestSpansContinueThePublishersTrace(t *testing.T) {
	w := newWorld(t, nil)
	w.start(w.settings(), nil)
	traceID := w.publish(env("traced-1", "alice", "bob"))
	w.deliveries.waitFor(t, 30*time.Second, "traced-1")

	var process, commit, publish *tracetest.SpanStub
	testenv.Eventually(t, 10*time.Second, "worker spans exported", func() bool {
		process, commit, publish = nil, nil, nil
		for _, s := range tracetest.SpanStubsFromReadOnlySpans(spans.Ended()) {
			if s.SpanContext.TraceID().String() != traceID {
				continue
			}
			switch {
			case s.Name == "process "+w.topo.IngressSubscription:
				process = &s
			case s.Name == "firestore commit":
				commit = &s
			case s.Name == "publish "+w.topo.DeliveriesTopic:
				publish = &s
			}
		}
		return process != nil && commit != nil && publish != nil
	})
	if process.SpanKind != trace.SpanKindConsumer || publish.SpanKind != trace.SpanKindProducer {
		t.Errorf("kinds: process %v publish %v", process.SpanKind, publish.SpanKind)
	}
	if commit.Parent.SpanID() != process.SpanContext.SpanID() || publish.Parent.SpanID() != process.SpanContext.SpanID() {
		t.Errorf("commit and publish are not children of the process span")
	}
	for _, s := range []*tracetest.SpanStub{process, commit, publish} {
		if !hasAttr(s.Attributes, pubsubx.KeyCourierMessageID.String("traced-1")) {
			t.Errorf("span %q lacks courier.message.id: %v", s.Name, s.Attributes)
		}
	}
	if !hasAttr(process.Attributes, attribute.String("messaging.system", "gcp_pubsub")) {
		t.Errorf("process span attributes %v", process.Attributes)
	}
	tp := w.deliveries.with("traced-1")[0].Attributes["traceparent"]
	if !strings.Contains(tp, traceID) || !strings.Contains(tp, publish.SpanContext.SpanID().String()) {
		t.Errorf("delivery traceparent %q does not point at the fan-out publish span", tp)
	}
}

// inSenderOrder checks that ids (an inbox, the deliveries) hold each
// sender's messages "<sender>-00" … in order.
func inSenderOrder(t *testing.T, what string, ids []string, n int, senders ...string) {
	t.Helper()
	for _, s := range senders {
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("%s-%02d", s, i))
		}
		if got := subsequence(ids, func(id string) bool { return strings.HasPrefix(id, s+"-") }); !slices.Equal(got, want) {
			t.Errorf("%s, messages of %s out of order: %v", what, s, got)
		}
	}
}

func hasAttr(attrs []attribute.KeyValue, want attribute.KeyValue) bool {
	return slices.ContainsFunc(attrs, func(a attribute.KeyValue) bool { return a == want })
}

// failing fails the commits of chosen messages with a transient error and
// commits the rest of their batch.
type failing struct {
	batch.Committer
	fail     func(id string) bool
	failures atomic.Int32
}

func (f *failing) Commit(ctx context.Context, envs []*courierv1.Envelope) []inbox.Result {
	res := make([]inbox.Result, len(envs))
	var rest []*courierv1.Envelope
	var at []int
	for i, e := range envs {
		if f.fail(e.MessageId) {
			f.failures.Add(1)
			res[i].Err = status.Error(codes.Unavailable, "injected outage")
			continue
		}
		rest, at = append(rest, e), append(at, i)
	}
	if len(rest) > 0 {
		for k, r := range f.Committer.Commit(ctx, rest) {
			res[at[k]] = r
		}
	}
	return res
}

// A transient failure that lasts through the last delivery attempt is
// dead-lettered by the worker with reason "exhausted" (on the ordered
// ingress subscription the emulator never dead-letters by itself), after
// exactly MaxDeliveryAttempts deliveries, never earlier.
func TestPersistentTransientFailureIsDeadLetteredOnTheLastAttempt(t *testing.T) {
	w := newWorld(t, nil)
	s := w.settings()
	s.Retry.Budget = 50 * time.Millisecond
	wk := w.start(s, func(c batch.Committer) batch.Committer {
		return &failing{Committer: c, fail: func(id string) bool { return id == "stuck" }}
	})

	w.publish(env("stuck", "alice", "bob"))
	w.publish(env("fine", "carol", "bob"))
	w.dead.waitFor(t, 60*time.Second, "stuck")
	w.deliveries.waitFor(t, 30*time.Second, "fine")

	a := w.dead.with("stuck")[0].Attributes
	if a[wire.AttrDeadLetterReason] != "exhausted" || a[wire.AttrDeliveryAttempt] != fmt.Sprint(w.topo.MaxDeliveryAttempts) ||
		!strings.Contains(a[wire.AttrDeadLetterError], "injected outage") {
		t.Errorf("dead letter attributes %v", a)
	}
	if got := testutil.ToFloat64(wk.m.Nacked.WithLabelValues("retry_budget")); got != float64(w.topo.MaxDeliveryAttempts-1) {
		t.Errorf("nacked %v times before dead-lettering, want %d", got, w.topo.MaxDeliveryAttempts-1)
	}
	if len(w.dead.with("stuck")) != 1 || len(w.deliveries.with("stuck")) != 0 {
		t.Errorf("stuck: %d letters, %d deliveries", len(w.dead.with("stuck")), len(w.deliveries.with("stuck")))
	}
}

// gated blocks the commit of the batch holding one message until released.
type gated struct {
	batch.Committer
	id      string
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gated) Commit(ctx context.Context, envs []*courierv1.Envelope) []inbox.Result {
	if slices.ContainsFunc(envs, func(e *courierv1.Envelope) bool { return e.MessageId == g.id }) {
		g.once.Do(func() { close(g.entered) })
		select {
		case <-g.release:
		case <-ctx.Done():
			res := make([]inbox.Result, len(envs))
			for i := range res {
				res[i].Err = ctx.Err()
			}
			return res
		}
	}
	return g.Committer.Commit(ctx, envs)
}

func gate(id string) (*gated, func(batch.Committer) batch.Committer) {
	g := &gated{id: id, entered: make(chan struct{}), release: make(chan struct{})}
	return g, func(c batch.Committer) batch.Committer { g.Committer = c; return g }
}

// Shutdown stops pulling but finishes the message in flight: it is stored,
// delivered and acked (a new worker does not see it again).
func TestShutdownFinishesInFlightMessages(t *testing.T) {
	w := newWorld(t, nil)
	gate, wrap := gate("inflight")
	wk := w.start(w.settings(), wrap)
	w.publish(env("inflight", "alice", "bob"))
	<-gate.entered

	stopped := make(chan error)
	go func() { stopped <- wk.stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Run returned with a message in flight: %v", err)
	case <-time.After(200 * time.Millisecond): // it must still be draining
	}
	close(gate.release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if wk.processed("stored") != 1 {
		t.Fatalf("in-flight message not finished")
	}
	w.deliveries.waitFor(t, 10*time.Second, "inflight")

	// A fresh worker must not get it again: once its successor from the same
	// sender is processed, the acked one would have come first.
	next := w.start(w.settings(), nil)
	w.publish(env("next", "alice", "bob"))
	w.deliveries.waitFor(t, 30*time.Second, "next")
	if next.processed("duplicate") != 0 {
		t.Fatal("the message finished during shutdown was redelivered (not acked)")
	}
	if got := w.inboxIDs("bob"); !slices.Equal(got, []string{"inflight", "next"}) {
		t.Fatalf("bob's inbox %v", got)
	}
}

// A message still stuck when the drain deadline passes is nacked, not lost:
// Run returns within its bound, and the next worker processes the message.
//
// Promptly: well within the ingress ack deadline (30 s), which is how long
// it would wait if it were stranded on a Pull cancelled by the shutdown.
// The emulator redelivers the nack at once, possibly to the stopping
// worker's last Pulls, which nack it again; they end within PullTimeout.
func TestShutdownDeadlineNacksStuckMessages(t *testing.T) {
	w := newWorld(t, nil)
	gate, wrap := gate("stuck")
	s := w.settings()
	s.DrainTimeout = time.Second
	wk := w.start(s, wrap)
	w.publish(env("stuck", "alice", "bob"))
	<-gate.entered
	began := time.Now()
	if err := wk.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("shutdown took %s with a 1s drain deadline", took)
	}
	if got := testutil.ToFloat64(wk.m.Nacked.WithLabelValues("shutdown")); got != 1 {
		t.Fatalf("nacked{shutdown} = %v", got)
	}
	if _, err := w.store.Get(testenv.Context(t, 10*time.Second), "stuck"); err == nil {
		t.Fatal("the abandoned attempt stored the message")
	}

	w.start(w.settings(), nil)
	stoppedAt := time.Now()
	w.deliveries.waitFor(t, w.topo.IngressAckDeadline*2/3, "stuck")
	t.Logf("the nacked message was processed %s after the first worker stopped", time.Since(stoppedAt).Round(time.Millisecond))
	if got := w.inboxIDs("bob"); !slices.Equal(got, []string{"stuck"}) {
		t.Fatalf("bob's inbox %v", got)
	}
}

func TestLoadSettings(t *testing.T) {
	e := config.FromMap(map[string]string{
		"WORKER_MAX_OUTSTANDING_MESSAGES": "7", "WORKER_PULL_CONCURRENCY": "2", "WORKER_RETRY_BUDGET": "3s",
		"WORKER_MAX_RECIPIENTS": "20", "INGRESS_MAX_DELIVERY_ATTEMPTS": "9",
		"WORKER_BATCH_MAX_MESSAGES": "50", "WORKER_BATCH_LINGER": "5ms", "WORKER_HEAD_CACHE_SIZE": "10",
	})
	s, err := loadSettings(e)
	if err != nil {
		t.Fatal(err)
	}
	rc := s.receiverConfig()
	if rc.MaxOutstandingMessages != 7 || rc.Pullers != 2 || rc.MaxOutstandingBytes != 64<<20 ||
		s.Retry.Budget != 3*time.Second || s.Limits.MaxRecipients != 20 || s.Topology.MaxDeliveryAttempts != 9 {
		t.Errorf("settings %+v", s)
	}
	if s.BatchMaxMessages != 50 || s.BatchLinger != 5*time.Millisecond || s.HeadCacheSize != 10 ||
		s.BatchMaxWrites != 500 || s.BatchMaxBytes != 3<<20 || s.MaxOutstandingMessages != 7 {
		t.Errorf("batch settings %+v", s)
	}
	if s.DrainTimeout != 22*time.Second || rc.DrainTimeout != s.DrainTimeout || rc.MaxExtension < s.Retry.Budget ||
		rc.ExtensionStep != 15*time.Second || rc.AckDeadline != s.Topology.IngressAckDeadline ||
		rc.Subscription != "projects/"+s.Topology.Project+"/subscriptions/"+s.Topology.IngressSubscription {
		t.Errorf("receiver config %+v", rc)
	}

	bad := config.FromMap(map[string]string{"WORKER_RETRY_INITIAL": "10s", "WORKER_MAX_RECIPIENTS": "1001", "WORKER_PULL_CONCURRENCY": "x",
		"WORKER_ACK_EXTENSION_STEP": "11m", "WORKER_PULL_TIMEOUT": "1s", "WORKER_BATCH_MAX_BYTES": "10485760", "WORKER_BATCH_MAX_MESSAGES": "0"})
	_, err = loadSettings(bad)
	for _, name := range []string{"WORKER_RETRY_INITIAL", "WORKER_MAX_RECIPIENTS", "WORKER_PULL_CONCURRENCY", "WORKER_ACK_EXTENSION_STEP", "WORKER_PULL_TIMEOUT",
		"WORKER_BATCH_MAX_BYTES", "WORKER_BATCH_MAX_MESSAGES"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}

// With WORKER_TARGETED_ROUTING each delivery names the edge pods that hold
// its recipients, read from the presence records in Firestore; a delivery
// to users connected nowhere is routed to no pod.
func TestDeliveriesAreRoutedByPresence(t *testing.T) {
	w := newWorld(t, nil)
	ctx := testenv.Context(t, 30*time.Second)
	tab := presence.NewTable(w.fs)
	for _, j := range [][2]string{{"bob", "edge-a"}, {"bob", "edge-b"}, {"carol", "edge-b"}} {
		if err := tab.Join(ctx, j[0], j[1]); err != nil {
			t.Fatal(err)
		}
	}
	s := w.settings()
	s.TargetedRouting = true
	w.start(s, nil)
	w.publish(env("to-bob-carol", "alice", "bob", "carol"))
	w.publish(env("to-dave", "alice", "dave"))
	w.deliveries.waitFor(t, 30*time.Second, "to-bob-carol", "to-dave")

	routed := w.deliveries.with("to-bob-carol")[0].Attributes
	if routed[presence.AttrRouted] != "1" || routed["courier_route_edge_a"] != "1" || routed["courier_route_edge_b"] != "1" {
		t.Fatalf("delivery to bob and carol: %v", routed)
	}
	nowhere := w.deliveries.with("to-dave")[0].Attributes
	if nowhere[presence.AttrRouted] != "1" || presence.RoutedTo(nowhere, "edge-a") || presence.RoutedTo(nowhere, "edge-b") {
		t.Fatalf("delivery to dave (connected nowhere): %v", nowhere)
	}
}
