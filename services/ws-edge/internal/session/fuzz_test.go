package session

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

// recordingAcks is an Acks that takes every ack and remembers it.
type recordingAcks struct {
	mu  sync.Mutex
	ids []string
}

func (a *recordingAcks) Add(_, id string, reply func(error)) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, id)
	return true
}

// FuzzHandleFrame gives the client-frame handler (what a browser or a
// hostile client sends on an open session) arbitrary frames. Properties:
// no panic; each frame ends in exactly one outcome: an ack handed to the
// ack writer with the frame's own id (only for a valid "ack"), a pong (only
// for "ping"), or an error frame with a code; the control queue and the
// bad-frame count stay bounded, and MaxBadFrames bad frames ask for a
// 1008 close.
func FuzzHandleFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"ack","id":"m-1"}`, `{"type":"ping"}`, `{"type":"ack"}`, `{"type":"ack","id":""}`,
		`{"type":"ack","id":"a/b"}`, `{"type":"ack","id":".."}`, `{"type":"ack","id":"\u0000"}`, `{"type":"ack","id":123}`,
		`{"type":"auth","token":"x"}`, `{"type":"watch"}`, `[]`, `null`, `"ack"`, `{"type":"ack","id":"x","type":"ping"}`,
		`{"type":"ACK","id":"m"}`, "{\"type\":\"ack\",\"id\":\"\xff\"}", `{`, ``,
	} {
		f.Add(true, []byte(s))
	}
	f.Add(false, []byte(`{"type":"ping"}`))
	f.Fuzz(func(t *testing.T, text bool, data []byte) {
		acks := &recordingAcks{}
		opts := Options{}.WithDefaults()
		s := New(Params{User: "bob"}, &Deps{Options: &opts, Metrics: metrics.Discard(), Log: discard, Acks: acks})
		typ := websocket.MessageBinary
		if text {
			typ = websocket.MessageText
		}
		// The same frame over and over, as a flooding client would.
		for i := 1; i <= opts.MaxBadFrames+1; i++ {
			s.handleFrame(typ, data)
			s.mu.Lock()
			control, closeAfter := len(s.control), s.closeAfter
			var last []byte
			if control > 0 {
				last = s.control[control-1]
			}
			s.mu.Unlock()
			acked := len(acks.ids)
			if control > 16 {
				t.Fatalf("control queue grew to %d", control)
			}
			var f struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			}
			parsed := text && json.Unmarshal(data, &f) == nil
			switch {
			case acked == i && control == 0:
				if !parsed || f.Type != "ack" || !wire.ValidMessageID(f.ID) || acks.ids[i-1] != f.ID {
					t.Fatalf("frame %q handed ack %q to the writer", data, acks.ids[i-1])
				}
			case acked == 0 && control == i:
				var out struct {
					Type string `json:"type"`
					Code string `json:"code"`
				}
				if err := json.Unmarshal(last, &out); err != nil {
					t.Fatalf("control frame %q is not JSON: %v", last, err)
				}
				switch {
				case out.Type == "pong":
					if !parsed || f.Type != "ping" {
						t.Fatalf("frame %q answered with a pong", data)
					}
				case out.Type == "error" && out.Code != "":
					if parsed && f.Type == "ping" {
						t.Fatalf("ping answered with %s", last)
					}
					if bad := int(s.badFrames.Load()); bad != i {
						t.Fatalf("%d bad frames counted after %d", bad, i)
					}
					if (closeAfter != nil) != (i >= opts.MaxBadFrames) {
						t.Fatalf("after %d bad frames close requested = %v", i, closeAfter != nil)
					}
					if closeAfter != nil && closeAfter.code != websocket.StatusPolicyViolation {
						t.Fatalf("close with %d", closeAfter.code)
					}
				default:
					t.Fatalf("control frame %s", last)
				}
			default:
				t.Fatalf("frame %d %q: %d acks and %d control frames", i, data, acked, control)
			}
		}
	})
}
