// Package handler is what the worker does with one sender's run of ingress
// messages: one handler — decode, commit (through the group commit,
// package batch), fan out (package fanout) — and the policies wrapped
// around it, one file each, as watermill's router middleware wraps a
// handler:
//
//	process.go  the entry (receiver.Handler): spans and metrics, then the wrappers
//	poison.go   dead-letter what can never succeed, at once and with its reason,
//	            and what exhausted its last delivery attempt
//	retry.go    retry transient failures in process, with backoff, within a budget;
//	            then nack
//	recover.go  a panic in an attempt becomes a transient failure (the one recover)
//	timeout.go  bound each attempt
//
// Order: a run is one sender's messages in delivery order. A message that
// is retried holds back every later message of its run (an attempt never
// commits a message ahead of an earlier one that is not stored yet), and a
// nacked message takes every later message of its run that is not done
// with it, so Pub/Sub redelivers them in order.
package handler

import (
	"context"
	"fmt"
	"log/slog"

	"cloud.google.com/go/pubsub/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/inbox"
	"github.com/courierhq/courier/pkg/pubsubx"
	"github.com/courierhq/courier/pkg/wire"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/batch"
	"github.com/courierhq/courier/services/pipeline-worker/internal/fanout"
)

const tracerName = "github.com/courierhq/courier/services/pipeline-worker/internal/handler"

// Message is one ingress message being handled, and how far its attempts
// got: an attempt redoes only what is left.
type Message struct {
	m    *pubsub.Message
	ctx  context.Context // carries its processing span
	span trace.Span
	log  *slog.Logger
	env  *courierv1.Envelope // nil until decoded

	stored    *batch.Result // set once committed (or found stored)
	published bool

	lastErr error
	out     outcome
}

// Done reports whether the message is stored and its delivery published.
func (m *Message) Done() bool { return m.published }

// result is "stored" for a message this worker stored, "duplicate" for one
// that was stored before (a redelivery, a replay, a repeat): its delivery
// was published again, nothing was written.
func (m *Message) result() string {
	if m.stored != nil && !m.stored.Created {
		return "duplicate"
	}
	return "stored"
}

// Attempt is one attempt at a run of valid messages: one error per
// message, nil for a message that is done. The wrappers take and return it.
type Attempt func(ctx context.Context, run []*Message) []error

// decode is the handler's first step, once per message before any
// attempt: what can never be valid fails here (permanently) without
// holding up its run.
func decode(m *Message, limits wire.Limits) error {
	env, err := wire.DecodeEnvelope(m.m.Data, m.m.Attributes, limits)
	if err != nil {
		return err
	}
	m.env = env
	return nil
}

// Committer commits runs of messages (batch.Batcher).
type Committer interface {
	Commit(ctx context.Context, items []batch.Item) []batch.Result
}

// Publisher publishes deliveries in order (fanout.Fanout).
type Publisher interface {
	Publish(ctx context.Context, items []fanout.Item) []error
}

// Handler makes attempts: commit what is not stored yet, then fan out, in
// order, each stored message not published yet. It decides nothing about
// failures; the wrappers do.
type Handler struct {
	commit Committer
	fan    Publisher
	tracer trace.Tracer
}

// NewHandler returns the handler committing through commit and fanning out
// through fan.
func NewHandler(commit Committer, fan Publisher) *Handler {
	return &Handler{commit: commit, fan: fan, tracer: otel.Tracer(tracerName)}
}

// Attempt makes one attempt at run under ctx (an Attempt).
func (h *Handler) Attempt(ctx context.Context, run []*Message) []error {
	errs := make([]error, len(run))
	h.commitRun(ctx, run, errs)
	h.fanOut(ctx, run, errs)
	return errs
}

// commitRun stores the messages not stored yet, each inside its own
// "firestore commit" span (which includes the wait for its batch).
func (h *Handler) commitRun(ctx context.Context, run []*Message, errs []error) {
	var idx []int
	var items []batch.Item
	var spans []trace.Span
	for i, m := range run {
		if m.stored != nil {
			continue
		}
		sctx, span := h.tracer.Start(m.ctx, "firestore commit", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", "gcp.firestore"),
				pubsubx.KeyCourierMessageID.String(m.env.MessageId),
				attribute.Int("courier.recipients.count", len(m.env.Recipients))))
		idx, items, spans = append(idx, i), append(items, batch.Item{Ctx: sctx, Env: m.env}), append(spans, span)
	}
	if len(items) == 0 {
		return
	}
	results := h.commit.Commit(ctx, items)
	for k, i := range idx {
		res, span := results[k], spans[k]
		if res.Err != nil {
			errs[i] = res.Err
			span.RecordError(res.Err)
			span.SetStatus(codes.Error, "commit failed")
		} else {
			run[i].stored = &res
			span.SetAttributes(attribute.Bool("courier.created", res.Created), attribute.Int("courier.batch.messages", res.Batch.Size))
		}
		span.End()
	}
}

// fanOut publishes the delivery of every stored message not published
// yet, in order.
func (h *Handler) fanOut(ctx context.Context, run []*Message, errs []error) {
	var idx []int
	var items []fanout.Item
	for i, m := range run {
		if m.stored == nil || m.published {
			continue
		}
		msg, err := wire.EncodeDelivery(m.stored.Stored.Delivery())
		if err != nil {
			errs[i] = err
			continue
		}
		idx = append(idx, i)
		items = append(items, fanout.Item{
			// The attempt's deadline, the message's span.
			Out:        pubsubx.Outgoing{Ctx: trace.ContextWithSpan(ctx, trace.SpanFromContext(m.ctx)), Msg: msg, CourierID: m.env.MessageId},
			Recipients: inbox.InboxUsers(m.env), Group: m.stored.Batch, Env: m.env,
		})
	}
	if len(items) == 0 {
		return
	}
	for k, err := range h.fan.Publish(ctx, items) {
		i := idx[k]
		if err != nil {
			errs[i] = fmt.Errorf("publish delivery %s: %w", run[i].env.MessageId, err)
			continue
		}
		run[i].published, errs[i] = true, nil
	}
}
