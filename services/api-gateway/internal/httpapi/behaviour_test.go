package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/services/api-gateway/internal/gatewaytest"
)

func TestSendAnswersAfterPublish(t *testing.T) {
	published := make(chan *courierv1.Envelope, 1)
	s := newServer(t, options{pub: gatewaytest.PublishFunc(func(_ context.Context, env *courierv1.Envelope) error {
		published <- env
		return nil
	})})
	r := s.do(t, req{method: "POST", path: "/v1/messages", token: token(t, "alice"),
		body:  `{"to":["bob"],"payload":{"text":"hi"},"content_type":"application/vnd.chat+json"}`,
		ctype: "application/json; charset=utf-8"})
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	env := <-published
	body := r.json(t)
	if body["id"] != env.MessageId || r.header.Get("Location") != "/v1/messages/"+env.MessageId {
		t.Errorf("id %v, Location %q, envelope %s", body["id"], r.header.Get("Location"), env.MessageId)
	}
	at, err := time.Parse(time.RFC3339Nano, body["accepted_at"].(string))
	if err != nil || !at.Equal(env.SentAt.AsTime()) {
		t.Errorf("accepted_at %v (%v) vs sent_at %v", body["accepted_at"], err, env.SentAt.AsTime())
	}
	if env.Sender != "alice" || env.ContentType != "application/vnd.chat+json" {
		t.Errorf("envelope: %v", env)
	}
}

func TestListAndGetShapes(t *testing.T) {
	sent := timestamppb.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	store := inboxtest.NewMemory()
	for i := range 6 { // m1 is bob's seventh message
		inboxtest.MustCommit(t, store, inboxtest.Envelope(fmt.Sprintf("before%d", i), "alice", "bob"))
	}
	inboxtest.MustCommit(t, store,
		&courierv1.Envelope{MessageId: "m1", Sender: "alice", Recipients: []string{"bob"}, Payload: []byte(`{"a":1}`),
			ContentType: "application/json", SentAt: sent},
		inboxtest.Envelope("to-carol", "alice", "carol"))
	if err := inboxtest.MarkDelivered(context.Background(), store, "m1", "bob"); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, options{store: store})
	bob := token(t, "bob")
	r := s.do(t, req{path: "/v1/messages?limit=10&cursor=" + inbox.EncodeCursor(6), token: bob})
	if r.status != 200 {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	body := r.json(t)
	msgs := body["messages"].([]any)
	first := msgs[0].(map[string]any)
	if len(msgs) != 1 || first["id"] != "m1" || first["cursor"] != inbox.EncodeCursor(7) || body["next_cursor"] != inbox.EncodeCursor(7) {
		t.Errorf("page: %s", r.body)
	}
	if p, _ := first["payload"].(map[string]any); p["a"] != float64(1) {
		t.Errorf("payload not embedded as JSON: %s", r.body)
	}
	// An empty page hands the cursor back, and messages is [] (not null).
	r = s.do(t, req{path: "/v1/messages?cursor=" + inbox.EncodeCursor(7), token: bob})
	if !strings.Contains(string(r.body), `"messages":[]`) || r.json(t)["next_cursor"] != inbox.EncodeCursor(7) {
		t.Errorf("empty page: %s", r.body)
	}
	r = s.do(t, req{path: "/v1/messages/m1", token: bob})
	got := r.json(t)
	if r.status != 200 || got["state"] != "delivered" || got["delivered_to"].([]any)[0] != "bob" ||
		got["message"].(map[string]any)["id"] != "m1" {
		t.Errorf("get: %d %s", r.status, r.body)
	}
}

func TestCORS(t *testing.T) {
	const origin = "http://localhost:8081"
	s := newServer(t, options{cors: []string{origin}})
	pre := s.do(t, req{method: "OPTIONS", path: "/v1/messages", headers: map[string]string{
		"Origin": origin, "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
	}})
	if pre.status != http.StatusNoContent || pre.header.Get("Access-Control-Allow-Origin") != origin {
		t.Fatalf("preflight: %d %v", pre.status, pre.header)
	}
	allowed := strings.ToLower(pre.header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type", "idempotency-key"} {
		if !strings.Contains(allowed, h) {
			t.Errorf("preflight does not allow %s: %q", h, allowed)
		}
	}
	// Error answers carry CORS headers too, so the browser can read them.
	r := s.do(t, req{path: "/v1/messages", headers: map[string]string{"Origin": origin}})
	if r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("401 without CORS headers: %v", r.header)
	}
	if !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("Retry-After not exposed: %v", r.header)
	}
	// Other origins get nothing.
	r = s.do(t, req{method: "OPTIONS", path: "/v1/messages", headers: map[string]string{
		"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"}})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin allowed: %v", r.header)
	}
	// Without configured origins there is no CORS at all.
	plain := newServer(t, options{})
	r = plain.do(t, req{path: "/v1/messages", headers: map[string]string{"Origin": origin}})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS on by default: %v", r.header)
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	s := newServer(t, options{})
	alice := token(t, "alice")
	r := s.do(t, req{method: "POST", path: "/v1/messages", token: alice, body: okBody})
	if r.status != 202 {
		t.Fatal(r.status)
	}
	id := r.json(t)["id"].(string)
	s.do(t, req{path: "/v1/messages/" + id, token: alice}) // 404: the store holds nothing
	s.do(t, req{path: "/no/such/route/" + id})
	m := scrape(t, s)
	for _, want := range []string{
		`courier_api_gateway_http_requests_total{code="202",method="POST",route="/v1/messages"} 1`,
		`courier_api_gateway_http_requests_total{code="404",method="GET",route="/v1/messages/:id"} 1`,
		`courier_api_gateway_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`courier_api_gateway_http_request_duration_seconds_count{method="POST",route="/v1/messages"} 1`,
		`courier_api_gateway_rate_limiter_users 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, id) {
		t.Error("a message id leaked into a metric label")
	}

	// The access log line of the send carries the trace of the server span,
	// which carries the message id.
	var line map[string]any
	for _, l := range s.logs.Lines("http request") {
		if l["route"] == "/v1/messages" && l["method"] == "POST" {
			line = l
		}
	}
	if line == nil || line["status"] != float64(202) || line["user"] != "alice" || line["request_id"] != r.header.Get("X-Request-ID") {
		t.Fatalf("access log: %v", line)
	}
	var found bool
	for _, sp := range spans.Ended() {
		if sp.SpanContext().TraceID().String() != line["trace_id"] {
			continue
		}
		for _, kv := range sp.Attributes() {
			if kv.Key == "courier.message.id" && kv.Value.AsString() == id && sp.Name() == "POST /v1/messages" {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no server span with courier.message.id=%s in trace %v", id, line["trace_id"])
	}
}

func TestHealthAndDocs(t *testing.T) {
	down := func(context.Context) error { return context.DeadlineExceeded }
	up := func(context.Context) error { return nil }
	s := newServer(t, options{ready: map[string]health.Check{"pubsub": up, "firestore": down}})
	if r := s.do(t, req{path: "/healthz"}); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	r := s.do(t, req{path: "/readyz"})
	if r.status != 503 || r.json(t)["checks"].(map[string]any)["pubsub"] != "ok" {
		t.Errorf("readyz with firestore down: %d %s", r.status, r.body)
	}
	r = s.do(t, req{path: "/v1/openapi.yaml"})
	if r.status != 200 || !strings.HasPrefix(string(r.body), "openapi: 3") || r.header.Get("Content-Type") != "application/yaml" {
		t.Errorf("openapi: %d %q", r.status, r.header.Get("Content-Type"))
	}
}
