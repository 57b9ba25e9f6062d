package acks_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/pkg/testenv"

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
	if users, _, err := s.DeliveryState(ctx, "m4", true); err != nil || len(users) != 1 || users[0] != "bob" {
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

// TestBadAckFailsAlone writes, in one batch on the Firestore emulator, the
// acks of several users with one id Firestore refuses (InvalidArgument for
// the whole read) slipped in past Add's check: the others are written, the
// bad one alone is answered ErrRejected (it used to fail the whole batch as
// "unavailable").
func TestBadAckFailsAlone(t *testing.T) {
	store := inbox.New(testenv.Firestore(t, testenv.Project(t)))
	ctx := testenv.Context(t, time.Minute)
	for _, id := range []string{"m1", "m2", "m3"} {
		if _, _, err := inboxtest.Commit(ctx, store, inboxtest.Envelope(id, "alice", "bob", "carol", "dave")); err != nil {
			t.Fatal(err)
		}
	}
	w := acks.New(acks.Config{Batch: 200}, store, nil)
	results := map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	add := func(user, id string) {
		wg.Add(1)
		ok := w.AddUnchecked(user, id, func(err error) {
			mu.Lock()
			results[user+"/"+id] = err
			mu.Unlock()
			wg.Done()
		})
		if !ok {
			t.Fatalf("ack %s/%s refused", user, id)
		}
	}
	// Queued before Run starts, so they are one batch.
	add("bob", "m1")
	add("carol", "m2")
	add("mallory", "__x__")
	add("dave", "m3")
	add("carol", "m1")
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- w.Run(runCtx) }()
	wg.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for k, err := range results {
		if k == "mallory/__x__" {
			if !errors.Is(err, acks.ErrRejected) {
				t.Errorf("%s: %v, want ErrRejected", k, err)
			}
		} else if err != nil {
			t.Errorf("%s: %v, want recorded", k, err)
		}
	}
	for id, want := range map[string]string{"m1": "[bob carol]", "m2": "[carol]", "m3": "[dave]"} {
		if users, _, err := store.DeliveryState(ctx, id, true); err != nil || fmt.Sprint(users) != want {
			t.Errorf("acks of %s: %v %v, want %s", id, users, err, want)
		}
	}
	// Through Add, such an id is refused at once, without a round trip.
	var got error
	if !w.Add("mallory", "__x__", func(err error) { got = err }) || !errors.Is(got, acks.ErrRejected) {
		t.Errorf("Add of __x__: %v, want ErrRejected at once", got)
	}
}
