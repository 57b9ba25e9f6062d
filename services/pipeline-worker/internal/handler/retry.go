package handler

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/courierhq/courier/pkg/backoff"
)

// retry makes attempts at pending until each is done, dead-lettered or
// given up on: a transient failure is retried in process with backoff (the
// worker's one retry layer) together with every message behind it in the
// run, in order; once the budget is spent they are given up (poison.go);
// once retrying is done (shutdown) no retry starts and they are nacked.
func (p *Processor) retry(work, retrying context.Context, pending []*Message, start time.Time) {
	for n := 0; len(pending) > 0; n++ {
		errs := p.attempt(work, pending)
		var failed []*Message
		stopped := false // a message was nacked: nothing behind it may go on
		for k, m := range pending {
			switch err := errs[k]; {
			case err == nil:
				m.out = ack
				p.failures.forget(m.m.ID)
				p.metrics.Processed.WithLabelValues(m.result()).Inc()
				m.log.DebugContext(m.ctx, "message processed", "result", m.result(), "retries", n)
			case stopped:
				// Left at nack, with the message ahead of it.
			case len(failed) > 0:
				// Behind a message that will be retried: retried with it,
				// whatever its own failure (its turn comes after).
				m.lastErr = err
				failed = append(failed, m)
			case p.fail(m, err):
				failed = append(failed, m)
			default:
				stopped = m.out == nack
			}
		}
		pending = failed
		if len(pending) == 0 {
			return
		}
		wait, ok := p.cfg.Retry.Next(n, start, p.now(), nil)
		if !ok {
			p.giveUp(pending)
			return
		}
		pending[0].log.InfoContext(pending[0].ctx, "transient failure: retrying", "err", pending[0].lastErr,
			"retry_in", wait.String(), "retry", n+1, "messages", len(pending))
		// retrying ends no later than work: shutdown begins before the
		// drain deadline.
		if !backoff.Sleep(retrying, wait) || work.Err() != nil {
			for _, m := range pending {
				p.metrics.Nacked.WithLabelValues("shutdown").Inc()
				m.span.SetStatus(codes.Error, "nacked on shutdown")
			}
			return
		}
		p.metrics.Retries.Add(float64(len(pending)))
	}
}
