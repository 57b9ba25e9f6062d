package presence

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// memWriter keeps the records in memory. The Recorder's ordering is tested
// here; the edge's tests and e2e run it on the Firestore emulator.
type memWriter struct {
	mu      sync.Mutex
	present map[string]bool
	joins   int
	fail    error
}

func newMemWriter() *memWriter { return &memWriter{present: map[string]bool{}} }

func (m *memWriter) Join(_ context.Context, user, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.joins++
	m.present[user] = true
	return nil
}

func (m *memWriter) Leave(_ context.Context, user, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.present, user)
	return nil
}

func (m *memWriter) has(user string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.present[user]
}

func (r *Recorder) tracked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.users)
}

// registry counts sessions per user and emits the events under its lock,
// as ws-edge's hub does.
type registry struct {
	mu       sync.Mutex
	sessions map[string]int
	ev       *Recorder
}

func (g *registry) add(user string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sessions[user] == 0 {
		g.ev.FirstSession(user)
	}
	g.sessions[user]++
}

func (g *registry) remove(user string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sessions[user]--
	if g.sessions[user] == 0 {
		delete(g.sessions, user)
		g.ev.LastSession(user)
	}
}

func context30s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The record is written for the first session only and removed after the
// last; the Recorder then forgets the user.
func TestFirstJoinsLastLeaves(t *testing.T) {
	m := newMemWriter()
	r := NewRecorder(m, "edge-a", 5*time.Second, nil)
	g := &registry{sessions: map[string]int{}, ev: r}
	ctx := context30s(t)
	for range 3 {
		g.add("alice")
		if err := r.Joined(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if m.joins != 1 || !m.has("alice") {
		t.Fatalf("joins %d, present %v", m.joins, m.present)
	}
	g.remove("alice")
	g.remove("alice")
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !m.has("alice") {
		t.Fatal("record removed while a session remains")
	}
	g.remove("alice")
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if m.has("alice") || r.tracked() != 0 {
		t.Fatalf("after the last session: present %v, tracking %d users", m.present, r.tracked())
	}
	if err := r.Joined(ctx, "alice"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Joined without a session: %v", err)
	}
}

// A failed Join fails every session of that first session's user (none is
// served without a record); once they are gone the next first session
// tries again.
func TestFailedJoinRefusesAndIsRetried(t *testing.T) {
	m := newMemWriter()
	m.fail = errors.New("firestore down")
	r := NewRecorder(m, "edge-a", 5*time.Second, nil)
	g := &registry{sessions: map[string]int{}, ev: r}
	ctx := context30s(t)
	g.add("bob")
	g.add("bob")
	for range 2 {
		if err := r.Joined(ctx, "bob"); err == nil || !errors.Is(err, m.fail) {
			t.Fatalf("Joined after a failed Join: %v", err)
		}
	}
	g.remove("bob")
	g.remove("bob")
	m.mu.Lock()
	m.fail = nil
	m.mu.Unlock()
	g.add("bob")
	if err := r.Joined(ctx, "bob"); err != nil || !m.has("bob") {
		t.Fatalf("retry: err %v, present %v", err, m.has("bob"))
	}
}

// Sessions of many users opening and closing concurrently: a session whose
// Joined returned always has its record, and the end state holds exactly
// the users that still have a session.
func TestConcurrentSessionsKeepRecordsRight(t *testing.T) {
	m := newMemWriter()
	r := NewRecorder(m, "edge-a", 5*time.Second, nil)
	g := &registry{sessions: map[string]int{}, ev: r}
	ctx := context30s(t)
	var wg sync.WaitGroup
	for u := range 8 {
		id := fmt.Sprintf("u%d", u)
		for range 4 {
			wg.Go(func() {
				for range 20 {
					g.add(id)
					if err := r.Joined(ctx, id); err != nil {
						t.Error(err)
					}
					if !m.has(id) {
						t.Errorf("%s has a served session but no record", id)
					}
					g.remove(id)
				}
			})
		}
	}
	wg.Wait()
	for u := range 4 { // u0..u3 keep one session open at the end
		g.add(fmt.Sprintf("u%d", u))
	}
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for u := range 8 {
		id := fmt.Sprintf("u%d", u)
		if want := u < 4; m.has(id) != want {
			t.Fatalf("%s present %v, want %v", id, m.has(id), want)
		}
	}
	if r.tracked() != 4 {
		t.Fatalf("tracking %d users, want 4", r.tracked())
	}
}

// blockingWriter holds every Leave until released.
type blockingWriter struct {
	*memWriter
	leaving chan struct{} // receives when a Leave starts
	release chan struct{}
}

func (b *blockingWriter) Leave(ctx context.Context, user, pod string) error {
	b.leaving <- struct{}{}
	<-b.release
	return b.memWriter.Leave(ctx, user, pod)
}

// A first session arriving while the user's last Leave is in flight waits
// for it, so its Join lands after the Leave and the record stays.
func TestJoinWaitsForLeaveInFlight(t *testing.T) {
	b := &blockingWriter{memWriter: newMemWriter(), leaving: make(chan struct{}), release: make(chan struct{})}
	r := NewRecorder(b, "edge-a", 5*time.Second, nil)
	g := &registry{sessions: map[string]int{}, ev: r}
	ctx := context30s(t)
	g.add("alice")
	if err := r.Joined(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	g.remove("alice")
	<-b.leaving
	g.add("alice")
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond) // a wrong implementation has time to finish
	err := r.Joined(short, "alice")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Joined returned %v while the Leave before it was still in flight", err)
	}
	close(b.release)
	if err := r.Joined(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.has("alice") {
		t.Fatal("alice has an open session but no record: the Leave landed after the Join")
	}
}

// With a leave delay, a user who flaps (last session closed, a new one
// opened within the delay) costs no write at all, and the Leave of a user
// who stays away is written once the delay has passed; every write that
// happens is reported to OnChange.
func TestLeaveDelayCoalescesFlapping(t *testing.T) {
	w := newMemWriter()
	var mu sync.Mutex
	changes := 0
	r := NewRecorder(w, "pod-a", time.Second, nil).WithLeaveDelay(300 * time.Millisecond).OnChange(func(string) {
		mu.Lock()
		changes++
		mu.Unlock()
	})
	ctx := context.Background()
	r.FirstSession("bob")
	if err := r.Joined(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	for range 20 { // reconnecting as fast as it can
		r.LastSession("bob")
		r.FirstSession("bob")
		if err := r.Joined(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	if w.joins != 1 || !w.has("bob") {
		t.Fatalf("%d joins, present %v: want one join and no leave", w.joins, w.has("bob"))
	}
	r.LastSession("bob")
	if !w.has("bob") {
		t.Fatal("the leave was written before its delay")
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.has("bob") {
		if time.Now().After(deadline) {
			t.Fatal("the delayed leave was never written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if changes != 2 {
		t.Fatalf("%d changes reported, want 2 (the join, the leave)", changes)
	}
}

// The drain does not wait out the delay: Wait writes the pending leaves.
func TestWaitFlushesDelayedLeaves(t *testing.T) {
	w := newMemWriter()
	r := NewRecorder(w, "pod-a", time.Second, nil).WithLeaveDelay(time.Hour)
	r.FirstSession("bob")
	r.LastSession("bob")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if w.has("bob") {
		t.Fatal("a pending leave survived the drain")
	}
}
