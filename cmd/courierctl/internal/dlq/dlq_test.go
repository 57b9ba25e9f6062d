package dlq_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/cmd/courierctl/internal/dlq"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// spans records the spans of every test in this package.
var spans = testenv.RecordSpans()

const origTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

type project struct {
	t      *testing.T
	ps     *pubsub.Client
	cfg    topology.Config
	dlTopc *pubsub.Publisher
}

func newProject(t *testing.T) *project {
	t.Helper()
	p := &project{t: t}
	p.ps, p.cfg = testenv.Topology(t, testenv.Project(t), nil)
	p.dlTopc = p.ps.Publisher(p.cfg.DeadLetterTopic)
	t.Cleanup(p.dlTopc.Stop)
	return p
}

func (p *project) inspector() *dlq.Inspector {
	i := dlq.New(p.ps, p.cfg, dlq.Options{Wait: 200 * time.Millisecond})
	p.t.Cleanup(i.Close)
	return i
}

func envelopeData(t *testing.T, id, from string, to ...string) []byte {
	t.Helper()
	b, err := proto.Marshal(&courierv1.Envelope{
		MessageId: id, Sender: from, Recipients: to, Payload: []byte(`{"text":"hello"}`),
		ContentType: "application/json", SentAt: timestamppb.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deadLetter publishes a letter like the pipeline-worker's and returns its
// Pub/Sub id.
func (p *project) deadLetter(id, reason string, data []byte) string {
	p.t.Helper()
	attrs := map[string]string{
		wire.AttrMessageID: id, wire.AttrSender: "alice", wire.AttrSchema: "courier.v1.Envelope",
		wire.AttrContentType: "application/protobuf", "traceparent": origTraceparent,
		wire.AttrDeadLetterReason: reason, wire.AttrDeadLetterError: reason + ": details",
		wire.AttrSourceSubscription: p.cfg.IngressSubscription, wire.AttrDeliveryAttempt: "3",
		wire.AttrFirstFailureTime: "2026-05-01T12:00:01Z", wire.AttrOrderingKey: "alice",
	}
	return p.publishDL(&pubsub.Message{Data: data, Attributes: attrs})
}

func (p *project) publishDL(m *pubsub.Message) string {
	p.t.Helper()
	id, err := p.dlTopc.Publish(testenv.Context(p.t, 10*time.Second), m).Get(testenv.Context(p.t, 10*time.Second))
	if err != nil {
		p.t.Fatal(err)
	}
	return id
}

func TestListAndShowLeaveLettersInPlace(t *testing.T) {
	p := newProject(t)
	ctx := testenv.Context(t, time.Minute)
	workerLetter := p.deadLetter("m-invalid", "invalid", envelopeData(t, "m-invalid", "alice"))
	// One forwarded by Pub/Sub's own dead-letter policy, undecodable.
	pubsubLetter := p.publishDL(&pubsub.Message{Data: []byte{0xff, 0x00, 0x01}, Attributes: map[string]string{
		wire.AttrMessageID: "m-poison", wire.AttrPubSubDeliveryCount: "5",
		wire.AttrPubSubSourceSubscription:                p.cfg.IngressSubscription,
		"CloudPubSubDeadLetterSourceSubscriptionProject": p.cfg.Project,
	}})
	insp := p.inspector()

	for round := range 3 { // listing must not consume anything
		letters, err := insp.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(letters) != 2 {
			t.Fatalf("round %d: %d letters", round, len(letters))
		}
	}
	letters, _ := insp.List(ctx)
	byID := map[string]*dlq.DeadLetter{}
	for _, d := range letters {
		byID[d.ID] = d
	}
	w := byID[workerLetter]
	if w == nil || w.Reason != "invalid" || w.Attempts != 3 || w.MessageID != "m-invalid" || w.Source != p.cfg.IngressSubscription ||
		w.OrderingKey != "alice" || w.FirstFailure == nil || w.Error != "invalid: details" {
		t.Fatalf("worker letter %+v", w)
	}
	if _, ok := w.Attributes[wire.AttrDeadLetterReason]; ok || w.Attributes["traceparent"] != origTraceparent || w.Attributes[wire.AttrSender] != "alice" {
		t.Errorf("original attributes %v", w.Attributes)
	}
	if w.Envelope == nil || w.Envelope.Sender != "alice" || string(w.Envelope.Payload) != `{"text":"hello"}` {
		t.Errorf("envelope %+v", w.Envelope)
	}
	ps := byID[pubsubLetter]
	if ps == nil || ps.Reason != dlq.ReasonPubSub || ps.Attempts != 5 || ps.Envelope != nil || ps.DecodeError == "" || !bytes.Equal(ps.Data, []byte{0xff, 0, 1}) {
		t.Fatalf("pubsub letter %+v", ps)
	}
	if _, ok := ps.Attributes["CloudPubSubDeadLetterSourceSubscriptionProject"]; ok {
		t.Errorf("Pub/Sub's dead-letter attributes shown as original: %v", ps.Attributes)
	}

	for _, id := range []string{workerLetter, "m-invalid"} {
		d, err := insp.Show(ctx, id)
		if err != nil || d.ID != workerLetter {
			t.Fatalf("show %s: %v %v", id, d, err)
		}
	}
	if _, err := insp.Show(ctx, "nope"); !errors.Is(err, dlq.ErrNotFound) {
		t.Fatalf("show unknown: %v", err)
	}

	var text bytes.Buffer
	if err := dlq.WriteList(&text, letters); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{workerLetter, "m-invalid", "invalid", dlq.ReasonPubSub, "2 dead letter(s)"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("list output lacks %q:\n%s", want, text.String())
		}
	}
	text.Reset()
	_ = dlq.WriteShow(&text, w)
	for _, want := range []string{"reason:", "invalid", "attempts:", "3", "traceparent = " + origTraceparent, `"text": "hello"`, "recipients:"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("show output lacks %q:\n%s", want, text.String())
		}
	}
	text.Reset()
	_ = dlq.WriteShow(&text, ps)
	if !strings.Contains(text.String(), "does not decode") || !strings.Contains(text.String(), "hex ff0001") {
		t.Errorf("show of an undecodable letter:\n%s", text.String())
	}
	var js bytes.Buffer
	_ = dlq.WriteJSON(&js, letters)
	var back []map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != 2 || back[0]["reason"] == nil {
		t.Fatalf("json %s: %v", js.String(), err)
	}
}

// receiveIngress collects what arrives on the ingress subscription.
func receiveIngress(t *testing.T, p *project) func() []*pubsub.Message {
	var mu sync.Mutex
	var got []*pubsub.Message
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.ps.Subscriber(p.cfg.IngressSubscription).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
			m.Ack()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() []*pubsub.Message {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestReplayRepublishesWithOriginalAttributesAndALinkedTrace(t *testing.T) {
	p := newProject(t)
	ctx := testenv.Context(t, time.Minute)
	keep := p.deadLetter("m-keep", "invalid", envelopeData(t, "m-keep", "alice", "bob"))
	fixed := p.deadLetter("m-fixed", "exhausted", envelopeData(t, "m-fixed", "alice", "bob"))
	ingress := receiveIngress(t, p)
	insp := p.inspector()

	results, err := insp.Replay(ctx, []string{"m-fixed", "missing"}, false)
	if err != nil {
		t.Fatal(err)
	}
	var ok, notFound int
	for _, r := range results {
		switch {
		case r.Err == nil && r.ID == fixed && r.NewID != "":
			ok++
		case errors.Is(r.Err, dlq.ErrNotFound) && r.ID == "missing":
			notFound++
		default:
			t.Errorf("result %+v", r)
		}
	}
	if ok != 1 || notFound != 1 {
		t.Fatalf("results %+v", results)
	}
	if dlq.WriteReplay(&bytes.Buffer{}, results) == nil {
		t.Error("a missing id did not make the replay report an error")
	}

	testenv.Eventually(t, 20*time.Second, "replayed message on the ingress subscription", func() bool { return len(ingress()) == 1 })
	m := ingress()[0]
	for k, v := range map[string]string{
		wire.AttrMessageID: "m-fixed", wire.AttrSender: "alice", wire.AttrSchema: "courier.v1.Envelope",
		wire.AttrContentType: "application/protobuf", wire.AttrReplayOf: fixed,
	} {
		if m.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, m.Attributes[k], v)
		}
	}
	for k := range m.Attributes {
		if (strings.HasPrefix(k, "courier_dead_letter") || strings.HasPrefix(k, "CloudPubSubDeadLetter") ||
			k == wire.AttrSourceSubscription || k == wire.AttrDeliveryAttempt || k == wire.AttrFirstFailureTime || k == wire.AttrOrderingKey) && k != wire.AttrReplayOf {
			t.Errorf("dead-letter attribute %s republished", k)
		}
	}
	if m.OrderingKey != "alice" || !bytes.Equal(m.Data, envelopeData(t, "m-fixed", "alice", "bob")) {
		t.Errorf("ordering key %q, data changed", m.OrderingKey)
	}
	// A new trace, linked to the original.
	tp := m.Attributes["traceparent"]
	if tp == "" || strings.Contains(tp, "0af7651916cd43dd8448eb211c80319c") {
		t.Fatalf("replay traceparent %q: want a new trace", tp)
	}
	var replay *tracetest.SpanStub
	for _, s := range tracetest.SpanStubsFromReadOnlySpans(spans.Ended()) {
		if s.Name == "dlq replay" && strings.Contains(tp, s.SpanContext.TraceID().String()) {
			replay = &s
		}
	}
	if replay == nil {
		t.Fatal("no dlq replay span in the republished message's trace")
	}
	if len(replay.Links) != 1 || replay.Links[0].SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" ||
		replay.Links[0].SpanContext.SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("replay span links %+v", replay.Links)
	}
	if replay.Parent.IsValid() {
		t.Errorf("replay span has a parent %v: want a new root", replay.Parent)
	}

	// The replayed letter is gone, the other stays.
	letters, err := insp.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].ID != keep {
		t.Fatalf("after replay: %v", letters)
	}
}

func TestReplayFailureKeepsTheLetter(t *testing.T) {
	p := newProject(t)
	ctx := testenv.Context(t, time.Minute)
	letter := p.deadLetter("m1", "exhausted", envelopeData(t, "m1", "alice", "bob"))
	// Without the ingress topic every republish fails.
	if err := p.ps.TopicAdminClient.DeleteTopic(ctx, &pubsubpb.DeleteTopicRequest{Topic: p.cfg.TopicPath(p.cfg.IngressTopic)}); err != nil {
		t.Fatal(err)
	}
	insp := p.inspector()
	results, err := insp.Replay(ctx, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Err == nil {
		t.Fatalf("results %+v", results)
	}
	letters, err := insp.List(ctx)
	if err != nil || len(letters) != 1 || letters[0].ID != letter {
		t.Fatalf("letter not kept after a failed replay: %v %v", letters, err)
	}
}

func TestPurgeAcksEverything(t *testing.T) {
	p := newProject(t)
	ctx := testenv.Context(t, time.Minute)
	for _, id := range []string{"a", "b", "c"} {
		p.deadLetter(id, "invalid", envelopeData(t, id, "alice", "bob"))
	}
	insp := p.inspector()
	n, err := insp.Purge(ctx)
	if err != nil || n != 3 {
		t.Fatalf("purged %d: %v", n, err)
	}
	letters, err := insp.List(ctx)
	if err != nil || len(letters) != 0 {
		t.Fatalf("after purge: %v %v", letters, err)
	}
}

func TestReplayMessageStripsTraceAndDeadLetterAttributes(t *testing.T) {
	d := dlq.FromMessage(&pubsubpb.PubsubMessage{
		MessageId: "77", Data: []byte("x"),
		Attributes: map[string]string{
			wire.AttrMessageID: "m", wire.AttrSender: "carol", "traceparent": origTraceparent, "tracestate": "a=b",
			wire.AttrDeadLetterReason: "invalid", wire.AttrReplayOf: "12", "custom": "kept",
		},
	}, "ack")
	m := dlq.ReplayMessage(d)
	want := map[string]string{wire.AttrMessageID: "m", wire.AttrSender: "carol", "custom": "kept", wire.AttrReplayOf: "77"}
	if len(m.Attributes) != len(want) {
		t.Fatalf("attributes %v", m.Attributes)
	}
	for k, v := range want {
		if m.Attributes[k] != v {
			t.Errorf("%s = %q", k, m.Attributes[k])
		}
	}
	if m.OrderingKey != "carol" { // no recorded key: the sender, as the gateway does
		t.Errorf("ordering key %q", m.OrderingKey)
	}
}
