package hub_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/hub"
)

type fakeConn struct {
	id, user string
	mu       sync.Mutex
	got      []int64 // positions delivered, in order
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

// Deliver records the positions.
func (c *fakeConn) Deliver(items []frame.Item) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, it := range items {
		c.got = append(c.got, it.Seq)
	}
}

func (c *fakeConn) positions() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func newHub(maxTotal, maxPerUser int) *hub.Hub[*fakeConn] {
	return hub.New[*fakeConn](hub.Config{MaxSessions: maxTotal, MaxSessionsPerUser: maxPerUser}, nil)
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
	h := newHub(3, 2)
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
	h := newHub(1000, 1000)
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
	h := newHub(100, 100)
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

func newMessage(tb testing.TB) *frame.Message {
	tb.Helper()
	m, err := frame.NewMessage(&courierv1.Message{Id: "m", From: "alice", Payload: []byte(`{}`)})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// events records the hub's events in order.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) FirstSession(u string) { e.add("first " + u) }
func (e *events) LastSession(u string)  { e.add("last " + u) }
func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, s)
}

// A user's first session and the last one leaving are events, once each;
// a refused session is none.
func TestFirstAndLastSessionEvents(t *testing.T) {
	ev := &events{}
	h := hub.New[*fakeConn](hub.Config{MaxSessions: 10, MaxSessionsPerUser: 2}, ev)
	b1, b2, b3, c1 := newConn("b1", "bob"), newConn("b2", "bob"), newConn("b3", "bob"), newConn("c1", "carol")
	for _, c := range []*fakeConn{b1, b2, c1} {
		if err := h.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Add(b3); !errors.Is(err, hub.ErrUserLimit) {
		t.Fatalf("third session of bob: %v", err)
	}
	h.Remove(b1)
	h.Remove(b1) // not registered any more: no event
	h.Remove(b2)
	h.Remove(c1)
	if err := h.Add(b3); err != nil {
		t.Fatal(err)
	}
	want := []string{"first bob", "first carol", "last bob", "last carol", "first bob"}
	if !slices.Equal(ev.got, want) {
		t.Fatalf("events %v, want %v", ev.got, want)
	}
}

// Broadcast hands the items to every session of the user, and to no one
// else.
func TestBroadcast(t *testing.T) {
	h := newHub(10, 4)
	b1, b2, c1 := newConn("b1", "bob"), newConn("b2", "bob"), newConn("c1", "carol")
	for _, c := range []*fakeConn{b1, b2, c1} {
		if err := h.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	m := newMessage(t)
	h.Broadcast("bob", []frame.Item{{M: m, Seq: 1}, {M: m, Seq: 2}})
	h.Broadcast("dave", []frame.Item{{M: m, Seq: 1}})
	for _, c := range []*fakeConn{b1, b2} {
		if got := c.positions(); !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("%s got %v", c.id, got)
		}
	}
	if got := c1.positions(); len(got) != 0 {
		t.Fatalf("carol got bob's items: %v", got)
	}
}
