// Package fanout is the step after the commit: it publishes each stored
// message's delivery to the fan-out topic, in order, and waits for every
// confirmation. With targeted routing it first marks each delivery with
// the ws-edge pods holding its recipients (pkg/presence), read from presence
// once per committed batch — after the commit, as pkg/presence explains —
// and shared by the batch's messages.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/pkg/presence"
	"github.com/courierhq/courier/pkg/pubsubx"
	courierv1 "github.com/courierhq/courier/proto/courier/v1"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

const tracerName = "github.com/courierhq/courier/services/pipeline-worker/internal/fanout"

// PublishFunc publishes deliveries in order and waits for every
// confirmation (pubsubx.PublishAll on the deliveries topic).
type PublishFunc func(out []pubsubx.Outgoing) []error

// Presence reads which ws-edge pods hold sessions of users
// (presence.Table).
type Presence interface {
	PodsOf(ctx context.Context, users []string) (map[string][]string, error)
}

// Group is the committed batch a message was stored in (*batch.Batch):
// presence is read once per group, for all of its recipients.
type Group interface {
	Lead() context.Context
	Recipients() []string
}

// Item is one delivery to publish.
type Item struct {
	Out        pubsubx.Outgoing
	Recipients []string
	Group      Group
	// Env is the stored message (for the offline-notification hook).
	Env *courierv1.Envelope
}

// Notifier takes each published message for the offline-notification
// hook without blocking (notify.Notifier).
type Notifier interface {
	Offer(env *courierv1.Envelope)
}

// Fanout publishes deliveries.
type Fanout struct {
	publish  PublishFunc
	presence Presence // nil: no targeted routing
	notify   Notifier // nil: no offline notifications
	timeout  time.Duration
	m        *metrics.Metrics
	log      *slog.Logger
	tracer   trace.Tracer

	mu      sync.Mutex
	lookups map[Group]*lookup
	recent  []Group // the groups in lookups, oldest first
}

// lookup is one group's presence read.
type lookup struct {
	done   chan struct{}
	byUser map[string][]string
	err    error
}

var errReadPanicked = errors.New("presence read panicked")

// keepGroups bounds the presence reads remembered: far more batches than
// are between their commit and their fan-out at once. A group forgotten
// and asked again (a publish retried much later) is simply read again.
const keepGroups = 256

// New returns a Fanout publishing with publish. presence is nil without
// targeted routing; timeout bounds one presence read.
func New(publish PublishFunc, presence Presence, timeout time.Duration, m *metrics.Metrics, log *slog.Logger) (*Fanout, error) {
	if timeout <= 0 {
		return nil, fmt.Errorf("fanout: presence read timeout %s, want more than 0", timeout)
	}
	return &Fanout{publish: publish, presence: presence, timeout: timeout, m: m, log: log,
		tracer: otel.Tracer(tracerName), lookups: map[Group]*lookup{}}, nil
}

// Publish publishes items in order under ctx and returns one error per item.
func (f *Fanout) Publish(ctx context.Context, items []Item) []error {
	out := make([]pubsubx.Outgoing, len(items))
	for i, it := range items {
		if f.presence != nil {
			f.route(ctx, it)
		}
		out[i] = it.Out
	}
	errs := f.publish(out)
	if f.notify != nil {
		// After the publish: an event never precedes its delivery, and
		// Offer never waits.
		for i, it := range items {
			if errs[i] == nil && it.Env != nil {
				f.notify.Offer(it.Env)
			}
		}
	}
	return errs
}

// WithNotifier makes f offer every published message to n.
func (f *Fanout) WithNotifier(n Notifier) *Fanout {
	f.notify = n
	return f
}

// route marks it's delivery with the pods holding its recipients. When
// presence could not be read the delivery goes out unrouted, to every pod:
// slower, never lost.
func (f *Fanout) route(ctx context.Context, it Item) {
	byUser, err := f.podsOf(ctx, it.Group)
	msg := it.Out.Msg
	switch pods := presence.PodsFor(byUser, it.Recipients); {
	case err != nil:
		f.m.Routing.WithLabelValues("unrouted").Inc()
		f.log.WarnContext(it.Out.Ctx, "presence unknown; delivery goes to every edge pod", "courier_message_id", it.Out.CourierID, "err", err)
	case len(pods) == 0:
		presence.Mark(msg.Attributes, nil)
		f.m.Routing.WithLabelValues("nowhere").Inc()
	default:
		presence.Mark(msg.Attributes, pods)
		f.m.Routing.WithLabelValues("routed").Inc()
	}
}

// podsOf returns the presence of g's recipients, read once for the group
// by whichever of its messages asks first; the others wait for that read
// (or for their own ctx).
func (f *Fanout) podsOf(ctx context.Context, g Group) (map[string][]string, error) {
	f.mu.Lock()
	l, ok := f.lookups[g]
	if !ok {
		l = &lookup{done: make(chan struct{})}
		f.lookups[g] = l
		f.recent = append(f.recent, g)
		if len(f.recent) > keepGroups {
			delete(f.lookups, f.recent[0])
			f.recent = f.recent[1:]
		}
	}
	f.mu.Unlock()
	if !ok {
		func() {
			// Closed even if the read panics (Recover, around the attempt,
			// catches it): the group's other messages then go unrouted
			// instead of waiting.
			defer close(l.done)
			l.err = errReadPanicked
			// Not cut short by this caller's ctx: the group's other
			// messages share the answer.
			l.byUser, l.err = f.read(context.WithoutCancel(ctx), g)
		}()
	}
	select {
	case <-l.done:
		return l.byUser, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read reads the presence of g's recipients in one request.
func (f *Fanout) read(ctx context.Context, g Group) (map[string][]string, error) {
	users := g.Recipients()
	if len(users) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	ctx, span := f.tracer.Start(trace.ContextWithSpan(ctx, trace.SpanFromContext(g.Lead())), "firestore read presence",
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attribute.String("db.system.name", "gcp.firestore"),
			attribute.Int("courier.route.users", len(users))))
	defer span.End()
	f.m.RoundTrip("read_presence")
	byUser, err := f.presence.PodsOf(ctx, users)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "presence unknown")
	}
	return byUser, err
}
