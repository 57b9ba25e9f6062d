// Package processor takes one ingress message to its end: decode and
// validate the envelope, commit it to Firestore, publish its delivery to the
// fan-out topic, and say whether to ack it (done, or dead-lettered) or nack
// it (hand it back to Pub/Sub). Transient failures are retried in process
// with backoff; permanent ones are dead-lettered at once.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/routing"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/backoff"
	"github.com/courierhq/courier/services/pipeline-worker/internal/classify"
	"github.com/courierhq/courier/services/pipeline-worker/internal/deadletter"
	"github.com/courierhq/courier/services/pipeline-worker/internal/envelope"
	"github.com/courierhq/courier/services/pipeline-worker/internal/keylock"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

const tracerName = "github.com/courierhq/courier/services/pipeline-worker/internal/processor"

// DeliverySchema is the courier_schema attribute of a fan-out delivery.
var DeliverySchema = string((&courierv1.Delivery{}).ProtoReflect().Descriptor().FullName())

// Store is the part of inbox.Store the processor uses.
type Store interface {
	Commit(ctx context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error)
	FannedOut(ctx context.Context, id string) (bool, error)
	MarkFannedOut(ctx context.Context, id string) error
}

// Router finds the ws-edge pods holding sessions of users (routing.Table),
// for targeted routing.
type Router interface {
	Pods(ctx context.Context, users []string) ([]string, error)
}

// PublishFunc publishes msg and waits for the server's confirmation.
type PublishFunc func(ctx context.Context, msg *pubsub.Message, courierID string) error

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
	Limits              envelope.Limits
	Retry               backoff.Policy
	// AttemptTimeout bounds one attempt (commit + publish), so a frozen
	// dependency turns into a transient failure instead of a hung message.
	AttemptTimeout time.Duration
	// Router, when set, routes each delivery to the pods holding its
	// recipients (pkg/routing); nil publishes every delivery to all pods.
	Router Router
}

// Processor handles ingress messages. It is safe for concurrent use.
type Processor struct {
	cfg      Config
	store    Store
	publish  PublishFunc
	dl       DeadLetterer
	locks    *keylock.Locker
	metrics  *metrics.Metrics
	log      *slog.Logger
	tracer   trace.Tracer
	failures *firstFailures
	now      func() time.Time
}

// New returns a Processor. publish publishes to the deliveries topic.
func New(cfg Config, store Store, publish PublishFunc, dl DeadLetterer, m *metrics.Metrics, log *slog.Logger) *Processor {
	return &Processor{
		cfg: cfg, store: store, publish: publish, dl: dl, metrics: m, log: log,
		locks:    keylock.New(),
		tracer:   otel.Tracer(tracerName),
		failures: newFirstFailures(10000),
		now:      time.Now,
	}
}

// Handle processes m and returns what to do with it; it never acks or nacks
// itself. Attempts run under ctx, which the caller cancels only when it must
// abandon work (the shutdown deadline). Once stopRetrying is closed (a
// graceful shutdown began) an attempt in progress finishes but no retry
// starts: the message is nacked for another worker.
func (p *Processor) Handle(ctx context.Context, stopRetrying <-chan struct{}, m *pubsub.Message) Outcome {
	start := p.now()
	p.metrics.InFlight.Inc()
	defer p.metrics.InFlight.Dec()
	if !m.PublishTime.IsZero() {
		p.metrics.Age.Observe(max(0, start.Sub(m.PublishTime).Seconds()))
	}
	ctx, span := pubsubx.StartProcess(ctx, p.cfg.Subscription, m)
	defer span.End()
	log := p.log.With("courier_message_id", m.Attributes[pubsubx.AttrMessageID], "pubsub_message_id", m.ID,
		"delivery_attempt", pubsubx.DeliveryAttempt(m))

	out := p.handle(ctx, stopRetrying, m, start, span, log)
	span.SetAttributes(attribute.String("courier.outcome", out.String()))
	p.metrics.Duration.WithLabelValues(out.String()).Observe(p.now().Sub(start).Seconds())
	return out
}

func (p *Processor) handle(ctx context.Context, stopRetrying <-chan struct{}, m *pubsub.Message, start time.Time, span trace.Span, log *slog.Logger) Outcome {
	for retry := 0; ; retry++ {
		result, err := p.attempt(ctx, m)
		if err == nil {
			p.failures.forget(m.ID)
			p.metrics.Processed.WithLabelValues(result).Inc()
			log.DebugContext(ctx, "message processed", "result", result, "retries", retry)
			return Ack
		}
		class, reason := classify.Classify(err)
		p.metrics.Failures.WithLabelValues(class.String()).Inc()
		span.RecordError(err, trace.WithAttributes(attribute.String("courier.failure.class", class.String())))
		first := p.failures.first(m.ID, p.now())
		if class == classify.Permanent {
			log.WarnContext(ctx, "permanent failure: dead-lettering", "reason", reason, "err", err)
			return p.deadLetter(ctx, m, reason, err, first, span, log)
		}
		var pe *classify.PanicError
		if errors.As(err, &pe) {
			log.ErrorContext(ctx, "panic while processing", "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
		}
		wait, ok := p.cfg.Retry.Next(retry, start, p.now(), nil)
		if !ok {
			if p.cfg.MaxDeliveryAttempts > 0 && pubsubx.DeliveryAttempt(m) >= p.cfg.MaxDeliveryAttempts {
				log.WarnContext(ctx, "transient failure on the last delivery attempt: dead-lettering", "err", err)
				return p.deadLetter(ctx, m, classify.ReasonExhausted, err, first, span, log)
			}
			log.WarnContext(ctx, "transient failure outlived the retry budget: nacking", "err", err, "retries", retry)
			p.metrics.Nacked.WithLabelValues("retry_budget").Inc()
			span.SetStatus(codes.Error, "nacked after retry budget")
			return Nack
		}
		log.InfoContext(ctx, "transient failure: retrying", "err", err, "retry_in", wait.String(), "retry", retry+1)
		select {
		case <-stopRetrying:
			p.metrics.Nacked.WithLabelValues("shutdown").Inc()
			span.SetStatus(codes.Error, "nacked on shutdown")
			return Nack
		default:
		}
		if !sleep(ctx, stopRetrying, wait) {
			p.metrics.Nacked.WithLabelValues("shutdown").Inc()
			span.SetStatus(codes.Error, "nacked on shutdown")
			return Nack
		}
		p.metrics.Retries.Inc()
	}
}

func sleep(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
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

func (p *Processor) deadLetter(ctx context.Context, m *pubsub.Message, reason string, cause error, first time.Time, span trace.Span, log *slog.Logger) Outcome {
	// A fresh budget for the dead-letter publish: the attempt that failed
	// may have used the whole of its own.
	dctx, cancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
	defer cancel()
	err := p.dl.Send(dctx, m, deadletter.Letter{
		Reason: reason, Err: cause, Attempt: pubsubx.DeliveryAttempt(m), FirstFailure: first,
	})
	if err != nil {
		// Pub/Sub redelivers it; a permanent failure is dead-lettered again
		// then, and the subscription's own policy is the last resort.
		log.ErrorContext(ctx, "dead-letter publish failed: nacking", "reason", reason, "err", err)
		p.metrics.Nacked.WithLabelValues("dead_letter_failed").Inc()
		span.SetStatus(codes.Error, "dead-letter publish failed")
		return Nack
	}
	p.failures.forget(m.ID)
	p.metrics.DeadLettered.WithLabelValues(reason).Inc()
	span.SetStatus(codes.Error, "dead-lettered: "+reason)
	log.InfoContext(ctx, "message dead-lettered", "reason", reason)
	return DeadLettered
}

// attempt runs one try; a panic becomes a transient *classify.PanicError.
func (p *Processor) attempt(ctx context.Context, m *pubsub.Message) (result string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &classify.PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
	defer cancel()

	env, err := envelope.Decode(m.Data, m.Attributes, p.cfg.Limits)
	if err != nil {
		return "", err
	}
	stored, created, err := p.commit(ctx, env)
	if err != nil {
		return "", err
	}
	result = "stored"
	if !created {
		// Stored before: by an earlier delivery of this message (a
		// redelivery, a replay) or of the same id (a client retry). Publish
		// its delivery only if that earlier run did not get that far.
		done, err := p.fannedOut(ctx, env.MessageId)
		if err != nil {
			return "", err
		}
		if done {
			return "duplicate", nil
		}
		result = "refanned"
	}
	if err := p.publishDelivery(ctx, env, stored); err != nil {
		return "", err
	}
	// The delivery is out; failing to record that only risks publishing it
	// again on a redelivery, so it does not fail the message.
	if err := p.markFannedOut(ctx, env.MessageId); err != nil {
		p.log.WarnContext(ctx, "could not record the fan-out", "courier_message_id", env.MessageId, "err", err)
	}
	return result, nil
}

func (p *Processor) commit(ctx context.Context, env *courierv1.Envelope) (inbox.Stored, bool, error) {
	ctx, span := p.startFirestoreSpan(ctx, "firestore commit", env.MessageId,
		attribute.Int("courier.recipients.count", len(env.Recipients)))
	defer span.End()
	// Serialize this process's commits per recipient (see package keylock);
	// the wait is inside the span because it is part of the commit's cost.
	unlock, err := p.locks.Lock(ctx, env.Recipients...)
	if err != nil {
		return p.fail(span, fmt.Errorf("wait for recipients' lock: %w", err))
	}
	defer unlock()
	stored, created, err := p.store.Commit(ctx, env)
	if err != nil {
		return p.fail(span, err)
	}
	span.SetAttributes(attribute.Bool("courier.created", created))
	return stored, created, nil
}

func (p *Processor) fail(span trace.Span, err error) (inbox.Stored, bool, error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, "commit failed")
	return inbox.Stored{}, false, err
}

func (p *Processor) fannedOut(ctx context.Context, id string) (bool, error) {
	ctx, span := p.startFirestoreSpan(ctx, "firestore get fan-out mark", id)
	defer span.End()
	done, err := p.store.FannedOut(ctx, id)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "read failed")
	}
	return done, err
}

func (p *Processor) markFannedOut(ctx context.Context, id string) error {
	ctx, span := p.startFirestoreSpan(ctx, "firestore mark fanned out", id)
	defer span.End()
	err := p.store.MarkFannedOut(ctx, id)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "write failed")
	}
	return err
}

func (p *Processor) startFirestoreSpan(ctx context.Context, name, id string, extra ...attribute.KeyValue) (context.Context, trace.Span) {
	attrs := append([]attribute.KeyValue{
		attribute.String("db.system.name", "gcp.firestore"),
		pubsubx.KeyCourierMessageID.String(id),
	}, extra...)
	return p.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// DeliveryMessage builds the fan-out message of a stored envelope. Its
// ordering key is the sender, like the ingress message's, so an edge
// subscription with ordering enabled sees one sender's messages in order.
func DeliveryMessage(env *courierv1.Envelope, stored inbox.Stored) (*pubsub.Message, error) {
	data, err := proto.Marshal(stored.Delivery())
	if err != nil {
		return nil, fmt.Errorf("encode delivery %s: %w", env.MessageId, err)
	}
	return &pubsub.Message{
		Data:        data,
		OrderingKey: env.Sender,
		Attributes: map[string]string{
			pubsubx.AttrMessageID:   env.MessageId,
			pubsubx.AttrSender:      env.Sender,
			pubsubx.AttrRecipients:  strings.Join(stored.Message.GetTo(), ","),
			pubsubx.AttrSchema:      DeliverySchema,
			pubsubx.AttrContentType: "application/protobuf",
		},
	}, nil
}

func (p *Processor) publishDelivery(ctx context.Context, env *courierv1.Envelope, stored inbox.Stored) error {
	msg, err := DeliveryMessage(env, stored)
	if err != nil {
		return err
	}
	if p.cfg.Router != nil {
		// After the commit, never before: package routing explains why
		// this order loses nothing to a session that is just opening.
		p.route(ctx, env, msg)
	}
	if err := p.publish(ctx, msg, env.MessageId); err != nil {
		return fmt.Errorf("publish delivery %s: %w", env.MessageId, err)
	}
	return nil
}

// route marks msg with the pods holding env's recipients. When presence
// cannot be read the delivery goes out unrouted, to every pod: slower, never
// lost.
func (p *Processor) route(ctx context.Context, env *courierv1.Envelope, msg *pubsub.Message) {
	ctx, span := p.startFirestoreSpan(ctx, "firestore read presence", env.MessageId)
	defer span.End()
	pods, err := p.cfg.Router.Pods(ctx, env.Recipients)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "presence unknown")
		p.metrics.Routing.WithLabelValues("unrouted").Inc()
		p.log.WarnContext(ctx, "presence unknown; delivery goes to every edge pod", "courier_message_id", env.MessageId, "err", err)
		return
	}
	routing.Mark(msg.Attributes, pods)
	span.SetAttributes(attribute.Int("courier.route.pods", len(pods)))
	if len(pods) == 0 {
		p.metrics.Routing.WithLabelValues("nowhere").Inc()
		return
	}
	p.metrics.Routing.WithLabelValues("routed").Inc()
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
