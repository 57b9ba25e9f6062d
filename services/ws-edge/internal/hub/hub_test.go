package hub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/services/ws-edge/internal/hub"
)

type fakeConn struct {
	id, user string
	closes   atomic.Int32
	code     atomic.Int32
	done     chan struct{}
	once     sync.Once
	// closeAfter delays the close, like a slow close handshake.
	closeAfter time.Duration
	inFlight   *atomic.Int32
	maxFlight  *atomic.Int32
}

func newConn(id, user string) *fakeConn {
	return &fakeConn{id: id, user: user, done: make(chan struct{})}
}

func (c *fakeConn) ID() string            { return c.id }
func (c *fakeConn) UserID() string        { return c.user }
func (c *fakeConn) Done() <-chan struct{} { return c.done }
func (c *fakeConn) Close(code websocket.StatusCode, _ string) {
	c.closes.Add(1)
	c.code.Store(int32(code))
	go c.once.Do(func() {
		if c.inFlight != nil {
			n := c.inFlight.Add(1)
			for {
				m := c.maxFlight.Load()
				if n <= m || c.maxFlight.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(c.closeAfter)
			c.inFlight.Add(-1)
		}
		close(c.done)
	})
}

func TestLimits(t *testing.T) {
	h := hub.New[*fakeConn](3, 2)
	for i, tc := range []struct {
		conn *fakeConn
		want error
	}{
		{newConn("1", "bob"), nil},
		{newConn("2", "bob"), nil},
		{newConn("3", "bob"), hub.ErrUserLimit},
		{newConn("4", "carol"), nil},
		{newConn("5", "dave"), hub.ErrPodLimit},
	} {
		if err := h.Add(tc.conn); !errors.Is(err, tc.want) {
			t.Fatalf("add %d: %v, want %v", i, err, tc.want)
		}
	}
	if h.Len() != 3 || len(h.AppendSessions(nil, "bob")) != 2 || !h.HasUser("carol") || h.HasUser("dave") {
		t.Fatalf("len %d, bob %d", h.Len(), len(h.AppendSessions(nil, "bob")))
	}
	bob1 := h.AppendSessions(nil, "bob")[0]
	if !h.Remove(bob1) || h.Remove(bob1) {
		t.Fatal("remove should succeed once")
	}
	if err := h.Add(newConn("6", "dave")); err != nil {
		t.Fatalf("after a remove there is room: %v", err)
	}
	if err := h.Add(newConn("7", "erin")); !errors.Is(err, hub.ErrPodLimit) {
		t.Fatalf("pod limit: %v", err)
	}
}

// Shutdown refuses new sessions, closes every session with the code, at
// most `concurrency` at a time, and waits for them.
func TestShutdownClosesAllWithBoundedConcurrency(t *testing.T) {
	h := hub.New[*fakeConn](1000, 1000)
	var inFlight, maxFlight atomic.Int32
	var conns []*fakeConn
	for i := range 40 {
		c := newConn(fmt.Sprint(i), fmt.Sprintf("u%d", i%7))
		c.closeAfter, c.inFlight, c.maxFlight = 5*time.Millisecond, &inFlight, &maxFlight
		conns = append(conns, c)
		if err := h.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Shutdown(context.Background(), websocket.StatusGoingAway, "going away", 4); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		select {
		case <-c.done:
		default:
			t.Fatalf("session %s not closed", c.id)
		}
		if c.code.Load() != int32(websocket.StatusGoingAway) || c.closes.Load() != 1 {
			t.Fatalf("session %s: code %d closes %d", c.id, c.code.Load(), c.closes.Load())
		}
	}
	if m := maxFlight.Load(); m > 4 || m < 2 {
		t.Errorf("max concurrent closes = %d, want 2..4", m)
	}
	if err := h.Add(newConn("late", "bob")); !errors.Is(err, hub.ErrClosed) {
		t.Fatalf("add after shutdown: %v", err)
	}
}

// When the deadline passes, the remaining sessions are still told to close.
func TestShutdownDeadline(t *testing.T) {
	h := hub.New[*fakeConn](100, 100)
	var inFlight, maxFlight atomic.Int32
	var conns []*fakeConn
	for i := range 6 {
		c := newConn(fmt.Sprint(i), fmt.Sprint(i))
		c.closeAfter, c.inFlight, c.maxFlight = time.Second, &inFlight, &maxFlight
		conns = append(conns, c)
		_ = h.Add(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Shutdown(ctx, websocket.StatusGoingAway, "", 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown past its deadline: %v", err)
	}
	for _, c := range conns {
		if c.closes.Load() != 1 {
			t.Errorf("session %s was not told to close", c.id)
		}
	}
}
