package edge_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/coder/websocket"
	"google.golang.org/api/iterator"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/pkg/topology"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

// A message to a user with sessions on two pods reaches both; a pod holding
// none of a delivery's recipients drops it.
func TestDeliveryReachesSessionsOnEveryPod(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a")
	b := startEdge(t, w, "edge-b")
	bobA := dial(t, a, "bob", dialOpts{})
	bobB := dial(t, b, "bob", dialOpts{})
	carolB := dial(t, b, "carol", dialOpts{})
	for _, c := range []*wsClient{bobA, bobB, carolB} {
		c.expect(t, "hello", "synced")
	}

	m1 := w.commit(t, "m1", "alice", "", "bob")
	w.publish(t, m1)
	for _, c := range []*wsClient{bobA, bobB} {
		f := c.expect(t, "message:m1")[0]
		if f.Cursor != inbox.EncodeCursor(1) || f.msg().From != "alice" || string(f.Message) == "" {
			t.Fatalf("frame = %+v", f)
		}
	}

	// One message to carol and bob: each gets it with their own cursor.
	m2 := w.commit(t, "m2", "alice", "", "carol", "bob")
	w.publish(t, m2)
	if f := carolB.expect(t, "message:m2")[0]; f.Cursor != inbox.EncodeCursor(1) {
		t.Fatalf("carol's cursor = %s", f.Cursor)
	}
	if f := bobB.expect(t, "message:m2")[0]; f.Cursor != inbox.EncodeCursor(2) {
		t.Fatalf("bob's cursor = %s", f.Cursor)
	}
	bobA.expect(t, "message:m2")

	// Only carol: pod A holds none of the recipients, acks and drops it.
	m3 := w.commit(t, "m3", "alice", "", "carol")
	w.publish(t, m3)
	carolB.expect(t, "message:m3")
	testenv.Eventually(t, 10*time.Second, "pod A drops the delivery for carol", func() bool {
		return a.counter(t, "courier_ws_edge_deliveries_dropped_total", "reason", "no_local_session") >= 1
	})
	m4 := w.commit(t, "m4", "alice", "", "bob")
	w.publish(t, m4)
	bobA.expect(t, "message:m4") // not m3
	if got := a.counter(t, "courier_ws_edge_sessions"); got != 1 {
		t.Errorf("sessions gauge on A = %v", got)
	}
}

// blockingStore lets a test hold the first inbox read after it has read,
// so deliveries can arrive during the replay.
type blockingStore struct {
	*inbox.Store
	once    sync.Once
	reading chan struct{} // closed once the first List has read
	release chan struct{}
}

func (s *blockingStore) ListPage(ctx context.Context, user string, after int64, lim inbox.PageLimit) (inbox.Page, error) {
	page, err := s.Store.ListPage(ctx, user, after, lim)
	first := false
	s.once.Do(func() { first = true })
	if first {
		close(s.reading)
		<-s.release
	}
	return page, err
}

// A session resuming with its cursor gets exactly the missed messages in
// order, then the deliveries that arrived during the replay (minus the ones
// the replay already sent), then live ones.
func TestResumeReplaysThenGoesLiveWithoutGapOrDuplicate(t *testing.T) {
	w := newWorld(t)
	bs := &blockingStore{Store: w.store, reading: make(chan struct{}), release: make(chan struct{})}
	a := startEdge(t, w, "edge-a", withStore(bs))

	m1 := w.commit(t, "m1", "alice", "", "bob")
	m2 := w.commit(t, "m2", "alice", "", "bob")
	m3 := w.commit(t, "m3", "alice", "", "bob")
	_ = m1

	bob := dial(t, a, "bob", dialOpts{cursor: inbox.EncodeCursor(1)})
	if f := bob.expect(t, "hello")[0]; !f.Resumed {
		t.Fatalf("hello = %+v", f)
	}
	<-bs.reading // the replay has read m2, m3 and is held

	// Meanwhile: two more messages are stored and every delivery arrives,
	// out of order, m3's as a duplicate of the replay.
	m4 := w.commit(t, "m4", "alice", "", "bob")
	m5 := w.commit(t, "m5", "alice", "", "bob")
	for _, st := range []inbox.Stored{m5, m4, m3, m2} {
		w.publish(t, st)
	}
	// The user's only session has not started: the hub holds them.
	testenv.Eventually(t, 15*time.Second, "four deliveries held", func() bool {
		return a.counter(t, "courier_ws_edge_ordering_total", "result", "held") >= 4
	})
	close(bs.release)

	frames := bob.expect(t, "message:m2", "message:m3", "synced", "message:m4", "message:m5")
	for i, want := range []int64{2, 3} {
		if frames[i].Cursor != inbox.EncodeCursor(want) {
			t.Errorf("cursor of frame %d = %s", i, frames[i].Cursor)
		}
	}
	if frames[2].Cursor != inbox.EncodeCursor(3) {
		t.Errorf("synced cursor = %s", frames[2].Cursor)
	}

	m6 := w.commit(t, "m6", "alice", "", "bob")
	w.publish(t, m6)
	bob.expect(t, "message:m6")
	if got := a.counter(t, "courier_ws_edge_ordering_total", "result", "duplicate"); got != 2 {
		t.Errorf("duplicates dropped = %v, want 2 (m2, m3)", got)
	}
}

// TestCursorBeyondTheHeadIsClampedToIt: a session that resumes with a cursor
// past the end of its inbox starts at the head (told by an error frame
// "cursor_ahead", its synced frame carries the head), and the user's other
// session on the pod keeps receiving live messages in order. Such a cursor
// used to become the user's ordering baseline on the pod, and every later
// delivery was dropped as a duplicate for all of the user's sessions there.
func TestCursorBeyondTheHeadIsClampedToIt(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a")
	w.commit(t, "m1", "alice", "", "bob")
	w.commit(t, "m2", "alice", "", "bob")

	// The first session of bob on the pod sets the ordering baseline.
	ahead := dial(t, a, "bob", dialOpts{cursor: inbox.EncodeCursor(1_000_000)})
	frames := ahead.expect(t, "hello", "error:cursor_ahead", "synced")
	if frames[2].Cursor != inbox.EncodeCursor(2) {
		t.Errorf("synced cursor = %s, want the head %s", frames[2].Cursor, inbox.EncodeCursor(2))
	}
	live := dial(t, a, "bob", dialOpts{})
	live.expect(t, "hello", "synced")
	for _, id := range []string{"m3", "m4", "m5"} {
		w.publish(t, w.commit(t, id, "alice", "", "bob"))
	}
	live.expect(t, "message:m3", "message:m4", "message:m5")
	frames = ahead.expect(t, "message:m3", "message:m4", "message:m5")
	if frames[0].Cursor != inbox.EncodeCursor(3) {
		t.Errorf("first cursor after the clamp = %s, want %s", frames[0].Cursor, inbox.EncodeCursor(3))
	}
}

// A live session that receives a later inbox position first holds it
// briefly for the missing one; when that never comes it fills the gap from
// Firestore, so the client still sees every message in order, once.
func TestLiveDeliveriesOutOfOrderAreReordered(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) { c.ReorderWait = 3 * time.Second })
	bob := dial(t, a, "bob", dialOpts{})
	if f := bob.expect(t, "hello", "synced")[0]; f.Resumed {
		t.Fatal("a connect without cursor resumed")
	}
	m1 := w.commit(t, "m1", "alice", "", "bob")
	w.publish(t, m1)
	bob.expect(t, "message:m1")

	// Overtaken within the wait: both come live, in order, no Firestore read.
	m2 := w.commit(t, "m2", "alice", "", "bob")
	m3 := w.commit(t, "m3", "alice", "", "bob")
	w.publish(t, m3)
	w.publish(t, m2)
	bob.expect(t, "message:m2", "message:m3")
	if n := a.counter(t, "courier_ws_edge_deliveries_written_total", "source", "replay"); n != 0 {
		t.Errorf("%v frames read from Firestore for a reorder within the wait", n)
	}

	// m4's delivery is lost (never published): after the wait, m5 brings
	// it from Firestore.
	w.commit(t, "m4", "alice", "", "bob")
	m5 := w.commit(t, "m5", "alice", "", "bob")
	start := time.Now()
	w.publish(t, m5)
	bob.expect(t, "message:m4", "message:m5")
	if waited := time.Since(start); waited < 3*time.Second {
		t.Errorf("gap filled after %s, before the reorder wait", waited)
	}
	if n := a.counter(t, "courier_ws_edge_deliveries_written_total", "source", "replay"); n != 1 {
		t.Errorf("frames read from Firestore = %v, want 1 (m4)", n)
	}
	w.publish(t, w.commit(t, "m6", "alice", "", "bob"))
	bob.expect(t, "message:m6")
}

// smallBufferListener shrinks each accepted connection's send buffer so a
// client that stops reading blocks the server's writes after a few frames.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// A client that stops reading is cut off with 1008 "client not reading"
// once a socket write makes no progress for the write timeout (before
// that, its overflowing queue only made it catch up), while the user's
// other session keeps receiving everything in order.
func TestStalledReaderIsClosedWithPolicyViolation(t *testing.T) {
	w := newWorld(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := startEdgeOn(t, w, "edge-a", smallBufferListener{l}, func(c *edge.Config, _ *edge.Deps) {
		c.Session.QueueSize = 8
		c.Session.WriteTimeout = 2 * time.Second
	})
	// The stalled client's socket has a small receive buffer and nobody
	// reading it.
	stalledHTTP := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
			})
		},
	}).DialContext}}
	stalled := dial(t, a, "bob", dialOpts{client: stalledHTTP, noRead: true})
	healthy := dial(t, a, "bob", dialOpts{})
	healthy.expect(t, "hello", "synced")

	big := `{"text":"` + strings.Repeat("x", 32<<10) + `"}`
	ids := messageIDs(40, "m")
	for _, id := range ids {
		w.publish(t, w.commit(t, id, "alice", big, "bob"))
	}
	testenv.Eventually(t, 30*time.Second, "the stalled session is given up", func() bool {
		return a.counter(t, "courier_ws_edge_stalled_total") == 1
	})
	// Read now: what was buffered, then the close frame.
	stalled.startReading()
	err = stalled.closed(t)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "client not reading" {
		t.Fatalf("stalled client ended with %v, want 1008 client not reading", err)
	}
	want := make([]string, len(ids))
	for i, id := range ids {
		want[i] = "message:" + id
	}
	healthy.expect(t, want...)
	testenv.Eventually(t, 10*time.Second, "the 1008 disconnect is counted", func() bool {
		return a.counter(t, "courier_ws_edge_disconnects_total", "code", "1008") == 1
	})
	if n := len(a.Sessions("bob")); n != 1 {
		t.Errorf("bob has %d sessions left, want the healthy one", n)
	}
}

// gate stops the writes of every connection a gatedListener accepted
// while it is shut: the edge's writer is stuck on the socket, as on a slow
// network.
type gate struct {
	mu   sync.Mutex
	open chan struct{}
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) shut() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) reopen() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

func (g *gate) wait() {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	<-ch
}

type gatedListener struct {
	net.Listener
	g *gate
}

type gatedConn struct {
	net.Conn
	g *gate
}

func (l gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return gatedConn{c, l.g}, nil
}

func (c gatedConn) Write(b []byte) (int, error) {
	c.g.wait()
	return c.Conn.Write(b)
}

// A session that falls behind (its queue overflows while its socket is
// stuck) is not closed: it catches up from the inbox, and the client gets
// every message once, in order.
func TestSessionBehindCatchesUp(t *testing.T) {
	w := newWorld(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := newGate()
	a := startEdgeOn(t, w, "edge-a", gatedListener{l, g}, func(c *edge.Config, _ *edge.Deps) {
		c.Session.QueueSize = 3
		c.Session.WriteTimeout = time.Minute
	})
	bob := dial(t, a, "bob", dialOpts{})
	bob.expect(t, "hello", "synced")

	g.shut()
	ids := messageIDs(20, "m")
	for _, id := range ids {
		w.publish(t, w.commit(t, id, "alice", "", "bob"))
	}
	testenv.Eventually(t, 30*time.Second, "bob's queue overflows", func() bool {
		return a.counter(t, "courier_ws_edge_queue_overflows_total") >= 1
	})
	g.reopen()
	want := make([]string, len(ids))
	for i, id := range ids {
		want[i] = "message:" + id
	}
	bob.expect(t, want...)
	if n := a.counter(t, "courier_ws_edge_inbox_reads_total", "purpose", "catchup", "result", "ok"); n < 1 {
		t.Errorf("%v catch-up reads", n)
	}
	if n := a.counter(t, "courier_ws_edge_disconnects_total", "code", "1008"); n != 0 {
		t.Errorf("%v sessions closed with 1008", n)
	}
	w.publish(t, w.commit(t, "live", "alice", "", "bob"))
	bob.expect(t, "message:live")
}

// The drain (Run's context ending) closes every session with 1001, refuses
// new ones, fails readiness, stops receiving and leaves no subscription
// behind, and Run returns.
func TestShutdownDrainsAndDeletesSubscription(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a")
	b := startEdge(t, w, "edge-b")
	clients := []*wsClient{dial(t, a, "bob", dialOpts{}), dial(t, a, "carol", dialOpts{}), dial(t, a, "bob", dialOpts{})}
	for _, c := range clients {
		c.expect(t, "hello", "synced")
	}
	if got := httpStatus(t, a.srv.URL+"/readyz"); got != http.StatusOK {
		t.Fatalf("readyz before shutdown = %d", got)
	}

	if err := a.shutdown(); err != nil {
		t.Fatalf("drain: %v", err)
	}
	for i, c := range clients {
		err := c.closed(t)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusGoingAway || ce.Reason != "going away" {
			t.Errorf("client %d ended with %v, want 1001 going away", i, err)
		}
	}
	if got := httpStatus(t, a.srv.URL+"/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("readyz after shutdown = %d, want 503", got)
	}
	if _, resp, err := tryDial(t, a, "dave", dialOpts{}); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("connect after shutdown: %v, want 503", err)
	}

	subs := listSubscriptions(t, w)
	if contains(subs, a.SubscriptionName()) {
		t.Errorf("subscription %s left behind: %v", a.SubscriptionName(), subs)
	}
	if !contains(subs, b.SubscriptionName()) {
		t.Errorf("the other pod's subscription is gone: %v", subs)
	}
	if got := a.counter(t, "courier_ws_edge_disconnects_total", "code", "1001"); got != 3 {
		t.Errorf("1001 disconnects = %v", got)
	}
}

func listSubscriptions(t *testing.T, w *world) []string {
	t.Helper()
	it := w.ps.SubscriptionAdminClient.ListSubscriptions(testenv.Context(t, 10*time.Second),
		&pubsubpb.ListSubscriptionsRequest{Project: "projects/" + w.project})
	var names []string
	for {
		s, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, s.Name)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// An ack frame marks the message delivered for that user; bad frames get
// error frames, and the fifth closes the session with 1008.
func TestAckFramesAndAbuse(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a")
	bob := dial(t, a, "bob", dialOpts{})
	bob.expect(t, "hello", "synced")
	m1 := w.commit(t, "m1", "alice", "", "bob", "carol")
	w.publish(t, m1)
	bob.expect(t, "message:m1")

	send := func(typ websocket.MessageType, s string) {
		t.Helper()
		if err := bob.conn.Write(testenv.Context(t, 5*time.Second), typ, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send(websocket.MessageText, `{"type":"ack","id":"m1"}`)
	testenv.Eventually(t, 10*time.Second, "m1 marked delivered for bob", func() bool {
		users, _, err := w.store.DeliveryState(context.Background(), "m1", true)
		return err == nil && fmt.Sprint(users) == "[bob]"
	})
	send(websocket.MessageText, `{"type":"ping"}`)
	bob.expect(t, "pong")

	send(websocket.MessageText, `{"type":"ack","id":"nope"}`)
	bob.expect(t, "error:not_found")
	send(websocket.MessageText, `not json`)
	bob.expect(t, "error:bad_json")
	send(websocket.MessageText, `{"type":"subscribe"}`)
	bob.expect(t, "error:unknown_type")
	send(websocket.MessageBinary, `{"type":"ack","id":"m1"}`)
	bob.expect(t, "error:bad_frame")
	send(websocket.MessageText, `{"type":"ack"}`)
	bob.expect(t, "error:bad_ack")
	err := bob.closed(t)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "too many bad frames" {
		t.Fatalf("after five bad frames: %v", err)
	}
}

// TestBadAckIsAnsweredAloneAndAcksAreRateLimited: an ack whose id the worker
// would refuse (__x__, reserved by Firestore) is a bad frame for its session
// only: carol's ack, sent around it, is recorded (it used to fail the pod's
// whole ack batch and come back "unavailable", so the bad-frame close never
// fired). Acks beyond the session's allowance are refused "rate_limited".
func TestBadAckIsAnsweredAloneAndAcksAreRateLimited(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) {
		c.Session.AckRate, c.Session.AckBurst = 0.001, 3
	})
	bob, carol := dial(t, a, "bob", dialOpts{}), dial(t, a, "carol", dialOpts{})
	bob.expect(t, "hello", "synced")
	carol.expect(t, "hello", "synced")
	m1 := w.commit(t, "m1", "alice", "", "bob", "carol")
	w.publish(t, m1)
	bob.expect(t, "message:m1")
	carol.expect(t, "message:m1")
	write := func(c *wsClient, s string) {
		t.Helper()
		if err := c.conn.Write(testenv.Context(t, 5*time.Second), websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write(bob, `{"type":"ack","id":"__x__"}`)
	write(carol, `{"type":"ack","id":"m1"}`)
	bob.expect(t, "error:bad_ack")
	testenv.Eventually(t, 10*time.Second, "carol's ack recorded", func() bool {
		users, _, err := w.store.DeliveryState(context.Background(), "m1", true)
		return err == nil && fmt.Sprint(users) == "[carol]"
	})
	// Carol's allowance is 3 acks (the rate adds one per 1000 s): she has
	// spent one, two more pass, the fourth is refused and not recorded.
	write(carol, `{"type":"ack","id":"m1"}`)
	write(carol, `{"type":"ack","id":"m1"}`)
	write(carol, `{"type":"ack","id":"m1"}`)
	carol.expect(t, "error:rate_limited")
	if n := a.counter(t, "courier_ws_edge_acks_total", "result", "rate_limited"); n != 1 {
		t.Errorf("rate_limited acks counted %v, want 1", n)
	}
	// Four more bad acks close bob's session with 1008: bad acks count as
	// bad frames again.
	for range 4 {
		write(bob, `{"type":"ack","id":"__y__"}`)
	}
	var ce websocket.CloseError
	if err := bob.closed(t); !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "too many bad frames" {
		t.Fatalf("after five bad acks: %v", err)
	}
}

// Refusals happen before the upgrade, as JSON errors with the right status;
// an oversized frame closes the session with 1009.
func TestRefusals(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) {
		c.MaxSessions, c.MaxSessionsPerUser = 2, 1
		c.AllowedOrigins = []string{"app.example.com", "https://*.courier.test"}
	})
	cases := []struct {
		name   string
		user   string
		o      dialOpts
		status int
		code   string
	}{
		{"empty bearer", "", dialOpts{header: http.Header{"Authorization": {"Bearer "}}}, http.StatusUnauthorized, "unauthorized"},
		{"bad token", "", dialOpts{header: http.Header{"Authorization": {"Bearer not.a.jwt"}}}, http.StatusUnauthorized, "unauthorized"},
		{"bad origin", "bob", dialOpts{header: http.Header{"Origin": {"https://evil.example"}}}, http.StatusForbidden, "forbidden"},
		{"bad origin scheme", "bob", dialOpts{header: http.Header{"Origin": {"http://x.courier.test"}}}, http.StatusForbidden, "forbidden"},
		{"bad cursor", "bob", dialOpts{cursor: "garbage"}, http.StatusBadRequest, "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := tryDial(t, a, tc.user, tc.o)
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("dial: %v %v, want HTTP %d", err, resp, tc.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
		})
	}

	t.Run("token query parameter and allowed origin", func(t *testing.T) {
		ctx := testenv.Context(t, 10*time.Second)
		conn, _, err := websocket.Dial(ctx, a.wsURL("")+"?token="+token(t, "erin"),
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://app.example.com"}}})
		if err != nil {
			t.Fatal(err)
		}
		conn.Close(websocket.StatusNormalClosure, "")
		testenv.Eventually(t, 5*time.Second, "erin's session gone", func() bool { return len(a.Sessions("erin")) == 0 })
	})

	bob := dial(t, a, "bob", dialOpts{header: http.Header{"Origin": {"https://eu.courier.test"}}})
	bob.expect(t, "hello", "synced")
	if _, resp, err := tryDial(t, a, "bob", dialOpts{}); err == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("second session for bob: %v, want 429", err)
	}
	carol := dial(t, a, "carol", dialOpts{})
	carol.expect(t, "hello", "synced")
	if _, resp, err := tryDial(t, a, "dave", dialOpts{}); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("third session on the pod: %v, want 503", err)
	}

	// A frame over WS_READ_LIMIT (4096 here).
	if err := bob.conn.Write(testenv.Context(t, 5*time.Second), websocket.MessageText, []byte(`{"type":"ack","id":"`+strings.Repeat("a", 5000)+`"}`)); err != nil {
		t.Fatal(err)
	}
	if err := bob.closed(t); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: %v, want 1009", err)
	}
	for reason, want := range map[string]float64{"unauthorized": 2, "origin": 2, "bad_cursor": 1, "user_limit": 1, "pod_limit": 1} {
		if got := a.counter(t, "courier_ws_edge_rejected_total", "reason", reason); got != want {
			t.Errorf("rejected{%s} = %v, want %v", reason, got, want)
		}
	}
}

// The heartbeat is recorded before the subscription exists and refreshed
// while the pod runs; a subscription deleted under a running pod (say,
// swept while the pod was paused) is made again and delivery resumes.
func TestHeartbeatAndRecreatedSubscription(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) { c.HeartbeatInterval = 200 * time.Millisecond })
	beat := func() time.Time {
		pods, err := w.beats.Pods(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		p := pods["edge-a"]
		if p.Subscription != a.SubscriptionName() {
			t.Fatalf("heartbeat record = %+v", p)
		}
		return p.Heartbeat
	}
	first := beat()
	testenv.Eventually(t, 10*time.Second, "heartbeat refreshed", func() bool { return beat().After(first) })

	bob := dial(t, a, "bob", dialOpts{})
	bob.expect(t, "hello", "synced")
	if err := w.ps.SubscriptionAdminClient.DeleteSubscription(context.Background(),
		&pubsubpb.DeleteSubscriptionRequest{Subscription: a.SubscriptionName()}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "subscription recreated", func() bool {
		_, err := w.ps.SubscriptionAdminClient.GetSubscription(context.Background(), &pubsubpb.GetSubscriptionRequest{Subscription: a.SubscriptionName()})
		return err == nil
	})
	// Receive may still be backing off; a message published now waits on
	// the new subscription.
	m1 := w.commit(t, "m1", "alice", "", "bob")
	w.publish(t, m1)
	bob.expect(t, "message:m1")

	// A graceful stop removes the record with the subscription.
	if err := a.shutdown(); err != nil {
		t.Fatal(err)
	}
	pods, err := w.beats.Pods(context.Background())
	if err != nil || len(pods) != 0 {
		t.Fatalf("presence after shutdown: %v %v", pods, err)
	}
}

// A pod restarted under the same name after a kill -9 adopts or replaces
// its leftover subscription and delivers.
func TestRestartAfterKillReusesName(t *testing.T) {
	w := newWorld(t)
	// The leftover: created by an earlier run with other settings.
	old := w.topo
	old.EdgeExpiration = 48 * time.Hour
	if _, err := topology.EnsureSubscription(testenv.Context(t, 10*time.Second), w.ps, old.EdgeSubscription("edge-a", "")); err != nil {
		t.Fatal(err)
	}
	a := startEdge(t, w, "edge-a")
	bob := dial(t, a, "bob", dialOpts{})
	bob.expect(t, "hello", "synced")
	w.publish(t, w.commit(t, "m1", "alice", "", "bob"))
	bob.expect(t, "message:m1")
}

// Pings drop a peer that stops answering, and keep a responsive one.
func TestPingDropsUnresponsivePeer(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) { c.Session.PingInterval = 200 * time.Millisecond })
	// A client that never reads never answers pings (the library pongs
	// while reading).
	_ = dial(t, a, "bob", dialOpts{noRead: true})
	alive := dial(t, a, "carol", dialOpts{})
	alive.expect(t, "hello", "synced")
	testenv.Eventually(t, 10*time.Second, "the silent peer dropped", func() bool {
		return a.counter(t, "courier_ws_edge_disconnects_total", "code", "1006") == 1 && len(a.Sessions("bob")) == 0
	})
	w.publish(t, w.commit(t, "m1", "alice", "", "carol"))
	alive.expect(t, "message:m1")
	if len(a.Sessions("carol")) != 1 {
		t.Fatal("the responsive peer was dropped")
	}
}

// A user opening sessions faster than WS_CONNECT_RATE (after its burst) is
// refused with 429 connect_rate and a Retry-After, closing each session in
// between so no other limit applies; another user still connects.
func TestConnectsAreRateLimitedPerUser(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", func(c *edge.Config, _ *edge.Deps) { c.ConnectRate, c.ConnectBurst = 1, 3 })
	refused := 0
	for range 6 {
		c, resp, err := tryDial(t, a, "mallory", dialOpts{noRead: true})
		if err != nil {
			if resp == nil || resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("refusal: %v %v, want 429 with Retry-After", err, resp)
			}
			refused++
			continue
		}
		_ = c.conn.Close(websocket.StatusNormalClosure, "")
		testenv.Eventually(t, 5*time.Second, "mallory's session gone", func() bool { return len(a.Sessions("mallory")) == 0 })
	}
	if refused == 0 {
		t.Fatal("6 connects in a burst of 3 at 1/s: none refused")
	}
	if got := a.counter(t, "courier_ws_edge_rejected_total", "reason", "connect_rate"); got != float64(refused) {
		t.Errorf("rejected_total{reason=connect_rate} = %v, want %d", got, refused)
	}
	dial(t, a, "bob", dialOpts{}).expect(t, "hello")
}
