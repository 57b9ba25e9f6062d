package inbox

import (
	"encoding/json"
	"time"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// WireMessage is a message as REST and WebSocket clients see it.
type WireMessage struct {
	ID          string          `json:"id"`
	From        string          `json:"from"`
	To          []string        `json:"to"`
	Payload     json.RawMessage `json:"payload"`
	ContentType string          `json:"content_type"`
	SentAt      time.Time       `json:"sent_at"`
	StoredAt    *time.Time      `json:"stored_at,omitempty"`
}

// ToWire converts a stored message for clients. Payloads are JSON values by
// construction (the gateway accepts nothing else); a payload that is not
// valid JSON is rendered as a JSON string so the frame stays valid.
func ToWire(m *courierv1.Message) WireMessage {
	w := WireMessage{
		ID: m.GetId(), From: m.GetFrom(), To: m.GetTo(), ContentType: m.GetContentType(),
		SentAt: m.GetSentAt().AsTime().UTC(),
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
