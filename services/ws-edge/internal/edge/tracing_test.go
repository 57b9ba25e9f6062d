package edge_test

import (
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
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

// The write span ends where the fan-out ends, once the message is handed to
// the local recipients' sessions, not when the last of them writes it: a
// delivery held behind a gap has its span ended already. Each session's
// write is a sample of session_write_latency_seconds instead.
func TestWriteSpanEndsWithTheFanOut(t *testing.T) {
	rec := testenv.RecordTestSpans(t)

	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) { c.ReorderWait, c.ReorderWaitMax = time.Minute, time.Minute })
	bob1, bob2 := dial(t, a, "bob", dialOpts{}), dial(t, a, "bob", dialOpts{})
	bob1.expect(t, "hello", "synced")
	bob2.expect(t, "hello", "synced")
	m1, m2 := w.commit(t, "m1", "alice", "", "bob"), w.commit(t, "m2", "alice", "", "bob")
	ended := func(id string) bool {
		for _, s := range rec.Ended() {
			if s.Name() != "websocket write" {
				continue
			}
			for _, kv := range s.Attributes() {
				if kv.Key == pubsubx.KeyCourierMessageID && kv.Value.AsString() == id {
					return true
				}
			}
		}
		return false
	}
	// m2 arrives first and waits for m1 (a minute's window): its fan-out is
	// over, so is its span, though no session has written it.
	w.publish(t, m2)
	testenv.Eventually(t, 10*time.Second, "m2's write span ended while m2 waits behind m1", func() bool { return ended("m2") })
	if got := a.counter(t, "courier_ws_edge_ordering_total", "result", "held"); got != 1 {
		t.Fatalf("ordering_total{held} = %v, want 1", got)
	}
	if got := a.counter(t, "courier_ws_edge_session_write_latency_seconds"); got != 0 {
		t.Fatalf("session_write_latency_seconds has %v samples before any write", got)
	}
	w.publish(t, m1)
	bob1.expect(t, "message:m1", "message:m2")
	bob2.expect(t, "message:m1", "message:m2")
	testenv.Eventually(t, 10*time.Second, "m1's write span ended", func() bool { return ended("m1") })
	// Two messages written by two sessions: four samples.
	testenv.Eventually(t, 10*time.Second, "one write latency sample per session and message", func() bool {
		return a.counter(t, "courier_ws_edge_session_write_latency_seconds") == 4
	})
}
