package session

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/courierhq/courier/pkg/clip"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/wire"

	"github.com/courierhq/courier/services/ws-edge/internal/frame"
)

// Reads moves read markers for `read` frames (the edge's reads): off the
// session's reader, it reports false when it cannot take more; reply is
// called once, later, from another goroutine.
type Reads interface {
	MarkRead(user, conv string, seq int64, reply func(error)) bool
}

// handleRead serves {"type":"read","conversation":"…","cursor":"…"}: the
// same as POST /v1/conversations/{id}/read. The caller's sessions (this one
// included) get the `read` frame through the fan-out; only failures are
// answered here, with error frames.
func (s *Session) handleRead(data []byte) {
	if s.deps.Reads == nil {
		s.badFrame("unknown_type", "read frames are not served here")
		return
	}
	var f struct {
		Conversation string `json:"conversation"`
		Cursor       string `json:"cursor"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		s.badFrame("bad_read", `a read frame is {"type":"read","conversation":"…","cursor":"…"}`)
		return
	}
	if err := wire.ValidateConversationID(f.Conversation, false); err != nil {
		s.badFrame("bad_read", "conversation: "+err.Error())
		return
	}
	seq, err := inbox.DecodeCursor(f.Cursor)
	if err != nil || seq == 0 {
		s.badFrame("bad_read", "cursor: a cursor this service returned is required")
		return
	}
	// Read frames share the signal allowance: each costs a transaction.
	if !s.signalBucket.take(time.Now(), s.deps.Options.SignalRate, float64(s.deps.Options.SignalBurst)) {
		s.sendControl(frame.Error("rate_limited", fmt.Sprintf("read of %s not recorded: at most %g per second per session", clip.Text(f.Conversation, 64), s.deps.Options.SignalRate)))
		return
	}
	if !s.deps.Reads.MarkRead(s.p.User, f.Conversation, seq, func(err error) {
		if err != nil {
			s.sendControl(frame.Error("unavailable", "could not record the read marker; send it again later"))
		}
	}) {
		s.sendControl(frame.Error("unavailable", "could not record the read marker; send it again later"))
	}
}
