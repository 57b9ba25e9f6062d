// Package frame encodes the frames ws-edge writes to WebSocket clients.
//
// A delivery's message part is the same for every recipient: only the
// cursor differs. So a Message is encoded once per delivery on a pod and
// shared by every session that writes it; each session appends the frame
// for its own position (Item.Append), which costs a copy, not an encoding.
//
// With `batch=1` on the WebSocket URL a client accepts several frames in one
// WebSocket message, separated by '\n' (Separator); encoding/json never
// writes a raw newline (payloads are re-compacted), so splitting is safe.
package frame

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Separator separates frames batched into one WebSocket message.
const Separator = '\n'

// Message is one delivered message, encoded once and shared by the sessions
// of every recipient on this pod. It is immutable once handed on: nothing
// counts its holders, the garbage collector frees it after the last.
type Message struct {
	ID     string
	SentAt time.Time // zero when unknown
	// FannedOut is when the fan-out handed the live delivery to its
	// recipients' sessions (zero for a message read from the inbox): each
	// session's write of it is measured from there.
	FannedOut time.Time
	// FromInbox marks a message read from the inbox (a replay, a catch-up
	// or a gap fill) rather than delivered live.
	FromInbox bool
	// Received is when this pod's subscription handler got the delivery
	// (zero for inbox reads): where the edge's latency parts start.
	Received time.Time
	// prefix is `{"type":"message","message":{…},"cursor":"`.
	prefix []byte
}

// NewMessage encodes m as clients see it (inbox.ToWire: the recipient-list
// rule applies).
func NewMessage(m *courierv1.Message) (*Message, error) {
	body, err := json.Marshal(inbox.ToWire(m))
	if err != nil {
		return nil, fmt.Errorf("encode message %s: %w", m.GetId(), err)
	}
	prefix := make([]byte, 0, len(`{"type":"message","message":,"cursor":"`)+len(body))
	prefix = append(prefix, `{"type":"message","message":`...)
	prefix = append(prefix, body...)
	prefix = append(prefix, `,"cursor":"`...)
	msg := &Message{ID: m.GetId(), prefix: prefix}
	if m.GetSentAt() != nil {
		msg.SentAt = m.GetSentAt().AsTime()
	}
	return msg, nil
}

// NewOutgoing encodes m as its sender's copy (outgoing set), with the
// timing marks of like, the recipients' frame of the same delivery.
func NewOutgoing(m *courierv1.Message, like *Message) (*Message, error) {
	own := inbox.Shown(m)
	own.Outgoing = true
	out, err := NewMessage(own)
	if err != nil {
		return nil, err
	}
	out.FannedOut, out.Received, out.FromInbox = like.FannedOut, like.Received, like.FromInbox
	return out, nil
}

// Size is the length of a frame of m (give or take the cursor).
func (m *Message) Size() int { return len(m.prefix) + 32 }

// Item is m at one recipient's inbox position.
type Item struct {
	M   *Message
	Seq int64
	// Handed is when the sequencer handed the item to the sessions (zero for
	// inbox reads): the reorder wait ends and the queue wait starts here.
	Handed time.Time
}

// Append appends the frame of it to dst.
func (it Item) Append(dst []byte) []byte {
	dst = append(dst, it.M.prefix...)
	dst = AppendCursor(dst, it.Seq)
	return append(dst, `"}`...)
}

// AppendCursor appends inbox.EncodeCursor(seq) to dst without allocating.
func AppendCursor(dst []byte, seq int64) []byte {
	var raw [24]byte
	b := append(raw[:0], "c1."...)
	b = strconv.AppendInt(b, seq, 10)
	return base64.RawURLEncoding.AppendEncode(dst, b)
}

// Hello is the first frame of every session.
func Hello(sessionID, pod, user string, resumed bool) []byte {
	b, _ := json.Marshal(struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
		Pod       string `json:"pod"`
		User      string `json:"user"`
		Resumed   bool   `json:"resumed"`
	}{"hello", sessionID, pod, user, resumed})
	return b
}

// Synced tells where the session stands once a resume replay is done (or,
// for a live-only session, where it starts): everything up to pos was sent.
func Synced(pos int64) []byte {
	b := append([]byte(nil), `{"type":"synced","cursor":"`...)
	b = AppendCursor(b, pos)
	return append(b, `"}`...)
}

// Error answers a client frame that could not be handled.
func Error(code, msg string) []byte {
	b, _ := json.Marshal(struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}{"error", code, msg})
	return b
}

// Pong answers a client's ping frame.
var Pong = []byte(`{"type":"pong"}`)
