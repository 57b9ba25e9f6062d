package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/health"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/services/api-gateway/internal/ingress"
)

// ingressStack is a gateway on a real Pub/Sub emulator project with the
// topology applied, publishing with the real ingress publisher.
type ingressStack struct {
	*testServer
	client *pubsub.Client
	topo   topology.Config
}

func newIngressStack(t *testing.T, o options) *ingressStack {
	t.Helper()
	client, topo := testenv.Topology(t, testenv.Project(t), nil)
	pub := ingress.New(client, topo.IngressTopic, ingress.Options{Timeout: 10 * time.Second})
	t.Cleanup(pub.Stop)
	o.pub = pub
	o.ready = map[string]health.Check{"pubsub": health.PubSubTopic(client, topo.TopicPath(topo.IngressTopic))}
	return &ingressStack{testServer: newServer(t, o), client: client, topo: topo}
}

// receive pulls n messages from the ingress subscription (acking them).
func (st *ingressStack) receive(t *testing.T, n int) []*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []*pubsub.Message
	err := st.client.Subscriber(st.topo.IngressSubscription).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == n {
			cancel()
		}
	})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if len(got) != n {
		t.Fatalf("received %d of %d messages", len(got), n)
	}
	return got
}

// TestSendLandsOnIngressTopic posts through the real HTTP server and the
// real publisher and reads the ingress subscription: the envelope, its
// attributes, its ordering key and the trace context of the request.
func TestSendLandsOnIngressTopic(t *testing.T) {
	st := newIngressStack(t, options{})
	// The client sends its own trace context and baggage: the journey gets a
	// trace of its own, linked to the client's; the baggage goes nowhere.
	clientTrace := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	r := st.do(t, req{method: "POST", path: "/v1/messages", token: token(t, "alice"),
		body: "{\"to\": [\"bob\", \"carol\"], \"payload\": {\"text\": \"hello\", \"n\": [1, 2]}}",
		headers: map[string]string{"traceparent": "00-" + clientTrace.String() + "-00f067aa0ba902b7-01",
			"baggage": "tenant=evil,secret=1"}})
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	acceptedAt, _ := time.Parse(time.RFC3339Nano, r.json(t)["accepted_at"].(string))

	m := st.receive(t, 1)[0]
	want := map[string]string{
		wire.AttrMessageID:   id,
		wire.AttrSender:      "alice",
		wire.AttrSchema:      "courier.v1.Envelope",
		wire.AttrContentType: "application/protobuf",
	}
	for k, v := range want {
		if m.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, m.Attributes[k], v)
		}
	}
	if m.OrderingKey != "alice" {
		t.Errorf("ordering key %q, want the sender", m.OrderingKey)
	}
	var env courierv1.Envelope
	if err := proto.Unmarshal(m.Data, &env); err != nil {
		t.Fatalf("data is not an Envelope: %v", err)
	}
	if env.MessageId != id || env.Sender != "alice" || strings.Join(env.Recipients, ",") != "bob,carol" ||
		string(env.Payload) != `{"text":"hello","n":[1,2]}` || env.ContentType != "application/json" ||
		!env.SentAt.AsTime().Equal(acceptedAt) {
		t.Errorf("envelope: %v", &env)
	}

	if b, ok := m.Attributes["baggage"]; ok {
		t.Errorf("the client's baggage reached the Pub/Sub attributes: %q", b)
	}
	// Trace: traceparent rides in the attributes, in a trace of Courier's
	// own, parented by the producer span, itself a child of the HTTP server
	// span that carries the message id and links to the client's span.
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), pubsubx.AttrCarrier(m.Attributes)))
	if !sc.IsValid() || sc.TraceID() == clientTrace {
		t.Fatalf("traceparent %q: trace %s, want a new one", m.Attributes["traceparent"], sc.TraceID())
	}
	var server, producer sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID() != sc.TraceID() {
			continue
		}
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindProducer:
			producer = s
		}
	}
	if server == nil || producer == nil {
		t.Fatalf("spans of the trace: server %v producer %v", server, producer)
	}
	if producer.SpanContext().SpanID() != sc.SpanID() {
		t.Errorf("traceparent span %s is not the producer span %s", sc.SpanID(), producer.SpanContext().SpanID())
	}
	if producer.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("producer's parent %s is not the server span %s", producer.Parent().SpanID(), server.SpanContext().SpanID())
	}
	if server.Parent().IsValid() {
		t.Errorf("server span has a parent %s: the client's trace context decided", server.Parent().SpanID())
	}
	if l := server.Links(); len(l) != 1 || l[0].SpanContext.TraceID() != clientTrace || l[0].SpanContext.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("server span links %v, want one to the client's span", l)
	}
	if !hasAttr(server, "courier.message.id", id) || !hasAttr(producer, "courier.message.id", id) {
		t.Errorf("courier.message.id missing: server %v producer %v", server.Attributes(), producer.Attributes())
	}
	if !hasAttr(producer, "messaging.message.id", m.ID) {
		t.Errorf("producer span lacks the Pub/Sub message id %s: %v", m.ID, producer.Attributes())
	}
}

func hasAttr(s sdktrace.ReadOnlySpan, key, val string) bool {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key && kv.Value.Emit() == val {
			return true
		}
	}
	return false
}

// TestIdempotencyKeyGivesOneDelivery retries a send with the same key: the
// same id comes back, and the two envelopes on the topic commit once (the
// pipeline-worker's idempotent write, exercised here through inbox.Store).
// Another key, or another sender with the same key, gets another id.
func TestIdempotencyKeyGivesOneDelivery(t *testing.T) {
	st := newIngressStack(t, options{})
	store := inbox.New(testenv.Firestore(t, st.topo.Project))
	send := func(sender, key string) string {
		t.Helper()
		r := st.do(t, req{method: "POST", path: "/v1/messages", token: token(t, sender), body: okBody,
			headers: map[string]string{"Idempotency-Key": key}})
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	first, retry := send("alice", "order-42"), send("alice", "order-42")
	if first != retry {
		t.Fatalf("same key, ids %s and %s", first, retry)
	}
	other, mallory := send("alice", "order-43"), send("mallory", "order-42")
	if other == first || mallory == first || other == mallory {
		t.Fatalf("ids not distinct: %s %s %s", first, other, mallory)
	}
	ctx := testenv.Context(t, time.Minute)
	created := map[string]int{}
	for _, m := range st.receive(t, 4) {
		var env courierv1.Envelope
		if err := proto.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := inboxtest.Commit(ctx, store, &env); err != nil {
			t.Fatal(err)
		} else if ok {
			created[env.MessageId]++
		}
	}
	if created[first] != 1 || len(created) != 3 {
		t.Fatalf("commits created %v, want each id once", created)
	}
	entries, err := store.List(ctx, "bob", 0, 10)
	if err != nil || len(entries) != 3 {
		t.Fatalf("bob's inbox has %d entries (%v), want 3", len(entries), err)
	}
}

// TestPublishFailureIsUnavailable makes the real publisher fail: a topic
// that does not exist, and a publisher already stopped (as during
// shutdown). Both answer 503 unavailable, which the client may retry.
func TestPublishFailureIsUnavailable(t *testing.T) {
	project := testenv.Project(t)
	client := testenv.PubSub(t, project)
	missing := ingress.New(client, "no-such-topic", ingress.Options{Timeout: 10 * time.Second})
	t.Cleanup(missing.Stop)
	stopped := ingress.New(client, "also-missing", ingress.Options{})
	stopped.Stop()
	for name, pub := range map[string]*ingress.Publisher{"missing topic": missing, "stopped publisher": stopped} {
		t.Run(name, func(t *testing.T) {
			s := newServer(t, options{pub: pub})
			start := time.Now()
			r := s.do(t, req{method: "POST", path: "/v1/messages", token: token(t, "alice"), body: okBody,
				headers: map[string]string{"Idempotency-Key": "retry-me"}})
			wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("took %s: should fail fast, not wait for the timeout", d)
			}
			// The ordering key was resumed: the next attempt fails the same
			// way instead of with "ordering key paused".
			r = s.do(t, req{method: "POST", path: "/v1/messages", token: token(t, "alice"), body: okBody})
			wantProblem(t, r, http.StatusServiceUnavailable, "unavailable")
		})
	}
}

// TestUsersSeeOnlyTheirOwn seeds Firestore through inboxtest.Commit (a
// batch of one, as the worker commits) and checks that a token only ever
// reads its own inbox and its own messages.
func TestUsersSeeOnlyTheirOwn(t *testing.T) {
	project := testenv.Project(t)
	store := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)
	seed := func(id, from string, to ...string) {
		t.Helper()
		_, _, err := inboxtest.Commit(ctx, store, &courierv1.Envelope{MessageId: id, Sender: from, Recipients: to,
			Payload: []byte(`{"id":"` + id + `"}`), ContentType: "application/json", SentAt: timestamppb.Now()})
		if err != nil {
			t.Fatal(err)
		}
	}
	seed("m1", "alice", "bob")
	seed("m2", "carol", "dave")
	seed("m3", "dave", "bob", "dave")
	s := newServer(t, options{store: store})
	bob, dave, alice, mallory := token(t, "bob"), token(t, "dave"), token(t, "alice"), token(t, "mallory")

	list := func(tok, query string) (ids []string, next string) {
		t.Helper()
		r := s.do(t, req{path: "/v1/messages" + query, token: tok})
		if r.status != 200 {
			t.Fatalf("list %s: %d %s", query, r.status, r.body)
		}
		body := r.json(t)
		for _, m := range body["messages"].([]any) {
			ids = append(ids, m.(map[string]any)["id"].(string))
		}
		return ids, body["next_cursor"].(string)
	}
	if ids, _ := list(bob, ""); strings.Join(ids, ",") != "m1,m3" {
		t.Errorf("bob's inbox: %v", ids)
	}
	daveIDs, daveNext := list(dave, "?limit=1")
	if strings.Join(daveIDs, ",") != "m2" {
		t.Errorf("dave's first page: %v", daveIDs)
	}
	// Dave's cursor in bob's hands is only a position in bob's own inbox.
	if ids, _ := list(bob, "?cursor="+daveNext); strings.Join(ids, ",") != "m3" {
		t.Errorf("bob with dave's cursor got %v, want only his own m3", ids)
	}
	if ids, _ := list(mallory, ""); len(ids) != 0 {
		t.Errorf("mallory's inbox: %v", ids)
	}
	// A sender's inbox holds her own copy of what she sent, and nothing
	// of other people's conversations.
	if ids, _ := list(alice, ""); strings.Join(ids, ",") != "m1" {
		t.Errorf("alice's inbox: %v, want her own copy of m1", ids)
	}

	get := func(tok, id string) resp { return s.do(t, req{path: "/v1/messages/" + id, token: tok}) }
	for _, ok := range []struct{ tok, id string }{{bob, "m1"}, {alice, "m1"}, {bob, "m3"}, {dave, "m3"}, {dave, "m2"}} {
		if r := get(ok.tok, ok.id); r.status != 200 || r.json(t)["message"].(map[string]any)["id"] != ok.id {
			t.Errorf("get %s: %d %s", ok.id, r.status, r.body)
		}
	}
	// Someone else's message answers exactly like a missing one.
	missing := wantProblem(t, get(bob, "m404"), 404, "not_found")
	for _, no := range []struct{ tok, id string }{{bob, "m2"}, {alice, "m2"}, {mallory, "m1"}, {alice, "m3"}} {
		p := wantProblem(t, get(no.tok, no.id), 404, "not_found")
		if strings.Replace(p["detail"].(string), no.id, "m404", 1) != missing["detail"] {
			t.Errorf("%s: detail %q differs from a missing message's %q", no.id, p["detail"], missing["detail"])
		}
	}

	if err := inboxtest.MarkDelivered(ctx, store, "m1", "bob"); err != nil {
		t.Fatal(err)
	}
	r := get(alice, "m1").json(t)
	if r["state"] != "delivered" || len(r["delivered_to"].([]any)) != 1 || r["delivered_to"].([]any)[0] != "bob" {
		t.Errorf("after delivery: %v", r)
	}
	if r := get(bob, "m3").json(t); r["state"] != "stored" {
		t.Errorf("undelivered state: %v", r)
	}
}

// TestLargeSendHidesRecipients: a send to more than inbox.MaxListedRecipients
// users shows nobody the list, in the inbox listing and in GET, and counts.
func TestLargeSendHidesRecipients(t *testing.T) {
	project := testenv.Project(t)
	store := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)
	to := make([]string, inbox.MaxListedRecipients+4)
	for i := range to {
		to[i] = fmt.Sprintf("member%02d", i)
	}
	for id, rcpts := range map[string][]string{"big": to, "small": to[:3]} {
		if _, _, err := inboxtest.Commit(ctx, store, &courierv1.Envelope{MessageId: id, Sender: "alice", Recipients: rcpts,
			Payload: []byte(`{}`), ContentType: "application/json", SentAt: timestamppb.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := inboxtest.MarkDelivered(ctx, store, "big", "member05"); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, options{store: store})
	for _, tc := range []struct {
		id, user      string
		wantTo, count int
		deliveredTo   int
	}{
		{"big", "member05", 0, len(to), 0},
		{"big", "alice", 0, len(to), 0},
		{"small", "member01", 3, 3, 0},
	} {
		r := s.do(t, req{path: "/v1/messages/" + tc.id, token: token(t, tc.user)}).json(t)
		m := r["message"].(map[string]any)
		if len(m["to"].([]any)) != tc.wantTo || m["to_count"] != float64(tc.count) || len(r["delivered_to"].([]any)) != tc.deliveredTo {
			t.Errorf("GET %s as %s: %v", tc.id, tc.user, r)
		}
		if tc.id == "big" && r["delivered_count"] != 1.0 {
			t.Errorf("GET big: delivered_count %v, want 1", r["delivered_count"])
		}
	}
	page := s.do(t, req{path: "/v1/messages", token: token(t, "member01")}).json(t)
	for _, it := range page["messages"].([]any) {
		m := it.(map[string]any)
		if want := map[string]int{"big": 0, "small": 3}[m["id"].(string)]; len(m["to"].([]any)) != want {
			t.Errorf("listing of %s shows %d recipients, want %d", m["id"], len(m["to"].([]any)), want)
		}
	}
}

// TestReservedIDIsNotFound: ids the worker would never store (Firestore's
// reserved __x__ among them) are 404 before they reach Firestore, which
// refuses them with InvalidArgument (it used to be a 500 and an ERROR log).
func TestReservedIDIsNotFound(t *testing.T) {
	project := testenv.Project(t)
	s := newServer(t, options{store: inbox.New(testenv.Firestore(t, project))})
	for _, id := range []string{"__x__", "____", "__.__", "a.b"} { // a.b: a valid id, merely absent
		wantProblem(t, s.do(t, req{path: "/v1/messages/" + id, token: token(t, "alice")}), 404, "not_found")
	}
	if strings.Contains(s.logs.String(), `"level":"ERROR"`) {
		t.Errorf("an unknown id logged an error:\n%s", s.logs.String())
	}
}

// TestRecipientsSeeOnlyTheirOwnDeliveryState: the sender of a message sees
// which recipients received it; a recipient sees only whether it did itself
// (state, delivered_to, delivered_count), in small and large sends.
func TestRecipientsSeeOnlyTheirOwnDeliveryState(t *testing.T) {
	project := testenv.Project(t)
	store := inbox.New(testenv.Firestore(t, project))
	ctx := testenv.Context(t, time.Minute)
	big := make([]string, inbox.MaxListedRecipients+2)
	for i := range big {
		big[i] = fmt.Sprintf("member%02d", i)
	}
	for id, rcpts := range map[string][]string{"small": {"bob", "carol"}, "big": big} {
		if _, _, err := inboxtest.Commit(ctx, store, &courierv1.Envelope{MessageId: id, Sender: "alice", Recipients: rcpts,
			Payload: []byte(`{}`), ContentType: "application/json", SentAt: timestamppb.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range [][2]string{{"small", "bob"}, {"big", "member01"}, {"big", "member02"}} {
		if err := inboxtest.MarkDelivered(ctx, store, a[0], a[1]); err != nil {
			t.Fatal(err)
		}
	}
	s := newServer(t, options{store: store})
	for _, c := range []struct {
		id, user, state, deliveredTo string
		count                        float64
	}{
		{"small", "alice", "delivered", "bob", 1},
		{"small", "bob", "delivered", "bob", 1},
		{"small", "carol", "stored", "", 0}, // bob's ack is not carol's to see
		{"big", "alice", "delivered", "", 2},
		{"big", "member01", "delivered", "", 1},
		{"big", "member03", "stored", "", 0},
	} {
		r := s.do(t, req{path: "/v1/messages/" + c.id, token: token(t, c.user)})
		if r.status != 200 {
			t.Fatalf("GET %s as %s: %d %s", c.id, c.user, r.status, r.body)
		}
		body := r.json(t)
		var to []string
		for _, u := range body["delivered_to"].([]any) {
			to = append(to, u.(string))
		}
		if body["state"] != c.state || strings.Join(to, ",") != c.deliveredTo || body["delivered_count"] != c.count {
			t.Errorf("GET %s as %s: state %v delivered_to %v count %v, want %s [%s] %v",
				c.id, c.user, body["state"], to, body["delivered_count"], c.state, c.deliveredTo, c.count)
		}
	}
}

// TestIdempotencyKeyReusedWithOtherContent: the same key from the same
// sender with another body is 409 idempotency_key_reused, both before the
// first message is stored (the gateway remembers what it published) and
// after (another gateway reads the stored message); the same body still gets
// the same id and one delivery. It used to be a 202 with the first id, the
// new content silently dropped.
func TestIdempotencyKeyReusedWithOtherContent(t *testing.T) {
	project := testenv.Project(t)
	store := inbox.New(testenv.Firestore(t, project))
	st := newIngressStack(t, options{store: store})
	const first, other = `{"to":["bob"],"payload":{"text":"first"}}`, `{"to":["bob"],"payload":{"text":"other"}}`
	send := func(s *testServer, sender, body string) resp {
		t.Helper()
		return s.do(t, req{method: "POST", path: "/v1/messages", token: token(t, sender), body: body,
			headers: map[string]string{"Idempotency-Key": "order-7"}})
	}
	r := send(st.testServer, "alice", first)
	if r.status != http.StatusAccepted {
		t.Fatalf("first send: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	p := wantProblem(t, send(st.testServer, "alice", other), http.StatusConflict, "idempotency_key_reused")
	if !strings.Contains(p["detail"].(string), id) {
		t.Errorf("detail %q does not name the message the key is used for", p["detail"])
	}
	if r := send(st.testServer, "alice", first); r.status != http.StatusAccepted || r.json(t)["id"] != id {
		t.Fatalf("retry with the same body: %d %s, want 202 with id %s", r.status, r.body, id)
	}
	// What the worker does with the two envelopes on the topic.
	ctx := testenv.Context(t, time.Minute)
	created := 0
	for _, m := range st.receive(t, 2) {
		var env courierv1.Envelope
		if err := proto.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		if string(env.Payload) != `{"text":"first"}` {
			t.Errorf("published %s", env.Payload)
		}
		_, ok, err := inboxtest.Commit(ctx, store, &env)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("stored %d times, want once", created)
	}
	// Another gateway pod, which never saw the first send, reads it stored.
	pod2 := newServer(t, options{store: store})
	for _, body := range []string{other, `{"to":["bob","carol"],"payload":{"text":"first"}}`, `{"to":["bob"],"payload":{"text":"first"},"content_type":"text/plain"}`} {
		wantProblem(t, send(pod2, "alice", body), http.StatusConflict, "idempotency_key_reused")
	}
	if r := send(pod2, "alice", first); r.status != http.StatusAccepted || r.json(t)["id"] != id {
		t.Fatalf("same body on another pod: %d %s, want 202 with id %s", r.status, r.body, id)
	}
	// The key is the sender's: another sender's use of it is another message.
	if r := send(pod2, "mallory", other); r.status != http.StatusAccepted || r.json(t)["id"] == id {
		t.Fatalf("mallory with alice's key: %d %s", r.status, r.body)
	}
	entries, err := store.List(ctx, "bob", 0, 10)
	if err != nil || len(entries) != 1 || string(entries[0].Message.Payload) != `{"text":"first"}` {
		t.Fatalf("bob's inbox: %v %v, want the first message once", entries, err)
	}
}

// TestClientCannotForceSampling: under a policy that samples nothing, a
// client's traceparent with the sampled flag produces no recorded span, and
// what the gateway publishes carries neither the client's trace nor its
// baggage. The sampled flag used to make every span of the journey recorded.
func TestClientCannotForceSampling(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())),
		sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	st := newIngressStack(t, options{})
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := st.do(t, req{method: "POST", path: "/v1/messages", token: token(t, "alice"), body: okBody,
		headers: map[string]string{"traceparent": "00-" + clientTrace + "-00f067aa0ba902b7-01", "baggage": "secret=1"}})
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	m := st.receive(t, 1)[0]
	if b, ok := m.Attributes["baggage"]; ok {
		t.Errorf("the client's baggage reached the Pub/Sub attributes: %q", b)
	}
	if tp := m.Attributes["traceparent"]; strings.Contains(tp, clientTrace) || strings.HasSuffix(tp, "-01") {
		t.Errorf("traceparent %q continues the client's trace or is sampled", tp)
	}
	if ended := rec.Ended(); len(ended) != 0 {
		t.Errorf("%d spans recorded under a policy that samples nothing, the first %q", len(ended), ended[0].Name())
	}
}
