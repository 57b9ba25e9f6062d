package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/auth"
	"github.com/courierhq/courier/pkg/clip"
	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/signal"
	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/ws-edge/internal/acks"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
)

// The client's side of the protocol: every client frame is a JSON text
// frame with a "type": "ack" {"id"} marks a message delivered to this user,
// "ping" asks for a "pong", "signal" sends an ephemeral signal (pkg/signal).
// Anything else is a bad frame, answered with an error frame; MaxBadFrames
// of them close the session with 1008.

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
		// The worker's own id rule: an id it would refuse names no message,
		// and must not reach the pod's ack writer.
		if !wire.ValidMessageID(f.ID) {
			s.badFrame("bad_ack", `an ack frame needs a valid message "id"`)
			return
		}
		if !s.ackBucket.take(time.Now(), s.deps.Options.AckRate, float64(s.deps.Options.AckBurst)) {
			s.deps.Metrics.Acks.WithLabelValues("rate_limited").Inc()
			s.sendControl(frame.Error("rate_limited", fmt.Sprintf(
				"ack of %s not recorded: at most %g acks per second per session", clip.Text(f.ID, 64), s.deps.Options.AckRate)))
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
	case "signal":
		s.handleSignal(data)
	case "watch":
		s.handleWatch(data)
	default:
		s.badFrame("unknown_type", `unknown frame type; expected "ack", "ping", "signal" or "watch"`)
	}
}

// MaxWatch bounds a watch frame's users.
const MaxWatch = 100

// handleWatch replaces the session's watch set: {"type":"watch","users":[…]}
// (at most MaxWatch; an empty list watches nobody). Watch frames share the
// session's signal allowance (a watch costs reads).
func (s *Session) handleWatch(data []byte) {
	if s.deps.Watch == nil {
		s.badFrame("unknown_type", "presence is not served here")
		return
	}
	var f struct {
		Users []string `json:"users"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		s.badFrame("bad_watch", `a watch frame is {"type":"watch","users":[user ids]}`)
		return
	}
	if len(f.Users) > MaxWatch {
		s.sendControl(frame.Error("too_many_users", fmt.Sprintf("watch at most %d users, not %d", MaxWatch, len(f.Users))))
		return
	}
	for _, u := range f.Users {
		if err := auth.ValidateUserID(u); err != nil {
			s.badFrame("bad_watch", "users: "+err.Error())
			return
		}
	}
	if !s.signalBucket.take(time.Now(), s.deps.Options.SignalRate, float64(s.deps.Options.SignalBurst)) {
		s.sendControl(frame.Error("rate_limited", "too many watch frames; the last one was not applied"))
		return
	}
	slices.Sort(f.Users)
	s.deps.Watch.Watch(s, slices.Compact(f.Users))
}

// signalTimeout bounds resolving a signal's conversation (a cached read):
// the session's reader waits for it.
const signalTimeout = 2 * time.Second

// handleSignal sends a signal frame, or answers why not: over the
// session's rate (signal_rate_limited), over 1 KiB (signal_too_large),
// invalid (bad_signal, which counts as a bad frame), or not taken now
// (unavailable). A signal is never retried: the client sends the next one.
func (s *Session) handleSignal(data []byte) {
	m := s.deps.Metrics
	if s.deps.Signals == nil {
		s.badFrame("unknown_type", "signals are not served here")
		return
	}
	if !s.signalBucket.take(time.Now(), s.deps.Options.SignalRate, float64(s.deps.Options.SignalBurst)) {
		m.Signals.WithLabelValues("rate_limited").Inc()
		s.sendControl(frame.Error(signal.CodeRateLimited, fmt.Sprintf("at most %g signals per second per session", s.deps.Options.SignalRate)))
		return
	}
	req, err := signal.Parse(data)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), signalTimeout)
		err = s.deps.Signals.Send(ctx, s.p.User, req)
		cancel()
	}
	var se *signal.Error
	switch {
	case err == nil:
		m.Signals.WithLabelValues("sent").Inc()
	case errors.As(err, &se) && se.Code == signal.CodeBad:
		m.Signals.WithLabelValues("bad").Inc()
		s.badFrame(se.Code, se.Message)
	case errors.As(err, &se):
		m.Signals.WithLabelValues(strings.TrimPrefix(se.Code, "signal_")).Inc()
		if se.Err != nil {
			s.deps.Log.Warn("signal not sent", "session_id", s.p.ID, "user", s.p.User, "err", err)
		}
		s.sendControl(frame.Error(se.Code, se.Message))
	default:
		m.Signals.WithLabelValues("unavailable").Inc()
		s.deps.Log.Warn("signal not sent", "session_id", s.p.ID, "user", s.p.User, "err", err)
		s.sendControl(frame.Error(signal.CodeUnavailable, "signal not sent; send the next one"))
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
	case errors.Is(err, acks.ErrRejected):
		s.deps.Metrics.Acks.WithLabelValues("rejected").Inc()
		s.badFrame("bad_ack", "message id "+clip.Text(id, 64)+" is not valid")
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

// bucket is a session's ack allowance, a token bucket; only the session's
// reader touches it.
type bucket struct {
	tokens float64
	at     time.Time
}

// take spends one token if there is one, refilling at rate per second up to
// burst. A zero rate means unlimited.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if rate <= 0 {
		return true
	}
	if b.at.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.at); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
