package acks_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/services/ws-edge/internal/acks"
)

// gatedStore is the in-memory inbox whose ack writes block until the gate
// opens, so acks pile up; it records each batch.
type gatedStore struct {
	*inboxtest.Faulty
	mu      sync.Mutex
	batches [][]inbox.Ack
	gate    chan struct{}
	entered chan struct{} // one token per batch the writer starts
}

func newGatedStore(t *testing.T) *gatedStore {
	s := &gatedStore{Faulty: inboxtest.NewFaulty(), gate: make(chan struct{}), entered: make(chan struct{}, 10)}
	for _, id := range []string{"m0", "probe", "m1", "m3", "m4"} {
		inboxtest.MustCommit(t, s.Memory, inboxtest.Envelope(id, "alice", "bob"))
	}
	s.MarkDeliveredBatchFunc = func(ctx context.Context, a []inbox.Ack) []error {
		s.entered <- struct{}{}
		<-s.gate
		s.mu.Lock()
		s.batches = append(s.batches, a)
		s.mu.Unlock()
		return s.Memory.MarkDeliveredBatch(ctx, a)
	}
	return s
}

// Acks that arrive while a batch is written go out together in the next
// one; each gets its own answer; a full queue refuses at once.
func TestBatchesAndBound(t *testing.T) {
	s := newGatedStore(t)
	w := acks.New(acks.Config{Queue: 5, Batch: 3}, s, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	var mu sync.Mutex
	results := map[string]error{}
	var wg sync.WaitGroup
	add := func(id string) bool {
		wg.Add(1)
		ok := w.Add("bob", id, func(err error) {
			mu.Lock()
			results[id] = err
			mu.Unlock()
			wg.Done()
		})
		if !ok {
			wg.Done()
		}
		return ok
	}
	add("m0")
	select { // the writer took m0 and is blocked in the store
	case <-s.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never wrote")
	}
	// The queue holds 5; the next is refused.
	for _, id := range []string{"probe", "m1", "bad", "m3", "m4"} {
		if !add(id) {
			t.Fatalf("ack %s refused with room in the queue", id)
		}
	}
	if add("m5") {
		t.Fatal("a full queue took an ack")
	}
	close(s.gate)
	wg.Wait()
	if !errors.Is(results["bad"], inbox.ErrNotFound) || results["m1"] != nil || results["m4"] != nil {
		t.Fatalf("results %v", results)
	}
	if users, _, err := s.DeliveryState(ctx, "m4", true, nil); err != nil || len(users) != 1 || users[0] != "bob" {
		t.Fatalf("m4's acks %v %v", users, err)
	}
	s.mu.Lock()
	sizes := []int{}
	for _, b := range s.batches {
		sizes = append(sizes, len(b))
	}
	s.mu.Unlock()
	// m0 alone, then probe,m1,bad (batch of 3), then m3,m4.
	if len(sizes) != 3 || sizes[0] != 1 || sizes[1] != 3 || sizes[2] != 2 {
		t.Fatalf("batch sizes %v", sizes)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
