// Package envelope decodes and validates the Envelope that api-gateway
// publishes to the ingress topic. Everything it rejects is rejected for
// good: the same bytes can never become valid, so the worker dead-letters
// them at once instead of retrying.
package envelope

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/pubsubx"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Schema is the courier_schema attribute of an ingress message.
var Schema = string((&courierv1.Envelope{}).ProtoReflect().Descriptor().FullName())

// Reasons for rejecting an envelope; they become the dead-letter reason.
const (
	ReasonUndecodable = "undecodable"
	ReasonInvalid     = "invalid"
	ReasonTooLarge    = "too_large"
)

// maxCommitBytes bounds what one Firestore commit carries: the payload is
// copied into the message and into every recipient's inbox entry, and a
// Firestore request may not exceed 10 MiB. Kept below that for the other
// fields.
const maxCommitBytes = 9 << 20

// Limits bound what the worker accepts. They must be at least the gateway's.
type Limits struct {
	MaxEnvelopeBytes int // the encoded envelope (Pub/Sub message data)
	MaxPayloadBytes  int
	// MaxRecipients is at most 1,000 (the gateway's own bound). A message
	// is written in one commit with its batch: one inbox entry per recipient
	// plus the message document. Firestore limits a commit's size (10 MiB,
	// see maxCommitBytes), no longer its number of writes; a message with
	// more writes than WORKER_BATCH_MAX_WRITES is committed alone.
	MaxRecipients int
}

// Error is a permanent rejection with its reason.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// DeadLetterReason makes the error permanent for the classifier.
func (e *Error) DeadLetterReason() string { return e.Reason }

func reject(reason, format string, args ...any) error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// messageIDPattern accepts the ids the gateway makes (and any id that is a
// safe Firestore document id: no "/", bounded length).
var messageIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:@+=-]{1,128}$`)

// Decode returns the envelope in data after checking its attributes, its
// encoding and its content against l.
func Decode(data []byte, attrs map[string]string, l Limits) (*courierv1.Envelope, error) {
	if l.MaxEnvelopeBytes > 0 && len(data) > l.MaxEnvelopeBytes {
		return nil, reject(ReasonTooLarge, "envelope is %d bytes, limit %d", len(data), l.MaxEnvelopeBytes)
	}
	if s, ok := attrs[pubsubx.AttrSchema]; ok && s != Schema {
		return nil, reject(ReasonUndecodable, "schema %q, want %q", s, Schema)
	}
	env := &courierv1.Envelope{}
	if err := proto.Unmarshal(data, env); err != nil {
		return nil, &Error{Reason: ReasonUndecodable, Err: fmt.Errorf("decode envelope: %w", err)}
	}
	if err := Validate(env, l); err != nil {
		return nil, err
	}
	if id, ok := attrs[pubsubx.AttrMessageID]; ok && id != env.MessageId {
		return nil, reject(ReasonInvalid, "attribute %s=%q differs from the envelope's id %q", pubsubx.AttrMessageID, id, env.MessageId)
	}
	return env, nil
}

// Validate checks a decoded envelope.
func Validate(env *courierv1.Envelope, l Limits) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch id := env.GetMessageId(); {
	case id == "":
		bad("message id missing")
	case !messageIDPattern.MatchString(id), id == "." || id == "..",
		strings.HasPrefix(id, "__") && strings.HasSuffix(id, "__"):
		bad("message id %q is not a valid id", truncate(id, 40))
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
	if ts := env.GetSentAt(); ts == nil {
		bad("sent_at missing")
	} else if err := ts.CheckValid(); err != nil {
		bad("sent_at: %v", err)
	}
	p := env.GetPayload()
	switch {
	case l.MaxPayloadBytes > 0 && len(p) > l.MaxPayloadBytes:
		return reject(ReasonTooLarge, "payload is %d bytes, limit %d", len(p), l.MaxPayloadBytes)
	case len(p)*(len(rcpts)+1) > maxCommitBytes:
		return reject(ReasonTooLarge, "payload of %d bytes copied to %d recipients exceeds one Firestore commit", len(p), len(rcpts))
	case len(p) == 0:
		bad("payload missing")
	case !json.Valid(p):
		bad("payload is not valid JSON")
	}
	if len(errs) > 0 {
		return &Error{Reason: ReasonInvalid, Err: errors.Join(errs...)}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
