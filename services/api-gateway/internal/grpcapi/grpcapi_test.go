package grpcapi_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"

	"github.com/courierhq/courier/pkg/ratelimit"
	"github.com/courierhq/courier/services/api-gateway/internal/authn"
	"github.com/courierhq/courier/services/api-gateway/internal/gatewaytest"
	"github.com/courierhq/courier/services/api-gateway/internal/grpcapi"
	"github.com/courierhq/courier/services/api-gateway/internal/ingress"
	"github.com/courierhq/courier/services/api-gateway/internal/messages"
	"github.com/courierhq/courier/services/api-gateway/internal/presence"
	"github.com/courierhq/courier/services/api-gateway/internal/transport"
)

// spans records every span of every test in this package.
var spans = testenv.RecordSpans()

var secret = []byte("grpc-test-secret-0123456789")

type options struct {
	pub      messages.Publisher
	store    messages.Store
	rate     ratelimit.Options
	verifier authn.Verifier // HS256 with secret when nil
	presence presence.Source
}

// serve starts the gRPC server on a real loopback listener and returns a
// client connected to it.
func serve(t *testing.T, o options) courierv1.MessagesClient {
	t.Helper()
	o.pub, o.store, o.rate = gatewaytest.Defaults(o.pub, o.store, o.rate)
	var v authn.Verifier = o.verifier
	if v == nil {
		hs, err := auth.NewHS256(secret, auth.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v = hs
	}
	srv, _ := grpcapi.NewServer(grpcapi.Config{
		Config: transport.Config{
			Service: messages.New(o.pub, o.store, messages.Limits{MaxPayloadBytes: 1000}), Verifier: v,
			Limiter: ratelimit.New(o.rate),
		},
		MaxRecvBytes: 4096,
		Presence:     o.presence,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.GracefulStop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	healthCheck(t, conn)
	return courierv1.NewMessagesClient(conn)
}

// healthCheck needs no token.
func healthCheck(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", resp, err)
	}
}

func as(t testing.TB, user string) context.Context {
	t.Helper()
	tok, err := auth.Mint(secret, user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

// wantStatus checks a call's gRPC code and the machine code in ErrorInfo.
func wantStatus(t *testing.T, err error, code codes.Code, reason string) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("error %v, want %s", err, code)
	}
	if reason == "" {
		return st
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == reason && info.Domain == grpcapi.ErrorDomain {
			return st
		}
	}
	t.Fatalf("no ErrorInfo with reason %s: %v", reason, st.Details())
	return nil
}

func TestErrorsMapToGRPCCodes(t *testing.T) {
	c := serve(t, options{})
	ok := &courierv1.SendRequest{To: []string{"bob"}, PayloadJson: []byte(`{"a":1}`)}
	if _, err := c.Send(as(t, "alice"), ok); err != nil {
		t.Fatalf("valid send: %v", err)
	}

	_, err := c.Send(context.Background(), ok)
	wantStatus(t, err, codes.Unauthenticated, "unauthenticated")
	bad := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer nope")
	_, err = c.ListInbox(bad, &courierv1.ListInboxRequest{})
	wantStatus(t, err, codes.Unauthenticated, "unauthenticated")

	for name, req := range map[string]*courierv1.SendRequest{
		"no recipients":   {PayloadJson: []byte(`1`)},
		"bad recipient":   {To: []string{"a/b"}, PayloadJson: []byte(`1`)},
		"invalid JSON":    {To: []string{"bob"}, PayloadJson: []byte(`{`)},
		"no payload":      {To: []string{"bob"}},
		"bad key":         {To: []string{"bob"}, PayloadJson: []byte(`1`), IdempotencyKey: "\x00"},
		"bad contenttype": {To: []string{"bob"}, PayloadJson: []byte(`1`), ContentType: "nope"},
	} {
		_, err := c.Send(as(t, "alice"), req)
		if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
		wantStatus(t, err, codes.InvalidArgument, "invalid_request")
	}
	_, err = c.Send(as(t, "alice"), &courierv1.SendRequest{To: []string{"bob"}, PayloadJson: []byte(`"` + strings.Repeat("x", 1500) + `"`)})
	wantStatus(t, err, codes.InvalidArgument, "payload_too_large")
	// Above the server's receive limit gRPC itself refuses the message.
	_, err = c.Send(as(t, "alice"), &courierv1.SendRequest{To: []string{"bob"}, PayloadJson: []byte(`"` + strings.Repeat("x", 5000) + `"`)})
	wantStatus(t, err, codes.ResourceExhausted, "")

	_, err = c.ListInbox(as(t, "alice"), &courierv1.ListInboxRequest{Cursor: "bogus"})
	wantStatus(t, err, codes.InvalidArgument, "invalid_request")
	_, err = c.ListInbox(as(t, "alice"), &courierv1.ListInboxRequest{Limit: 500})
	wantStatus(t, err, codes.InvalidArgument, "invalid_request")
	_, err = c.GetMessage(as(t, "alice"), &courierv1.GetMessageRequest{Id: "nope"})
	wantStatus(t, err, codes.NotFound, "not_found")
}

func TestGRPCRateLimitAndUnavailable(t *testing.T) {
	c := serve(t, options{
		rate: ratelimit.Options{PerSecond: 0.01, Burst: 1},
		pub:  gatewaytest.Failing(errors.New("pubsub unreachable")),
	})
	_, err := c.Send(as(t, "alice"), &courierv1.SendRequest{To: []string{"bob"}, PayloadJson: []byte(`1`)})
	wantStatus(t, err, codes.Unavailable, "unavailable")
	_, err = c.ListInbox(as(t, "alice"), &courierv1.ListInboxRequest{})
	st := wantStatus(t, err, codes.ResourceExhausted, "rate_limited")
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.RetryDelay.AsDuration() <= 0 {
		t.Errorf("no RetryInfo: %v", st.Details())
	}
	// Another user has their own bucket.
	if _, err := c.ListInbox(as(t, "bob"), &courierv1.ListInboxRequest{}); err != nil {
		t.Errorf("bob: %v", err)
	}
}

func TestGRPCPanicIsInternal(t *testing.T) {
	store := inboxtest.NewFaulty()
	store.GetFunc = func(context.Context, string) (inbox.Stored, error) { panic("boom") }
	c := serve(t, options{store: store})
	_, err := c.GetMessage(as(t, "alice"), &courierv1.GetMessageRequest{Id: "m1"})
	wantStatus(t, err, codes.Internal, "internal")
	if _, err := c.ListInbox(as(t, "alice"), &courierv1.ListInboxRequest{}); err != nil {
		t.Fatalf("server broken after a panic: %v", err)
	}
}

// TestGRPCOverEmulators sends through gRPC with the real publisher and
// reads a seeded Firestore: the envelope lands on the ingress topic with its
// attributes, ordering key and the otelgrpc server span's trace, and each
// caller reads only their own messages.
func TestGRPCOverEmulators(t *testing.T) {
	project := testenv.Project(t)
	client, topo := testenv.Topology(t, project, nil)
	ctx := testenv.Context(t, time.Minute)
	pub := ingress.New(client, topo.IngressTopic, ingress.Options{})
	t.Cleanup(pub.Stop)
	store := inbox.New(testenv.Firestore(t, project))
	c := serve(t, options{pub: pub, store: store})

	resp, err := c.Send(as(t, "alice"), &courierv1.SendRequest{
		To: []string{"bob"}, PayloadJson: []byte(`{"via":"grpc"}`), IdempotencyKey: "g-1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Id != messages.DeriveID("alice", "g-1") {
		t.Errorf("id %s is not derived from sender and key", resp.Id)
	}
	var got *pubsub.Message
	var once sync.Once
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := client.Subscriber(topo.IngressSubscription).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		once.Do(func() { got = m; cancel() })
	}); err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatal("nothing on the ingress topic")
	}
	if got.OrderingKey != "alice" || got.Attributes[wire.AttrMessageID] != resp.Id ||
		got.Attributes[wire.AttrSchema] != "courier.v1.Envelope" || got.Attributes[wire.AttrSender] != "alice" {
		t.Errorf("message: key %q attrs %v", got.OrderingKey, got.Attributes)
	}
	sc := trace.SpanContextFromContext(pubsubx.Extract(context.Background(), got.Attributes))
	var server sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.SpanKind() == trace.SpanKindServer && s.Name() == "courier.v1.Messages/Send" && s.SpanContext().TraceID() == sc.TraceID() {
			server = s
		}
	}
	if !sc.IsValid() || server == nil {
		t.Fatalf("no otelgrpc server span in the message's trace %s", sc.TraceID())
	}
	var env courierv1.Envelope
	if err := proto.Unmarshal(got.Data, &env); err != nil {
		t.Fatal(err)
	}
	if _, _, err := inboxtest.Commit(ctx, store, &env); err != nil { // what the worker does
		t.Fatal(err)
	}
	if _, _, err := inboxtest.Commit(ctx, store, &courierv1.Envelope{MessageId: "secret", Sender: "carol", Recipients: []string{"dave"},
		Payload: []byte(`1`), SentAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}

	page, err := c.ListInbox(as(t, "bob"), &courierv1.ListInboxRequest{Limit: 10})
	if err != nil || len(page.Messages) != 1 || page.Messages[0].Message.Id != resp.Id || page.NextCursor != page.Messages[0].Cursor {
		t.Fatalf("bob's inbox: %v %v", page, err)
	}
	for _, u := range []string{"alice", "bob"} {
		m, err := c.GetMessage(as(t, u), &courierv1.GetMessageRequest{Id: resp.Id})
		if err != nil || m.Message.Id != resp.Id || m.State != "stored" || string(m.Message.Payload) != `{"via":"grpc"}` {
			t.Errorf("%s reads %s: %v %v", u, resp.Id, m, err)
		}
	}
	for _, u := range []string{"alice", "bob", "mallory"} {
		_, err := c.GetMessage(as(t, u), &courierv1.GetMessageRequest{Id: "secret"})
		wantStatus(t, err, codes.NotFound, "not_found")
	}
	// Ids the worker never stores (Firestore reserves __x__) are NotFound
	// before they reach Firestore (they used to be Internal).
	for _, id := range []string{"__x__", "____"} {
		_, err := c.GetMessage(as(t, "alice"), &courierv1.GetMessageRequest{Id: id})
		wantStatus(t, err, codes.NotFound, "not_found")
	}
	if page, err := c.ListInbox(as(t, "mallory"), &courierv1.ListInboxRequest{}); err != nil || len(page.Messages) != 0 {
		t.Errorf("mallory's inbox: %v %v", page, err)
	}
}

// TestGRPCIdempotencyKeyReused: over gRPC, the same key with other content is
// AlreadyExists with reason idempotency_key_reused, before the first message
// is stored and (on another server) after; the same content gets the same id.
func TestGRPCIdempotencyKeyReused(t *testing.T) {
	store := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	rec := &gatewaytest.Recorder{}
	c := serve(t, options{pub: rec, store: store})
	send := func(c courierv1.MessagesClient, payload string) (*courierv1.SendResponse, error) {
		return c.Send(as(t, "alice"), &courierv1.SendRequest{To: []string{"bob"}, PayloadJson: []byte(payload), IdempotencyKey: "g-9"})
	}
	first, err := send(c, `{"n":1}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = send(c, `{"n":2}`)
	wantStatus(t, err, codes.AlreadyExists, "idempotency_key_reused")
	ctx := testenv.Context(t, time.Minute)
	if _, _, err := inboxtest.Commit(ctx, store, rec.Published()[0]); err != nil { // what the worker does
		t.Fatal(err)
	}
	other := serve(t, options{pub: rec, store: store})
	_, err = send(other, `{"n":2}`)
	wantStatus(t, err, codes.AlreadyExists, "idempotency_key_reused")
	if again, err := send(other, `{"n":1}`); err != nil || again.Id != first.Id {
		t.Fatalf("same content: %v %v, want id %s", again, err, first.Id)
	}
	if n := len(rec.Published()); n != 2 {
		t.Fatalf("%d envelopes published, want 2 (the first and its retry)", n)
	}
}

// TestGRPCClientCannotForceSampling: a caller's sampled traceparent in the
// metadata records nothing under a policy that samples nothing, and neither
// its trace nor its baggage reaches the Pub/Sub attributes.
func TestGRPCClientCannotForceSampling(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())),
		sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	project := testenv.Project(t)
	client, topo := testenv.Topology(t, project, nil)
	pub := ingress.New(client, topo.IngressTopic, ingress.Options{})
	t.Cleanup(pub.Stop)
	c := serve(t, options{pub: pub})
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := metadata.AppendToOutgoingContext(as(t, "alice"),
		"traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01", "baggage", "secret=1")
	if _, err := c.Send(ctx, &courierv1.SendRequest{To: []string{"bob"}, PayloadJson: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	var got *pubsub.Message
	rctx, cancel := context.WithTimeout(testenv.Context(t, time.Minute), 30*time.Second)
	defer cancel()
	var once sync.Once
	if err := client.Subscriber(topo.IngressSubscription).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		once.Do(func() { got = m; cancel() })
	}); err != nil || got == nil {
		t.Fatalf("nothing on the ingress topic: %v", err)
	}
	if b, ok := got.Attributes["baggage"]; ok {
		t.Errorf("the caller's baggage reached the Pub/Sub attributes: %q", b)
	}
	if tp := got.Attributes["traceparent"]; strings.Contains(tp, clientTrace) || strings.HasSuffix(tp, "-01") {
		t.Errorf("traceparent %q continues the caller's trace or is sampled", tp)
	}
	if ended := rec.Ended(); len(ended) != 0 {
		t.Errorf("%d spans recorded under a policy that samples nothing, the first %q", len(ended), ended[0].Name())
	}
}
