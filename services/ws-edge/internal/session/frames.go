package session

import (
	"encoding/json"
	"fmt"

	"github.com/courierhq/courier/pkg/inbox"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
)

// Server frames. Every frame is a JSON object with a "type".
type helloFrame struct {
	Type      string `json:"type"` // "hello", always first
	SessionID string `json:"session_id"`
	Pod       string `json:"pod"`
	User      string `json:"user"`
	Resumed   bool   `json:"resumed"`
}

type messageFrame struct {
	Type    string            `json:"type"` // "message"
	Message inbox.WireMessage `json:"message"`
	// Cursor is the recipient's inbox position of this message: resuming
	// with it yields what came after.
	Cursor string `json:"cursor"`
}

// syncedFrame follows the replay of a resume: everything up to Cursor was
// sent; live messages follow.
type syncedFrame struct {
	Type   string `json:"type"` // "synced"
	Cursor string `json:"cursor"`
}

type errorFrame struct {
	Type    string `json:"type"` // "error"
	Code    string `json:"code"`
	Message string `json:"message"`
}

// EncodeMessage renders the frame delivering m at the recipient's cursor.
func EncodeMessage(m *courierv1.Message, cursor string) ([]byte, error) {
	b, err := json.Marshal(messageFrame{Type: "message", Message: inbox.ToWire(m), Cursor: cursor})
	if err != nil {
		return nil, fmt.Errorf("encode message frame %s: %w", m.GetId(), err)
	}
	return b, nil
}
