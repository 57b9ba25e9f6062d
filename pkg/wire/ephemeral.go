package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/clip"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// The ephemeral event: a frame for the live sessions of some users (a
// signal, a presence change, a receipt, a read marker) that any service
// publishes to the deliveries topic beside the deliveries. Every ws-edge pod
// writes it to the sessions it holds of the listed users, at most once: it
// is never stored, never replayed, never retried. The edge tells it from a
// delivery by AttrSchema, and skips it without decoding when
// AttrRecipients names none of its users (MayConcern), as for a delivery.

// AttrEphemeralKind is an ephemeral event's kind, so an edge can dispatch
// on it before decoding.
const AttrEphemeralKind = "courier_ephemeral_kind"

// SchemaEphemeral is the courier_schema attribute of an ephemeral event.
var SchemaEphemeral = string((&courierv1.Ephemeral{}).ProtoReflect().Descriptor().FullName())

// Limits of an ephemeral event. A frame is small by design (a signal is at
// most 1 KiB from a client; presence, receipts and read markers are a few
// hundred bytes); MaxEphemeralUsers is the recipient bound of a send.
const (
	MaxEphemeralFrameBytes = 16 << 10
	MaxEphemeralUsers      = 1000
)

// ephemeralKindPattern is the rule for Ephemeral.Kind (a metric label, so a
// short closed alphabet) and for a signal's kind.
var ephemeralKindPattern = regexp.MustCompile(`^[a-z0-9._-]{1,32}$`)

// ValidKind reports whether kind is a valid ephemeral or signal kind: 1–32
// of [a-z0-9._-].
func ValidKind(kind string) bool { return ephemeralKindPattern.MatchString(kind) }

// KindPresence is the kind of a presence event, whose Users holds the one
// user it is about; edges write it to the local sessions that watch that
// user (not to the user's own sessions).
const KindPresence = "presence"

// ErrEphemeral wraps every reason DecodeEphemeral and ValidateEphemeral
// refuse an event.
var ErrEphemeral = errors.New("invalid ephemeral event")

// NewEphemeral builds the event of frame for users.
func NewEphemeral(users []string, kind string, frame []byte, sentAt *timestamppb.Timestamp) *courierv1.Ephemeral {
	return &courierv1.Ephemeral{Users: users, Frame: frame, Kind: kind, SentAt: sentAt}
}

// EncodeEphemeral validates e and builds its deliveries-topic message.
func EncodeEphemeral(e *courierv1.Ephemeral) (*pubsub.Message, error) {
	if err := ValidateEphemeral(e); err != nil {
		return nil, err
	}
	data, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode ephemeral %s: %w", e.GetKind(), err)
	}
	attrs := map[string]string{
		AttrSchema:        SchemaEphemeral,
		AttrContentType:   ContentTypeProtobuf,
		AttrEphemeralKind: e.GetKind(),
	}
	// Valid user ids hold no comma (auth.ValidateUserID), so the list splits
	// back exactly. A presence event names its subject, not its readers
	// (every pod writes it to the sessions watching the subject): no list.
	if rc := strings.Join(e.GetUsers(), ","); len(rc) <= MaxAttrValue && e.GetKind() != KindPresence {
		attrs[AttrRecipients] = rc
	}
	return &pubsub.Message{Data: data, Attributes: attrs}, nil
}

// DecodeEphemeral reads and validates an ephemeral event. Every error wraps
// ErrEphemeral.
func DecodeEphemeral(data []byte) (*courierv1.Ephemeral, error) {
	if len(data) > MaxEphemeralFrameBytes+MaxEphemeralUsers*(128+3)+64 {
		return nil, fmt.Errorf("%w: %d bytes", ErrEphemeral, len(data))
	}
	e := &courierv1.Ephemeral{}
	if err := proto.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("%w: decode: %w", ErrEphemeral, err)
	}
	if err := ValidateEphemeral(e); err != nil {
		return nil, err
	}
	return e, nil
}

// ValidateEphemeral checks an event: 1..MaxEphemeralUsers valid user ids, a
// valid kind, and a frame that is a JSON object of at most
// MaxEphemeralFrameBytes with a string "type" (what every client expects of
// a server frame). Every error wraps ErrEphemeral.
func ValidateEphemeral(e *courierv1.Ephemeral) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrEphemeral, fmt.Sprintf(format, args...))
	}
	switch n := len(e.GetUsers()); {
	case n == 0:
		return bad("no users")
	case n > MaxEphemeralUsers:
		return bad("%d users, limit %d", n, MaxEphemeralUsers)
	}
	for _, u := range e.GetUsers() {
		if err := auth.ValidateUserID(u); err != nil {
			return bad("user: %v", err)
		}
	}
	if !ValidKind(e.GetKind()) {
		return bad("kind %q: want 1-32 of [a-z0-9._-]", clip.Text(e.GetKind(), 40))
	}
	f := e.GetFrame()
	if len(f) > MaxEphemeralFrameBytes {
		return bad("frame is %d bytes, limit %d", len(f), MaxEphemeralFrameBytes)
	}
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(f, &head); err != nil || head.Type == nil || *head.Type == "" {
		return bad("frame is not a JSON object with a \"type\"")
	}
	// Batching clients split frames on '\n' (ws-edge internal/frame): a
	// frame must not hold a raw one. encoding/json never writes one.
	if strings.ContainsAny(string(f), "\n\r") {
		return bad("frame holds a raw newline")
	}
	if ts := e.GetSentAt(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return bad("sent_at: %v", err)
		}
	}
	return nil
}
