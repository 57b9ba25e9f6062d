package session

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

type noStore struct{}

func (noStore) Head(context.Context, string) (int64, error) { return 0, nil }
func (noStore) List(context.Context, string, int64, int) ([]inbox.Entry, error) {
	return nil, nil
}
func (noStore) MarkDelivered(context.Context, string, string) error { return nil }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// Before Serve (and during a replay) deliveries are buffered up to a
// bound; past it the session closes with 1008 and refuses more.
func TestDeliverBuffersThenOverflows(t *testing.T) {
	m := metrics.Discard()
	s := New(Params{User: "bob"}, Options{QueueSize: 2, ReplayLimit: 3}, noStore{}, m, discard)
	for i := range 3 {
		if !s.Deliver(Item{Seq: int64(i + 1)}) {
			t.Fatalf("delivery %d refused", i)
		}
	}
	if s.Deliver(Item{Seq: 4}) {
		t.Fatal("delivery past the bound accepted")
	}
	if code, reason := s.CloseStatus(); code != websocket.StatusPolicyViolation || reason != "send queue overflow" {
		t.Fatalf("close status %d %q", code, reason)
	}
	if s.Deliver(Item{Seq: 5}) || testutil.ToFloat64(m.QueueOverflows) != 1 {
		t.Fatal("a closed session accepted a delivery or counted a second overflow")
	}
	// The first close wins.
	s.Close(websocket.StatusGoingAway, "going away")
	if code, _ := s.CloseStatus(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close code changed to %d", code)
	}
	s.Abort()
	<-s.Done()
}

func TestEncodeMessage(t *testing.T) {
	b, err := EncodeMessage(&courierv1.Message{Id: "m1", From: "alice", To: []string{"bob"}, Payload: []byte(`{"a":1}`), SentAt: timestamppb.Now()}, "c")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Type    string            `json:"type"`
		Message inbox.WireMessage `json:"message"`
		Cursor  string            `json:"cursor"`
	}
	if err := json.Unmarshal(b, &f); err != nil || f.Type != "message" || f.Message.ID != "m1" || string(f.Message.Payload) != `{"a":1}` || f.Cursor != "c" {
		t.Fatalf("frame %s: %v", b, err)
	}
}

func TestValidMessageID(t *testing.T) {
	for id, ok := range map[string]bool{"m1": true, "01J9Z-abc_def": true, "": false, "a/b": false, ".": false, "..": false, "a\x00b": false, string(make([]byte, 300)): false} {
		if validMessageID(id) != ok {
			t.Errorf("validMessageID(%q) = %v", id, !ok)
		}
	}
}
