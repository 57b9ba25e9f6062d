package pubsubx

import (
	"strings"

	"go.opentelemetry.io/otel"
)

// Attributes the pipeline-worker adds when it dead-letters an ingress message
// itself, and that `courierctl dlq` reads back. The original attributes
// (message id, sender, schema, trace context) ride along unchanged.
const (
	// AttrDeadLetterReason is a short machine reason: "undecodable",
	// "invalid", "too_large", "rejected" (a store refused it for good) or
	// "exhausted" (transient failures on the last delivery attempt).
	AttrDeadLetterReason = "courier_dead_letter_reason"
	// AttrDeadLetterError is the error text, truncated.
	AttrDeadLetterError = "courier_dead_letter_error"
	// AttrSourceSubscription is the subscription the message failed on.
	AttrSourceSubscription = "courier_source_subscription"
	// AttrDeliveryAttempt is the delivery attempt that dead-lettered it.
	AttrDeliveryAttempt = "courier_delivery_attempt"
	// AttrFirstFailureTime is when the worker first saw it fail (RFC 3339).
	AttrFirstFailureTime = "courier_first_failure_time"
	// AttrOrderingKey keeps the original ordering key: a dead letter is
	// published without one, and a replay restores it.
	AttrOrderingKey = "courier_ordering_key"
	// AttrReplayOf, on a replayed ingress message, is the Pub/Sub message id
	// of the dead letter it came from.
	AttrReplayOf = "courier_replay_of"

	// Attributes Pub/Sub adds when its dead-letter policy forwards a message.
	AttrPubSubDeliveryCount      = "CloudPubSubDeadLetterSourceDeliveryCount"
	AttrPubSubSourceSubscription = "CloudPubSubDeadLetterSourceSubscription"
)

// IsDeadLetterAttribute reports whether an attribute was added by
// dead-lettering (Courier's or Pub/Sub's own) rather than by the publisher.
func IsDeadLetterAttribute(name string) bool {
	switch name {
	case AttrDeadLetterReason, AttrDeadLetterError, AttrSourceSubscription, AttrDeliveryAttempt,
		AttrFirstFailureTime, AttrOrderingKey, AttrReplayOf:
		return true
	}
	return strings.HasPrefix(name, "CloudPubSubDeadLetter")
}

// IsTraceAttribute reports whether an attribute carries trace context for the
// global propagator (traceparent, tracestate, baggage).
func IsTraceAttribute(name string) bool {
	for _, f := range otel.GetTextMapPropagator().Fields() {
		if f == name {
			return true
		}
	}
	return name == "traceparent" || name == "tracestate" || name == "baggage"
}
