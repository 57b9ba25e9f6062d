package edge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

func withRouting(t presence.Writer) edgeOption {
	return func(c *edge.Config, d *edge.Deps) { c.TargetedRouting, d.Presence = true, t }
}

// gatedTable holds Join until released.
type gatedTable struct {
	presence.Writer
	entered chan struct{}
	release chan struct{}
}

func (g *gatedTable) Join(ctx context.Context, user, pod string) error {
	close(g.entered)
	<-g.release
	return g.Writer.Join(ctx, user, pod)
}

// readCountingStore counts inbox reads.
type readCountingStore struct {
	*inbox.Store
	reads atomic.Int32
}

func (s *readCountingStore) Head(ctx context.Context, user string) (int64, error) {
	s.reads.Add(1)
	return s.Store.Head(ctx, user)
}

func (s *readCountingStore) ListPage(ctx context.Context, user string, after int64, lim inbox.PageLimit) (inbox.Page, error) {
	s.reads.Add(1)
	return s.Store.ListPage(ctx, user, after, lim)
}

// With targeted routing the pod's presence record is committed before the
// session's first inbox read (pkg/presence's no-loss argument rests on it),
// stays while the user has a session here, and goes with the last one.
func TestPresenceIsRecordedBeforeTheInboxRead(t *testing.T) {
	w := newWorld(t)
	gate := &gatedTable{Writer: w.presence, entered: make(chan struct{}), release: make(chan struct{})}
	store := &readCountingStore{Store: w.store}
	a := startEdge(t, w, "edge-a", withRouting(gate), withStore(store))
	ctx := testenv.Context(t, time.Minute)

	dialed := make(chan *wsClient, 1)
	go func() { dialed <- dial(t, a, "bob", dialOpts{}) }()
	<-gate.entered
	if n := store.reads.Load(); n != 0 {
		t.Fatalf("the session read its inbox %d times before its presence was recorded", n)
	}
	close(gate.release)
	first := <-dialed
	first.expect(t, "hello", "synced")
	if store.reads.Load() == 0 {
		t.Fatal("no inbox read after the presence record")
	}
	pods := func() []string {
		byUser, err := w.presence.PodsOf(ctx, []string{"bob"})
		if err != nil {
			t.Fatal(err)
		}
		return byUser["bob"]
	}
	if got := pods(); !slices.Equal(got, []string{"edge-a"}) {
		t.Fatalf("bob's pods %v", got)
	}

	second := dial(t, a, "bob", dialOpts{}) // no second Join: the gate is open now
	second.expect(t, "hello", "synced")
	_ = first.conn.Close(1000, "bye")
	_ = second.conn.Close(1000, "bye")
	testenv.WaitFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if p := pods(); len(p) != 0 {
			return fmt.Errorf("bob's record outlived his sessions: %v", p)
		}
		return nil
	})
}

type failingTable struct{ presence.Writer }

func (failingTable) Join(context.Context, string, string) error {
	return errors.New("firestore unavailable")
}

// A session whose presence cannot be recorded is refused with a retryable
// 503 instead of being served without deliveries.
func TestSessionRefusedWhenPresenceCannotBeRecorded(t *testing.T) {
	w := newWorld(t)
	a := startEdge(t, w, "edge-a", withRouting(failingTable{w.presence}))
	_, resp, err := tryDial(t, a, "bob", dialOpts{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial: %v, want 503", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"unavailable"`) {
		t.Fatalf("refusal: Retry-After %q, body %s", resp.Header.Get("Retry-After"), body)
	}
	if got := a.counter(t, "courier_ws_edge_rejected_total", "reason", "presence"); got != 1 {
		t.Fatalf("rejected{presence} = %v", got)
	}
	if a.Sessions("bob") != nil {
		t.Fatal("the refused session is still registered")
	}
}
