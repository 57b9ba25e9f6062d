package session

import (
	"context"
	"encoding/json"
	"errors"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
)

// The client's side of the protocol: every client frame is a JSON text
// frame with a "type": "ack" {"id"} marks a message delivered to this user,
// "ping" asks for a "pong". Anything else is a bad frame, answered with an
// error frame; MaxBadFrames of them close the session with 1008.

func (s *Session) readLoop(conn *websocket.Conn) {
	for {
		typ, data, err := conn.Read(context.Background())
		if err != nil {
			switch code := websocket.CloseStatus(err); {
			case code != -1:
				s.Close(code, "closed by client")
			case errors.Is(err, websocket.ErrMessageTooBig):
				// The library has sent the 1009 close frame already.
				s.deps.Metrics.BadFrames.Inc()
				s.Close(websocket.StatusMessageTooBig, "frame too large")
			default:
				s.Close(StatusAbnormal, "connection lost")
			}
			return
		}
		s.handleFrame(typ, data)
	}
}

// clientFrame is every frame a client may send.
type clientFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

func (s *Session) handleFrame(typ websocket.MessageType, data []byte) {
	if typ != websocket.MessageText {
		s.badFrame("bad_frame", "frames must be JSON text")
		return
	}
	var f clientFrame
	if err := json.Unmarshal(data, &f); err != nil {
		s.badFrame("bad_json", "frame is not a JSON object")
		return
	}
	switch f.Type {
	case "ack":
		if !validMessageID(f.ID) {
			s.badFrame("bad_ack", `an ack frame needs the message "id"`)
			return
		}
		// Recorded by the pod's ack writer in batches, never from here: a
		// Firestore write per ack would stall this reader and everything
		// queued behind it.
		id := f.ID
		if !s.deps.Acks.Add(s.p.User, id, func(err error) { s.ackResult(id, err) }) {
			s.deps.Metrics.Acks.WithLabelValues("queue_full").Inc()
			s.sendControl(frame.Error("unavailable", "could not record the ack; send it again later"))
		}
	case "ping":
		// Browsers cannot send WebSocket pings; this lets them check the
		// session end to end.
		s.sendControl(frame.Pong)
	default:
		s.badFrame("unknown_type", `unknown frame type; expected "ack" or "ping"`)
	}
}

// ackResult answers an ack once the writer has recorded it (or not).
func (s *Session) ackResult(id string, err error) {
	switch {
	case err == nil:
		s.deps.Metrics.Acks.WithLabelValues("ok").Inc()
	case errors.Is(err, inbox.ErrNotFound):
		s.deps.Metrics.Acks.WithLabelValues("not_found").Inc()
		s.badFrame("not_found", "no message "+id+" for this user")
	default:
		s.deps.Metrics.Acks.WithLabelValues("error").Inc()
		s.deps.Log.Warn("recording an ack failed", "session_id", s.p.ID, "user", s.p.User, "message_id", id, "err", err)
		s.sendControl(frame.Error("unavailable", "could not record the ack; send it again later"))
	}
}

func (s *Session) badFrame(code, msg string) {
	s.deps.Metrics.BadFrames.Inc()
	s.sendControl(frame.Error(code, msg))
	if int(s.badFrames.Add(1)) >= s.deps.Options.MaxBadFrames {
		s.closeAfterControl(websocket.StatusPolicyViolation, "too many bad frames")
	}
}

// validMessageID accepts what can name a Firestore document.
func validMessageID(id string) bool {
	if id == "" || len(id) > 256 || !utf8.ValidString(id) || id == "." || id == ".." {
		return false
	}
	for _, r := range id {
		if r == '/' || r < 0x20 {
			return false
		}
	}
	return true
}
