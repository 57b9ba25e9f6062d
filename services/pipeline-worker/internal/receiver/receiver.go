// Package receiver pulls the ingress subscription with explicit flow control
// and hands each message to a handler, then acks or nacks it as the handler
// says. When Receive returns with an error (the stream broke, the
// subscription is missing) it calls Receive again after a capped backoff.
// On shutdown it stops pulling, lets the messages in flight finish (or be
// nacked) within a drain deadline, and returns.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/services/pipeline-worker/internal/backoff"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
	"github.com/courierhq/courier/services/pipeline-worker/internal/processor"
)

// Handler processes one message (processor.Processor).
type Handler interface {
	Handle(ctx context.Context, stopRetrying <-chan struct{}, m *pubsub.Message) processor.Outcome
}

// Subscriber is the part of *pubsub.Subscriber the receiver uses.
type Subscriber interface {
	Receive(ctx context.Context, f func(context.Context, *pubsub.Message)) error
}

// Config tunes the receiver.
type Config struct {
	// Settings are applied to the subscriber before each Receive.
	Settings pubsub.ReceiveSettings
	// DrainTimeout bounds the wait for in-flight messages once shutdown
	// begins; after it their attempts are cancelled and they are nacked.
	DrainTimeout time.Duration
	// Restart spaces Receive restarts after errors (Budget is unused).
	Restart backoff.Policy
}

// Receiver runs the receive loop.
type Receiver struct {
	sub     Subscriber
	h       Handler
	cfg     Config
	metrics *metrics.Metrics
	log     *slog.Logger

	mu      sync.Mutex
	lastErr error // the error of the last Receive, until one runs cleanly
}

// New returns a Receiver of sub. When sub is a *pubsub.Subscriber its
// ReceiveSettings are set from cfg.
func New(sub Subscriber, h Handler, cfg Config, m *metrics.Metrics, log *slog.Logger) *Receiver {
	if s, ok := sub.(*pubsub.Subscriber); ok {
		s.ReceiveSettings = cfg.Settings
	}
	return &Receiver{sub: sub, h: h, cfg: cfg, metrics: m, log: log}
}

// healthyAfter is how long Receive must have run before a later failure
// restarts the backoff from its first step.
const healthyAfter = time.Minute

// Run receives until ctx is done, then drains and returns nil. It returns
// an error only when a handler outlives the drain deadline by more than
// hardStopMargin, and Receive is abandoned.
func (r *Receiver) Run(ctx context.Context) error {
	// Attempts run under work, not ctx: cancelling ctx stops pulling, while
	// the messages already in hand get DrainTimeout to finish.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		r.log.Info("shutdown: stopped pulling; draining in-flight messages", "drain_timeout", r.cfg.DrainTimeout.String())
		time.AfterFunc(r.cfg.DrainTimeout, cancelWork)
	})
	defer stop()

	stopRetrying := ctx.Done()
	handle := func(_ context.Context, m *pubsub.Message) {
		// The client's callback context is cancelled as soon as shutdown
		// begins, so it is not the one attempts run under.
		switch r.h.Handle(work, stopRetrying, m) {
		case processor.Ack, processor.DeadLettered:
			m.Ack()
		default:
			m.Nack()
		}
	}

	done := make(chan error, 1)
	go func() { done <- r.loop(ctx, handle) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	// Receive returns once every handler has returned and the acks are
	// sent. Handlers return soon after DrainTimeout (their attempts are
	// cancelled); this bound only covers one that ignores cancellation.
	hard := time.NewTimer(r.cfg.DrainTimeout + hardStopMargin)
	defer hard.Stop()
	select {
	case err := <-done:
		return err
	case <-hard.C:
		return fmt.Errorf("in-flight messages still running %s after shutdown began; abandoning them (Pub/Sub redelivers them)",
			r.cfg.DrainTimeout+hardStopMargin)
	}
}

// hardStopMargin is how long after the drain deadline Run gives up on
// Receive returning.
const hardStopMargin = 5 * time.Second

func (r *Receiver) loop(ctx context.Context, handle func(context.Context, *pubsub.Message)) error {
	for failures := 0; ; {
		started := time.Now()
		err := r.sub.Receive(ctx, handle)
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("receive during shutdown: %w", err)
			}
			return nil
		}
		if err == nil {
			err = errors.New("receive returned without an error before shutdown")
		}
		r.setErr(err)
		if time.Since(started) > healthyAfter {
			failures = 0
		}
		wait := r.cfg.Restart.Delay(failures, nil)
		failures++
		r.metrics.ReceiveRestarts.Inc()
		r.log.Error("receive stopped; restarting", "err", err, "restart_in", wait.String(), "failures", failures)
		if !backoff.Sleep(ctx, wait) {
			return nil
		}
		r.setErr(nil)
	}
}

func (r *Receiver) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastErr = err
}

// Check reports the last Receive error while the receiver waits to restart
// it; for /readyz.
func (r *Receiver) Check(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastErr != nil {
		return fmt.Errorf("receive failing: %w", r.lastErr)
	}
	return nil
}
