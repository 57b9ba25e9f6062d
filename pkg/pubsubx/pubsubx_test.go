package pubsubx_test

import (
	"context"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
)

// TestTraceContextSurvivesRoundTrip publishes through the emulator inside a
// span and checks that the consumer span continues the same trace, with the
// producer span as its parent and the messaging attributes set.
func TestTraceContextSurvivesRoundTrip(t *testing.T) {
	rec := testenv.RecordTestSpans(t)

	client, c := testenv.Topology(t, testenv.Project(t), nil)
	ctx := testenv.Context(t, time.Minute)

	rootCtx, root := otel.Tracer("test").Start(ctx, "http request")
	pub := client.Publisher(c.IngressTopic)
	defer pub.Stop()
	serverID, err := pubsubx.Publish(rootCtx, pub, &pubsub.Message{Data: []byte("hi"), Attributes: map[string]string{wire.AttrMessageID: "m1"}}, "m1")
	root.End()
	if err != nil {
		t.Fatal(err)
	}

	var got trace.SpanContext
	var attrs map[string]string
	rctx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	_ = client.Subscriber(c.IngressSubscription).Receive(rctx, func(ctx context.Context, m *pubsub.Message) {
		pctx, span := pubsubx.StartProcess(ctx, c.IngressSubscription, m)
		got = trace.SpanContextFromContext(pctx)
		attrs = m.Attributes
		span.End()
		m.Ack()
		stop()
	})
	if attrs["traceparent"] == "" {
		t.Fatalf("no traceparent attribute: %v", attrs)
	}
	if got.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("consumer trace %s != producer trace %s", got.TraceID(), root.SpanContext().TraceID())
	}
	spans := rec.Ended()
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = s
	}
	prod, cons := byName["publish "+c.IngressTopic], byName["process "+c.IngressSubscription]
	if prod == nil || cons == nil {
		t.Fatalf("spans: %v", spans)
	}
	if cons.Parent().SpanID() != prod.SpanContext().SpanID() {
		t.Errorf("consumer parent %s != producer %s", cons.Parent().SpanID(), prod.SpanContext().SpanID())
	}
	if prod.SpanKind() != trace.SpanKindProducer || cons.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("kinds: %v %v", prod.SpanKind(), cons.SpanKind())
	}
	found := map[string]string{}
	for _, kv := range prod.Attributes() {
		found[string(kv.Key)] = kv.Value.Emit()
	}
	if found["messaging.system"] != "gcp_pubsub" || found["messaging.message.id"] != serverID || found["courier.message.id"] != "m1" {
		t.Errorf("producer attributes: %v", found)
	}
}
