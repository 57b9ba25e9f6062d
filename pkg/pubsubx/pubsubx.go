// Package pubsubx holds the transport the services share around the Pub/Sub
// v2 client: the client constructor, publishing with confirmation, W3C trace
// context carried in message attributes, and producer/consumer spans named
// by the OpenTelemetry messaging conventions for gcp_pubsub. The formats of
// the messages themselves are pkg/wire's.
//
// We create these spans ourselves instead of enabling the client's built-in
// tracing: the built-in one injects only "googclient_traceparent" and ignores
// the global propagator (so baggage is lost), and only when the publish
// context already holds a span. Doing it here gives one producer span per
// publish and one consumer span per processed message, no doubles.
package pubsubx

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/wire"
)

// Span attribute keys shared by every service, so an SRE can search traces
// by Courier message id.
var (
	KeyCourierMessageID = attribute.Key("courier.message.id")
)

const tracerName = "github.com/courierhq/courier/pkg/pubsubx"

// NewClient returns a Pub/Sub client for project. It honours
// PUBSUB_EMULATOR_HOST (the client library does).
func NewClient(ctx context.Context, project string) (*pubsub.Client, error) {
	c, err := pubsub.NewClientWithConfig(ctx, project, &pubsub.ClientConfig{EnableOpenTelemetryTracing: false})
	if err != nil {
		return nil, fmt.Errorf("pubsub client for project %s: %w", project, err)
	}
	return c, nil
}

// AttrCarrier adapts Pub/Sub message attributes to the OpenTelemetry
// propagation API.
type AttrCarrier map[string]string

func (c AttrCarrier) Get(key string) string { return c[key] }
func (c AttrCarrier) Set(key, value string) { c[key] = value }
func (c AttrCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

var _ propagation.TextMapCarrier = AttrCarrier(nil)

// Inject writes ctx's trace context into attrs (which must not be nil).
func Inject(ctx context.Context, attrs map[string]string) {
	otel.GetTextMapPropagator().Inject(ctx, AttrCarrier(attrs))
}

// Extract returns ctx carrying the trace context found in attrs.
func Extract(ctx context.Context, attrs map[string]string) context.Context {
	return otel.GetTextMapPropagator().Extract(ctx, AttrCarrier(attrs))
}

// Publish publishes msg on p inside a producer span, with the span's trace
// context in the attributes, and waits for the server's confirmation. It
// returns the Pub/Sub server message id.
func Publish(ctx context.Context, p *pubsub.Publisher, msg *pubsub.Message, courierID string) (string, error) {
	span, res := startPublish(ctx, p, msg, courierID)
	return finishPublish(ctx, p, msg, span, res)
}

// Outgoing is one message for PublishAll.
type Outgoing struct {
	// Ctx is the parent of the message's producer span and bounds the wait
	// for its confirmation.
	Ctx       context.Context
	Msg       *pubsub.Message
	CourierID string
}

// PublishAll publishes every message, each in its producer span as Publish
// does, and waits for all confirmations. The messages are handed to the
// client in the order of out before any wait, so messages sharing an
// ordering key keep that order and the client batches them together. The
// errors are in the order of out (nil for a confirmed message).
func PublishAll(p *pubsub.Publisher, out []Outgoing) []error {
	spans := make([]trace.Span, len(out))
	results := make([]*pubsub.PublishResult, len(out))
	for i, o := range out {
		spans[i], results[i] = startPublish(o.Ctx, p, o.Msg, o.CourierID)
	}
	errs := make([]error, len(out))
	for i, o := range out {
		_, errs[i] = finishPublish(o.Ctx, p, o.Msg, spans[i], results[i])
	}
	return errs
}

func startPublish(ctx context.Context, p *pubsub.Publisher, msg *pubsub.Message, courierID string) (trace.Span, *pubsub.PublishResult) {
	if msg.Attributes == nil {
		msg.Attributes = map[string]string{}
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, "publish "+p.ID(),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "gcp_pubsub"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.operation.name", "publish"),
			attribute.String("messaging.destination.name", p.ID()),
			attribute.Int("messaging.message.body.size", len(msg.Data)),
			KeyCourierMessageID.String(courierID),
		))
	if msg.OrderingKey != "" {
		span.SetAttributes(attribute.String("messaging.gcp_pubsub.message.ordering_key", msg.OrderingKey))
	}
	Inject(ctx, msg.Attributes)
	return span, p.Publish(ctx, msg)
}

func finishPublish(ctx context.Context, p *pubsub.Publisher, msg *pubsub.Message, span trace.Span, res *pubsub.PublishResult) (string, error) {
	defer span.End()
	id, err := res.Get(ctx)
	if err != nil {
		if msg.OrderingKey != "" {
			// A failed publish pauses its ordering key; resume so the next
			// attempt (a client retry, a redelivery) can go through.
			p.ResumePublish(msg.OrderingKey)
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return "", fmt.Errorf("publish to %s: %w", p.ID(), err)
	}
	span.SetAttributes(attribute.String("messaging.message.id", id))
	return id, nil
}

// StartProcess starts the consumer span for one received message, as a child
// of the publisher's span found in its attributes.
func StartProcess(ctx context.Context, subscription string, m *pubsub.Message) (context.Context, trace.Span) {
	ctx = Extract(ctx, m.Attributes)
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "gcp_pubsub"),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.operation.name", "process"),
		attribute.String("messaging.destination.subscription.name", subscription),
		attribute.String("messaging.message.id", m.ID),
		attribute.Int("messaging.message.body.size", len(m.Data)),
	}
	if id := m.Attributes[wire.AttrMessageID]; id != "" {
		attrs = append(attrs, KeyCourierMessageID.String(id))
	}
	if m.DeliveryAttempt != nil {
		attrs = append(attrs, attribute.Int("messaging.gcp_pubsub.message.delivery_attempt", *m.DeliveryAttempt))
	}
	if m.OrderingKey != "" {
		attrs = append(attrs, attribute.String("messaging.gcp_pubsub.message.ordering_key", m.OrderingKey))
	}
	return otel.Tracer(tracerName).Start(ctx, "process "+subscription,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// DeliveryAttempt returns the message's delivery attempt, or 0 when the
// subscription has no dead-letter policy (Pub/Sub sets it only then).
func DeliveryAttempt(m *pubsub.Message) int {
	if m.DeliveryAttempt == nil {
		return 0
	}
	return *m.DeliveryAttempt
}
