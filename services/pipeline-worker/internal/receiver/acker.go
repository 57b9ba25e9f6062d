package receiver

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/courierhq/courier/services/pipeline-worker/internal/metrics"
)

// acker sends acks and nacks (a nack is ModifyAckDeadline 0: redeliver now).
// It sends as soon as it can and coalesces whatever piled up meanwhile into
// one request, without waiting on a timer: on the ordered ingress
// subscription Pub/Sub delivers a sender's next message only after the
// previous one is acked, so every millisecond an ack waits is added to that
// sender's latency.
type acker struct {
	api          API
	subscription string
	metrics      *metrics.Metrics
	log          *slog.Logger

	mu     sync.Mutex
	acks   []string
	nacks  []string
	notify chan struct{} // one pending wake-up
}

func newAcker(api API, subscription string, m *metrics.Metrics, log *slog.Logger) *acker {
	return &acker{api: api, subscription: subscription, metrics: m, log: log, notify: make(chan struct{}, 1)}
}

func (a *acker) ack(id string)  { a.add(id, false) }
func (a *acker) nack(id string) { a.add(id, true) }

func (a *acker) add(id string, nack bool) {
	a.mu.Lock()
	if nack {
		a.nacks = append(a.nacks, id)
	} else {
		a.acks = append(a.acks, id)
	}
	a.mu.Unlock()
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// run sends until ctx is done, then sends what is left within final.
// Cancelling ctx only says "finish": a request in progress is not cut
// short by it (each has requestTimeout), since the acks sent last are those
// of the messages that finished during the drain.
func (a *acker) run(ctx context.Context, final time.Duration) {
	live := context.WithoutCancel(ctx)
	for {
		select {
		case <-a.notify:
			a.send(live)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(live, final)
			a.send(fctx)
			cancel()
			return
		}
	}
}

// requestTimeout bounds one ack or nack request.
const requestTimeout = 10 * time.Second

func (a *acker) send(ctx context.Context) {
	for {
		a.mu.Lock()
		acks, nacks := a.acks, a.nacks
		a.acks, a.nacks = nil, nil
		a.mu.Unlock()
		if len(acks) == 0 && len(nacks) == 0 {
			return
		}
		for len(acks) > 0 {
			n := min(len(acks), maxAckIDsPerRequest)
			a.do(ctx, "ack", n, func(ctx context.Context) error {
				return a.api.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: a.subscription, AckIds: acks[:n]})
			})
			acks = acks[n:]
		}
		for len(nacks) > 0 {
			n := min(len(nacks), maxAckIDsPerRequest)
			a.do(ctx, "nack", n, func(ctx context.Context) error {
				return a.api.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: a.subscription, AckIds: nacks[:n], AckDeadlineSeconds: 0})
			})
			nacks = nacks[n:]
		}
	}
}

// do sends one ack or nack request. It is not retried here: the client
// library already retries Unavailable within the call's timeout, and a
// message whose ack is lost is only redelivered (the worker is idempotent).
func (a *acker) do(ctx context.Context, kind string, n int, call func(context.Context) error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := call(rctx); err != nil {
		a.metrics.AckErrors.WithLabelValues(kind).Inc()
		a.log.Warn("sending acks failed; Pub/Sub will redeliver these messages after their ack deadline", "kind", kind, "messages", n, "err", err)
	}
}
