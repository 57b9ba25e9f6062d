package wire

import (
	"maps"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/pkg/clip"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// The dead letter: an ingress message the pipeline-worker gives up on is
// published to the dead-letter topic as it came (data, attributes, trace
// context) plus attributes saying why, from where, on which attempt and
// since when; `courierctl dlq` reads it back and can replay it to the
// ingress topic. Pub/Sub's own dead-lettering (the subscription's policy,
// the backstop) forwards a message with its own attributes and no reason.

// Attributes the worker adds to a dead letter.
const (
	// AttrDeadLetterReason is a short machine reason: "undecodable",
	// "invalid", "too_large", "rejected" (a store refused it for good) or
	// "exhausted" (transient failures on the last delivery attempt).
	AttrDeadLetterReason = "courier_dead_letter_reason"
	// AttrDeadLetterError is the error text, clipped to MaxAttrValue.
	AttrDeadLetterError = "courier_dead_letter_error"
	// AttrSourceSubscription is the subscription the message failed on.
	AttrSourceSubscription = "courier_source_subscription"
	// AttrDeliveryAttempt is the delivery attempt that dead-lettered it.
	AttrDeliveryAttempt = "courier_delivery_attempt"
	// AttrFirstFailureTime is when the worker first saw it fail (RFC 3339).
	AttrFirstFailureTime = "courier_first_failure_time"
	// AttrOrderingKey keeps the original ordering key: a dead letter is
	// published without one (the dead-letter subscription is not ordered),
	// and a replay restores it.
	AttrOrderingKey = "courier_ordering_key"
	// AttrReplayOf, on a replayed ingress message, is the Pub/Sub message
	// id of the dead letter it came from.
	AttrReplayOf = "courier_replay_of"

	// Attributes Pub/Sub adds when its dead-letter policy forwards a message.
	AttrPubSubDeliveryCount      = "CloudPubSubDeadLetterSourceDeliveryCount"
	AttrPubSubSourceSubscription = "CloudPubSubDeadLetterSourceSubscription"
)

// ReasonPubSub is the reason of a letter Pub/Sub forwarded by itself.
const ReasonPubSub = "max_delivery_attempts"

// Letter says why a message is dead-lettered.
type Letter struct {
	Reason       string
	Err          error
	Subscription string    // the source subscription
	Attempt      int       // delivery attempt (0 when unknown)
	FirstFailure time.Time // when the worker first saw this message fail
}

// EncodeDeadLetter builds the dead letter of m. m is not changed.
func EncodeDeadLetter(m *pubsub.Message, l Letter) *pubsub.Message {
	attrs := make(map[string]string, len(m.Attributes)+6)
	maps.Copy(attrs, m.Attributes)
	attrs[AttrDeadLetterReason] = l.Reason
	if l.Err != nil {
		attrs[AttrDeadLetterError] = clip.Text(l.Err.Error(), MaxAttrValue)
	}
	attrs[AttrSourceSubscription] = l.Subscription
	attrs[AttrDeliveryAttempt] = strconv.Itoa(l.Attempt)
	if !l.FirstFailure.IsZero() {
		attrs[AttrFirstFailureTime] = l.FirstFailure.UTC().Format(time.RFC3339Nano)
	}
	if m.OrderingKey != "" {
		attrs[AttrOrderingKey] = m.OrderingKey
	} else {
		delete(attrs, AttrOrderingKey)
	}
	return &pubsub.Message{Data: m.Data, Attributes: attrs}
}

// DeadLetter is a dead letter read back.
type DeadLetter struct {
	MessageID string // Courier's message id, when the original carried it
	// Reason is the worker's reason, or ReasonPubSub when Pub/Sub's own
	// policy forwarded the message.
	Reason       string
	Error        string
	Attempts     int
	Source       string // the subscription it failed on
	FirstFailure *time.Time
	OrderingKey  string
	// Attributes are the original message's attributes (trace context
	// included), without the ones dead-lettering added.
	Attributes map[string]string
	// Envelope is the data decoded, when it decodes as an envelope;
	// otherwise DecodeError says why.
	Envelope    *courierv1.Envelope
	DecodeError string
}

// DecodeDeadLetter reads a dead letter's data and attributes.
func DecodeDeadLetter(data []byte, attrs map[string]string) DeadLetter {
	d := DeadLetter{
		MessageID: attrs[AttrMessageID], Reason: attrs[AttrDeadLetterReason], Error: attrs[AttrDeadLetterError],
		Source: attrs[AttrSourceSubscription], OrderingKey: attrs[AttrOrderingKey], Attributes: map[string]string{},
	}
	d.Attempts, _ = strconv.Atoi(attrs[AttrDeliveryAttempt])
	if d.Reason == "" {
		// Forwarded by the subscription's dead-letter policy: no reason, but
		// Pub/Sub's own attributes say how many attempts and from where.
		d.Reason = ReasonPubSub
		d.Attempts, _ = strconv.Atoi(attrs[AttrPubSubDeliveryCount])
		d.Source = attrs[AttrPubSubSourceSubscription]
	}
	if t, err := time.Parse(time.RFC3339Nano, attrs[AttrFirstFailureTime]); err == nil {
		d.FirstFailure = &t
	}
	for k, v := range attrs {
		if !isDeadLetterAttribute(k) {
			d.Attributes[k] = v
		}
	}
	env := &courierv1.Envelope{}
	switch err := proto.Unmarshal(data, env); {
	case err != nil:
		d.DecodeError = err.Error()
	case env.GetMessageId() == "" && env.GetSender() == "":
		d.DecodeError = "not a courier.v1.Envelope (no message id, no sender)"
	default:
		d.Envelope = env
	}
	return d
}

// EncodeReplay builds the ingress message that replays a dead letter whose
// Pub/Sub id is id: its data, its original attributes without the trace
// context (the replay's own is added when published), AttrReplayOf, and
// its ordering key (the sender's when the letter kept none).
func EncodeReplay(id string, data []byte, d DeadLetter) *pubsub.Message {
	attrs := make(map[string]string, len(d.Attributes)+1)
	for k, v := range d.Attributes {
		if !isTraceAttribute(k) {
			attrs[k] = v
		}
	}
	attrs[AttrReplayOf] = id
	key := d.OrderingKey
	if key == "" {
		key = attrs[AttrSender]
	}
	return &pubsub.Message{Data: data, Attributes: attrs, OrderingKey: key}
}

// isDeadLetterAttribute reports whether an attribute was added by
// dead-lettering (Courier's or Pub/Sub's own) rather than by the publisher.
func isDeadLetterAttribute(name string) bool {
	switch name {
	case AttrDeadLetterReason, AttrDeadLetterError, AttrSourceSubscription, AttrDeliveryAttempt,
		AttrFirstFailureTime, AttrOrderingKey, AttrReplayOf:
		return true
	}
	return strings.HasPrefix(name, "CloudPubSubDeadLetter")
}

// isTraceAttribute reports whether an attribute carries trace context for
// the global propagator (traceparent, tracestate, baggage).
func isTraceAttribute(name string) bool {
	for _, f := range otel.GetTextMapPropagator().Fields() {
		if f == name {
			return true
		}
	}
	return name == "traceparent" || name == "tracestate" || name == "baggage"
}
