package session

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func newMsg(t *testing.T) *frame.Message {
	t.Helper()
	m, err := frame.NewMessage(&courierv1.Message{Id: "m", Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newTestSession(queue int) (*Session, *metrics.Metrics) {
	m := metrics.Discard()
	opts := Options{QueueSize: queue}.WithDefaults()
	return New(Params{User: "bob"}, &Deps{Options: &opts, Metrics: m, Log: discard}), m
}

func items(m *frame.Message, seqs ...int64) []frame.Item {
	out := make([]frame.Item, len(seqs))
	for i, s := range seqs {
		out[i] = frame.Item{M: m, Seq: s}
	}
	return out
}

func seqs(its []frame.Item) []int64 {
	var out []int64
	for _, it := range its {
		out = append(out, it.Seq)
	}
	return out
}

// Until it knows where it starts, a session keeps deliveries in its bounded
// queue, unwritten; an overflow empties it and records that the read must
// go on past those positions (never a close).
func TestQueueWaitsWhileStarting(t *testing.T) {
	s, m := newTestSession(3)
	msg := newMsg(t)
	s.Deliver(items(msg, 1, 2, 3))
	if got := seqs(s.queue); !slices.Equal(got, []int64{1, 2, 3}) || s.lost || s.mode != reading {
		t.Fatalf("queue %v lost %v mode %d", got, s.lost, s.mode)
	}
	s.Deliver(items(msg, 4))
	if got := seqs(s.queue); !slices.Equal(got, []int64{4}) || !s.lost {
		t.Fatalf("after overflow: queue %v lost %v", got, s.lost)
	}
	if code, _ := s.CloseStatus(); code != 0 {
		t.Fatalf("an overflow closed the session with %d", code)
	}
	if testutil.ToFloat64(m.DropC) != 3 {
		t.Fatalf("dropped for catch-up: %v", testutil.ToFloat64(m.DropC))
	}
	s.Close(websocket.StatusGoingAway, "bye")
	s.drop()
	if len(s.queue) != 0 || testutil.ToFloat64(m.DroppedClosed) != 1 {
		t.Fatalf("a closed session kept %d items (dropped %v)", len(s.queue), testutil.ToFloat64(m.DroppedClosed))
	}
}

// The seam: going live keeps what follows the start, drops what the read
// already covered.
func TestGoLiveMergesTheQueue(t *testing.T) {
	s, m := newTestSession(10)
	msg := newMsg(t)
	s.Deliver(items(msg, 4, 5, 6, 7))
	w := &writer{s: s}
	s.last = 5
	s.mu.Lock()
	w.goLiveLocked()
	s.mu.Unlock()
	if s.mode != live || !slices.Equal(seqs(s.queue), []int64{6, 7}) || s.queuedLast != 7 {
		t.Fatalf("mode %d queue %v queuedLast %d", s.mode, seqs(s.queue), s.queuedLast)
	}
	if testutil.ToFloat64(m.DroppedDuplicate) != 2 {
		t.Fatal("the duplicates at the seam were not counted")
	}
	// Live: the next position joins the queue, a repeat is dropped.
	s.Deliver(items(msg, 7, 8))
	if !slices.Equal(seqs(s.queue), []int64{6, 7, 8}) {
		t.Fatalf("queue %v", seqs(s.queue))
	}
}

// A live session whose queue overflows, or that is handed a position past
// a hole, switches to catching up instead of closing.
func TestLiveFallsBehindAndCatchesUp(t *testing.T) {
	for _, tc := range []struct {
		name    string
		deliver []int64
		waiting []int64
	}{
		{"queue overflow", []int64{1, 2, 3, 4, 5}, []int64{4, 5}},
		{"positions missing", []int64{1, 3, 4}, []int64{3, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, m := newTestSession(3)
			msg := newMsg(t)
			s.mu.Lock()
			(&writer{s: s}).goLiveLocked()
			s.mu.Unlock()
			s.Deliver(items(msg, tc.deliver...))
			if s.mode != reading || !slices.Equal(seqs(s.queue), tc.waiting) {
				t.Fatalf("mode %d queue %v, want reading with %v waiting", s.mode, seqs(s.queue), tc.waiting)
			}
			if testutil.ToFloat64(m.CatchUps) != 1 {
				t.Fatal("catch-up not counted")
			}
			if code, _ := s.CloseStatus(); code != 0 {
				t.Fatalf("closed with %d", code)
			}
		})
	}
}

// A closed session takes nothing of what it is handed.
func TestClosedSessionTakesNothing(t *testing.T) {
	s, m := newTestSession(3)
	msg := newMsg(t)
	s.Close(websocket.StatusGoingAway, "bye")
	s.Close(websocket.StatusPolicyViolation, "later") // the first close wins
	s.Deliver(items(msg, 1, 2))
	if len(s.queue) != 0 || testutil.ToFloat64(m.DroppedClosed) != 2 {
		t.Fatal("a closed session kept its items")
	}
	if code, _ := s.CloseStatus(); code != websocket.StatusGoingAway {
		t.Fatalf("close code %d", code)
	}
	s.Abort()
	<-s.Done()
}

// A session's ack allowance: a burst at once, then the rate.
func TestAckBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name        string
		rate, burst float64
		at          []time.Duration // one take at each offset from t0
		want        []bool
	}{
		{"burst then refused", 2, 3, []time.Duration{0, 0, 0, 0}, []bool{true, true, true, false}},
		{"refills at the rate", 2, 3, []time.Duration{0, 0, 0, 0, 500 * time.Millisecond, 500 * time.Millisecond}, []bool{true, true, true, false, true, false}},
		{"never beyond the burst", 2, 2, []time.Duration{0, time.Hour, time.Hour, time.Hour}, []bool{true, true, true, false}},
		{"zero rate is unlimited", 0, 1, []time.Duration{0, 0, 0}, []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bucket
			for i, d := range tt.at {
				if got := b.take(t0.Add(d), tt.rate, tt.burst); got != tt.want[i] {
					t.Fatalf("take %d at +%v = %v, want %v", i, d, got, tt.want[i])
				}
			}
		})
	}
}

// Ephemeral frames wait in their own bounded queue, apart from the
// deliveries: beyond EphemeralQueue they are refused (the caller drops and
// counts them), and a delivery overflow does not touch them.
func TestEphemeralQueueIsBoundedAndApart(t *testing.T) {
	s, _ := newTestSession(2)
	s.deps.Options.EphemeralQueue = 3
	for i := range 3 {
		if !s.SendEphemeral([]byte(`{"type":"signal"}`)) {
			t.Fatalf("frame %d refused below the bound", i)
		}
	}
	if s.SendEphemeral([]byte(`{"type":"signal"}`)) {
		t.Fatal("a frame beyond EphemeralQueue was taken")
	}
	s.Deliver(items(newMsg(t), 1, 2, 3)) // overflows the delivery queue
	if len(s.ephemeral) != 3 {
		t.Fatalf("ephemeral queue %d after a delivery overflow, want 3", len(s.ephemeral))
	}
	s.Close(websocket.StatusNormalClosure, "")
	if s.SendEphemeral([]byte(`{"type":"signal"}`)) {
		t.Fatal("a closed session took a frame")
	}
}
