package edge_test

import (
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/testenv"
)

// A delivered message's spans continue the publisher's trace: the edge's
// consumer span is a child of the fan-out publish span, and the socket
// write is a child of the consumer span, all carrying the message id.
func TestDeliverySpansContinueTheTrace(t *testing.T) {
	rec := testenv.RecordTestSpans(t)

	w := newWorld(t)
	a := startEdge(t, w, "edge-a")
	bob := dial(t, a, "bob", dialOpts{})
	bob.expect(t, "hello", "synced")
	w.publish(t, w.commit(t, "m1", "alice", "", "bob"))
	bob.expect(t, "message:m1")

	find := func(name string) sdktrace.ReadOnlySpan {
		for _, s := range rec.Ended() {
			if s.Name() == name {
				return s
			}
		}
		return nil
	}
	testenv.Eventually(t, 10*time.Second, "spans ended", func() bool {
		return find("websocket write") != nil && find("process courier-edge-edge-a") != nil
	})
	publish, process, write := find("publish courier-deliveries"), find("process courier-edge-edge-a"), find("websocket write")
	if publish == nil {
		t.Fatal("no publish span")
	}
	if process.SpanKind() != trace.SpanKindConsumer || process.Parent().SpanID() != publish.SpanContext().SpanID() {
		t.Errorf("process span: kind %v, parent %v, want child of publish %v", process.SpanKind(), process.Parent().SpanID(), publish.SpanContext().SpanID())
	}
	if write.Parent().SpanID() != process.SpanContext().SpanID() || write.SpanContext().TraceID() != publish.SpanContext().TraceID() {
		t.Errorf("write span not a child of the process span in the same trace")
	}
	for _, s := range []sdktrace.ReadOnlySpan{process, write} {
		found := false
		for _, kv := range s.Attributes() {
			if kv.Key == pubsubx.KeyCourierMessageID && kv.Value.AsString() == "m1" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s lacks courier.message.id=m1: %v", s.Name(), s.Attributes())
		}
	}
}
