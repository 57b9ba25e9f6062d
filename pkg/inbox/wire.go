package inbox

import (
	"encoding/json"
	"time"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// MaxListedRecipients is the largest send whose recipient list clients see.
// A larger send shows an empty `to` and only its `to_count`, everywhere a
// client sees it (WebSocket frames, inbox listing, GET /v1/messages/{id},
// gRPC): a frame of a 1,000-recipient message would otherwise carry the whole
// list to each of the 1,000 recipients (7 KB each), and every recipient of a
// broadcast would learn every other one. 16 keeps group chats' lists whole.
const MaxListedRecipients = 16

// Shown returns m as clients may see it: ToCount set, and To emptied when it
// lists more than MaxListedRecipients users. m itself is not changed (it may
// be shared); the result shares m's payload bytes.
func Shown(m *courierv1.Message) *courierv1.Message {
	if m == nil {
		return nil
	}
	count := m.GetToCount()
	if count == 0 {
		count = int32(len(m.GetTo()))
	}
	to := m.GetTo()
	if count > MaxListedRecipients {
		to = nil
	}
	return &courierv1.Message{
		Id: m.GetId(), From: m.GetFrom(), To: to, ToCount: count, Payload: m.GetPayload(),
		ContentType: m.GetContentType(), SentAt: m.GetSentAt(), StoredAt: m.GetStoredAt(),
		ConversationId: m.GetConversationId(), Outgoing: m.GetOutgoing(),
	}
}

// listedRecipients is the part of a recipient list that is stored with each
// inbox entry: all of it for a small send, nothing for a large one (the
// message document keeps the whole list).
func listedRecipients(to []string) []string {
	if len(to) > MaxListedRecipients {
		return nil
	}
	return to
}

// WireMessage is a message as REST and WebSocket clients see it.
type WireMessage struct {
	ID   string `json:"id"`
	From string `json:"from"`
	// To is empty for a send to more than MaxListedRecipients users.
	To          []string        `json:"to"`
	ToCount     int             `json:"to_count"`
	Payload     json.RawMessage `json:"payload"`
	ContentType string          `json:"content_type"`
	SentAt      time.Time       `json:"sent_at"`
	StoredAt    *time.Time      `json:"stored_at,omitempty"`
	// ConversationID is empty only for an old (pre-conversation) message
	// whose recipient list is not shown.
	ConversationID string `json:"conversation_id"`
	// Outgoing is true on the sender's own copy only.
	Outgoing bool `json:"outgoing,omitempty"`
}

// ToWire converts a stored message for clients, applying the recipient-list
// rule of Shown. Payloads are JSON values by construction (the gateway
// accepts nothing else); a payload that is not valid JSON is rendered as a
// JSON string so the frame stays valid.
func ToWire(m *courierv1.Message) WireMessage {
	m = Shown(m)
	w := WireMessage{
		ID: m.GetId(), From: m.GetFrom(), To: m.GetTo(), ToCount: int(m.GetToCount()), ContentType: m.GetContentType(),
		SentAt: m.GetSentAt().AsTime().UTC(), ConversationID: m.GetConversationId(), Outgoing: m.GetOutgoing(),
	}
	if w.To == nil {
		w.To = []string{}
	}
	if json.Valid(m.GetPayload()) {
		w.Payload = json.RawMessage(m.GetPayload())
	} else {
		b, _ := json.Marshal(string(m.GetPayload()))
		w.Payload = b
	}
	if m.GetStoredAt() != nil {
		t := m.GetStoredAt().AsTime().UTC()
		w.StoredAt = &t
	}
	return w
}
