package hub_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/hub"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
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

// Deliver records the positions and releases the references, as a session
// does once it has written them.
func (c *fakeConn) Deliver(items []frame.Item) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, it := range items {
		c.got = append(c.got, it.Seq)
		it.M.Release()
	}
}

func (c *fakeConn) positions() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func newHub(maxTotal, maxPerUser int) *hub.Hub[*fakeConn] {
	return hub.New[*fakeConn](hub.Config{MaxSessions: maxTotal, MaxSessionsPerUser: maxPerUser}, nil, metrics.Discard(), slog.Default())
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
	m, err := frame.NewMessage(context.Background(), &courierv1.Message{Id: "m", From: "alice", Payload: []byte(`{}`)})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// reader is a fake inbox: positions 1..head of every user exist, except
// those in missing; it counts reads per user.
type reader struct {
	mu      sync.Mutex
	head    int64
	missing map[int64]bool
	reads   map[string]int
	msg     *frame.Message
	// cut, when set, ends every page after that many entries with more
	// to follow, as a page bounded by bytes does.
	cut int
}

func (r *reader) Read(_ context.Context, _ inboxreader.Purpose, user string, after int64, limit int) (inboxreader.Page, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reads[user]++
	var out []frame.Item
	for s := after + 1; s <= r.head && len(out) < limit; s++ {
		if r.cut > 0 && len(out) == r.cut {
			return inboxreader.Page{Items: out, More: true}, nil
		}
		if !r.missing[s] {
			out = append(out, frame.Item{M: r.msg, Seq: s})
		}
	}
	return inboxreader.Page{Items: out, More: len(out) == limit}, nil
}

func (r *reader) count(user string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads[user]
}

// Ordering is per user: a late position is waited for once for all of the
// user's sessions, and a position that never comes is read once for all.
func TestOrderingPerUser(t *testing.T) {
	rd := &reader{head: 100, reads: map[string]int{}, msg: newMessage(t)}
	const wait = 300 * time.Millisecond
	h := hub.New[*fakeConn](hub.Config{MaxSessions: 100, MaxSessionsPerUser: 8, ReorderWait: wait, ReorderWaitMax: wait},
		rd, metrics.Discard(), slog.Default())
	bob := []*fakeConn{newConn("b1", "bob"), newConn("b2", "bob"), newConn("b3", "bob")}
	carol := newConn("c1", "carol")
	for _, c := range append(bob, carol) {
		if err := h.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	m := newMessage(t)
	// Before any session of bob has started, deliveries are held.
	h.Deliver("bob", frame.Item{M: m, Seq: 2})
	if got := bob[0].positions(); len(got) != 0 {
		t.Fatalf("delivered before Start: %v", got)
	}
	h.Start("bob", 0)
	h.Start("bob", 5) // the second Start changes nothing
	h.Start("carol", 0)
	// Position 1 arrives late, within the window: no read.
	h.Deliver("bob", frame.Item{M: m, Seq: 3})
	h.Deliver("bob", frame.Item{M: m, Seq: 1})
	for _, c := range bob {
		if got := c.positions(); !slices.Equal(got, []int64{1, 2, 3}) {
			t.Fatalf("%s got %v", c.id, got)
		}
	}
	// Position 4 never comes live: after the window it is read, once.
	h.Deliver("bob", frame.Item{M: m, Seq: 5})
	h.Deliver("carol", frame.Item{M: m, Seq: 2})
	testenv.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !slices.Equal(bob[2].positions(), []int64{1, 2, 3, 4, 5}) || !slices.Equal(carol.positions(), []int64{1, 2}) {
			return fmt.Errorf("not filled: bob %v carol %v", bob[2].positions(), carol.positions())
		}
		return nil
	})
	if n := rd.count("bob"); n != 1 {
		t.Errorf("bob's gap read %d times for three sessions, want once", n)
	}
	if n := rd.count("carol"); n != 1 {
		t.Errorf("carol's gap read %d times, want once", n)
	}
	for _, c := range bob[:2] {
		if got := c.positions(); !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
			t.Fatalf("%s got %v", c.id, got)
		}
	}
	// The original of 4 arrives after all: a duplicate, delivered to no one.
	h.Deliver("bob", frame.Item{M: m, Seq: 4})
	if got := bob[0].positions(); len(got) != 5 {
		t.Fatalf("a late duplicate was delivered: %v", got)
	}
}

// A gap read whose pages are cut short by their byte bound (fewer entries
// than asked, more to follow) reads on from each page's last entry: no
// position of the gap is stepped over.
func TestGapFillFollowsPagesCutByBytes(t *testing.T) {
	rd := &reader{head: 100, reads: map[string]int{}, msg: newMessage(t), cut: 3}
	h := hub.New[*fakeConn](hub.Config{MaxSessions: 10, MaxSessionsPerUser: 8, ReorderWait: 50 * time.Millisecond, ReorderWaitMax: 50 * time.Millisecond, ReadLimit: 500},
		rd, metrics.Discard(), slog.Default())
	c := newConn("b1", "bob")
	if err := h.Add(c); err != nil {
		t.Fatal(err)
	}
	h.Start("bob", 0)
	h.Deliver("bob", frame.Item{M: newMessage(t), Seq: 11}) // 1..10 never come live
	want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	testenv.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := c.positions(); !slices.Equal(got, want) {
			return fmt.Errorf("bob got %v, want %v", got, want)
		}
		return nil
	})
}

// Removing a user's last session forgets what was held for it; a later
// session starts afresh.
func TestLastSessionTakesTheUsersState(t *testing.T) {
	rd := &reader{head: 100, reads: map[string]int{}, msg: newMessage(t)}
	h := hub.New[*fakeConn](hub.Config{MaxSessions: 10, MaxSessionsPerUser: 8, ReorderWait: time.Hour}, rd, metrics.Discard(), slog.Default())
	a := newConn("a", "bob")
	if err := h.Add(a); err != nil {
		t.Fatal(err)
	}
	h.Start("bob", 0)
	h.Deliver("bob", frame.Item{M: newMessage(t), Seq: 3}) // held: 1 and 2 missing
	h.Remove(a)
	if h.HasUser("bob") || h.Deliver("bob", frame.Item{M: newMessage(t), Seq: 4}) {
		t.Fatal("bob still known after his last session left")
	}
	b := newConn("b", "bob")
	if err := h.Add(b); err != nil {
		t.Fatal(err)
	}
	h.Start("bob", 3)
	h.Deliver("bob", frame.Item{M: newMessage(t), Seq: 4})
	if got := b.positions(); !slices.Equal(got, []int64{4}) {
		t.Fatalf("new session got %v", got)
	}
	if rd.count("bob") != 0 {
		t.Fatal("a gap of a departed session was read")
	}
}
