package handler

import (
	"context"
	"fmt"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/wire"
	"github.com/courierhq/courier/services/pipeline-worker/internal/classify"
)

// fail records a failed attempt at m and reports whether to retry it (a
// transient failure). A permanent failure is dead-lettered at once: m.out
// becomes deadLettered, or stays nack when the dead letter could not be
// published.
func (p *Processor) fail(m *Message, err error) bool {
	m.lastErr = err
	class, reason := classify.Classify(err)
	p.metrics.Failures.WithLabelValues(class.String()).Inc()
	m.span.RecordError(err, trace.WithAttributes(attribute.String("courier.failure.class", class.String())))
	p.failures.first(m.m.ID, p.now())
	if class == classify.Permanent {
		m.log.WarnContext(m.ctx, "permanent failure: dead-lettering", "reason", reason, "err", err)
		m.out = p.deadLetter(m, reason, err)
		return false
	}
	return true
}

// giveUp ends messages whose transient failures outlived the retry budget:
// on their last delivery attempt they are dead-lettered ("exhausted"); the
// first one that is not, and everything behind it, is nacked.
func (p *Processor) giveUp(pending []*Message) {
	for k, m := range pending {
		if p.cfg.MaxDeliveryAttempts > 0 && pubsubx.DeliveryAttempt(m.m) >= p.cfg.MaxDeliveryAttempts {
			m.log.WarnContext(m.ctx, "transient failure on the last delivery attempt: dead-lettering", "err", m.lastErr)
			if m.out = p.deadLetter(m, classify.ReasonExhausted, m.lastErr); m.out == nack {
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

// deadLetter publishes m's dead letter and says how m ends.
func (p *Processor) deadLetter(m *Message, reason string, cause error) outcome {
	// A fresh budget for the dead-letter publish: the attempt that failed
	// may have used the whole of its own.
	dctx, cancel := context.WithTimeout(m.ctx, p.cfg.AttemptTimeout)
	defer cancel()
	err := p.dl.Send(dctx, m.m, wire.Letter{
		Reason: reason, Err: cause, Attempt: pubsubx.DeliveryAttempt(m.m), FirstFailure: p.failures.first(m.m.ID, p.now()),
	})
	if err != nil {
		// Pub/Sub redelivers it; a permanent failure is dead-lettered again
		// then, and the subscription's own policy is the last resort.
		m.log.ErrorContext(m.ctx, "dead-letter publish failed: nacking", "reason", reason, "err", err)
		p.metrics.Nacked.WithLabelValues("dead_letter_failed").Inc()
		m.span.SetStatus(codes.Error, "dead-letter publish failed")
		return nack
	}
	p.failures.forget(m.m.ID)
	p.metrics.DeadLettered.WithLabelValues(reason).Inc()
	m.span.SetStatus(codes.Error, "dead-lettered: "+reason)
	m.log.InfoContext(m.ctx, "message dead-lettered", "reason", reason)
	return deadLettered
}

// PublishFunc publishes msg and waits for the server's confirmation
// (pubsubx.Publish on the dead-letter topic in production).
type PublishFunc func(ctx context.Context, msg *pubsub.Message, courierID string) error

// DeadLetters publishes the ingress messages the worker gives up on to the
// dead-letter topic (format: wire.EncodeDeadLetter), where `courierctl dlq`
// lists, shows and replays them.
type DeadLetters struct {
	publish      PublishFunc
	subscription string
}

// NewDeadLetters returns a DeadLetters publishing with publish;
// subscription names the source subscription on the letters.
func NewDeadLetters(publish PublishFunc, subscription string) *DeadLetters {
	return &DeadLetters{publish: publish, subscription: subscription}
}

// Send publishes the dead letter of m in a span of its own and returns once
// Pub/Sub confirmed it; only then may the caller ack m.
func (w *DeadLetters) Send(ctx context.Context, m *pubsub.Message, l wire.Letter) error {
	l.Subscription = w.subscription
	id := m.Attributes[wire.AttrMessageID]
	ctx, span := otel.Tracer(tracerName).Start(ctx, "dead-letter", trace.WithAttributes(
		pubsubx.KeyCourierMessageID.String(id),
		attribute.String("courier.dead_letter.reason", l.Reason),
		attribute.Int("messaging.gcp_pubsub.message.delivery_attempt", l.Attempt),
	))
	defer span.End()
	if err := w.publish(ctx, wire.EncodeDeadLetter(m, l), id); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "dead-letter publish failed")
		return fmt.Errorf("dead-letter message %s (%s): %w", m.ID, l.Reason, err)
	}
	return nil
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
