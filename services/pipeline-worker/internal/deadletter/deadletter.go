// Package deadletter publishes the ingress messages the worker gives up on
// to the dead-letter topic, where `courierctl dlq` lists, shows and replays
// them. A dead letter is the original message (data, attributes, trace
// context) plus attributes saying why, from where, on which attempt and
// since when it failed; Pub/Sub's own forwarding (the subscription's
// dead-letter policy, the backstop) carries none of that.
package deadletter

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/pubsubx"
)

// PublishFunc publishes msg and waits for the server's confirmation
// (pubsubx.Publish on the dead-letter topic in production).
type PublishFunc func(ctx context.Context, msg *pubsub.Message, courierID string) error

// Letter says why a message is dead-lettered.
type Letter struct {
	Reason       string
	Err          error
	Attempt      int       // delivery attempt (0 when unknown)
	FirstFailure time.Time // when the worker first saw this message fail
}

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

// maxAttrValue is Pub/Sub's limit on an attribute value, in bytes.
const maxAttrValue = 1024

// Message builds the dead letter of m.
func (w *Writer) Message(m *pubsub.Message, l Letter) *pubsub.Message {
	attrs := make(map[string]string, len(m.Attributes)+6)
	maps.Copy(attrs, m.Attributes)
	attrs[pubsubx.AttrDeadLetterReason] = l.Reason
	if l.Err != nil {
		attrs[pubsubx.AttrDeadLetterError] = truncate(l.Err.Error(), maxAttrValue)
	}
	attrs[pubsubx.AttrSourceSubscription] = w.subscription
	attrs[pubsubx.AttrDeliveryAttempt] = strconv.Itoa(l.Attempt)
	if !l.FirstFailure.IsZero() {
		attrs[pubsubx.AttrFirstFailureTime] = l.FirstFailure.UTC().Format(time.RFC3339Nano)
	}
	// The dead-letter subscription is not ordered, so the letter carries
	// its ordering key as an attribute for a replay to restore.
	if m.OrderingKey != "" {
		attrs[pubsubx.AttrOrderingKey] = m.OrderingKey
	} else {
		delete(attrs, pubsubx.AttrOrderingKey)
	}
	return &pubsub.Message{Data: m.Data, Attributes: attrs}
}

// Send publishes the dead letter of m and returns once Pub/Sub confirmed it;
// only then may the caller ack m.
func (w *Writer) Send(ctx context.Context, m *pubsub.Message, l Letter) error {
	id := m.Attributes[pubsubx.AttrMessageID]
	ctx, span := otel.Tracer("github.com/courierhq/courier/services/pipeline-worker/internal/deadletter").
		Start(ctx, "dead-letter", traceAttrs(id, l)...)
	defer span.End()
	if err := w.publish(ctx, w.Message(m, l), id); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "dead-letter publish failed")
		return fmt.Errorf("dead-letter message %s (%s): %w", m.ID, l.Reason, err)
	}
	return nil
}

func traceAttrs(id string, l Letter) []trace.SpanStartOption {
	return []trace.SpanStartOption{trace.WithAttributes(
		pubsubx.KeyCourierMessageID.String(id),
		attribute.String("courier.dead_letter.reason", l.Reason),
		attribute.Int("messaging.gcp_pubsub.message.delivery_attempt", l.Attempt),
	)}
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-len("…")]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
