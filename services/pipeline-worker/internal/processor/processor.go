// Package processor is the worker's policy: it takes runs of one sender's
// ingress messages to their end and says, for each, whether to ack it
// (done, or dead-lettered) or nack it (hand it back to Pub/Sub). Decoding
// and validation come first: what can never be valid is dead-lettered at
// once. The valid messages go through attempts (package attempt: commit,
// then fan-out); around them this package alone decides what happens on
// failure — retry in process with backoff (the worker's one retry layer),
// recover a panic as a transient failure, dead-letter a permanent failure,
// or nack once the retry budget is spent.
//
// Order: a run is one sender's messages in delivery order. A message that
// is retried holds back every later message of its run (an attempt never
// commits a message ahead of an earlier one that is not stored yet), and a
// nacked message takes every later message of its run that is not done
// with it, so Pub/Sub redelivers them in order.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/backoff"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/pipeline-worker/internal/attempt"
	"github.com/courierhq/courier/services/pipeline-worker/internal/classify"
	"github.com/courierhq/courier/services/pipeline-worker/internal/deadletter"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// Attempter makes one attempt at a run of valid messages (attempt.Runner):
// one error per message, nil for a message that is done.
type Attempter interface {
	Run(ctx context.Context, msgs []*attempt.Message) []error
}

// DeadLetterer sends a message to the dead-letter topic and returns once it
// is confirmed.
type DeadLetterer interface {
	Send(ctx context.Context, m *pubsub.Message, l deadletter.Letter) error
}

// Outcome is what to do with a message once Handle returns.
type Outcome int

const (
	Ack          Outcome = iota // processed
	Nack                        // hand back to Pub/Sub for redelivery
	DeadLettered                // published to the dead-letter topic: ack
)

func (o Outcome) String() string {
	switch o {
	case Ack:
		return "ack"
	case DeadLettered:
		return "dead_letter"
	}
	return "nack"
}

// Config tunes the processor.
type Config struct {
	// Subscription is the ingress subscription id (span names, dead letters).
	Subscription string
	// MaxDeliveryAttempts is the subscription's dead-letter threshold. On
	// that attempt a transient failure that outlives the retry budget is
	// dead-lettered by the worker itself (reason "exhausted"): the Pub/Sub
	// emulator never dead-letters on ordered subscriptions, and our letter
	// carries the reason. 0 disables it.
	MaxDeliveryAttempts int
	Limits              wire.Limits
	Retry               backoff.Policy
	// AttemptTimeout bounds one attempt (the wait for the commit, the
	// commit, the fan-out publish), so a frozen dependency turns into a
	// transient failure instead of a hung message.
	AttemptTimeout time.Duration
}

// Processor handles runs of ingress messages. It is safe for concurrent
// use.
type Processor struct {
	cfg      Config
	attempts Attempter
	dl       DeadLetterer
	metrics  *metrics.Metrics
	log      *slog.Logger
	failures *firstFailures
	now      func() time.Time
}

// New returns a Processor.
func New(cfg Config, attempts Attempter, dl DeadLetterer, m *metrics.Metrics, log *slog.Logger) *Processor {
	return &Processor{
		cfg: cfg, attempts: attempts, dl: dl, metrics: m, log: log,
		failures: newFirstFailures(10000),
		now:      time.Now,
	}
}

// state is one message being handled.
type state struct {
	m       *pubsub.Message
	ctx     context.Context // carries its processing span
	span    trace.Span
	log     *slog.Logger
	msg     *attempt.Message // nil when it never became valid
	lastErr error
	out     Outcome
}

// Handle processes ms, one sender's messages in delivery order (or a single
// message), and returns what to do with each; it never acks or nacks
// itself. Attempts run under ctx, which the caller cancels only when it
// must abandon work (the shutdown deadline). Once stopRetrying is closed (a
// graceful shutdown began) an attempt in progress finishes but no retry
// starts: the messages are nacked for another worker.
func (p *Processor) Handle(ctx context.Context, stopRetrying <-chan struct{}, ms []*pubsub.Message) []Outcome {
	start := p.now()
	states := make([]*state, len(ms))
	for i, m := range ms {
		p.metrics.InFlight.Inc()
		if !m.PublishTime.IsZero() {
			p.metrics.Age.Observe(max(0, start.Sub(m.PublishTime).Seconds()))
		}
		sctx, span := pubsubx.StartProcess(ctx, p.cfg.Subscription, m)
		states[i] = &state{m: m, ctx: sctx, span: span, out: Nack,
			log: p.log.With("courier_message_id", m.Attributes[wire.AttrMessageID], "pubsub_message_id", m.ID,
				"delivery_attempt", pubsubx.DeliveryAttempt(m))}
	}
	p.handle(ctx, stopRetrying, states, start)
	outs := make([]Outcome, len(ms))
	end := p.now()
	for i, st := range states {
		outs[i] = st.out
		st.span.SetAttributes(attribute.String("courier.outcome", st.out.String()))
		st.span.End()
		p.metrics.Duration.WithLabelValues(st.out.String()).Observe(end.Sub(start).Seconds())
		p.metrics.InFlight.Dec()
	}
	return outs
}

func (p *Processor) handle(ctx context.Context, stopRetrying <-chan struct{}, states []*state, start time.Time) {
	// What can never be valid is dead-lettered at once and holds nothing
	// up. If its dead letter cannot be published it is nacked, and so is
	// everything behind it (left at Nack).
	var pending []*state
	for _, st := range states {
		env, err := wire.DecodeEnvelope(st.m.Data, st.m.Attributes, p.cfg.Limits)
		if err != nil {
			if !p.fail(st, err) && st.out == Nack {
				break
			}
			continue
		}
		st.msg = &attempt.Message{Ctx: st.ctx, Env: env}
		pending = append(pending, st)
	}
	for retry := 0; len(pending) > 0; retry++ {
		errs := p.attempt(ctx, pending)
		var failed []*state
		stopped := false // a message was nacked: nothing behind it may go on
		for k, st := range pending {
			switch err := errs[k]; {
			case err == nil:
				st.out = Ack
				p.failures.forget(st.m.ID)
				p.metrics.Processed.WithLabelValues(st.msg.Result()).Inc()
				st.log.DebugContext(st.ctx, "message processed", "result", st.msg.Result(), "retries", retry)
			case stopped:
				// Left at Nack, with the message ahead of it.
			case len(failed) > 0:
				// Behind a message that will be retried: retried with it,
				// whatever its own failure (its turn comes after).
				st.lastErr = err
				failed = append(failed, st)
			case p.fail(st, err):
				failed = append(failed, st)
			default:
				stopped = st.out == Nack
			}
		}
		pending = failed
		if len(pending) == 0 {
			return
		}
		wait, ok := p.cfg.Retry.Next(retry, start, p.now(), nil)
		if !ok {
			p.giveUp(pending)
			return
		}
		pending[0].log.InfoContext(pending[0].ctx, "transient failure: retrying", "err", pending[0].lastErr,
			"retry_in", wait.String(), "retry", retry+1, "messages", len(pending))
		if !sleep(ctx, stopRetrying, wait) {
			for _, st := range pending {
				p.metrics.Nacked.WithLabelValues("shutdown").Inc()
				st.span.SetStatus(codes.Error, "nacked on shutdown")
			}
			return
		}
		p.metrics.Retries.Add(float64(len(pending)))
	}
}

// fail records a failed attempt at st and reports whether to retry it
// (a transient failure). A permanent failure is dead-lettered at once:
// st.out becomes DeadLettered, or stays Nack when the dead letter could not
// be published.
func (p *Processor) fail(st *state, err error) bool {
	st.lastErr = err
	class, reason := classify.Classify(err)
	p.metrics.Failures.WithLabelValues(class.String()).Inc()
	st.span.RecordError(err, trace.WithAttributes(attribute.String("courier.failure.class", class.String())))
	p.failures.first(st.m.ID, p.now())
	if class == classify.Permanent {
		st.log.WarnContext(st.ctx, "permanent failure: dead-lettering", "reason", reason, "err", err)
		st.out = p.deadLetter(st, reason, err)
		return false
	}
	var pe *classify.PanicError
	if errors.As(err, &pe) {
		st.log.ErrorContext(st.ctx, "panic while processing", "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	}
	return true
}

// giveUp ends messages whose transient failures outlived the retry budget:
// on their last delivery attempt they are dead-lettered ("exhausted"); the
// first one that is not, and everything behind it, is nacked.
func (p *Processor) giveUp(pending []*state) {
	for k, st := range pending {
		if p.cfg.MaxDeliveryAttempts > 0 && pubsubx.DeliveryAttempt(st.m) >= p.cfg.MaxDeliveryAttempts {
			st.log.WarnContext(st.ctx, "transient failure on the last delivery attempt: dead-lettering", "err", st.lastErr)
			if st.out = p.deadLetter(st, classify.ReasonExhausted, st.lastErr); st.out == Nack {
				return
			}
			continue
		}
		for _, rest := range pending[k:] {
			rest.log.WarnContext(rest.ctx, "transient failure outlived the retry budget: nacking", "err", rest.lastErr)
			p.metrics.Nacked.WithLabelValues("retry_budget").Inc()
			rest.span.SetStatus(codes.Error, "nacked after retry budget")
		}
		return
	}
}

// attempt runs one attempt at pending within AttemptTimeout; a panic
// becomes a transient *classify.PanicError for every message not done.
func (p *Processor) attempt(ctx context.Context, pending []*state) (errs []error) {
	msgs := make([]*attempt.Message, len(pending))
	for i, st := range pending {
		msgs[i] = st.msg
	}
	defer func() {
		if r := recover(); r != nil {
			perr := &classify.PanicError{Value: r, Stack: debug.Stack()}
			errs = make([]error, len(msgs))
			for i, m := range msgs {
				if !m.Done() {
					errs[i] = perr
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
	defer cancel()
	return p.attempts.Run(ctx, msgs)
}

func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	select {
	case <-stop:
		return false
	default:
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return backoff.Sleep(ctx, d)
}

func (p *Processor) deadLetter(st *state, reason string, cause error) Outcome {
	// A fresh budget for the dead-letter publish: the attempt that failed
	// may have used the whole of its own.
	dctx, cancel := context.WithTimeout(st.ctx, p.cfg.AttemptTimeout)
	defer cancel()
	err := p.dl.Send(dctx, st.m, deadletter.Letter{
		Reason: reason, Err: cause, Attempt: pubsubx.DeliveryAttempt(st.m), FirstFailure: p.failures.first(st.m.ID, p.now()),
	})
	if err != nil {
		// Pub/Sub redelivers it; a permanent failure is dead-lettered again
		// then, and the subscription's own policy is the last resort.
		st.log.ErrorContext(st.ctx, "dead-letter publish failed: nacking", "reason", reason, "err", err)
		p.metrics.Nacked.WithLabelValues("dead_letter_failed").Inc()
		st.span.SetStatus(codes.Error, "dead-letter publish failed")
		return Nack
	}
	p.failures.forget(st.m.ID)
	p.metrics.DeadLettered.WithLabelValues(reason).Inc()
	st.span.SetStatus(codes.Error, "dead-lettered: "+reason)
	st.log.InfoContext(st.ctx, "message dead-lettered", "reason", reason)
	return DeadLettered
}

// firstFailures remembers, per Pub/Sub message id, when this process first
// saw the message fail, for the dead letter's first-failure time (a message
// nacked here may come back here). Bounded: entries of messages that never
// came back are dropped after forgetAfter, and when still full a new failure
// is not remembered (its letter then says "now").
type firstFailures struct {
	mu  sync.Mutex
	max int
	at  map[string]time.Time
}

const forgetAfter = time.Hour

func newFirstFailures(max int) *firstFailures {
	return &firstFailures{max: max, at: map[string]time.Time{}}
}

func (f *firstFailures) first(id string, now time.Time) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t, ok := f.at[id]; ok {
		return t
	}
	if len(f.at) >= f.max {
		for k, t := range f.at {
			if now.Sub(t) > forgetAfter {
				delete(f.at, k)
			}
		}
	}
	if len(f.at) < f.max {
		f.at[id] = now
	}
	return now
}

func (f *firstFailures) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.at, id)
}
