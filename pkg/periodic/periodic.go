// Package periodic is the one ticker loop of Courier's background work:
// the dependency probe (pkg/health), and, in the services, the edge's
// heartbeat and the worker's lease extensions.
package periodic

import (
	"context"
	"time"
)

// Run calls f every interval until ctx ends; it returns when ctx ends
// (after the call in progress, if any) and never starts f after that. f gets ctx, so a shutdown also cancels the
// call in progress. A call longer than interval delays the next one rather
// than overlapping it (a time.Ticker drops the ticks it could not
// deliver).
func Run(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// select picks at random when both are ready: an ended
			// context wins, so f never starts after it.
			if ctx.Err() != nil {
				return
			}
			f(ctx)
		}
	}
}
