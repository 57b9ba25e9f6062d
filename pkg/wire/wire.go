// Package wire is every Pub/Sub message format Courier exchanges between its
// services, each with its writer, its reader, its attributes and its limits
// side by side, so that changing a format is one edit and one round-trip
// test:
//
//	envelope.go    api-gateway → pipeline-worker   (ingress topic)
//	delivery.go    pipeline-worker → ws-edge       (deliveries topic)
//	ephemeral.go   any service → ws-edge           (deliveries topic: signals, presence, receipts, read markers)
//	deadletter.go  pipeline-worker → courierctl    (dead-letter topic), and the replay back to ingress
//
// Transport (publishing with confirmation, spans, trace context) stays in
// pkg/pubsubx; the routing attributes of a delivery are pkg/presence's.
package wire

// Attributes on every Courier message, besides the W3C trace context
// (traceparent, tracestate, baggage) that pubsubx adds.
const (
	AttrMessageID   = "courier_message_id"
	AttrSender      = "courier_sender"
	AttrSchema      = "courier_schema" // the fully qualified proto message name of the data
	AttrContentType = "content_type"
)

// ContentTypeProtobuf is the content type of every Courier message's data.
const ContentTypeProtobuf = "application/protobuf"

// MaxAttrValue is Pub/Sub's limit on an attribute value, in bytes.
const MaxAttrValue = 1024
