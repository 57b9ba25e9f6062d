package routes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeTable records the last write per user.
type fakeTable struct {
	mu      sync.Mutex
	present map[string]bool
	joins   int
	fail    error
}

func (f *fakeTable) Join(_ context.Context, user, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.joins++
	f.present[user] = true
	return nil
}

func (f *fakeTable) Leave(_ context.Context, user, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.present, user)
	return nil
}

// The record is written for the first session only and removed after the
// last.
func TestFirstJoinsLastLeaves(t *testing.T) {
	tab := &fakeTable{present: map[string]bool{}}
	tr := New(tab, "edge-a")
	ctx := context.Background()
	for range 3 {
		if err := tr.Open(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if tab.joins != 1 || !tab.present["alice"] {
		t.Fatalf("joins %d, present %v", tab.joins, tab.present)
	}
	for range 2 {
		_ = tr.Close(ctx, "alice")
	}
	if !tab.present["alice"] {
		t.Fatal("record removed while a session remains")
	}
	_ = tr.Close(ctx, "alice")
	if tab.present["alice"] || tr.Users() != 0 {
		t.Fatalf("after the last session: present %v, users %d", tab.present, tr.Users())
	}
	_ = tr.Close(ctx, "alice") // an extra close is harmless
}

// A failed Join leaves the session uncounted, so the next Open tries again.
func TestFailedJoinIsNotCounted(t *testing.T) {
	tab := &fakeTable{present: map[string]bool{}, fail: errors.New("firestore down")}
	tr := New(tab, "edge-a")
	if err := tr.Open(context.Background(), "bob"); err == nil {
		t.Fatal("Open succeeded without a record")
	}
	tab.fail = nil
	if err := tr.Open(context.Background(), "bob"); err != nil || !tab.present["bob"] {
		t.Fatalf("retry: err %v, present %v", err, tab.present)
	}
}

// Sessions of many users opening and closing concurrently: an open session
// always has its record, and the end state holds exactly the users that
// still have a session. (TestJoinWaitsForLeaveInFlight pins the ordering
// deterministically; this one runs the counting under the race detector.)
func TestConcurrentOpenCloseKeepsRecordsRight(t *testing.T) {
	tab := &fakeTable{present: map[string]bool{}}
	tr := New(tab, "edge-a")
	ctx := context.Background()
	var wg sync.WaitGroup
	for u := range 8 {
		id := fmt.Sprintf("u%d", u)
		for range 4 {
			wg.Go(func() {
				for range 20 {
					if err := tr.Open(ctx, id); err != nil {
						t.Error(err)
						return
					}
					tab.mu.Lock()
					ok := tab.present[id]
					tab.mu.Unlock()
					if !ok {
						t.Errorf("%s has an open session but no record", id)
					}
					_ = tr.Close(ctx, id)
				}
			})
		}
	}
	wg.Wait()
	// Users u0..u3 keep one session open at the end.
	for u := range 4 {
		if err := tr.Open(ctx, fmt.Sprintf("u%d", u)); err != nil {
			t.Fatal(err)
		}
	}
	for u := range 8 {
		id := fmt.Sprintf("u%d", u)
		if want := u < 4; tab.present[id] != want {
			t.Fatalf("%s present %v, want %v", id, tab.present[id], want)
		}
	}
	if tr.Users() != 4 {
		t.Fatalf("tracking %d users, want 4", tr.Users())
	}
}

// blockingTable holds every Leave until released.
type blockingTable struct {
	fakeTable
	leaving chan struct{} // receives when a Leave starts
	release chan struct{}
}

func (b *blockingTable) Leave(ctx context.Context, user, pod string) error {
	b.leaving <- struct{}{}
	<-b.release
	return b.fakeTable.Leave(ctx, user, pod)
}

// A session opening while the user's last Leave is in flight waits for it,
// so its Join lands after the Leave and the record stays.
func TestJoinWaitsForLeaveInFlight(t *testing.T) {
	tab := &blockingTable{fakeTable: fakeTable{present: map[string]bool{}}, leaving: make(chan struct{}), release: make(chan struct{})}
	tr := New(tab, "edge-a")
	ctx := context.Background()
	if err := tr.Open(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { _ = tr.Close(ctx, "alice"); close(closed) }()
	<-tab.leaving
	opened := make(chan error, 1)
	go func() { opened <- tr.Open(ctx, "alice") }()
	select {
	case err := <-opened:
		t.Fatalf("Open returned (%v) while the Leave was still in flight", err)
	case <-time.After(50 * time.Millisecond): // give a wrong implementation time to finish
	}
	close(tab.release)
	<-closed
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	if !tab.present["alice"] {
		t.Fatal("alice has an open session but no record: the Leave landed after the Join")
	}
}
