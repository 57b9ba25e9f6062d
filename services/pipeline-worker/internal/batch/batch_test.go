package batch

// Unit tests of the group commit's rules against a fake committer. The
// emulator-backed proof is in internal/pipeline and tests/e2e.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/inbox/inboxtest"
	"github.com/courierhq/courier/pkg/testenv"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/classify"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// fakeCommitter wraps the in-memory inbox store's committer: it records
// each batch's message ids, and can hold, fail or panic. gate, when set,
// holds a batch until it is closed (after telling entered); fail decides a
// message's error: later messages of the batch then fail too, as
// inbox.Committer does for a failure that is not the content's fault.
type fakeCommitter struct {
	mu      sync.Mutex
	store   inboxtest.Committer
	batches [][]string
	entered chan int // batch number, when gated
	gate    func(n int) <-chan struct{}
	fail    func(id string) error
	panics  bool
	events  *[]string
}

func (f *fakeCommitter) Commit(ctx context.Context, envs []*courierv1.Envelope) []inbox.Result {
	ids := make([]string, len(envs))
	for i, e := range envs {
		ids[i] = e.MessageId
	}
	f.mu.Lock()
	if f.store == nil {
		f.store = inboxtest.NewMemory().NewCommitter()
	}
	f.batches = append(f.batches, ids)
	n := len(f.batches)
	if f.events != nil {
		*f.events = append(*f.events, "commit "+strings.Join(ids, ","))
	}
	f.mu.Unlock()
	if f.gate != nil {
		if g := f.gate(n); g != nil {
			f.entered <- n
			<-g
		}
	}
	if f.panics {
		panic("boom")
	}
	stopAt, stop := len(envs), error(nil)
	for i, e := range envs {
		if f.fail == nil {
			break
		}
		if stop = f.fail(e.MessageId); stop != nil {
			stopAt = i
			break
		}
	}
	res := append(f.store.Commit(ctx, envs[:stopAt]), make([]inbox.Result, len(envs)-stopAt)...)
	for i := stopAt; i < len(envs); i++ {
		res[i].Err = stop
	}
	return res
}

func (f *fakeCommitter) seen() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

func env(id string, to ...string) *courierv1.Envelope {
	if len(to) == 0 {
		to = []string{"bob"}
	}
	return &courierv1.Envelope{MessageId: id, Sender: "s", Recipients: to, Payload: []byte(`{}`), SentAt: timestamppb.Now()}
}

func bytesOf(e *courierv1.Envelope) int {
	_, n := inbox.WriteSize(e)
	return n
}

func items(envs ...*courierv1.Envelope) []Item {
	out := make([]Item, len(envs))
	for i, e := range envs {
		out[i] = Item{Ctx: context.Background(), Env: e}
	}
	return out
}

func newBatcher(t *testing.T, cfg Config, c Committer) (*Batcher, *metrics.Metrics) {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	m := metrics.New(prometheus.NewRegistry())
	b, err := New(cfg, c, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return b, m
}

// queued waits until n messages are queued.
func queued(t *testing.T, b *Batcher, n int) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, time.Millisecond, func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if got := len(b.queue); got != n {
			return fmt.Errorf("%d messages queued, want %d", got, n)
		}
		return nil
	})
}

// gateFirst holds the first batch until the returned release is called.
func gateFirst(c *fakeCommitter) (release func()) {
	open := make(chan struct{})
	c.entered = make(chan int, 1)
	c.gate = func(n int) <-chan struct{} {
		if n == 1 {
			return open
		}
		return nil
	}
	return func() { close(open) }
}

// commitAll commits each envelope as a run of its own, concurrently, and
// waits for all.
func commitAll(b *Batcher, envs ...*courierv1.Envelope) []Result {
	res := make([]Result, len(envs))
	var wg sync.WaitGroup
	for i, e := range envs {
		wg.Go(func() { res[i] = b.Commit(context.Background(), items(e))[0] })
	}
	wg.Wait()
	return res
}

// While a batch commits, the next fills; it closes at MaxMessages, at
// MaxWrites (recipients + 1 per message) or at MaxBytes, whichever comes
// first, and always holds at least one message.
func TestBatchClosingRules(t *testing.T) {
	big := env("big")
	big.Payload = []byte(`"` + strings.Repeat("x", 5000) + `"`)
	wide := env("wide", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9")
	for _, tc := range []struct {
		name string
		cfg  Config
		envs []*courierv1.Envelope
		want string
	}{
		{"messages", Config{MaxMessages: 3, MaxWrites: 1000, MaxBytes: 1 << 20},
			[]*courierv1.Envelope{env("a"), env("b"), env("c"), env("d"), env("e"), env("f"), env("g")}, "[[first] [a b c] [d e f] [g]]"},
		// Each message writes its recipients' entries, the sender's copy and
		// itself: a 3, b 4, c 3, d 5.
		{"writes", Config{MaxMessages: 100, MaxWrites: 8, MaxBytes: 1 << 20},
			[]*courierv1.Envelope{env("a"), env("b", "x", "y"), env("c"), env("d", "x", "y", "z"), env("e")}, "[[first] [a b] [c d] [e]]"},
		{"a message over MaxWrites goes alone", Config{MaxMessages: 100, MaxWrites: 8, MaxBytes: 1 << 20},
			[]*courierv1.Envelope{env("a"), wide, env("c")}, "[[first] [a] [wide] [c]]"},
		{"bytes", Config{MaxMessages: 100, MaxWrites: 1000, MaxBytes: bytesOf(env("a")) + bytesOf(big)},
			[]*courierv1.Envelope{env("a"), big, env("c"), env("d")}, "[[first] [a big] [c d]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeCommitter{}
			release := gateFirst(c)
			b, m := newBatcher(t, tc.cfg, c)
			done := make(chan []Result)
			go func() { done <- commitAll(b, env("first")) }()
			<-c.entered
			// One run, so the queue keeps this order.
			go func() { done <- b.Commit(context.Background(), items(tc.envs...)) }()
			queued(t, b, len(tc.envs))
			release()
			for range 2 {
				for _, r := range <-done {
					if r.Err != nil {
						t.Fatal(r.Err)
					}
				}
			}
			if got := fmt.Sprint(c.seen()); got != tc.want {
				t.Fatalf("batches %s, want %s", got, tc.want)
			}
			if got := testutil.CollectAndCount(m.BatchMessages); got != 1 {
				t.Fatalf("batch histogram series %d", got)
			}
		})
	}
}

// With fewer than a full batch queued and the committer idle, the oldest
// message waits up to Linger for company; a full batch never waits.
func TestLingerOnlyWhenFewerThanAFullBatchIsQueued(t *testing.T) {
	c := &fakeCommitter{}
	b, _ := newBatcher(t, Config{MaxMessages: 3, MaxWrites: 1000, MaxBytes: 1 << 20, Linger: time.Hour}, c)
	// A full batch at once: committed without waiting the hour.
	for _, r := range b.Commit(context.Background(), items(env("a1"), env("a2"), env("a3"))) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// One message waits (an hour, at most); two more make the batch full.
	done := make(chan Result, 3)
	go func() { done <- b.Commit(context.Background(), items(env("b1")))[0] }()
	queued(t, b, 1)
	go func() {
		for _, r := range b.Commit(context.Background(), items(env("b2"), env("b3"))) {
			done <- r
		}
	}()
	for range 3 {
		if r := <-done; r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if got := fmt.Sprint(c.seen()); got != "[[a1 a2 a3] [b1 b2 b3]]" {
		t.Fatalf("batches %s", got)
	}
}

// Linger counts from the oldest message's arrival: messages that waited
// while the previous batch committed go at once, with no further wait.
func TestMessagesThatWaitedDuringACommitDoNotLinger(t *testing.T) {
	c := &fakeCommitter{}
	release := gateFirst(c)
	b, _ := newBatcher(t, Config{MaxMessages: 10, MaxWrites: 1000, MaxBytes: 1 << 20, Linger: time.Hour}, c)
	var mu sync.Mutex
	now := time.Now()
	b.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	first := make(chan Result)
	go func() { first <- b.Commit(context.Background(), items(env("first")))[0] }()
	queued(t, b, 1)
	mu.Lock()
	now = now.Add(2 * time.Hour) // "first" has lingered its hour
	mu.Unlock()
	b.signal()
	<-c.entered
	second := make(chan Result)
	go func() { second <- b.Commit(context.Background(), items(env("second")))[0] }()
	queued(t, b, 1)
	mu.Lock()
	now = now.Add(2 * time.Hour) // the commit took long: "second" waited past Linger
	mu.Unlock()
	release()
	if r := <-first; r.Err != nil {
		t.Fatal(r.Err)
	}
	if r := <-second; r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := fmt.Sprint(c.seen()); got != "[[first] [second]]" {
		t.Fatalf("batches %s", got)
	}
}

// A run keeps its order across batches, interleaved with other runs.
func TestRunsKeepTheirOrderAcrossBatches(t *testing.T) {
	c := &fakeCommitter{}
	release := gateFirst(c)
	b, _ := newBatcher(t, Config{MaxMessages: 2, MaxWrites: 1000, MaxBytes: 1 << 20}, c)
	go commitAll(b, env("first"))
	<-c.entered
	var wg sync.WaitGroup
	for _, s := range []string{"a", "b", "c"} {
		wg.Go(func() {
			var run []*courierv1.Envelope
			for i := range 5 {
				run = append(run, env(fmt.Sprintf("%s%d", s, i)))
			}
			for _, r := range b.Commit(context.Background(), items(run...)) {
				if r.Err != nil {
					t.Error(r.Err)
				}
			}
		})
	}
	queued(t, b, 15)
	release()
	wg.Wait()
	var all []string
	for _, batch := range c.seen()[1:] {
		if len(batch) > 2 {
			t.Fatalf("batch %v over MaxMessages", batch)
		}
		all = append(all, batch...)
	}
	for _, s := range []string{"a", "b", "c"} {
		var got []string
		for _, id := range all {
			if strings.HasPrefix(id, s) {
				got = append(got, id)
			}
		}
		if want := []string{s + "0", s + "1", s + "2", s + "3", s + "4"}; !slices.Equal(got, want) {
			t.Fatalf("run %s committed as %v", s, got)
		}
	}
}

// When a message fails, its run's messages still queued are never
// committed (they could take positions ahead of it); other runs go on.
func TestAFailureStopsTheRestOfItsRun(t *testing.T) {
	down := status.Error(codes.Unavailable, "down")
	c := &fakeCommitter{fail: func(id string) error {
		if id == "a2" {
			return down
		}
		return nil
	}}
	release := gateFirst(c)
	b, _ := newBatcher(t, Config{MaxMessages: 2, MaxWrites: 1000, MaxBytes: 1 << 20}, c)
	go commitAll(b, env("first"))
	<-c.entered
	runA := make(chan []Result)
	go func() { runA <- b.Commit(context.Background(), items(env("a1"), env("a2"), env("a3"), env("a4"))) }()
	queued(t, b, 4)
	runB := make(chan []Result)
	go func() { runB <- b.Commit(context.Background(), items(env("b1"), env("b2"))) }()
	queued(t, b, 6)
	release()
	a, bb := <-runA, <-runB
	if a[0].Err != nil || !errors.Is(a[1].Err, down) {
		t.Fatalf("a1 %v, a2 %v", a[0].Err, a[1].Err)
	}
	for _, r := range a[2:] {
		if !errors.Is(r.Err, inbox.ErrNotAttempted) {
			t.Fatalf("after a2: %v", r.Err)
		}
		if class, _ := classify.Classify(r.Err); class != classify.Transient {
			t.Fatalf("not-attempted message classified %v", class)
		}
	}
	if bb[0].Err != nil || bb[1].Err != nil {
		t.Fatalf("run b: %v %v", bb[0].Err, bb[1].Err)
	}
	for _, batch := range c.seen() {
		if slices.Contains(batch, "a3") || slices.Contains(batch, "a4") {
			t.Fatalf("a3/a4 committed after a2 failed: %v", c.seen())
		}
	}
}

// A caller that stops waiting takes its queued messages out of the queue.
func TestAbandonedRunLeavesTheQueue(t *testing.T) {
	c := &fakeCommitter{}
	release := gateFirst(c)
	b, _ := newBatcher(t, Config{MaxMessages: 10, MaxWrites: 1000, MaxBytes: 1 << 20}, c)
	go commitAll(b, env("first"))
	<-c.entered
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []Result)
	go func() { done <- b.Commit(ctx, items(env("gone1"), env("gone2"))) }()
	queued(t, b, 2)
	cancel()
	res := <-done
	for _, r := range res {
		if !errors.Is(r.Err, context.Canceled) {
			t.Fatalf("abandoned: %v", r.Err)
		}
	}
	queued(t, b, 0)
	release()
	if r := b.Commit(context.Background(), items(env("later"))); r[0].Err != nil {
		t.Fatal(r[0].Err)
	}
	if got := fmt.Sprint(c.seen()); got != "[[first] [later]]" {
		t.Fatalf("batches %s", got)
	}
}

// The messages of one batch share its Batch: its size, and the distinct
// recipients of the messages it stored (what the fan-out reads presence
// for, once per batch); a failed message has none.
func TestResultsNameTheirBatch(t *testing.T) {
	c := &fakeCommitter{fail: func(id string) error {
		if id == "m3" {
			return status.Error(codes.Unavailable, "down")
		}
		return nil
	}}
	release := gateFirst(c)
	b, _ := newBatcher(t, Config{MaxMessages: 10, MaxWrites: 1000, MaxBytes: 1 << 20}, c)
	first := make(chan []Result)
	go func() { first <- commitAll(b, env("first", "dave")) }()
	<-c.entered
	done := make(chan []Result)
	go func() {
		done <- b.Commit(context.Background(), items(env("m1", "bob", "dave"), env("m2", "carol", "bob"), env("m3", "erin")))
	}()
	queued(t, b, 3)
	release()
	res, firstRes := <-done, <-first
	if firstRes[0].Batch == nil || firstRes[0].Batch == res[0].Batch || fmt.Sprint(firstRes[0].Batch.Recipients()) != "[dave s]" {
		t.Fatalf("first batch %+v", firstRes[0].Batch)
	}
	bt := res[0].Batch
	if bt == nil || res[1].Batch != bt || res[2].Batch != nil || res[2].Err == nil {
		t.Fatalf("results %+v", res)
	}
	if bt.Size != 3 || fmt.Sprint(bt.Recipients()) != "[bob dave s carol]" {
		t.Fatalf("batch of size %d, recipients %v", bt.Size, bt.Recipients())
	}
	if trace.SpanFromContext(bt.Lead()) != trace.SpanFromContext(context.Background()) {
		t.Fatal("the batch's lead context is not its first message's")
	}
}

// A limit the committer cannot work with is refused: the worker's settings
// give every value, the batcher fills in none.
func TestNewRefusesUnusableLimits(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	if _, err := New(Config{MaxMessages: 0, MaxWrites: 1, MaxBytes: 1, Timeout: time.Second}, &fakeCommitter{}, m, nil); err == nil {
		t.Fatal("MaxMessages 0 accepted")
	}
	if _, err := New(Config{MaxMessages: 1, MaxWrites: 1, MaxBytes: 1}, &fakeCommitter{}, m, nil); err == nil {
		t.Fatal("no timeout accepted")
	}
}

// A panic while committing fails the batch's messages with a transient
// error; the committer goes on with the next batch.
func TestPanicInACommitFailsItsBatch(t *testing.T) {
	c := &fakeCommitter{panics: true}
	b, _ := newBatcher(t, Config{MaxMessages: 10, MaxWrites: 1000, MaxBytes: 1 << 20}, c)
	r := b.Commit(context.Background(), items(env("p1")))[0]
	var pe *classify.PanicError
	if !errors.As(r.Err, &pe) {
		t.Fatalf("result %v", r.Err)
	}
	c.mu.Lock()
	c.panics = false
	c.mu.Unlock()
	if r := b.Commit(context.Background(), items(env("p2")))[0]; r.Err != nil {
		t.Fatal(r.Err)
	}
}
