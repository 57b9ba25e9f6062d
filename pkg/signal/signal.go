// Package signal is Courier's ephemeral signals (typing indicators and
// the like) as the gateway (POST /v1/signals) and the edge (the WebSocket
// frame "signal") take them: the request's validation with its error
// codes, the recipients (listed, or a conversation's members), and the
// frame the recipients' sessions get, published as an ephemeral event of
// kind "signal" (pkg/ephemeral) on the deliveries fan-out topic. A signal
// never passes through the ingress topic or Firestore: never stored, never
// retried, at most once.
package signal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/clip"
	"github.com/courierhq/courier/pkg/wire"
)

// Limits of a signal.
const (
	// MaxBytes bounds the whole client frame (or REST body).
	MaxBytes = 1024
	// MaxRecipients bounds "to" and a conversation's members.
	MaxRecipients = 100
	// EphemeralKind is the ephemeral event kind signals travel as.
	EphemeralKind = "signal"
)

// Error codes, the same on the WebSocket (error frame) and REST (problem).
const (
	CodeBad         = "bad_signal"          // 400
	CodeTooLarge    = "signal_too_large"    // 413
	CodeRateLimited = "signal_rate_limited" // 429
	CodeUnavailable = "unavailable"         // 503: the publisher could not take it now
)

// Error is a refused signal.
type Error struct {
	Code    string
	Message string
	Err     error // the cause, logged, not shown
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
func (e *Error) Unwrap() error { return e.Err }

func bad(format string, args ...any) *Error {
	return &Error{Code: CodeBad, Message: fmt.Sprintf(format, args...)}
}

// Request is a signal as a client sent it. Exactly one of To and
// Conversation is set.
type Request struct {
	To           []string
	Conversation string
	Kind         string
	// Data is the client's JSON value, compacted; nil when absent.
	Data json.RawMessage
}

// body is both shapes: the WebSocket frame names the conversation
// "conversation", the REST body "conversation_id"; either is accepted in
// both.
type body struct {
	Type           string          `json:"type"`
	To             []string        `json:"to"`
	Conversation   string          `json:"conversation"`
	ConversationID string          `json:"conversation_id"`
	Kind           string          `json:"kind"`
	Data           json.RawMessage `json:"data"`
}

// Parse reads and validates a signal: a WebSocket frame
// ({"type":"signal",...}) or a REST body (no "type"). Every error is an
// *Error.
func Parse(raw []byte) (Request, error) {
	if len(raw) > MaxBytes {
		return Request{}, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("a signal is at most %d bytes, this one %d", MaxBytes, len(raw))}
	}
	var b body
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&b); err != nil {
		return Request{}, &Error{Code: CodeBad, Message: "a signal is a JSON object with \"kind\" and \"to\" or \"conversation\"", Err: err}
	}
	if b.Type != "" && b.Type != "signal" {
		return Request{}, bad("type %q is not a signal", clip.Text(b.Type, 32))
	}
	r := Request{To: b.To, Conversation: b.Conversation, Kind: b.Kind}
	if b.ConversationID != "" {
		if r.Conversation != "" && r.Conversation != b.ConversationID {
			return Request{}, bad(`"conversation" and "conversation_id" differ`)
		}
		r.Conversation = b.ConversationID
	}
	if len(b.Data) > 0 && !bytes.Equal(b.Data, []byte("null")) {
		var c bytes.Buffer
		if err := json.Compact(&c, b.Data); err != nil {
			return Request{}, bad("data is not valid JSON")
		}
		r.Data = c.Bytes()
	}
	if !wire.ValidKind(r.Kind) {
		return Request{}, bad(`"kind" must be 1-32 of [a-z0-9._-], e.g. "typing"`)
	}
	switch {
	case len(r.To) > 0 && r.Conversation != "":
		return Request{}, bad(`give "to" or "conversation", not both`)
	case len(r.To) == 0 && r.Conversation == "":
		return Request{}, bad(`a signal needs "to" (user ids) or "conversation"`)
	case len(r.To) > MaxRecipients:
		return Request{}, bad(`"to" lists %d users, at most %d`, len(r.To), MaxRecipients)
	}
	for _, u := range r.To {
		if err := auth.ValidateUserID(u); err != nil {
			return Request{}, bad("to: %v", err)
		}
	}
	if r.Conversation != "" && !wire.ValidMessageID(r.Conversation) {
		return Request{}, bad("conversation %q is not a valid conversation id", clip.Text(r.Conversation, 40))
	}
	slices.Sort(r.To)
	r.To = slices.Compact(r.To)
	return r, nil
}

// ErrNotMember is what Conversations.Members returns for a conversation
// the user is not in (or that does not exist: the two are not told apart).
var ErrNotMember = errors.New("not a member of the conversation")

// Conversations resolves a conversation's members for one of them.
type Conversations interface {
	// Members returns the members of conversation as user sees them, or
	// ErrNotMember.
	Members(ctx context.Context, user, conversation string) ([]string, error)
}

// Publisher publishes ephemeral events without blocking (ephemeral.Publisher).
type Publisher interface {
	Publish(ctx context.Context, users []string, kind string, frame []byte) bool
}

// Sender sends signals.
type Sender struct {
	pub   Publisher
	convs Conversations
	now   func() time.Time
}

// NewSender returns a Sender publishing on pub and resolving conversations
// with convs.
func NewSender(pub Publisher, convs Conversations) *Sender {
	return &Sender{pub: pub, convs: convs, now: time.Now}
}

// Send publishes r from user to its recipients: the listed users, or the
// conversation's members other than user (who must be a member). Every
// error is an *Error.
func (s *Sender) Send(ctx context.Context, from string, r Request) error {
	users := r.To
	if r.Conversation != "" {
		members, err := s.convs.Members(ctx, from, r.Conversation)
		switch {
		case errors.Is(err, ErrNotMember):
			return bad("you are not in conversation %q", clip.Text(r.Conversation, 40))
		case err != nil:
			return &Error{Code: CodeUnavailable, Message: "could not read the conversation; try again", Err: err}
		}
		users = make([]string, 0, len(members))
		for _, m := range members {
			if m != from {
				users = append(users, m)
			}
		}
		if len(users) > MaxRecipients {
			return bad("conversation has %d members, signals reach at most %d", len(users), MaxRecipients)
		}
	}
	if len(users) == 0 {
		return nil // a conversation with oneself: nobody to tell
	}
	if !s.pub.Publish(ctx, users, EphemeralKind, Frame(from, r, s.now())) {
		return &Error{Code: CodeUnavailable, Message: "signals are not being taken now; try again"}
	}
	return nil
}

// Frame is the server frame recipients get:
// {"type":"signal","from","conversation"?,"kind","data"?,"sent_at"}.
func Frame(from string, r Request, sentAt time.Time) []byte {
	b, _ := json.Marshal(struct {
		Type         string          `json:"type"`
		From         string          `json:"from"`
		Conversation string          `json:"conversation,omitempty"`
		Kind         string          `json:"kind"`
		Data         json.RawMessage `json:"data,omitempty"`
		SentAt       string          `json:"sent_at"`
	}{"signal", from, r.Conversation, r.Kind, r.Data, sentAt.UTC().Format(time.RFC3339Nano)})
	return b
}
