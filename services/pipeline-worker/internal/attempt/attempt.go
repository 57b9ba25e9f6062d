// Package attempt is one attempt at a run of one sender's valid messages:
// commit those not stored yet (through the group commit, package batch),
// then publish, in order, the delivery of each stored one not published
// yet. It decides nothing about failures; package processor retries,
// dead-letters or nacks, and calls it again with the same Messages, which
// remember how far they got.
package attempt

import (
	"context"
	"fmt"
	"log/slog"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/routing"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/batch"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

const tracerName = "github.com/courierhq/courier/services/pipeline-worker/internal/attempt"

// Committer commits runs of messages (batch.Batcher).
type Committer interface {
	Commit(ctx context.Context, items []batch.Item) []batch.Result
}

// PublishFunc publishes deliveries in order and waits for every
// confirmation (pubsubx.PublishAll on the deliveries topic).
type PublishFunc func(out []pubsubx.Outgoing) []error

// Message is one valid message and how far its attempts got.
type Message struct {
	// Ctx carries the message's processing span.
	Ctx context.Context
	Env *courierv1.Envelope

	stored    *batch.Result // set once committed (or found stored)
	published bool
}

// Done reports whether the message is stored and its delivery published.
func (m *Message) Done() bool { return m.published }

// Result is "stored" for a message this worker stored, "duplicate" for one
// that was stored before (a redelivery, a replay, a repeat): its delivery
// was published again, nothing was written.
func (m *Message) Result() string {
	if m.stored != nil && !m.stored.Created {
		return "duplicate"
	}
	return "stored"
}

// Runner runs attempts.
type Runner struct {
	c       Committer
	publish PublishFunc
	routed  bool
	m       *metrics.Metrics
	log     *slog.Logger
	tracer  trace.Tracer
}

// New returns a Runner. routed says the committer reads presence (targeted
// routing): deliveries are then marked with their recipients' pods.
func New(c Committer, publish PublishFunc, routed bool, m *metrics.Metrics, log *slog.Logger) *Runner {
	return &Runner{c: c, publish: publish, routed: routed, m: m, log: log, tracer: otel.Tracer(tracerName)}
}

// Run makes one attempt at msgs (one sender's messages, in order) under
// ctx and returns one error per message, nil for a message that is done.
func (r *Runner) Run(ctx context.Context, msgs []*Message) []error {
	errs := make([]error, len(msgs))
	r.commit(ctx, msgs, errs)
	r.fanOut(ctx, msgs, errs)
	return errs
}

// commit stores the messages not stored yet, each inside its own
// "firestore commit" span (which includes the wait for its batch).
func (r *Runner) commit(ctx context.Context, msgs []*Message, errs []error) {
	var idx []int
	var items []batch.Item
	var spans []trace.Span
	for i, m := range msgs {
		if m.stored != nil {
			continue
		}
		sctx, span := r.tracer.Start(m.Ctx, "firestore commit", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", "gcp.firestore"),
				pubsubx.KeyCourierMessageID.String(m.Env.MessageId),
				attribute.Int("courier.recipients.count", len(m.Env.Recipients))))
		idx, items, spans = append(idx, i), append(items, batch.Item{Ctx: sctx, Env: m.Env}), append(spans, span)
	}
	if len(items) == 0 {
		return
	}
	results := r.c.Commit(ctx, items)
	for k, i := range idx {
		res, span := results[k], spans[k]
		if res.Err != nil {
			errs[i] = res.Err
			span.RecordError(res.Err)
			span.SetStatus(codes.Error, "commit failed")
		} else {
			msgs[i].stored = &res
			span.SetAttributes(attribute.Bool("courier.created", res.Created), attribute.Int("courier.batch.messages", res.BatchSize))
		}
		span.End()
	}
}

// fanOut publishes the delivery of every stored message not published
// yet, in order.
func (r *Runner) fanOut(ctx context.Context, msgs []*Message, errs []error) {
	var idx []int
	var out []pubsubx.Outgoing
	for i, m := range msgs {
		if m.stored == nil || m.published {
			continue
		}
		msg, err := wire.EncodeDelivery(m.stored.Stored.Delivery())
		if err != nil {
			errs[i] = err
			continue
		}
		if r.routed {
			r.route(m, msg)
		}
		idx = append(idx, i)
		// The attempt's deadline, the message's span.
		out = append(out, pubsubx.Outgoing{Ctx: trace.ContextWithSpan(ctx, trace.SpanFromContext(m.Ctx)), Msg: msg, CourierID: m.Env.MessageId})
	}
	if len(out) == 0 {
		return
	}
	for k, err := range r.publish(out) {
		i := idx[k]
		if err != nil {
			errs[i] = fmt.Errorf("publish delivery %s: %w", msgs[i].Env.MessageId, err)
			continue
		}
		msgs[i].published, errs[i] = true, nil
	}
}

// route marks msg with the pods holding m's recipients, as read after its
// batch's commit. When presence could not be read the delivery goes out
// unrouted, to every pod: slower, never lost.
func (r *Runner) route(m *Message, msg *pubsub.Message) {
	res := m.stored
	switch {
	case !res.Routed:
		r.m.Routing.WithLabelValues("unrouted").Inc()
		r.log.WarnContext(m.Ctx, "presence unknown; delivery goes to every edge pod", "courier_message_id", m.Env.MessageId, "err", res.RouteErr)
	case len(res.Pods) == 0:
		routing.Mark(msg.Attributes, nil)
		r.m.Routing.WithLabelValues("nowhere").Inc()
	default:
		routing.Mark(msg.Attributes, res.Pods)
		r.m.Routing.WithLabelValues("routed").Inc()
	}
}
