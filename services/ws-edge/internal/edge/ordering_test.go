package edge_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/services/ws-edge/internal/edge"
)

// countingStore counts the inbox reads (List) per user.
type countingStore struct {
	*inbox.Store
	mu    sync.Mutex
	lists map[string]int
}

func (s *countingStore) ListPage(ctx context.Context, user string, after int64, lim inbox.PageLimit) (inbox.Page, error) {
	s.mu.Lock()
	s.lists[user]++
	s.mu.Unlock()
	return s.Store.ListPage(ctx, user, after, lim)
}

func (s *countingStore) reads() (total int, perUser map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	perUser = map[string]int{}
	for u, n := range s.lists {
		perUser[u] = n
		total += n
	}
	return total, perUser
}

// Deliveries of group messages reach 200 sessions out of order. Those
// published up to a second out of order are put back in order without a
// single inbox read; a position whose delivery never comes is read exactly
// once per user, and every session gets every message once, in order.
func TestShuffledDeliveriesCostNoReadAndAGapOneReadPerUser(t *testing.T) {
	w := newWorld(t)
	cs := &countingStore{Store: w.store, lists: map[string]int{}}
	a := startEdge(t, w, "edge-a", withStore(cs), func(c *edge.Config, _ *edge.Deps) { c.MaxSessions = 300 })
	const n = 200
	users := make([]string, n)
	clients := make([]*wsClient, n)
	for i := range users {
		users[i] = fmt.Sprintf("member%03d", i)
		clients[i] = dial(t, a, users[i], dialOpts{})
	}
	for _, c := range clients {
		c.expect(t, "hello", "synced")
	}
	var msgs []inbox.Stored
	for i := 1; i <= 5; i++ {
		msgs = append(msgs, w.commit(t, fmt.Sprintf("g%d", i), "alice", "", users...))
	}
	// Up to a second out of order: g3, then g2 half a second later, then g1.
	w.publish(t, msgs[2])
	time.Sleep(500 * time.Millisecond) // the delay between the publishes is the scenario, not a wait for a result
	w.publish(t, msgs[1])
	time.Sleep(500 * time.Millisecond)
	w.publish(t, msgs[0])
	for _, c := range clients {
		c.expect(t, "message:g1", "message:g2", "message:g3")
	}
	if total, _ := cs.reads(); total != 0 {
		t.Fatalf("%d inbox reads for deliveries a second out of order, want none", total)
	}
	// g4's delivery is lost; g5 arrives.
	w.publish(t, msgs[4])
	for _, c := range clients {
		c.expect(t, "message:g4", "message:g5")
	}
	total, perUser := cs.reads()
	if total != n {
		t.Errorf("%d inbox reads for one missing position of %d users, want %d", total, n, n)
	}
	for _, u := range users {
		if perUser[u] != 1 {
			t.Errorf("%s read %d times", u, perUser[u])
			break
		}
	}
	if got := a.counter(t, "courier_ws_edge_gaps_filled_live_total"); got < n {
		t.Errorf("gaps filled live = %v, want at least %d (g1 and g2 for every user)", got, n)
	}
	// Nothing more, nothing twice.
	w.publish(t, w.commit(t, "after", "alice", "", users...))
	for _, c := range clients {
		c.expect(t, "message:after")
	}
}
