package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/courierhq/courier/tests/e2e/harness"
	"github.com/courierhq/courier/tests/e2e/otlprecv"
)

// TestOneTracePerMessage runs the real binaries exporting OTLP over gRPC to
// a receiver in this test, sends one message, receives it on a WebSocket, and
// checks that the spans of all three services form one trace:
// HTTP server → publish ingress → worker process → Firestore commit →
// publish deliveries → edge process → websocket write.
func TestOneTracePerMessage(t *testing.T) {
	recv, err := otlprecv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Stop()
	c := env.NewCluster(t, harness.Options{Edges: 1, OTLPEndpoint: recv.Addr})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	bob := mustDial(t, ctx, c.Edges[0].Addr, c.Token("bob"), "")
	res, err := harness.Send(ctx, c.GatewayURL(), c.Token("alice"), []string{"bob"}, "traced", "")
	if err != nil || res.Status != 202 {
		t.Fatalf("send: %v %+v", err, res)
	}
	if err := bob.WaitMessages(1, time.Minute); err != nil {
		t.Fatal(err)
	}
	var chain []otlprecv.Span
	deadline := time.Now().Add(30 * time.Second)
	for {
		chain, err = traceChain(recv.Spans(), res.ID)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		for _, s := range recv.Spans() {
			t.Logf("span %s/%s trace=%s id=%s parent=%s attrs=%v", s.Service, s.Name, s.TraceID, s.SpanID, s.ParentSpanID, s.Attrs)
		}
		t.Fatal(err)
	}
	for _, s := range chain {
		if s.TraceID != chain[0].TraceID {
			t.Fatalf("span %s/%s is in trace %s, not %s", s.Service, s.Name, s.TraceID, chain[0].TraceID)
		}
	}
}

// step describes one link of the expected chain.
type step struct {
	service string
	name    func(string) bool
	kind    tracepb.Span_SpanKind
}

func prefix(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

var expectedChain = []step{
	{"api-gateway", func(s string) bool { return strings.Contains(s, "/v1/messages") }, tracepb.Span_SPAN_KIND_SERVER},
	{"api-gateway", prefix("publish courier-ingress"), tracepb.Span_SPAN_KIND_PRODUCER},
	{"pipeline-worker", prefix("process courier-ingress-worker"), tracepb.Span_SPAN_KIND_CONSUMER},
	{"pipeline-worker", prefix("firestore"), tracepb.Span_SPAN_KIND_UNSPECIFIED},
	{"pipeline-worker", prefix("publish courier-deliveries"), tracepb.Span_SPAN_KIND_PRODUCER},
	{"ws-edge", prefix("process courier-edge-"), tracepb.Span_SPAN_KIND_CONSUMER},
	{"ws-edge", prefix("websocket write"), tracepb.Span_SPAN_KIND_UNSPECIFIED},
}

// traceChain finds, for the message id, one span per expected step where
// every step but the Firestore one descends from the previous main step, and
// the Firestore span descends from the worker's process span.
func traceChain(spans []otlprecv.Span, messageID string) ([]otlprecv.Span, error) {
	byID := map[string]otlprecv.Span{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	descends := func(s otlprecv.Span, ancestor string) bool {
		for i := 0; i < 32 && s.ParentSpanID != ""; i++ {
			if s.ParentSpanID == ancestor {
				return true
			}
			p, ok := byID[s.ParentSpanID]
			if !ok {
				return false
			}
			s = p
		}
		return false
	}
	var chain []otlprecv.Span
	var processSpan string
	for i, st := range expectedChain {
		var found *otlprecv.Span
		for _, s := range spans {
			if s.Service != st.service || !st.name(s.Name) {
				continue
			}
			if st.kind != tracepb.Span_SPAN_KIND_UNSPECIFIED && s.Kind != st.kind {
				continue
			}
			if i == 0 {
				if s.Attrs["courier.message.id"] != messageID && !hasDescendantWith(spans, s.SpanID, messageID, byID) {
					continue
				}
			} else {
				anc := chain[len(chain)-1].SpanID
				if strings.HasPrefix(s.Name, "firestore") || strings.HasPrefix(s.Name, "publish courier-deliveries") {
					anc = processSpan
				}
				if !descends(s, anc) {
					continue
				}
			}
			found = &s
			break
		}
		if found == nil {
			return nil, errorf("no span for step %d (%s, kind %v) in the chain so far %v", i, st.service, st.kind, names(chain))
		}
		if strings.HasPrefix(found.Name, "process courier-ingress") {
			processSpan = found.SpanID
		}
		if !strings.HasPrefix(found.Name, "firestore") {
			chain = append(chain, *found)
		}
	}
	return chain, nil
}

func hasDescendantWith(spans []otlprecv.Span, root, messageID string, byID map[string]otlprecv.Span) bool {
	for _, s := range spans {
		if s.Attrs["courier.message.id"] != messageID {
			continue
		}
		for p := s; p.ParentSpanID != ""; {
			if p.ParentSpanID == root {
				return true
			}
			next, ok := byID[p.ParentSpanID]
			if !ok {
				break
			}
			p = next
		}
	}
	return false
}

func names(spans []otlprecv.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Service+"/"+s.Name)
	}
	return out
}
