package wire

import (
	"encoding/json"
	"errors"
	"fmt"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/clip"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// The envelope: api-gateway publishes one per accepted message to the
// ingress topic; the pipeline-worker decodes and validates it.

// SchemaEnvelope is the courier_schema attribute of an ingress message.
var SchemaEnvelope = string((&courierv1.Envelope{}).ProtoReflect().Descriptor().FullName())

// EncodeEnvelope builds the ingress message of env: proto data, Courier's
// attributes, and the sender as ordering key, so one sender's messages
// reach the worker (hence each inbox) in the order the gateway accepted
// them. pubsubx.Publish adds the trace context.
func EncodeEnvelope(env *courierv1.Envelope) (*pubsub.Message, error) {
	data, err := proto.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", env.GetMessageId(), err)
	}
	return &pubsub.Message{
		Data: data,
		Attributes: map[string]string{
			AttrMessageID:   env.GetMessageId(),
			AttrSender:      env.GetSender(),
			AttrSchema:      SchemaEnvelope,
			AttrContentType: ContentTypeProtobuf,
		},
		OrderingKey: env.GetSender(),
	}, nil
}

// Reasons an envelope is rejected; they become the dead-letter reason.
const (
	ReasonUndecodable = "undecodable"
	ReasonInvalid     = "invalid"
	ReasonTooLarge    = "too_large"
)

// MaxCommitBytes bounds what one message makes the worker write: its payload
// is copied into the message and into every recipient's inbox entry, and a
// Firestore request may not exceed 10 MiB. Kept below that for the other
// fields.
const MaxCommitBytes = 9 << 20

// DefaultMaxEnvelopeBytes is the default bound on an encoded envelope, the
// same at the gateway (MAX_ENVELOPE_BYTES), which refuses a larger send,
// and at the worker (WORKER_MAX_ENVELOPE_BYTES), which dead-letters one.
const DefaultMaxEnvelopeBytes = 1 << 20

// Limits bound what the worker accepts. They must be at least the gateway's.
type Limits struct {
	MaxEnvelopeBytes int // the encoded envelope (Pub/Sub message data)
	MaxPayloadBytes  int
	// MaxRecipients is at most 1,000 (the gateway's own bound). A message
	// is written in one commit with its batch: one inbox entry per
	// recipient plus the message document. Firestore limits a commit's
	// size (10 MiB, see MaxCommitBytes), no longer its number of writes.
	MaxRecipients int
}

// EnvelopeError is a permanent rejection with its reason: the same bytes can
// never become valid, so the worker dead-letters them at once.
type EnvelopeError struct {
	Reason string
	Err    error
}

func (e *EnvelopeError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *EnvelopeError) Unwrap() error { return e.Err }

// DeadLetterReason makes the error permanent for the worker's classifier.
func (e *EnvelopeError) DeadLetterReason() string { return e.Reason }

func reject(reason, format string, args ...any) error {
	return &EnvelopeError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// DecodeEnvelope returns the envelope in data after checking its
// attributes, its encoding and its content against l. Every error is an
// *EnvelopeError.
func DecodeEnvelope(data []byte, attrs map[string]string, l Limits) (*courierv1.Envelope, error) {
	if l.MaxEnvelopeBytes > 0 && len(data) > l.MaxEnvelopeBytes {
		return nil, reject(ReasonTooLarge, "envelope is %d bytes, limit %d", len(data), l.MaxEnvelopeBytes)
	}
	if s, ok := attrs[AttrSchema]; ok && s != SchemaEnvelope {
		return nil, reject(ReasonUndecodable, "schema %q, want %q", clip.Text(s, 80), SchemaEnvelope)
	}
	env := &courierv1.Envelope{}
	if err := proto.Unmarshal(data, env); err != nil {
		return nil, &EnvelopeError{Reason: ReasonUndecodable, Err: fmt.Errorf("decode envelope: %w", err)}
	}
	if err := ValidateEnvelope(env, l); err != nil {
		return nil, err
	}
	if id, ok := attrs[AttrMessageID]; ok && id != env.MessageId {
		return nil, reject(ReasonInvalid, "attribute %s=%q differs from the envelope's id %q", AttrMessageID, clip.Text(id, 80), env.MessageId)
	}
	return env, nil
}

// ValidateEnvelope checks a decoded envelope.
func ValidateEnvelope(env *courierv1.Envelope, l Limits) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch id := env.GetMessageId(); {
	case id == "":
		bad("message id missing")
	case !ValidMessageID(id):
		bad("message id %q is not a valid id", clip.Text(id, 40))
	}
	if err := auth.ValidateUserID(env.GetSender()); err != nil {
		bad("sender: %v", err)
	}
	rcpts := env.GetRecipients()
	switch {
	case len(rcpts) == 0:
		bad("no recipients")
	case l.MaxRecipients > 0 && len(rcpts) > l.MaxRecipients:
		bad("%d recipients, limit %d", len(rcpts), l.MaxRecipients)
	}
	seen := make(map[string]bool, len(rcpts))
	for _, r := range rcpts {
		if err := auth.ValidateUserID(r); err != nil {
			bad("recipient: %v", err)
			continue
		}
		if seen[r] {
			bad("recipient %q appears twice", r)
		}
		seen[r] = true
	}
	// An envelope from before conversations names none (ConversationOf
	// derives it); the gateway refuses senders' "d." ids, so one here was
	// derived by the gateway.
	if c := env.GetConversationId(); c != "" {
		if err := ValidateConversationID(c, false); err != nil {
			bad("conversation: %v", err)
		}
	}
	if ts := env.GetSentAt(); ts == nil {
		bad("sent_at missing")
	} else if err := ts.CheckValid(); err != nil {
		bad("sent_at: %v", err)
	}
	p := env.GetPayload()
	switch {
	case l.MaxPayloadBytes > 0 && len(p) > l.MaxPayloadBytes:
		return reject(ReasonTooLarge, "payload is %d bytes, limit %d", len(p), l.MaxPayloadBytes)
	case len(p)*(len(rcpts)+1) > MaxCommitBytes:
		return reject(ReasonTooLarge, "payload of %d bytes copied to %d recipients exceeds one Firestore commit", len(p), len(rcpts))
	case len(p) == 0:
		bad("payload missing")
	case !json.Valid(p):
		bad("payload is not valid JSON")
	}
	if len(errs) > 0 {
		return &EnvelopeError{Reason: ReasonInvalid, Err: errors.Join(errs...)}
	}
	return nil
}
