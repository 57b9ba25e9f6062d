// Package backoff is Courier's one retry schedule: capped exponential waits
// with jitter, optionally within a total time budget. Every loop that tries
// again uses it — the worker's in-process retries of a message (Pub/Sub's
// own redelivery after a nack is immediate on the emulator, and the first
// one on GCP can be too, so backing off here is what lets a short outage
// dead-letter nothing), the worker's and the edges' receive loops, and an
// edge's gap reads — and nothing retries what the client library already
// retries (acks and lease extensions go out once; the library retries
// Unavailable within the call).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is a retry schedule.
type Policy struct {
	Initial time.Duration // first wait
	Max     time.Duration // cap on one wait
	Budget  time.Duration // total time before giving up (Next); zero with Delay alone
}

// Delay returns the wait before retry n (0 for the first retry): Initial
// doubled n times, capped at Max, then jittered into [d/2, d) so that
// messages failing together do not retry in lockstep.
func (p Policy) Delay(n int, rnd func() float64) time.Duration {
	d := p.Initial
	for i := 0; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if rnd == nil {
		rnd = rand.Float64
	}
	return d/2 + time.Duration(rnd()*float64(d/2))
}

// Next returns the wait before retry n of an operation that started at
// start, and false when that wait would end past the budget.
func (p Policy) Next(n int, start, now time.Time, rnd func() float64) (time.Duration, bool) {
	d := p.Delay(n, rnd)
	if now.Add(d).Sub(start) > p.Budget {
		return 0, false
	}
	return d, true
}

// Sleep waits d or until ctx is done; it reports whether the full wait
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
