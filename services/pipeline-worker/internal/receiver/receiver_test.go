package receiver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/courierhq/courier/services/pipeline-worker/internal/backoff"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
	"github.com/courierhq/courier/services/pipeline-worker/internal/processor"
)

type fakeSub struct {
	receive func(ctx context.Context, f func(context.Context, *pubsub.Message)) error
}

func (f fakeSub) Receive(ctx context.Context, fn func(context.Context, *pubsub.Message)) error {
	return f.receive(ctx, fn)
}

type handlerFunc func(ctx context.Context, stop <-chan struct{}, m *pubsub.Message) processor.Outcome

func (h handlerFunc) Handle(ctx context.Context, stop <-chan struct{}, m *pubsub.Message) processor.Outcome {
	return h(ctx, stop, m)
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// Receive returning an error is called again after a backoff, and readiness
// reports the failure meanwhile.
func TestReceiveIsRestartedAfterErrors(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	var calls atomic.Int32
	healthy := make(chan struct{})
	var r *Receiver
	sub := fakeSub{receive: func(ctx context.Context, _ func(context.Context, *pubsub.Message)) error {
		switch calls.Add(1) {
		case 1, 2:
			return errors.New("stream broke")
		}
		if err := r.Check(ctx); err != nil {
			t.Errorf("still unready while receiving: %v", err)
		}
		close(healthy)
		<-ctx.Done()
		return nil
	}}
	r = New(sub, nil, Config{Restart: backoff.Policy{Initial: 20 * time.Millisecond, Max: 40 * time.Millisecond}, DrainTimeout: time.Second}, m, discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-healthy:
	case <-time.After(10 * time.Second):
		t.Fatal("Receive was not restarted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.ReceiveRestarts); got != 2 {
		t.Fatalf("restarts = %v", got)
	}
}

func TestCheckReportsFailureWhileWaiting(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	failed := make(chan struct{}, 1)
	sub := fakeSub{receive: func(context.Context, func(context.Context, *pubsub.Message)) error {
		select {
		case failed <- struct{}{}:
		default:
		}
		return errors.New("subscription not found")
	}}
	r := New(sub, nil, Config{Restart: backoff.Policy{Initial: time.Hour, Max: time.Hour}}, m, discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	<-failed
	deadline := time.Now().Add(5 * time.Second)
	for r.Check(ctx) == nil {
		if time.Now().After(deadline) {
			t.Fatal("Check never reported the failing Receive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // the backoff wait ends at once
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Run gives up on a handler that ignores cancellation, DrainTimeout plus a
// margin after shutdown began, instead of hanging the process.
func TestRunAbandonsAHandlerThatNeverReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the hard-stop margin")
	}
	m := metrics.New(prometheus.NewRegistry())
	started := make(chan struct{})
	block := make(chan struct{})
	defer close(block)
	sub := fakeSub{receive: func(ctx context.Context, f func(context.Context, *pubsub.Message)) error {
		go f(ctx, &pubsub.Message{})
		<-block // like Receive waiting for its callbacks
		return nil
	}}
	h := handlerFunc(func(context.Context, <-chan struct{}, *pubsub.Message) processor.Outcome {
		close(started)
		<-block
		return processor.Nack
	})
	r := New(sub, h, Config{DrainTimeout: 10 * time.Millisecond}, m, discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	<-started
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("abandoning in-flight messages was not reported")
		}
	case <-time.After(hardStopMargin + 5*time.Second):
		t.Fatal("Run hung")
	}
}

// Attempts keep running after shutdown begins (the work context lives until
// the drain deadline), while the stop channel is closed at once.
func TestHandlersGetWorkContextAndStopSignal(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	results := make(chan string, 2)
	sub := fakeSub{receive: func(ctx context.Context, f func(context.Context, *pubsub.Message)) error {
		<-ctx.Done()
		f(ctx, &pubsub.Message{}) // a message still in hand at shutdown
		return nil
	}}
	h := handlerFunc(func(ctx context.Context, stop <-chan struct{}, _ *pubsub.Message) processor.Outcome {
		select {
		case <-stop:
			results <- "stop closed"
		default:
			results <- "stop open"
		}
		if ctx.Err() == nil {
			results <- "work alive"
		} else {
			results <- "work cancelled"
		}
		return processor.Ack
	})
	r := New(sub, h, Config{DrainTimeout: time.Minute}, m, discard)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := <-results, <-results; a != "stop closed" || b != "work alive" {
		t.Fatalf("handler saw %q, %q", a, b)
	}
}
