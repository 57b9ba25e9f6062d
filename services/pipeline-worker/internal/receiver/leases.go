package receiver

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/pkg/periodic"
	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// leases keeps the ack deadline of every message in hand from expiring
// while it is processed: each lease is extended by step once half of its
// current length has passed, until the message has been held maxExtension.
//
// Each extension is short on purpose. When the worker dies (SIGKILL, OOM,
// node loss) nothing extends its leases any more, so Pub/Sub redelivers its
// messages within one step, and on the ordered ingress subscription the
// later messages of the same senders, which wait behind them, flow again.
type leases struct {
	api          API
	subscription string
	step         time.Duration
	maxExtension time.Duration
	metrics      *metrics.Metrics
	log          *slog.Logger
	now          func() time.Time

	mu   sync.Mutex
	held map[string]*lease // by ack id
}

type lease struct {
	received time.Time
	expires  time.Time     // when Pub/Sub would redeliver, as far as we know
	length   time.Duration // the deadline last set
}

// maxAckIDsPerRequest keeps a ModifyAckDeadline request well under Pub/Sub's
// 512 KB request limit (ack ids are up to ~200 bytes).
const maxAckIDsPerRequest = 1000

func (l *leases) add(ackID string, deadline time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[ackID] = &lease{received: now, expires: now.Add(deadline), length: deadline}
}

func (l *leases) remove(ackID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, ackID)
}

// run extends leases until ctx is done, checking every tick.
func (l *leases) run(ctx context.Context, tick time.Duration) {
	periodic.Run(ctx, tick, l.extendDue)
}

// extendDue extends every lease past half its length, and lets go of the
// ones held longer than maxExtension (Pub/Sub redelivers them; the
// handler's in-process retry budget is far shorter, so this only catches
// a handler that is stuck).
func (l *leases) extendDue(ctx context.Context) {
	now := l.now()
	var due []string
	l.mu.Lock()
	for id, ls := range l.held {
		switch {
		case now.Sub(ls.received) >= l.maxExtension:
			delete(l.held, id)
			l.log.Warn("message held longer than the maximum lease extension; no longer extending it", "max_extension", l.maxExtension.String())
		case ls.expires.Sub(now) <= ls.length/2:
			due = append(due, id)
		}
	}
	l.mu.Unlock()
	for len(due) > 0 {
		n := min(len(due), maxAckIDsPerRequest)
		batch := due[:n]
		due = due[n:]
		err := l.api.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
			Subscription: l.subscription, AckIds: batch, AckDeadlineSeconds: int32(l.step / time.Second),
		})
		if err != nil {
			// The next tick tries again while the lease lasts; if it runs
			// out, Pub/Sub redelivers and the store's idempotence absorbs
			// the duplicate.
			if ctx.Err() == nil {
				l.metrics.LeaseErrors.Inc()
				l.log.Warn("extending leases failed", "messages", len(batch), "err", err)
			}
			continue
		}
		l.metrics.LeaseExtensions.Add(float64(len(batch)))
		l.mu.Lock()
		for _, id := range batch {
			if ls, ok := l.held[id]; ok {
				ls.expires, ls.length = now.Add(l.step), l.step
			}
		}
		l.mu.Unlock()
	}
}
