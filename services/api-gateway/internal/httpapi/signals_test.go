package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/courierhq/courier/pkg/ephemeral"
	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/pkg/signal"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
)

type noConversations struct{}

func (noConversations) Members(context.Context, string, string) ([]string, error) {
	return nil, signal.ErrNotMember
}

// POST /v1/signals publishes an ephemeral event of kind "signal" to the
// deliveries topic (not ingress) and answers 202; too large, invalid and
// over-rate signals are refused with their codes.
func TestSignalsArePublishedToTheFanOutTopic(t *testing.T) {
	client, topo := testenv.Topology(t, testenv.Project(t), nil)
	ctx := testenv.Context(t, time.Minute)
	sub := topo.SubscriptionPath(testenv.ID("signals-"))
	if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: topo.TopicPath(topo.DeliveriesTopic)}); err != nil {
		t.Fatal(err)
	}
	em, err := ephemeral.NewMetrics(prometheus.NewRegistry(), "test")
	if err != nil {
		t.Fatal(err)
	}
	pub := ephemeral.New(client, topo.DeliveriesTopic, ephemeral.Options{}, em, nil)
	t.Cleanup(func() { _ = pub.Stop(context.Background()) })
	s := newServer(t, options{signals: signal.NewSender(pub, noConversations{}),
		signalRate: ratelimit.Options{PerSecond: 0.001, Burst: 4, MaxKeys: 10}})
	alice := token(t, "alice")

	r := s.do(t, req{method: http.MethodPost, path: "/v1/signals", token: alice, body: `{"to":["bob"],"kind":"typing","data":{"on":true}}`})
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var once sync.Once
	var got *pubsub.Message
	if err := client.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		once.Do(func() { got = m; cancel() })
	}); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Attributes[wire.AttrSchema] != wire.SchemaEphemeral {
		t.Fatalf("no ephemeral event on the deliveries topic: %+v", got)
	}
	e, err := wire.DecodeEphemeral(got.Data)
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]any
	if err := json.Unmarshal(e.Frame, &f); err != nil {
		t.Fatal(err)
	}
	if e.Kind != "signal" || strings.Join(e.Users, ",") != "bob" || f["type"] != "signal" || f["from"] != "alice" || f["kind"] != "typing" {
		t.Fatalf("event %v frame %s", e, e.Frame)
	}

	wantProblem(t, s.do(t, req{method: http.MethodPost, path: "/v1/signals", token: alice,
		body: `{"to":["bob"],"kind":"typing","data":"` + strings.Repeat("x", 1100) + `"}`}), http.StatusRequestEntityTooLarge, "signal_too_large")
	wantProblem(t, s.do(t, req{method: http.MethodPost, path: "/v1/signals", token: alice,
		body: `{"to":["bob"],"kind":"NO"}`}), http.StatusBadRequest, "bad_signal")
	wantProblem(t, s.do(t, req{method: http.MethodPost, path: "/v1/signals", token: alice,
		body: `{"conversation_id":"d.x","kind":"typing"}`}), http.StatusBadRequest, "bad_signal")
	// The burst of 4 is spent (one sent, three refused above): the next
	// is over the rate.
	wantProblem(t, s.do(t, req{method: http.MethodPost, path: "/v1/signals", token: alice,
		body: `{"to":["bob"],"kind":"typing"}`}), http.StatusTooManyRequests, "signal_rate_limited")
	wantProblem(t, s.do(t, req{method: http.MethodPost, path: "/v1/signals", body: `{"to":["bob"],"kind":"typing"}`}),
		http.StatusUnauthorized, "unauthenticated")
}
