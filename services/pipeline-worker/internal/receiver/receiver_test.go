package receiver

// Unit tests of the receive loop's logic against a fake subscriber API. The
// proof that it works with Pub/Sub is in internal/pipeline (the emulator)
// and tests/e2e (the worker killed with SIGKILL).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/googleapis/gax-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/pkg/testenv"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeAPI serves the messages put in its queue to Pull, and records acks,
// nacks and extensions. pullErr, when set, fails Pulls.
type fakeAPI struct {
	queue   chan *pubsubpb.ReceivedMessage
	pullErr atomic.Pointer[error]

	mu         sync.Mutex
	acked      []string
	nacked     []string
	extended   map[string]int32 // ack id → last deadline set
	pullsAsked []int32
	changed    chan struct{}
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{queue: make(chan *pubsubpb.ReceivedMessage, 1000), extended: map[string]int32{}, changed: make(chan struct{})}
}

func (f *fakeAPI) put(id, key string) {
	f.queue <- &pubsubpb.ReceivedMessage{AckId: "ack-" + id, DeliveryAttempt: 1,
		Message: &pubsubpb.PubsubMessage{MessageId: id, Data: []byte(id), OrderingKey: key}}
}

func (f *fakeAPI) Pull(ctx context.Context, req *pubsubpb.PullRequest, _ ...gax.CallOption) (*pubsubpb.PullResponse, error) {
	if err := f.pullErr.Load(); err != nil && *err != nil {
		return nil, *err
	}
	f.record(func() { f.pullsAsked = append(f.pullsAsked, req.MaxMessages) })
	resp := &pubsubpb.PullResponse{}
	select {
	case m := <-f.queue:
		resp.ReceivedMessages = append(resp.ReceivedMessages, m)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	for int32(len(resp.ReceivedMessages)) < req.MaxMessages {
		select {
		case m := <-f.queue:
			resp.ReceivedMessages = append(resp.ReceivedMessages, m)
			continue
		default:
		}
		break
	}
	return resp, nil
}

func (f *fakeAPI) Acknowledge(_ context.Context, req *pubsubpb.AcknowledgeRequest, _ ...gax.CallOption) error {
	f.record(func() { f.acked = append(f.acked, req.AckIds...) })
	return nil
}

func (f *fakeAPI) ModifyAckDeadline(_ context.Context, req *pubsubpb.ModifyAckDeadlineRequest, _ ...gax.CallOption) error {
	f.record(func() {
		for _, id := range req.AckIds {
			if req.AckDeadlineSeconds == 0 {
				f.nacked = append(f.nacked, id)
			} else {
				f.extended[id] = req.AckDeadlineSeconds
			}
		}
	})
	return nil
}

func (f *fakeAPI) record(change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change()
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitUntil waits until cond (called under f.mu) holds.
func (f *fakeAPI) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		ok, changed := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// handlerFunc handles a run one message at a time, in order; after a Nack
// the rest of the run is nacked unhandled (what the handler promises).
type handlerFunc func(ctx context.Context, retrying context.Context, m *pubsub.Message) Outcome

func (h handlerFunc) Handle(ctx context.Context, retrying context.Context, ms []*pubsub.Message) []Outcome {
	outs := make([]Outcome, len(ms))
	nacked := false
	for i, m := range ms {
		if nacked {
			outs[i] = Nack
			continue
		}
		outs[i] = h(ctx, retrying, m)
		nacked = outs[i] == Nack
	}
	return outs
}

// runsFunc sees whole runs.
type runsFunc func(ms []*pubsub.Message) []Outcome

func (f runsFunc) Handle(_, _ context.Context, ms []*pubsub.Message) []Outcome {
	return f(ms)
}

func config() Config {
	return Config{
		Subscription:           "projects/p/subscriptions/s",
		MaxOutstandingMessages: 10, MaxOutstandingBytes: 1 << 20, Pullers: 2,
		AckDeadline: 10 * time.Second, ExtensionStep: 10 * time.Second, MaxExtension: time.Minute,
		DrainTimeout: 5 * time.Second,
		Restart:      backoff.Policy{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond},
		PullTimeout:  200 * time.Millisecond,
	}
}

func mustNew(t *testing.T, api API, h Handler, cfg Config, m *metrics.Metrics, log *slog.Logger) *Receiver {
	t.Helper()
	r, err := New(api, h, cfg, m, log)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A configuration the loop cannot run with is refused, naming the field:
// the worker's settings give every value, the receiver fills in none.
func TestNewRefusesAnUnusableConfig(t *testing.T) {
	cfg := config()
	cfg.Pullers, cfg.PullTimeout = 0, 0
	_, err := New(newFakeAPI(), nil, cfg, metrics.New(prometheus.NewRegistry()), discard)
	if err == nil || !strings.Contains(err.Error(), "Pullers") || !strings.Contains(err.Error(), "PullTimeout") {
		t.Fatalf("New with no pullers and no pull timeout: %v", err)
	}
}

// start runs r until the returned stop is called; stop returns Run's error.
func start(r *Receiver) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// Every message is handed to the handler and acked once; dead-lettered
// messages are acked too, nacked ones are nacked.
func TestAcksAndNacksAsTheHandlerSays(t *testing.T) {
	api := newFakeAPI()
	h := handlerFunc(func(_, _ context.Context, m *pubsub.Message) Outcome {
		switch string(m.Data) {
		case "dead":
			return Ack
		case "nack":
			return Nack
		}
		return Ack
	})
	r := mustNew(t, api, h, config(), metrics.New(prometheus.NewRegistry()), discard)
	stop := start(r)
	for _, id := range []string{"a", "b", "dead", "nack"} {
		api.put(id, "")
	}
	api.waitUntil(t, "all settled", func() bool { return len(api.acked)+len(api.nacked) == 4 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(api.acked)
	if !slices.Equal(api.acked, []string{"ack-a", "ack-b", "ack-dead"}) || !slices.Equal(api.nacked, []string{"ack-nack"}) {
		t.Fatalf("acked %v, nacked %v", api.acked, api.nacked)
	}
}

// No more than MaxOutstandingMessages are ever in hand: Pulls ask only for
// free slots, and none is asked while every slot is taken.
func TestFlowControlBoundsMessagesInHand(t *testing.T) {
	api := newFakeAPI()
	cfg := config()
	cfg.MaxOutstandingMessages, cfg.Pullers = 5, 3
	var inHand, peak atomic.Int32
	release := make(chan struct{})
	h := handlerFunc(func(context.Context, context.Context, *pubsub.Message) Outcome {
		n := inHand.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		inHand.Add(-1)
		return Ack
	})
	r := mustNew(t, api, h, cfg, metrics.New(prometheus.NewRegistry()), discard)
	stop := start(r)
	for i := range 40 {
		api.put(fmt.Sprint(i), "")
	}
	testenv.WaitFor(t, 10*time.Second, time.Millisecond, func() error {
		if n := inHand.Load(); n < 5 {
			return fmt.Errorf("only %d messages in hand", n)
		}
		return nil
	})
	if got := r.flow.outstanding(); got != 5 {
		t.Fatalf("outstanding %d with every slot taken", got)
	}
	close(release)
	api.waitUntil(t, "all acked", func() bool { return len(api.acked) == 40 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if peak.Load() > 5 {
		t.Fatalf("%d messages in hand at once, limit 5", peak.Load())
	}
	for _, n := range api.pullsAsked {
		if n < 1 || n > 5 {
			t.Fatalf("a Pull asked for %d messages (limit 5): %v", n, api.pullsAsked)
		}
	}
}

// One ordering key's messages are handled one at a time, in delivery order,
// while other keys' messages run alongside: the first message of each key
// holds until all three keys have one running (which cannot happen if keys
// were serialized with each other), and meanwhile no later message of a
// held key may start.
func TestOneKeyAtATimeInOrder(t *testing.T) {
	api := newFakeAPI()
	cfg := config()
	cfg.MaxOutstandingMessages, cfg.Pullers = 100, 1
	var mu sync.Mutex
	seen := map[string][]string{}
	running := map[string]int{}
	var overlap atomic.Bool
	firsts, release := make(chan string, 3), make(chan struct{})
	h := handlerFunc(func(_, _ context.Context, m *pubsub.Message) Outcome {
		mu.Lock()
		running[m.OrderingKey]++
		if running[m.OrderingKey] > 1 {
			overlap.Store(true)
		}
		seen[m.OrderingKey] = append(seen[m.OrderingKey], m.ID)
		first := len(seen[m.OrderingKey]) == 1
		mu.Unlock()
		if first {
			firsts <- m.OrderingKey
			<-release
		}
		mu.Lock()
		running[m.OrderingKey]--
		mu.Unlock()
		return Ack
	})
	r := mustNew(t, api, h, cfg, metrics.New(prometheus.NewRegistry()), discard)
	var want []string
	for i := range 30 {
		key := []string{"alice", "bob", "carol"}[i%3]
		id := fmt.Sprintf("%s-%02d", key, i)
		api.put(id, key)
		if key == "alice" {
			want = append(want, id)
		}
	}
	stop := start(r)
	for range 3 {
		select {
		case <-firsts:
		case <-time.After(10 * time.Second):
			close(release)
			t.Fatal("the three keys' first messages never ran at the same time")
		}
	}
	if overlap.Load() {
		t.Fatal("a key's later message started while its first was running")
	}
	close(release)
	api.waitUntil(t, "all acked", func() bool { return len(api.acked) == 30 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if overlap.Load() {
		t.Fatal("two messages of one key ran at once")
	}
	if !slices.Equal(seen["alice"], want) {
		t.Fatalf("alice's messages handled as %v, want %v", seen["alice"], want)
	}
}

// When a key's message is nacked, the messages behind it are nacked without
// being handled: Pub/Sub redelivers them after it, in order.
func TestNackNacksTheRestOfTheKey(t *testing.T) {
	api := newFakeAPI()
	cfg := config()
	cfg.Pullers = 1
	var handled []string
	var mu sync.Mutex
	h := handlerFunc(func(_, _ context.Context, m *pubsub.Message) Outcome {
		mu.Lock()
		handled = append(handled, m.ID)
		mu.Unlock()
		if m.ID == "k2" {
			return Nack
		}
		return Ack
	})
	// All four in one Pull, so k3 and k4 wait behind k2 in the receiver.
	for _, id := range []string{"k1", "k2", "k3", "k4"} {
		api.put(id, "k")
	}
	r := mustNew(t, api, h, cfg, metrics.New(prometheus.NewRegistry()), discard)
	stop := start(r)
	api.waitUntil(t, "all settled", func() bool { return len(api.acked)+len(api.nacked) == 4 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(handled, []string{"k1", "k2"}) || !slices.Equal(api.acked, []string{"ack-k1"}) ||
		!slices.Equal(api.nacked, []string{"ack-k2", "ack-k3", "ack-k4"}) {
		t.Fatalf("handled %v, acked %v, nacked %v", handled, api.acked, api.nacked)
	}
}

// A message that takes longer than half its lease has its ack deadline
// extended by ExtensionStep while it is handled, and no more once settled.
func TestLeasesOfSlowMessagesAreExtended(t *testing.T) {
	api := newFakeAPI()
	cfg := config()
	cfg.AckDeadline, cfg.ExtensionStep = time.Second, 2*time.Second
	h := handlerFunc(func(context.Context, context.Context, *pubsub.Message) Outcome {
		// Finish only once the lease has been extended.
		api.waitUntil(t, "an extension", func() bool { return api.extended["ack-slow"] == 2 })
		return Ack
	})
	r := mustNew(t, api, h, cfg, metrics.New(prometheus.NewRegistry()), discard)
	m := r.metrics
	stop := start(r)
	api.put("slow", "")
	api.waitUntil(t, "the ack", func() bool { return len(api.acked) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.LeaseExtensions); got < 1 {
		t.Fatalf("lease extensions metric %v", got)
	}
	r.leases.mu.Lock()
	defer r.leases.mu.Unlock()
	if len(r.leases.held) != 0 {
		t.Fatalf("leases still held after settling: %v", r.leases.held)
	}
}

// A message held past MaxExtension is let go (no longer extended), so a
// stuck handler cannot hold it forever.
func TestLeasesStopAtMaxExtension(t *testing.T) {
	api := newFakeAPI()
	now := time.Now()
	l := &leases{api: api, subscription: "s", step: 10 * time.Second, maxExtension: time.Minute,
		metrics: metrics.New(prometheus.NewRegistry()), log: discard, now: func() time.Time { return now }, held: map[string]*lease{}}
	l.add("old", 10*time.Second)
	l.add("young", 10*time.Second)
	l.held["old"].received = now.Add(-2 * time.Minute)
	now = now.Add(6 * time.Second) // both past half their lease
	l.extendDue(context.Background())
	if _, ok := api.extended["old"]; ok || api.extended["young"] != 10 {
		t.Fatalf("extended %v", api.extended)
	}
	if _, ok := l.held["old"]; ok {
		t.Fatal("the old lease is still held")
	}
}

// Failing Pulls are retried after a backoff; Check reports the failure
// until a Pull succeeds again.
func TestPullErrorsAreRetriedAndReported(t *testing.T) {
	api := newFakeAPI()
	perr := error(status.Error(codes.NotFound, "subscription not found"))
	api.pullErr.Store(&perr)
	r := mustNew(t, api, handlerFunc(func(context.Context, context.Context, *pubsub.Message) Outcome { return Ack }),
		config(), metrics.New(prometheus.NewRegistry()), discard)
	stop := start(r)
	testenv.WaitFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if testutil.ToFloat64(r.metrics.Receiving) != 0 || testutil.ToFloat64(r.metrics.PullErrors) < 3 {
			return fmt.Errorf("failing Pulls not reported or not retried (%v failures counted)", testutil.ToFloat64(r.metrics.PullErrors))
		}
		return nil
	})
	var none error
	api.pullErr.Store(&none)
	api.put("after", "")
	api.waitUntil(t, "the message after recovery", func() bool { return len(api.acked) == 1 })
	// With two pullers, one may still report a Pull that failed just before
	// the recovery; the next good Pull (after its backoff) clears it.
	testenv.WaitFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if testutil.ToFloat64(r.metrics.Receiving) != 1 {
			return fmt.Errorf("still reported failing after good Pulls")
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// An empty Pull that ends at its deadline is not a failure.
func TestEmptyPullIsNotAFailure(t *testing.T) {
	api := newFakeAPI()
	cfg := config()
	cfg.PullTimeout = 20 * time.Millisecond
	r := mustNew(t, api, nil, cfg, metrics.New(prometheus.NewRegistry()), discard)
	stop := start(r)
	api.waitUntil(t, "several Pulls", func() bool { return len(api.pullsAsked) >= 6 })
	if got := testutil.ToFloat64(r.metrics.Receiving); got != 1 {
		t.Fatalf("receiving = %v after empty Pulls", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(r.metrics.PullErrors); got != 0 {
		t.Fatalf("pull errors %v", got)
	}
}

// At shutdown the message in progress keeps its work context (alive until
// the drain deadline) and sees the stop signal; the ones of its key that
// arrived behind it are nacked unhandled; its ack is sent before Run
// returns.
func TestShutdownDrainsInProgressAndNacksTheRest(t *testing.T) {
	api := newFakeAPI()
	cfg := config()
	cfg.Pullers = 1
	inProgress := make(chan struct{})
	results := make(chan string, 2)
	var handled atomic.Int32
	h := handlerFunc(func(ctx context.Context, retrying context.Context, m *pubsub.Message) Outcome {
		handled.Add(1)
		close(inProgress)
		<-retrying.Done()
		if ctx.Err() == nil {
			results <- "work alive"
		} else {
			results <- "work cancelled"
		}
		return Ack
	})
	r := mustNew(t, api, h, cfg, metrics.New(prometheus.NewRegistry()), discard)
	stop := start(r)
	api.put("k1", "k")
	<-inProgress
	for _, id := range []string{"k2", "k3"} {
		api.put(id, "k")
	}
	waitQueued(t, r, "k", 2) // in hand, behind k1
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := <-results; got != "work alive" {
		t.Fatalf("handler saw %q", got)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if handled.Load() != 1 || !slices.Equal(api.acked, []string{"ack-k1"}) || !slices.Equal(api.nacked, []string{"ack-k2", "ack-k3"}) {
		t.Fatalf("handled %d, acked %v, nacked %v", handled.Load(), api.acked, api.nacked)
	}
}

// waitQueued waits until n messages of key wait behind its running run.
func waitQueued(t *testing.T, r *Receiver, key string, n int) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, time.Millisecond, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if queued := len(r.keys[key]); queued != n {
			return fmt.Errorf("%d messages of %s queued, want %d", queued, key, n)
		}
		return nil
	})
}

// A key's messages in hand are handed over together as one run, in order,
// and the next run only after the previous one is settled: the messages
// that arrive while a run is handled form the next run.
func TestKeyMessagesAreHandedOverInRuns(t *testing.T) {
	api := newFakeAPI()
	cfg := config()
	cfg.Pullers = 1
	var mu sync.Mutex
	var runs [][]string
	first := make(chan struct{})
	release := make(chan struct{})
	h := runsFunc(func(ms []*pubsub.Message) []Outcome {
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		mu.Lock()
		runs = append(runs, ids)
		n := len(runs)
		mu.Unlock()
		if n == 1 {
			close(first)
			<-release
		}
		return make([]Outcome, len(ms)) // Ack
	})
	for _, id := range []string{"a1", "a2", "a3"} {
		api.put(id, "a")
	}
	r := mustNew(t, api, h, cfg, metrics.New(prometheus.NewRegistry()), discard)
	stop := start(r)
	<-first
	for _, id := range []string{"a4", "a5"} {
		api.put(id, "a")
	}
	waitQueued(t, r, "a", 2)
	close(release)
	api.waitUntil(t, "all acked", func() bool { return len(api.acked) == 5 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(runs) != "[[a1 a2 a3] [a4 a5]]" {
		t.Fatalf("runs %v", runs)
	}
}

// Run gives up on a handler that ignores cancellation, DrainTimeout plus a
// margin after shutdown began, instead of hanging the process.
func TestRunAbandonsAHandlerThatNeverReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the hard-stop margin")
	}
	api := newFakeAPI()
	cfg := config()
	cfg.DrainTimeout = 10 * time.Millisecond
	started := make(chan struct{})
	block := make(chan struct{})
	defer close(block)
	h := handlerFunc(func(context.Context, context.Context, *pubsub.Message) Outcome {
		close(started)
		<-block
		return Nack
	})
	r := mustNew(t, api, h, cfg, metrics.New(prometheus.NewRegistry()), discard)
	api.put("stuck", "")
	stop := start(r)
	<-started
	done := make(chan error, 1)
	go func() { done <- stop() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("abandoning in-flight messages was not reported")
		}
	case <-time.After(hardStopMargin + 5*time.Second):
		t.Fatal("Run hung")
	}
}

// Acks that keep failing are counted; the message is not lost (Pub/Sub
// redelivers it), and the receiver goes on.
func TestAckFailuresAreCounted(t *testing.T) {
	api := &failingAcks{fakeAPI: newFakeAPI()}
	r := mustNew(t, api, handlerFunc(func(context.Context, context.Context, *pubsub.Message) Outcome { return Ack }),
		config(), metrics.New(prometheus.NewRegistry()), discard)
	stop := start(r)
	api.put("a", "")
	testenv.WaitFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if n := testutil.ToFloat64(r.metrics.AckErrors.WithLabelValues("ack")); n != 1 {
			return fmt.Errorf("%v failed acks counted, want 1", n)
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Sent once: the client library retries Unavailable inside the call,
	// and nothing here retries on top of it.
	if got := api.calls.Load(); got != 1 {
		t.Fatalf("%d ack requests, want 1", got)
	}
}

type failingAcks struct {
	*fakeAPI
	calls atomic.Int32
}

func (f *failingAcks) Acknowledge(context.Context, *pubsubpb.AcknowledgeRequest, ...gax.CallOption) error {
	f.calls.Add(1)
	return errors.New("unavailable")
}

// The handler gets the Pub/Sub message's fields; a missing publish time
// stays zero (not 1970) and a missing delivery attempt stays nil.
func TestMessageFieldsReachTheHandler(t *testing.T) {
	api := newFakeAPI()
	published := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	api.queue <- &pubsubpb.ReceivedMessage{AckId: "ack-full", DeliveryAttempt: 3, Message: &pubsubpb.PubsubMessage{
		MessageId: "full", Data: []byte("d"), Attributes: map[string]string{"k": "v"}, OrderingKey: "alice",
		PublishTime: timestamppb.New(published)}}
	api.queue <- &pubsubpb.ReceivedMessage{AckId: "ack-bare", Message: &pubsubpb.PubsubMessage{MessageId: "bare"}}
	got := make(chan *pubsub.Message, 2)
	h := handlerFunc(func(_, _ context.Context, m *pubsub.Message) Outcome {
		got <- m
		return Ack
	})
	r := mustNew(t, api, h, config(), metrics.New(prometheus.NewRegistry()), discard)
	stop := start(r)
	api.waitUntil(t, "both acked", func() bool { return len(api.acked) == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byID := map[string]*pubsub.Message{}
	for range 2 {
		m := <-got
		byID[m.ID] = m
	}
	full, bare := byID["full"], byID["bare"]
	if full == nil || string(full.Data) != "d" || full.Attributes["k"] != "v" || full.OrderingKey != "alice" ||
		!full.PublishTime.Equal(published) || full.DeliveryAttempt == nil || *full.DeliveryAttempt != 3 {
		t.Fatalf("full message arrived as %+v", full)
	}
	if bare == nil || !bare.PublishTime.IsZero() || bare.DeliveryAttempt != nil {
		t.Fatalf("bare message arrived as %+v", bare)
	}
}
