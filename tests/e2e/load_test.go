package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/tests/e2e/harness"
)

// sent records what the gateway accepted, per recipient, in send order per
// sender.
type sent struct {
	mu   sync.Mutex
	byTo map[string][]string
	// byFrom: each sender's inbox holds its own copy of what it sent
	// (outgoing), exactly once.
	byFrom map[string][]string
	all    map[string]bool
	n503   atomic.Int32
}

func newSent() *sent {
	return &sent{byTo: map[string][]string{}, byFrom: map[string][]string{}, all: map[string]bool{}}
}

func (s *sent) addFrom(from, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byFrom[from] = append(s.byFrom[from], id)
}

func (s *sent) add(id string, to []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all[id] = true
	for _, u := range to {
		s.byTo[u] = append(s.byTo[u], id)
	}
}

func (s *sent) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.all)
}

// sendLoad posts n messages from `senders` senders, each to one of
// `recipients` users, with `workers` concurrent clients. Every 202 is
// recorded; 503s are counted and retried with the same idempotency key
// (the documented client behaviour), other statuses fail the test.
func sendLoad(t *testing.T, ctx context.Context, c *harness.Cluster, s *sent, n, senders, recipients, workers int, after func(i int)) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	tokens := make([]string, senders)
	for i := range tokens {
		tokens[i] = c.Token(fmt.Sprintf("s%d", i))
	}
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				to := []string{fmt.Sprintf("r%d", i%recipients)}
				key := fmt.Sprintf("load-%d", i)
				for attempt := 0; ; attempt++ {
					res, err := harness.Send(ctx, c.GatewayURL(), tokens[i%senders], to, map[string]any{"i": i}, key)
					if err == nil && res.Status == 202 {
						s.add(res.ID, to)
						s.addFrom(fmt.Sprintf("s%d", i%senders), res.ID)
						break
					}
					if err == nil && res.Status == 503 {
						s.n503.Add(1)
					} else if err != nil && ctx.Err() != nil {
						return
					} else if err == nil {
						errs <- fmt.Errorf("send %d: %d %s", i, res.Status, res.Body)
						return
					}
					if attempt > 600 {
						errs <- fmt.Errorf("send %d: gave up: %v", i, err)
						return
					}
					time.Sleep(100 * time.Millisecond) // client retry backoff
				}
				if after != nil {
					after(i)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// waitInboxes waits until every recipient's inbox holds exactly what was
// accepted for them, with no duplicate id, and returns how long it took.
func waitInboxes(t *testing.T, ctx context.Context, c *harness.Cluster, s *sent, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	// Senders (s…) and recipients (r…) are distinct users: a sender's inbox
	// holds exactly its own copies, a recipient's exactly what it received.
	inboxes := map[string][]string{}
	for u, ids := range s.byTo {
		inboxes[u] = append(inboxes[u], ids...)
	}
	for u, ids := range s.byFrom {
		inboxes[u] = append(inboxes[u], ids...)
	}
	for user, want := range inboxes {
		tok := c.Token(user)
		for {
			entries, err := harness.Inbox(ctx, c.GatewayURL(), tok, "")
			if err == nil && len(entries) >= len(want) {
				seen := map[string]bool{}
				for _, e := range entries {
					if seen[e.ID] {
						t.Fatalf("inbox of %s holds %s twice", user, e.ID)
					}
					seen[e.ID] = true
				}
				for _, id := range want {
					if !seen[id] {
						t.Fatalf("inbox of %s lacks accepted message %s", user, id)
					}
				}
				if len(entries) != len(want) {
					t.Fatalf("inbox of %s holds %d messages, %d were accepted", user, len(entries), len(want))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("inbox of %s: %d of %d messages within %s (err %v)", user, len(entries), len(want), d, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}
