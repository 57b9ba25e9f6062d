package sequencer_test

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

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/ws-edge/internal/frame"
	"github.com/courierhq/courier/services/ws-edge/internal/inboxreader"
	"github.com/courierhq/courier/services/ws-edge/internal/metrics"
	"github.com/courierhq/courier/services/ws-edge/internal/sequencer"
)

func newMessage(tb testing.TB) *frame.Message {
	tb.Helper()
	m, err := frame.NewMessage(&courierv1.Message{Id: "m", From: "alice", Payload: []byte(`{}`)})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// sink records what each user's sessions were handed, in order.
type sink struct {
	mu  sync.Mutex
	got map[string][]int64
}

func newSink() *sink { return &sink{got: map[string][]int64{}} }

func (k *sink) hand(user string, items []frame.Item) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, it := range items {
		k.got[user] = append(k.got[user], it.Seq)
	}
}

func (k *sink) positions(user string) []int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.got[user])
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

func (r *reader) Read(_ context.Context, user string, after int64, limit int) (inboxreader.Page, error) {
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

func newSet(t *testing.T, cfg sequencer.Config, read sequencer.ReadFunc, k *sink) *sequencer.Set {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := sequencer.New(ctx, cfg, read, k.hand, metrics.Discard(), slog.Default())
	t.Cleanup(func() { cancel(); s.Wait() })
	return s
}

// Ordering is per user: a late position is waited for once, and a position
// that never comes is read once, for the user.
func TestOrderingPerUser(t *testing.T) {
	rd := &reader{head: 100, reads: map[string]int{}, msg: newMessage(t)}
	const wait = 300 * time.Millisecond
	k := newSink()
	s := newSet(t, sequencer.Config{ReorderWait: wait, ReorderWaitMax: wait}, rd.Read, k)
	s.Open("bob")
	s.Open("carol")
	m := newMessage(t)
	// Before any session of bob has started, deliveries are held.
	if !s.Deliver("bob", frame.Item{M: m, Seq: 2}) {
		t.Fatal("bob's sequencer is open")
	}
	if got := k.positions("bob"); len(got) != 0 {
		t.Fatalf("delivered before Start: %v", got)
	}
	s.Start("bob", 0)
	s.Start("bob", 5) // the second Start changes nothing
	s.Start("carol", 0)
	// Position 1 arrives late, within the window: no read.
	s.Deliver("bob", frame.Item{M: m, Seq: 3})
	s.Deliver("bob", frame.Item{M: m, Seq: 1})
	if got := k.positions("bob"); !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("bob got %v", got)
	}
	// Position 4 never comes live: after the window it is read, once.
	s.Deliver("bob", frame.Item{M: m, Seq: 5})
	s.Deliver("carol", frame.Item{M: m, Seq: 2})
	testenv.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if !slices.Equal(k.positions("bob"), []int64{1, 2, 3, 4, 5}) || !slices.Equal(k.positions("carol"), []int64{1, 2}) {
			return fmt.Errorf("not filled: bob %v carol %v", k.positions("bob"), k.positions("carol"))
		}
		return nil
	})
	if n := rd.count("bob"); n != 1 {
		t.Errorf("bob's gap read %d times, want once", n)
	}
	if n := rd.count("carol"); n != 1 {
		t.Errorf("carol's gap read %d times, want once", n)
	}
	// The original of 4 arrives after all: a duplicate, handed to no one.
	s.Deliver("bob", frame.Item{M: m, Seq: 4})
	if got := k.positions("bob"); len(got) != 5 {
		t.Fatalf("a late duplicate was delivered: %v", got)
	}
	if s.Deliver("dave", frame.Item{M: m, Seq: 1}) || s.HasUser("dave") {
		t.Fatal("a user without a sequencer took a delivery")
	}
}

// A gap read whose pages are cut short by their byte bound (fewer entries
// than asked, more to follow) reads on from each page's last entry: no
// position of the gap is stepped over.
func TestGapFillFollowsPagesCutByBytes(t *testing.T) {
	rd := &reader{head: 100, reads: map[string]int{}, msg: newMessage(t), cut: 3}
	k := newSink()
	s := newSet(t, sequencer.Config{ReorderWait: 50 * time.Millisecond, ReorderWaitMax: 50 * time.Millisecond, ReadLimit: 500}, rd.Read, k)
	s.Open("bob")
	s.Start("bob", 0)
	s.Deliver("bob", frame.Item{M: newMessage(t), Seq: 11}) // 1..10 never come live
	want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	testenv.WaitFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if got := k.positions("bob"); !slices.Equal(got, want) {
			return fmt.Errorf("bob got %v, want %v", got, want)
		}
		return nil
	})
}

// Closing a user's sequencer (the last session left) forgets what was held
// for it; a later session starts afresh.
func TestCloseForgetsTheUsersState(t *testing.T) {
	rd := &reader{head: 100, reads: map[string]int{}, msg: newMessage(t)}
	k := newSink()
	s := newSet(t, sequencer.Config{ReorderWait: time.Hour}, rd.Read, k)
	s.Open("bob")
	s.Start("bob", 0)
	s.Deliver("bob", frame.Item{M: newMessage(t), Seq: 3}) // held: 1 and 2 missing
	s.Close("bob")
	if s.HasUser("bob") || s.Deliver("bob", frame.Item{M: newMessage(t), Seq: 4}) {
		t.Fatal("bob still known after his last session left")
	}
	s.Open("bob")
	s.Start("bob", 3)
	s.Deliver("bob", frame.Item{M: newMessage(t), Seq: 4})
	if got := k.positions("bob"); !slices.Equal(got, []int64{4}) {
		t.Fatalf("new session got %v", got)
	}
	if rd.count("bob") != 0 {
		t.Fatal("a gap of a departed session was read")
	}
}

// Shutdown cancels a gap read in flight: Wait returns at once, and the
// read saw its context end.
func TestShutdownCancelsAGapRead(t *testing.T) {
	started := make(chan struct{})
	var sawCancel atomic.Bool
	read := func(ctx context.Context, _ string, _ int64, _ int) (inboxreader.Page, error) {
		close(started)
		<-ctx.Done()
		sawCancel.Store(true)
		return inboxreader.Page{}, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A read timeout far beyond the test's: only shutdown can end the read.
	s := sequencer.New(ctx, sequencer.Config{ReorderWait: time.Millisecond, ReorderWaitMax: time.Millisecond, ReadTimeout: time.Hour},
		read, newSink().hand, metrics.Discard(), slog.Default())
	s.Open("bob")
	s.Start("bob", 0)
	s.Deliver("bob", frame.Item{M: newMessage(t), Seq: 2})
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the gap was never read")
	}
	cancel()
	waitReturns(t, s)
	if !sawCancel.Load() {
		t.Fatal("the read did not see shutdown")
	}
}

// Shutdown cancels the wait between two attempts of a failing gap read.
func TestShutdownCancelsARetryWait(t *testing.T) {
	var reads atomic.Int32
	failed := make(chan struct{}, 1)
	read := func(context.Context, string, int64, int) (inboxreader.Page, error) {
		reads.Add(1)
		failed <- struct{}{}
		return inboxreader.Page{}, errors.New("unavailable")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Retries an hour apart: only shutdown can end the wait.
	s := sequencer.New(ctx, sequencer.Config{ReorderWait: time.Millisecond, ReorderWaitMax: time.Millisecond, ReadAttempts: 3,
		Retry: backoff.Policy{Initial: 2 * time.Hour, Max: 2 * time.Hour}}, read, newSink().hand, metrics.Discard(), slog.Default())
	s.Open("bob")
	s.Start("bob", 0)
	s.Deliver("bob", frame.Item{M: newMessage(t), Seq: 2})
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the gap was never read")
	}
	cancel()
	waitReturns(t, s)
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads, want 1 (the retry was cancelled)", n)
	}
}

// waitReturns fails t unless s.Wait returns within a few seconds.
func waitReturns(t *testing.T, s *sequencer.Set) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after shutdown: a gap read ignores the context")
	}
}

// BenchmarkDeliver measures what ordering costs per recipient of a group
// message: 1,000 users get one delivery each, in order.
func BenchmarkDeliver(b *testing.B) {
	var n atomic.Int64
	s := sequencer.New(context.Background(), sequencer.Config{}, nil,
		func(_ string, items []frame.Item) { n.Add(int64(len(items))) }, metrics.Discard(), slog.Default())
	users := make([]string, 1000)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
		s.Open(users[i])
		s.Start(users[i], 0)
	}
	m := newMessage(b)
	b.ReportAllocs()
	seq := int64(0)
	for b.Loop() {
		seq++
		for _, u := range users {
			s.Deliver(u, frame.Item{M: m, Seq: seq})
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*int64(len(users))), "ns/recipient")
}
