package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
	"github.com/courierhq/courier/services/pipeline-worker/internal/receiver"
)

// fakeAttempts is an Attempter of a func field; it records every attempt's
// message ids. A nil run succeeds at everything.
type fakeAttempts struct {
	mu    sync.Mutex
	calls [][]string
	run   func(call int, ids []string) []error
}

func (f *fakeAttempts) attempt(_ context.Context, msgs []*Message) []error {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.env.MessageId
	}
	f.mu.Lock()
	f.calls = append(f.calls, ids)
	call := len(f.calls)
	f.mu.Unlock()
	if f.run == nil {
		return make([]error, len(msgs))
	}
	return f.run(call, ids)
}

func (f *fakeAttempts) seen() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

type fakeDL struct {
	mu      sync.Mutex
	letters []wire.Letter
	ids     []string
	err     error
}

func (f *fakeDL) Send(_ context.Context, m *pubsub.Message, l wire.Letter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.letters = append(f.letters, l)
	f.ids = append(f.ids, m.ID)
	return nil
}

func envelopeMsg(t testing.TB, id string, to ...string) *pubsub.Message {
	t.Helper()
	b, err := proto.Marshal(&courierv1.Envelope{
		MessageId: id, Sender: "alice", Recipients: to, Payload: []byte(`{"n":1}`),
		ContentType: "application/json", SentAt: timestamppb.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	attempt := 1
	return &pubsub.Message{ID: "ps-" + id, Data: b, OrderingKey: "alice", DeliveryAttempt: &attempt,
		PublishTime: time.Now(), Attributes: map[string]string{wire.AttrMessageID: id}}
}

type harness struct {
	p  *Processor
	at *fakeAttempts
	dl *fakeDL
	m  *metrics.Metrics
}

func newHarness(t testing.TB, mutate func(*Config)) *harness {
	h := &harness{at: &fakeAttempts{}, dl: &fakeDL{}, m: metrics.New(prometheus.NewRegistry())}
	cfg := Config{
		Subscription: "courier-ingress-worker", MaxDeliveryAttempts: 5,
		Limits:         wire.Limits{MaxEnvelopeBytes: 1 << 20, MaxPayloadBytes: 1 << 16, MaxRecipients: 10},
		Retry:          backoff.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Budget: time.Second},
		AttemptTimeout: time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	var err error
	h.p, err = New(cfg, h.at.attempt, h.dl, h.m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) handle(ms ...*pubsub.Message) []outcome {
	return h.p.process(context.Background(), context.Background(), ms)
}

func unavailable(string) error { return status.Error(codes.Unavailable, "firestore down") }

func TestValidMessagesAreAttemptedAsOneRunAndAcked(t *testing.T) {
	h := newHarness(t, nil)
	outs := h.handle(envelopeMsg(t, "m1", "bob"), envelopeMsg(t, "m2", "bob", "carol"))
	if !slices.Equal(outs, []outcome{ack, ack}) {
		t.Fatalf("outcomes %v", outs)
	}
	if got := h.at.seen(); fmt.Sprint(got) != "[[m1 m2]]" {
		t.Fatalf("attempts %v", got)
	}
	if got := testutil.ToFloat64(h.m.Processed.WithLabelValues("stored")); got != 2 {
		t.Errorf("processed{stored} = %v", got)
	}
}

// Undecodable and invalid messages are dead-lettered at once; the valid
// ones before and after them in the run are attempted, in order.
func TestPoisonInARunIsDeadLetteredAndTheRestFlow(t *testing.T) {
	h := newHarness(t, nil)
	outs := h.handle(envelopeMsg(t, "m1", "bob"), &pubsub.Message{ID: "x", Data: []byte{0xff, 0x01}},
		envelopeMsg(t, "m2"), envelopeMsg(t, "m3", "bob"))
	if !slices.Equal(outs, []outcome{ack, deadLettered, deadLettered, ack}) {
		t.Fatalf("outcomes %v", outs)
	}
	if got := h.at.seen(); fmt.Sprint(got) != "[[m1 m3]]" {
		t.Fatalf("attempts %v", got)
	}
	if len(h.dl.letters) != 2 || h.dl.letters[0].Reason != "undecodable" || h.dl.letters[1].Reason != "invalid" {
		t.Fatalf("letters %+v", h.dl.letters)
	}
	if got := testutil.ToFloat64(h.m.Retries); got != 0 {
		t.Errorf("%v retries: a permanent failure was retried", got)
	}
}

// A message Firestore rejects for its content is dead-lettered ("rejected")
// without a retry; its run-mates are acked.
func TestRejectedMessageIsDeadLetteredAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.at.run = func(_ int, ids []string) []error {
		errs := make([]error, len(ids))
		for i, id := range ids {
			if id == "big" {
				errs[i] = status.Error(codes.InvalidArgument, "document too large")
			}
		}
		return errs
	}
	outs := h.handle(envelopeMsg(t, "m1", "bob"), envelopeMsg(t, "big", "bob"), envelopeMsg(t, "m2", "bob"))
	if !slices.Equal(outs, []outcome{ack, deadLettered, ack}) {
		t.Fatalf("outcomes %v", outs)
	}
	if len(h.at.seen()) != 1 || len(h.dl.letters) != 1 || h.dl.letters[0].Reason != "rejected" || h.dl.letters[0].Err == nil {
		t.Fatalf("attempts %v, letters %+v", h.at.seen(), h.dl.letters)
	}
}

// A transient failure is retried in process. The failed message and every
// message behind it in its run are retried together, in order; the ones
// ahead of it are done.
func TestTransientFailureRetriesTheRestOfTheRunInOrder(t *testing.T) {
	h := newHarness(t, nil)
	h.at.run = func(call int, ids []string) []error {
		errs := make([]error, len(ids))
		if call <= 2 {
			for i, id := range ids {
				if id >= "m2" { // m2 fails; the batcher fails what is behind it
					errs[i] = unavailable(id)
				}
			}
		}
		return errs
	}
	outs := h.handle(envelopeMsg(t, "m1", "bob"), envelopeMsg(t, "m2", "bob"), envelopeMsg(t, "m3", "bob"))
	if !slices.Equal(outs, []outcome{ack, ack, ack}) {
		t.Fatalf("outcomes %v", outs)
	}
	if got := h.at.seen(); fmt.Sprint(got) != "[[m1 m2 m3] [m2 m3] [m2 m3]]" {
		t.Fatalf("attempts %v", got)
	}
	if got := testutil.ToFloat64(h.m.Retries); got != 4 {
		t.Errorf("retries %v, want 4 (two messages, twice)", got)
	}
	if got := testutil.ToFloat64(h.m.Failures.WithLabelValues("transient")); got != 2 {
		t.Errorf("transient failures %v, want 2 (counted for the message that failed)", got)
	}
	if len(h.dl.letters) != 0 {
		t.Fatal("dead-lettered a transient failure")
	}
}

// A message behind one that is retried is retried with it even when its own
// failure was permanent: it is dead-lettered only when its turn comes.
func TestMessageBehindARetryWaitsItsTurn(t *testing.T) {
	h := newHarness(t, nil)
	h.at.run = func(call int, ids []string) []error {
		errs := make([]error, len(ids))
		for i, id := range ids {
			switch {
			case id == "m1" && call == 1:
				errs[i] = unavailable(id)
			case id == "m2":
				errs[i] = status.Error(codes.InvalidArgument, "bad")
			}
		}
		return errs
	}
	outs := h.handle(envelopeMsg(t, "m1", "bob"), envelopeMsg(t, "m2", "bob"))
	if !slices.Equal(outs, []outcome{ack, deadLettered}) {
		t.Fatalf("outcomes %v", outs)
	}
	if got := h.at.seen(); fmt.Sprint(got) != "[[m1 m2] [m1 m2]]" {
		t.Fatalf("attempts %v", got)
	}
}

func TestRetryBudgetSpentNacksBeforeTheLastAttempt(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    outcome
	}{{1, nack}, {4, nack}, {5, deadLettered}, {7, deadLettered}} {
		h := newHarness(t, func(c *Config) { c.Retry.Budget = 30 * time.Millisecond })
		h.at.run = func(_ int, ids []string) []error { return []error{unavailable(ids[0])} }
		m := envelopeMsg(t, "m1", "bob")
		m.DeliveryAttempt = &tc.attempt
		start := time.Now()
		if out := h.handle(m); out[0] != tc.want {
			t.Fatalf("attempt %d: outcome %v, want %v", tc.attempt, out[0], tc.want)
		}
		if el := time.Since(start); el < 15*time.Millisecond {
			t.Errorf("attempt %d: gave up after %s, before spending the budget", tc.attempt, el)
		}
		if tc.want == deadLettered && (h.dl.letters[0].Reason != "exhausted" || h.dl.letters[0].Attempt != tc.attempt) {
			t.Errorf("letter %+v", h.dl.letters[0])
		}
		if tc.want == nack && testutil.ToFloat64(h.m.Nacked.WithLabelValues("retry_budget")) != 1 {
			t.Errorf("nacked{retry_budget} not counted")
		}
	}
}

// When the budget is spent, a message on its last delivery attempt is
// dead-lettered; the first one that is not goes back to Pub/Sub with
// everything behind it.
func TestBudgetSpentInARun(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retry.Budget = 20 * time.Millisecond })
	h.at.run = func(_ int, ids []string) []error {
		errs := make([]error, len(ids))
		for i, id := range ids {
			if id != "m0" {
				errs[i] = unavailable(id)
			}
		}
		return errs
	}
	five, one := 5, 1
	m0, m1, m2, m3 := envelopeMsg(t, "m0", "bob"), envelopeMsg(t, "m1", "bob"), envelopeMsg(t, "m2", "bob"), envelopeMsg(t, "m3", "bob")
	m1.DeliveryAttempt, m2.DeliveryAttempt, m3.DeliveryAttempt = &five, &one, &five
	outs := h.handle(m0, m1, m2, m3)
	if !slices.Equal(outs, []outcome{ack, deadLettered, nack, nack}) {
		t.Fatalf("outcomes %v", outs)
	}
	if fmt.Sprint(h.dl.ids) != "[ps-m1]" {
		t.Fatalf("dead letters %v", h.dl.ids)
	}
	if got := testutil.ToFloat64(h.m.Nacked.WithLabelValues("retry_budget")); got != 2 {
		t.Fatalf("nacked{retry_budget} = %v", got)
	}
}

func TestNoDeliveryAttemptNeverExhausts(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retry.Budget = 10 * time.Millisecond })
	h.at.run = func(_ int, ids []string) []error { return []error{unavailable(ids[0])} }
	m := envelopeMsg(t, "m1", "bob")
	m.DeliveryAttempt = nil // subscription without a dead-letter policy
	if out := h.handle(m); out[0] != nack {
		t.Fatalf("outcome %v", out)
	}
}

func TestPanicIsRecoveredAsTransient(t *testing.T) {
	h := newHarness(t, nil)
	h.at.run = func(call int, ids []string) []error {
		if call == 1 {
			panic("boom")
		}
		return make([]error, len(ids))
	}
	if out := h.handle(envelopeMsg(t, "m1", "bob"), envelopeMsg(t, "m2", "bob")); !slices.Equal(out, []outcome{ack, ack}) {
		t.Fatalf("outcome %v", out)
	}
	if testutil.ToFloat64(h.m.Failures.WithLabelValues("transient")) != 1 {
		t.Fatal("panic not counted as a transient failure")
	}
}

func TestShutdownStopsRetryingAndNacks(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Retry = backoff.Policy{Initial: time.Hour, Max: time.Hour, Budget: 10 * time.Hour}
	})
	attempted := make(chan struct{}, 1)
	h.at.run = func(_ int, ids []string) []error {
		select {
		case attempted <- struct{}{}:
		default:
		}
		return []error{unavailable(ids[0])}
	}
	retrying, stop := context.WithCancel(context.Background())
	done := make(chan []outcome)
	go func() {
		done <- h.p.process(context.Background(), retrying, []*pubsub.Message{envelopeMsg(t, "m1", "bob")})
	}()
	<-attempted
	stop()
	select {
	case out := <-done:
		if out[0] != nack {
			t.Fatalf("outcome %v", out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Handle kept waiting for its retry after shutdown began")
	}
	if testutil.ToFloat64(h.m.Nacked.WithLabelValues("shutdown")) != 1 {
		t.Error("nacked{shutdown} not counted")
	}
}

// A poison message whose dead letter cannot be published is nacked, and so
// is everything behind it; what is ahead of it is processed.
func TestDeadLetterPublishFailureNacksTheRest(t *testing.T) {
	h := newHarness(t, nil)
	h.dl.err = errors.New("pubsub down")
	outs := h.handle(envelopeMsg(t, "m1", "bob"), &pubsub.Message{ID: "x", Data: []byte{0xff}}, envelopeMsg(t, "m2", "bob"))
	if !slices.Equal(outs, []outcome{ack, nack, nack}) {
		t.Fatalf("outcomes %v", outs)
	}
	if got := h.at.seen(); fmt.Sprint(got) != "[[m1]]" {
		t.Fatalf("attempts %v", got)
	}
}

func TestFirstFailureTimeSurvivesRedelivery(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retry.Budget = 5 * time.Millisecond })
	h.at.run = func(_ int, ids []string) []error { return []error{unavailable(ids[0])} }
	t0, base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Now()
	h.p.now = func() time.Time { return t0.Add(time.Since(base)) }
	if out := h.handle(envelopeMsg(t, "m1", "bob")); out[0] != nack {
		t.Fatalf("first attempt: %v", out)
	}
	h.p.now = time.Now
	last := envelopeMsg(t, "m1", "bob")
	five := 5
	last.DeliveryAttempt = &five
	if out := h.handle(last); out[0] != deadLettered {
		t.Fatalf("last attempt: %v", out)
	}
	if got := h.dl.letters[0].FirstFailure; got.Before(t0) || got.After(t0.Add(time.Minute)) {
		t.Fatalf("first failure %s, want %s", got, t0)
	}
}

// The receiver sees two outcomes: a processed or dead-lettered message is
// acked, every other one nacked.
func TestHandleTellsTheReceiverAckOrNack(t *testing.T) {
	h := newHarness(t, nil)
	h.dl.err = errors.New("pubsub down")
	outs := h.p.Handle(context.Background(), context.Background(), []*pubsub.Message{envelopeMsg(t, "m1", "bob"), {ID: "x", Data: []byte{0xff}}})
	if !slices.Equal(outs, []receiver.Outcome{receiver.Ack, receiver.Nack}) {
		t.Fatalf("outcomes %v", outs)
	}
	h.dl.err = nil
	if outs := h.p.Handle(context.Background(), context.Background(), []*pubsub.Message{{ID: "y", Data: []byte{0xff}}}); outs[0] != receiver.Ack {
		t.Fatalf("dead-lettered message: %v", outs)
	}
}

// A configuration the policies cannot work with is refused.
func TestNewRefusesAnUnusableConfig(t *testing.T) {
	if _, err := New(Config{}, (&fakeAttempts{}).attempt, &fakeDL{}, metrics.New(prometheus.NewRegistry()), nil); err == nil {
		t.Fatal("a zero Config accepted")
	}
}
