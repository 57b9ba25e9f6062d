// Package deadletter publishes the ingress messages the worker gives up on
// to the dead-letter topic (format: wire.EncodeDeadLetter), where
// `courierctl dlq` lists, shows and replays them, and returns once Pub/Sub
// confirmed the letter, so only then is the original acked.
package deadletter

import (
	"context"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/wire"
)

// PublishFunc publishes msg and waits for the server's confirmation
// (pubsubx.Publish on the dead-letter topic in production).
type PublishFunc func(ctx context.Context, msg *pubsub.Message, courierID string) error

// Letter says why a message is dead-lettered (the source subscription is
// the Writer's).
type Letter = wire.Letter

// Writer sends dead letters for one source subscription.
type Writer struct {
	publish      PublishFunc
	subscription string
}

// New returns a Writer that publishes with publish; subscription names the
// source subscription on the dead letters.
func New(publish PublishFunc, subscription string) *Writer {
	return &Writer{publish: publish, subscription: subscription}
}

// Send publishes the dead letter of m in a span of its own and returns once
// Pub/Sub confirmed it; only then may the caller ack m.
func (w *Writer) Send(ctx context.Context, m *pubsub.Message, l Letter) error {
	l.Subscription = w.subscription
	id := m.Attributes[wire.AttrMessageID]
	ctx, span := otel.Tracer("github.com/courierhq/courier/services/pipeline-worker/internal/deadletter").
		Start(ctx, "dead-letter", trace.WithAttributes(
			pubsubx.KeyCourierMessageID.String(id),
			attribute.String("courier.dead_letter.reason", l.Reason),
			attribute.Int("messaging.gcp_pubsub.message.delivery_attempt", l.Attempt),
		))
	defer span.End()
	if err := w.publish(ctx, wire.EncodeDeadLetter(m, l), id); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "dead-letter publish failed")
		return fmt.Errorf("dead-letter message %s (%s): %w", m.ID, l.Reason, err)
	}
	return nil
}
